"""A Matroska file's elements walked from one block to the next: whether the bytes between them are whole."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MATROSKA_FORMATS = frozenset({"matroska,webm"})  # FFmpeg's demuxer for .mkv, .mka and .webm
BLOCKS = frozenset({0xA3, 0xA1})  # SimpleBlock, Block: the elements whose data is a packet's
HEADER = 9  # the most bytes of a block's ID (1) and size (8) before its data
EBML, SEGMENT = 0x1A45DFA3, 0x18538067  # the header every Matroska file starts with; the element after it, the rest
ENTERED = frozenset({SEGMENT, 0x1F43B675, 0xA0})  # Segment, Cluster, BlockGroup: the masters blocks sit in
MAX_ELEMENTS = 4096  # elements walked between two blocks of a stream before the bytes count as whole (no end in
# sight: a file of other tracks' blocks between two of this one's is no damage to it either)


@dataclass
class BlockWalk:
    """A Matroska file, to check that the elements after one block of a stream lead to the next one.

    Why: where damage lands on the elements that frame the blocks (a cluster's or a block's header), FFmpeg's
    demuxer reads the file on from its next cluster without a word: a .mkv with 2000 bytes of garbage at 30% was
    restored without 11 of its 48 frames (0.46 s), its packets neither refused nor marked corrupt. Every element
    states its length, so a walk along them from one block either lands on the next one or not."""

    path: Path

    def joined(self, start: int, end: int) -> bool:
        """Whether the elements from the block whose data starts at byte `start` (a packet's pos) lead to the
        block whose data starts at `end` (the stream's next packet's), entering the masters that hold blocks;
        False where one's header is not Matroska's (no ID or size can be read) or where an element runs past
        `end`. True where `start` is no block's (nothing to walk from)."""
        if end <= start or start < HEADER:
            return True
        with open(self.path, "rb") as file:  # opened for each walk: a reader stopped early leaves nothing open
            file.seek(start - HEADER)
            data = file.read(end - start + HEADER)
        ends = _block_ends(data)
        return not ends or any(_leads_to_block(data, at) for at in ends)


def _leads_to_block(data: bytes, at: int) -> bool:
    """Whether the elements walked from `at` in `data` (the bytes from a block up to another) end where the next
    block's data begins (BlockWalk.joined)."""
    for _ in range(MAX_ELEMENTS):
        ident, size = _vint(data, at, 4, False), None
        if ident is not None:
            size = _vint(data, ident[1], 8, True)
        if ident is None or size is None:
            return False
        if size[1] == len(data):
            return ident[0] in BLOCKS
        at = size[1] if ident[0] in ENTERED else size[1] + size[0]
        if at >= len(data):
            return False
    return True


def whole_in_size(path: Path) -> bool:
    """Whether a Matroska file is as long as its Segment says (False where it says no length, as a live recording's
    may, or where it is no Matroska file).

    Why: where decoding stops before the length a .mkv states, the file was either cut short (a copy or download
    cut off) or damaged in the middle, FFmpeg's demuxer finding no cluster after the damage: one overwritten with
    1000 bytes of garbage at 80% of its length was said to be "truncated". Its Segment's size, written when the
    file was finished, tells the two apart."""
    with open(path, "rb") as file:
        head = file.read(64)
    ident = _vint(head, 0, 4, False)
    size = None if ident is None or ident[0] != EBML else _vint(head, ident[1], 8, True)
    segment = None if size is None else _vint(head, size[1] + size[0], 4, False)
    if segment is None or segment[0] != SEGMENT or (stated := _vint(head, segment[1], 8, True)) is None:
        return False
    unknown = (1 << 7 * (stated[1] - segment[1])) - 1  # a size of all ones: no length stated
    return stated[0] != unknown and stated[1] + stated[0] <= path.stat().st_size


def _block_ends(data: bytes) -> list[int]:
    """Where the block whose data starts at HEADER in `data` may end: its header (a block's ID, then its size in
    as many bytes as that size's marker says) read backwards from there, every way it reads. Why every way: a
    size's own bytes can read as a shorter header (a3 20 a3 87, a 41,863-byte block, ends in a3 87, a 7-byte
    one), and taking the shortest said two frames lost in a whole .mkv that PyAV wrote from liveportrait_d0."""
    ends = []
    for length in range(1, HEADER):
        size = _vint(data, HEADER - length, 8, True)
        if data[HEADER - length - 1] in BLOCKS and size is not None and size[1] == HEADER:
            ends.append(HEADER + size[0])
    return ends


def _vint(head: bytes, at: int, longest: int, value: bool) -> tuple[int, int] | None:
    """The variable-length integer at `at` in `head` and where it ends: an element's ID (marker bits kept, as
    IDs are written) or, with `value`, its size (marker taken off); None where its first byte has no marker bit in
    its first `longest` bits, or `head` ends first."""
    if at >= len(head) or not head[at]:
        return None
    length = 9 - head[at].bit_length()
    if length > longest or at + length > len(head):
        return None
    number = int.from_bytes(head[at:at + length], "big")
    if value:
        number &= (1 << (7 * length)) - 1
    return number, at + length
