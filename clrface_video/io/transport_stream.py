"""An MPEG transport stream (.ts, .m2ts, .mts) cut short, which states no length: whether it ends mid-packet."""
from __future__ import annotations

from pathlib import Path

TS_FORMATS = frozenset({"mpegts"})  # FFmpeg's demuxer for broadcast .ts, Blu-ray .m2ts and AVCHD .mts alike
SYNC = 0x47  # the byte every transport packet starts with
PACKET_SIZES = (188, 192, 204)  # a packet; Blu-ray's with a 4-byte timecode before it; DVB's with 16 bytes of FEC
TIMECODE = {192: 4}  # bytes before a packet's sync byte
SYNCS_CHECKED = 4  # packets in a row whose sync bytes must all line up for a packet size to be taken


def cut_short(path: Path) -> bool | None:
    """Whether the file ends part way through a packet (True) or on a packet's end (False); None where no packet
    size lines up its sync bytes near the start (not a transport stream, or damaged there).

    Why: a transport stream holds no index and no length (FFmpeg estimates its duration from its clock), so
    decoding a download or a recording cut off simply ends early, with no error, and the restore said nothing. Its
    packets are all one size, so a cut shows as a last packet that is shorter: bytes after the last whole packet
    that start as a packet does (its sync byte in place). A cut on a packet boundary leaves nothing to see. The
    packets are counted from the first sync bytes that line up, not from the file's first byte: a recording split
    mid-packet by a file splitter starts with a piece of one, which made every packet look cut. Bytes after the
    last whole packet that hold no sync byte are no packet (a recorder's or copier's zero padding): a whole
    recording padded so was said to be cut short."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(max(PACKET_SIZES) * (SYNCS_CHECKED + 1) + max(TIMECODE.values()))
    for packet in PACKET_SIZES:
        for first in range(packet):  # where the first sync byte that starts a run of them lies
            syncs = [first + k * packet for k in range(SYNCS_CHECKED)]
            if syncs[-1] < len(head) and all(head[at] == SYNC for at in syncs):
                tail = (size - first + TIMECODE.get(packet, 0)) % packet  # bytes of a last packet left short
                sync = size - tail + TIMECODE.get(packet, 0)  # where its sync byte stands
                return tail != 0 and (sync >= size or _byte(path, sync) == SYNC)
    return None


def _byte(path: Path, at: int) -> int:
    with open(path, "rb") as file:
        file.seek(at)
        return file.read(1)[0]
