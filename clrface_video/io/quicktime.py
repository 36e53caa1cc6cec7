"""QuickTime / MP4 boxes read from the file itself, for what FFmpeg does not report: the moov (or that it is
missing or cut short), a track's boxes, where a track's presentation ends."""
from __future__ import annotations

import struct
from dataclasses import dataclass
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


TOP_LEVEL_BOXES = (b"ftyp", b"wide", b"free", b"skip", b"mdat", b"pnot")  # those a QuickTime/MP4 file opens with
LARGE_SIZE = struct.Struct(">Q")  # follows a header whose size is 1
TO_THE_END = 0  # a header's size for a box that runs to the end of the file


@dataclass(frozen=True)
class TopLevel:
    """What one walk over a file's top-level boxes found: the first box's type (None in a file too short for a
    header), where the moov's body lies in the file (start, end; None where there is none), and whether the boxes
    run to the file's end with no moov among them, cut mid header or mid box or not (else the walk stopped at a
    size no box can have, or at the moov); `cut`: the moov runs past the file's end (its end is the file's)."""

    first: bytes | None
    moov: tuple[int, int] | None
    ended: bool
    cut: bool = False


def top_level(path: Path) -> TopLevel:
    """One walk over `path`'s top-level boxes, skipping each by its size, for both moov and moov_missing: each
    walking on its own, they took a cut 64-bit size or a moov that runs to the end (size 0) differently (the one
    an error or no moov, the other a missing or a present one)."""
    first = None
    size_of_file = path.stat().st_size
    with path.open("rb") as file:
        position = 0
        while position < size_of_file:
            file.seek(position)
            header = file.read(HEADER.size)
            if len(header) < HEADER.size:  # cut mid header
                break
            size, kind = HEADER.unpack(header)
            first = first or kind
            length = HEADER.size
            if size == 1:
                wide = file.read(LARGE_SIZE.size)
                if len(wide) < LARGE_SIZE.size:  # cut mid header
                    break
                size, length = LARGE_SIZE.unpack(wide)[0], HEADER.size + LARGE_SIZE.size
            elif size == TO_THE_END:
                size = size_of_file - position
            if size < length:
                return TopLevel(first, None, False)
            if kind == b"moov":  # as far as the file holds it
                return TopLevel(first, (position + length, min(position + size, size_of_file)), False,
                                cut=position + size > size_of_file)
            position += size
    return TopLevel(first, None, True)


def moov(path: Path) -> bytes:
    """The bytes of a QuickTime file's moov box (b"" when there is none), read by skipping the other boxes."""
    found = top_level(path).moov
    if found is None:
        return b""
    with path.open("rb") as file:
        file.seek(found[0])
        return file.read(found[1] - found[0])


def moov_missing(path: Path) -> bool:
    """True for a QuickTime/MP4 file whose top-level boxes end without a moov (its sample index): a file whose
    moov is written last, cut before it (still being copied or recorded), so its media data (mdat) runs to or
    past the end of the file. FFmpeg then says only 'Invalid data found when processing input'. False for a
    file that does not open with a QuickTime box. Where this is True, moov is b"" (the same walk, top_level)."""
    walk = top_level(path)
    return walk.ended and walk.first in TOP_LEVEL_BOXES


def moov_cut(path: Path) -> bool:
    """True for a QuickTime/MP4 file whose moov (its sample index) runs past the end of the file: written last
    and cut inside it (a copy or recording stopped). FFmpeg opens what of it is there, with tracks or samples
    missing: a cut 1000 bytes in crashed the copier, one 1500 bytes in lost the timecode track in silence."""
    walk = top_level(path)
    return walk.cut and walk.first in TOP_LEVEL_BOXES


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
