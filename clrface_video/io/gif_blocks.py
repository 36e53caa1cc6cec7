"""A GIF's blocks walked from its header to its trailer: whether the file is whole, cut short or damaged."""
from __future__ import annotations

from pathlib import Path

EXTENSION, IMAGE, TRAILER = 0x21, 0x2C, 0x3B  # the bytes that introduce a GIF's blocks
SCREEN = 13  # the header (6 bytes) and the logical screen descriptor (7)
IMAGE_DESCRIPTOR = 10  # its introducer, position, size and flags


def gif_break(path: Path) -> str | None:
    """Why a GIF's blocks stop short of its trailer: "cut" where they run past the end of the file, "damaged"
    where a byte stands where a block must begin; None for a whole GIF (or a file that is no GIF).

    Why: a GIF states neither its length nor its frame count, so FFmpeg (and Pillow) read a download cut off, or
    a file with a few flipped bytes, up to where it stops making sense and no further, with no error: a GIF of 6
    frames was restored as 3 without a word. Every block states its own length, so a walk along them tells. A GIF
    whose last frame's data ends the file, its one-byte trailer left off (as some writers and a cut that falls just
    there leave it), has every frame it holds whole, as a transport stream cut between two packets has: it was said
    to be cut short, its last frame whole."""
    data = path.read_bytes()
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    at = SCREEN + _table(data[10]) if len(data) > 10 else len(data) + 1
    introducer = None
    while at < len(data):
        introducer = data[at]
        if introducer == TRAILER:
            return None
        if introducer == EXTENSION:
            at = _sub_blocks(data, at + 2)
        elif introducer == IMAGE and at + IMAGE_DESCRIPTOR <= len(data):
            at = _sub_blocks(data, at + IMAGE_DESCRIPTOR + _table(data[at + 9]) + 1)  # after the LZW code size
        elif introducer != IMAGE:
            return "damaged"
        else:
            break
    return None if at == len(data) and introducer == IMAGE else "cut"


def _table(flags: int) -> int:
    """The bytes of the colour table that a descriptor's flags say follows it (none without its top bit)."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _sub_blocks(data: bytes, at: int) -> int:
    """Where a run of data sub-blocks starting at `at` ends (past its zero-length terminator); past the end of
    `data` where it is cut short."""
    while at < len(data) and data[at]:
        at += data[at] + 1
    return at + 1
