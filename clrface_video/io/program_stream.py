"""An MPEG program stream (.mpg, .vob, .mod) cut short, which states no length: whether it ends mid-packet, and where
its sound stops."""
from __future__ import annotations

import io
from pathlib import Path

import av

PS_FORMATS = frozenset({"mpeg"})  # FFmpeg's demuxer for MPEG-1/2 program streams, DVD VOBs and camcorders' .MOD
TAIL_BYTES = 256 * 1024  # read from the end: several packs even of the largest PES packets (64 KiB)
PACK, END_CODE, SYSTEM_HEADER = 0xBA, 0xB9, 0xBB  # start code ids; PES packets are 0xBC and up
START = b"\x00\x00\x01"
SOUND_TAIL_BYTES = 16 * 1024 * 1024  # the most read from the end for the last sound: a muxer keeps sound within about
# a second of the pictures it plays with (FFmpeg's max_delay, 0.7 s; a DVD's buffers), a few MB at a DVD's rate


def cut_short(path: Path) -> bool | None:
    """Whether the file's last pack or packet runs past its end (True), or its packets end where the file does, or
    at an end code (False); None where no run of whole packets is found in its last TAIL_BYTES (not a program
    stream, or damaged there).

    Why: an MPEG-PS holds no index and no length (FFmpeg estimates its duration from the bit rate), so decoding a
    copy cut off mid-transfer, or a recording that stopped, simply ends early, with no error. But every pack header
    and PES packet states its own length, and a muxer writes them whole: a walk along them from a pack start near
    the end lands exactly on the end of a whole file. A cut on a packet boundary (a DVD's 2048-byte sectors)
    leaves nothing to see."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        file.seek(max(0, size - TAIL_BYTES))
        tail = file.read()
    at = tail.find(START + bytes([PACK]))
    while at >= 0:
        ends = _walk(tail, at)
        if ends is not None:
            return ends > len(tail)
        at = tail.find(START + bytes([PACK]), at + 1)  # a pack start code's bytes inside a payload: the next one
    return None


def _walk(data: bytes, at: int) -> int | None:
    """Where the packets from `at` on end (past len(data) where the last is cut short; len(data) at an end code), or
    None where a packet does not begin with a start code (`at` was no pack start)."""
    while at < len(data):
        head = data[at:at + 4]
        if not START.startswith(head[:3]):
            return None
        if head[3:] == bytes([END_CODE]):
            return len(data)
        if len(data) - at < 6:  # a start code and a length: even the shortest header is cut
            return len(data) + 1
        kind = data[at + 3]
        if kind == PACK:
            length = _pack_length(data, at)
        elif kind >= SYSTEM_HEADER:
            length = 6 + int.from_bytes(data[at + 4:at + 6], "big")
        else:
            return None
        if length is None:
            return None
        at += length
    return at


def _pack_length(data: bytes, at: int) -> int | None:
    """A pack header's length: MPEG-2's 14 bytes and its stuffing, MPEG-1's 12; None for neither."""
    marker = data[at + 4]
    if marker >> 6 == 0b01:  # MPEG-2
        return 14 + (data[at + 13] & 0x07) if at + 14 <= len(data) else 14  # (cut within it)
    return 12 if marker >> 4 == 0b0010 else None


def sound_end(path: Path) -> float | None:
    """Where the last sound the file holds ends, in its streams' seconds: the end of its last audio packet; None
    where it has none in its last SOUND_TAIL_BYTES, or they cannot be read.

    Why: a program stream's muxer stores a moment's sound beside pictures shown later (up to about a second
    later), so a file cut short loses its last second or so of sound before its last pictures: a warning that
    named where its pictures stop said nothing of the sound that stops earlier. The packets are read from the
    file's end alone (TAIL_BYTES, and more until one is audio), not from its start: the demuxer finds its packs
    anywhere, and their times are the file's own."""
    size = path.stat().st_size
    length = TAIL_BYTES
    while True:
        with open(path, "rb") as file:
            file.seek(max(0, size - length))
            tail = file.read()
        try:
            with av.open(io.BytesIO(tail), format="mpeg") as container:
                audio = container.streams.audio  # (demux of no streams is of them all)
                ends = [(packet.pts + (packet.duration or 0)) * packet.time_base
                        for packet in (container.demux(audio) if audio else ()) if packet.pts is not None]
        except av.error.FFmpegError:
            return None
        if ends:
            return float(max(ends))
        if length >= min(size, SOUND_TAIL_BYTES):
            return None
        length *= 4
