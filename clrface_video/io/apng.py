"""Animated PNG: telling one from a still PNG, its loop count, and (on output) the last frame's own delay."""
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


def is_apng_output(path: Path | str) -> bool:
    """Whether a video's output path names an animated PNG."""
    return Path(path).suffix.lower() in APNG_SUFFIXES


def set_last_delay(path: Path, seconds: Fraction) -> None:
    """Rewrite the delay of the last frame control chunk (fcTL) of the APNG at `path` to `seconds`, in place."""
    data = bytearray(path.read_bytes())
    controls = [offset for offset, kind, _ in _chunks(io.BytesIO(data)) if kind == b"fcTL"]
    if not controls:
        return
    last = controls[-1]
    length, body = struct.unpack(">I", data[last:last + 4])[0], last + 8
    seconds = min(Fraction(seconds), Fraction(65535)).limit_denominator(65535)  # the longest delay a fcTL holds
    while seconds.numerator > 65535:
        seconds = Fraction(seconds).limit_denominator(max(1, seconds.denominator // 2))
    # sequence, width, height, x, y (4 bytes each), then the delay's numerator and denominator (2 bytes each)
    data[body + 20:body + 24] = struct.pack(">HH", seconds.numerator, seconds.denominator)
    crc = zlib.crc32(bytes(data[last + 4:body + length])) & 0xFFFFFFFF
    data[body + length:body + length + 4] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
