"""What a WavPack track's first block says of it: lossless or hybrid (lossy), and the bits of a stored sample."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

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
    usual, was coded as AAC for an .mp4 or .mov with a warning that it was lossy already. Read once per file state
    (_block_of): choosing the track's codec asks of it a dozen times."""
    name = stream.container.name
    try:
        state = os.stat(name)
    except OSError:
        return None
    return _block_of(name, stream.index, state.st_mtime_ns, state.st_size)


@lru_cache(maxsize=16)
def _block_of(name: str, index: int, mtime_ns: int, size: int) -> Block | None:
    """first_block of stream `index` of the file `name` as it was at (`mtime_ns`, `size`)."""
    try:
        with av.open(name) as again:
            first = next((bytes(packet) for packet in again.demux(again.streams[index]) if packet.size), b"")
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    if first[:4] != MAGIC or len(first) < FLAGS_AT + 4:
        return None
    flags = int.from_bytes(first[FLAGS_AT:FLAGS_AT + 4], "little")
    return Block(bool(flags & HYBRID), 8 * ((flags & BYTES_STORED) + 1))
