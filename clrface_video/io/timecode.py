"""The rate a source's timecode counts frames at: a QuickTime timecode track's own, not the video's average."""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

HEADER = struct.Struct(">I4s")
CONTAINER_BOXES = (b"moov", b"trak", b"mdia", b"minf", b"stbl")  # the boxes down to a track's sample descriptions
TMCD_ENTRY = struct.Struct(">I4s6sH4sIIIB")  # size, "tmcd", reserved, data ref, reserved, flags, scale, duration, n


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, body end) of the boxes in data[start:end]; a box running past the end stops the walk."""
    found = []
    while start + HEADER.size <= end:
        size, kind = HEADER.unpack_from(data, start)
        if size < HEADER.size or start + size > end:
            break
        found.append((kind, start + HEADER.size, start + size))
        start += size
    return found


def _moov(path: Path) -> bytes:
    """The bytes of a QuickTime file's moov box (b"" when there is none), read by skipping the other boxes."""
    with path.open("rb") as file:
        while header := file.read(HEADER.size):
            if len(header) < HEADER.size:
                return b""
            size, kind = HEADER.unpack(header)
            if size == 1:  # a 64-bit size follows
                size = struct.unpack(">Q", file.read(8))[0] - 8
            if size < HEADER.size:
                return b""
            if kind == b"moov":
                return file.read(size - HEADER.size)
            file.seek(size - HEADER.size, 1)
    return b""


def quicktime_timecode_rate(path: Path | str) -> Fraction | None:
    """Frames per second a .mov/.mp4 timecode track counts (its tmcd sample description's frames per second,
    30000/1001 when its frames last 1001/30000 s), or None when the file has none or is not QuickTime."""
    moov = _moov(Path(path))
    level = [(b"moov", 0, len(moov))]
    for name in CONTAINER_BOXES[1:]:
        level = [box for _, start, end in level for box in _boxes(moov, start, end) if box[0] == name]
    for _, start, end in level:
        for kind, body, stop in _boxes(moov, start, end):
            if kind == b"stsd" and stop - body >= 8 + TMCD_ENTRY.size and moov[body + 12:body + 16] == b"tmcd":
                *_, scale, duration, count = TMCD_ENTRY.unpack_from(moov, body + 8)
                if not count:
                    return None
                ntsc = Fraction(count * 1000, 1001)  # 29.97 counts 30 frames a second, each 1001/30000 s long
                return ntsc if duration and Fraction(scale, duration) == ntsc else Fraction(count)
    return None
