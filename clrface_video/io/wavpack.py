"""What a WavPack track's first block says of it: lossless or hybrid (lossy), and the bits of a stored sample."""
from __future__ import annotations

from dataclasses import dataclass

import av

# A block's header (FFmpeg's Matroska demuxer rebuilds it for each packet, "wvpk" first): its flags at byte 24. Their
# low 2 bits are the bytes a sample less one, bit 3 hybrid mode (WavPack's format).
MAGIC, FLAGS_AT = b"wvpk", 24
BYTES_STORED, HYBRID = 0x3, 0x8


@dataclass(frozen=True)
class Block:
    hybrid: bool  # lossy: its correction (a .wvc file, Matroska's BlockAdditions) is not read by FFmpeg
    bits: int  # bits of a stored sample: 8, 16, 24 or 32 (float: 32)


def first_block(stream: av.audio.stream.AudioStream) -> Block | None:
    """The first block of a WavPack track, read from a second opening of its file, or None where none reads. FFmpeg
    calls every WavPack track lossy and lossless alike (its codec may be either), so a lossless one, an archive's
    usual, was coded as AAC for an .mp4 or .mov with a warning that it was lossy already."""
    try:
        with av.open(stream.container.name) as again:
            first = next((bytes(packet) for packet in again.demux(again.streams[stream.index]) if packet.size), b"")
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    if first[:4] != MAGIC or len(first) < FLAGS_AT + 4:
        return None
    flags = int.from_bytes(first[FLAGS_AT:FLAGS_AT + 4], "little")
    return Block(bool(flags & HYBRID), 8 * ((flags & BYTES_STORED) + 1))
