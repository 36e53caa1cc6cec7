"""An MPEG transport stream (.ts, .m2ts, .mts) cut short, which states no length: whether it ends mid-packet."""
from __future__ import annotations

from pathlib import Path

TS_FORMATS = frozenset({"mpegts"})  # FFmpeg's demuxer for broadcast .ts, Blu-ray .m2ts and AVCHD .mts alike
SYNC = 0x47  # the byte every transport packet starts with
PACKET_SIZES = (188, 192, 204)  # a packet; Blu-ray's with a 4-byte timecode before it; DVB's with 16 bytes of FEC
SYNCS_CHECKED = 4  # packets at the start whose sync bytes must all line up for a packet size to be taken


def cut_short(path: Path) -> bool | None:
    """Whether the file ends part way through a packet (True) or on a packet's end (False); None where no packet
    size lines up its sync bytes at the start (not a transport stream, or damaged there).

    Why: a transport stream holds no index and no length (FFmpeg estimates its duration from its clock), so
    decoding a download or a recording cut off simply ends early, with no error, and the restore said nothing. Its
    packets are all one size, so a cut shows as a file that is no whole number of them. A cut on a packet
    boundary leaves nothing to see."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(max(PACKET_SIZES) * SYNCS_CHECKED + 4)
    for packet in PACKET_SIZES:
        offset = 4 if packet == 192 else 0  # the timecode comes first
        syncs = [offset + k * packet for k in range(SYNCS_CHECKED)]
        if syncs[-1] < len(head) and all(head[at] == SYNC for at in syncs):
            return size % packet != 0
    return None
