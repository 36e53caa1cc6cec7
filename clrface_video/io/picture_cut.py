"""MPEG-1/2 video packets re-cut for a program stream (.mpg, .vob): each one begins with its picture's start code."""
from __future__ import annotations

import av

PICTURE_START = b"\x00\x00\x01\x00"  # MPEG video's picture start code; no other bytes of the stream hold 00 00 01 00
# FFmpeg's program-stream muxers that fill each pack with whatever packets come; not "dvd" (no extension picks it),
# which starts a keyframe's packet on a pack of its own (a VOBU) that DVD players need to begin with its headers
CUT_MUXERS = frozenset({"mpeg", "vcd", "svcd", "vob"})
CUT_CODECS = frozenset({"mpeg1video", "mpeg2video"})


def _with_data(packet: av.Packet, data: bytes) -> av.Packet:
    """A packet of `data` with `packet`'s stream, times and keyframe flag."""
    cut = av.Packet(data)
    cut.stream, cut.time_base = packet.stream, packet.time_base
    cut.pts, cut.dts, cut.duration = packet.pts, packet.dts, packet.duration
    cut.is_keyframe = packet.is_keyframe
    return cut


class PictureCut:
    """The encoder's packets, each one's sequence and GOP headers (the bytes before its picture start code) moved
    to the end of the packet before: the bytes of the stream stay as they were, in the same order.

    Why: FFmpeg's MPEG-PS muxer stamps a pack with the first packet that begins in it, and its demuxer (the MPEG
    video parser, as the standard has it) with the first picture start code in it. Where a pack boundary fell in a
    keyframe's headers, its stamp went to that keyframe and the frames before it moved: in a .vob of small frames,
    frames 119 to 125 of 300 were read a frame late, in FFmpeg (read_frames now leaves that stamp out: clock.py)."""

    def __init__(self) -> None:
        self._held: av.Packet | None = None  # the last packet, waiting for the headers of the next one

    def push(self, packet: av.Packet) -> list[av.Packet]:
        """The packets ready to mux once `packet` has come (the one before it, with `packet`'s headers)."""
        held, self._held = self._held, packet
        if held is None:
            return []
        data = bytes(packet)
        start = data.find(PICTURE_START)
        if start <= 0:
            return [held]
        self._held = _with_data(packet, data[start:])
        return [_with_data(held, bytes(held) + data[:start])]

    def flush(self) -> list[av.Packet]:
        """The last packet."""
        held, self._held = self._held, None
        return [] if held is None else [held]
