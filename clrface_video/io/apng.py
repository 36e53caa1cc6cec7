"""Animated PNG: telling one from a still PNG, its loop count and frame delays, and writing delays back on output."""
from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

APNG_SUFFIXES = frozenset({".png", ".apng"})  # a video written to one .png file: an animated PNG


def _chunks(file: BinaryIO) -> Iterator[tuple[int, bytes, int]]:
    """(offset, type, data length) of each chunk of a PNG, read from its start; nothing for another file."""
    if file.read(8) != PNG_SIGNATURE:
        return
    while len(head := file.read(8)) == 8:  # length, type; then the data and a CRC
        length = struct.unpack(">I", head[:4])[0]
        yield file.tell() - 8, head[4:], length
        file.seek(file.tell() - 8 + 12 + length)


def _animation_control(path: Path) -> bytes | None:
    """An APNG's acTL chunk data (frame count, plays): a chunk before the first IDAT."""
    if path.suffix.lower() not in APNG_SUFFIXES or not path.is_file():
        return None
    with open(path, "rb") as file:
        for offset, kind, length in _chunks(file):
            if kind == b"IDAT":
                return None
            if kind == b"acTL":
                file.seek(offset + 8)
                return file.read(length)
    return None


def is_animated_png(path: Path | str) -> bool:
    """Whether a file is an animated PNG (APNG: an animation control chunk before the image data)."""
    return _animation_control(Path(path)) is not None


def apng_plays(path: Path | str) -> int:
    """How many times an animated PNG plays (its acTL chunk; 0: for ever); 0 for any other file."""
    control = _animation_control(Path(path))
    return int.from_bytes(control[4:8], "big") if control is not None and len(control) >= 8 else 0


def apng_frame_count(path: Path | str) -> int | None:
    """How many frames an animated PNG says it holds (its acTL chunk), None for any other file."""
    control = _animation_control(Path(path))
    return int.from_bytes(control[:4], "big") if control is not None and len(control) >= 4 else None


def apng_seconds(path: Path | str) -> Fraction | None:
    """How long an animated PNG plays once: its frames' delays added up (FFmpeg reports no duration for one);
    None for any other file."""
    delays = frame_delays(path)
    return sum(map(_delay_seconds, delays), Fraction(0)) if delays else None


def is_apng_output(path: Path | str) -> bool:
    """Whether a video's output path names an animated PNG."""
    return Path(path).suffix.lower() in APNG_SUFFIXES


CUT_TOLERANCE = Fraction(1, 1000)  # seconds: a frame shown this much less than its stored delay was not cut
DELAY = slice(20, 24)  # in a fcTL chunk's data: sequence, width, height, x, y (4 bytes each), then the delay's
# numerator and denominator (2 bytes each)


def _controls(data: bytes) -> list[int]:
    """The offsets of the frame control chunks (fcTL), in order."""
    return [offset for offset, kind, _ in _chunks(io.BytesIO(data)) if kind == b"fcTL"]


def frame_delays(path: Path | str) -> list[bytes]:
    """Each frame's delay as its APNG stores it (numerator and denominator, 4 bytes); [] for another file.
    A zero delay ("as fast as it can") is kept as it is, where FFmpeg reads it as 1/15 s."""
    if not is_animated_png(path):
        return []
    data = Path(path).read_bytes()
    return [data[offset + 8:][DELAY] for offset in _controls(data)]


def _rewrite_delays(path: Path, delays: dict[int, bytes]) -> None:
    """Write `delays` (frame number -> the 4 delay bytes) into the APNG at `path`, in place, with new CRCs."""
    data = bytearray(path.read_bytes())
    controls = _controls(bytes(data))
    for number, delay in delays.items():
        start = controls[number]
        length, body = struct.unpack(">I", data[start:start + 4])[0], start + 8
        data[body + DELAY.start:body + DELAY.stop] = delay
        crc = zlib.crc32(bytes(data[start + 4:body + length])) & 0xFFFFFFFF
        data[body + length:body + length + 4] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def _delay_seconds(delay: bytes) -> Fraction:
    """A stored delay (numerator, denominator) in seconds; a zero denominator means hundredths, as in the spec."""
    numerator, denominator = struct.unpack(">HH", delay)
    return Fraction(numerator, denominator or 100)


def _delay_bytes(seconds: Fraction) -> bytes:
    """`seconds` as a fcTL delay: the nearest fraction both of whose terms fit in 2 bytes (65535 s at most)."""
    seconds = min(Fraction(seconds), Fraction(65535)).limit_denominator(65535)  # the longest delay a fcTL holds
    while seconds.numerator > 65535:
        seconds = Fraction(seconds).limit_denominator(max(1, seconds.denominator // 2))
    return struct.pack(">HH", seconds.numerator, seconds.denominator)


def copy_delays(path: Path, delays: list[bytes], kept: list[int], shown: list[Fraction | None]) -> bool:
    """Give the APNG at `path`, whose frames are the source's frames numbered `kept` (all of them, or a --start
    stretch's), those frames' delays as the source stores them (frame_delays); whether it did (not when a
    number is unknown or the APNG holds another count of frames). `shown`: the seconds each frame is shown in
    the output (None: not known); a frame a stretch cut (the one on screen at --start, shown from there; the
    last, to --duration's end) is shown for less than its stored delay, by more than a millisecond, and keeps
    that shorter time, as a video output of the stretch does. A frame after which source frames were passed over
    (damaged, io.damage) is shown for theirs too, up to the next frame kept, as in a video output: the APNG of a
    source of 6 frames of 0.1 s without its fourth played 0.5 s, its frames after the gap early."""
    if not delays or len(_controls(path.read_bytes())) != len(kept) or not all(0 <= n < len(delays) for n in kept):
        return False
    written: dict[int, bytes] = {}
    for number, (source, seconds) in enumerate(zip(kept, shown, strict=True)):
        upto = kept[number + 1] if number + 1 < len(kept) and kept[number + 1] > source else source + 1
        delay = delays[source] if upto == source + 1 else \
            _delay_bytes(sum((_delay_seconds(delays[n]) for n in range(source, upto)), Fraction(0)))
        cut = seconds is not None and seconds < _delay_seconds(delay) - CUT_TOLERANCE
        written[number] = _delay_bytes(seconds) if seconds is not None and cut else delay
    _rewrite_delays(path, written)
    return True


def set_last_delay(path: Path, seconds: Fraction) -> None:
    """Rewrite the delay of the last frame control chunk (fcTL) of the APNG at `path` to `seconds`, in place."""
    count = len(_controls(path.read_bytes()))
    if count:
        _rewrite_delays(path, {count - 1: _delay_bytes(seconds)})
