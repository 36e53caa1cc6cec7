"""QuickTime / MP4 boxes read from the file itself, for what FFmpeg does not report: the moov, a track's boxes,
where a track's presentation ends."""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

HEADER = struct.Struct(">I4s")
CONTAINER_BOXES = (b"moov", b"trak", b"mdia", b"minf", b"stbl")  # the boxes down to a track's sample descriptions
UNKNOWN_DURATION = (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)  # a header's "not known" length (a live recording's)


def boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, body end) of the boxes in data[start:end]; a box running past the end stops the walk."""
    found = []
    while start + HEADER.size <= end:
        size, kind = HEADER.unpack_from(data, start)
        if size < HEADER.size or start + size > end:
            break
        found.append((kind, start + HEADER.size, start + size))
        start += size
    return found


def moov(path: Path) -> bytes:
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


def track_end(path: Path, track_id: int) -> tuple[Fraction, Fraction] | None:
    """Where track `track_id` (FFmpeg's stream.id) of a QuickTime/MP4 file ends, in seconds of its presentation,
    and that figure's precision (a tick of the movie's timescale): its tkhd duration, which is the sum of its
    edits (or its media's length without an edit list), so the end players show it to. FFmpeg reports its own
    figures instead (a stream duration that can end before the last frame of a B-frame stream does). None
    where the file has no such track, states no length (a fragmented MP4's is 0) or has no edit list (its
    frames' times are then not on the presentation's clock that length is measured on)."""
    movie = moov(path)
    header = next(((start, end) for kind, start, end in boxes(movie, 0, len(movie)) if kind == b"mvhd"), None)
    if header is None or header[1] - header[0] < 20:
        return None
    scale = struct.unpack_from(">I", movie, header[0] + (20 if movie[header[0]] == 1 else 12))[0]
    for start, end in ((start, end) for kind, start, end in boxes(movie, 0, len(movie)) if kind == b"trak"):
        parts = boxes(movie, start, end)
        for kind, body, stop in parts:
            if kind != b"tkhd" or stop - body < 24:
                continue
            long = movie[body] == 1  # version 1: 64-bit times
            if stop - body < (36 if long else 24):
                return None
            found = struct.unpack_from(">I", movie, body + (20 if long else 12))[0]
            duration = struct.unpack_from(">Q" if long else ">I", movie, body + (28 if long else 20))[0]
            if found != track_id:
                break
            if not any(kind == b"edts" for kind, _, _ in parts):  # FFmpeg's times are then the media's, which
                return None  # start at the first frame's composition offset, not at the presentation's 0
            if not scale or not duration or duration in UNKNOWN_DURATION:
                return None
            return Fraction(duration, scale), Fraction(1, scale)
    return None
