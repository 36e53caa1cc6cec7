"""Copied sound that its decoder refuses: damaged audio packets, kept as they are and said once per damaged stretch."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction

import av

from clrface_video.io.damage import REFUSED

log = logging.getLogger(__name__)


@dataclass
class SoundCheck:
    """An audio stream's copied packets, each decoded (nothing is written from that) to find those its decoder
    refuses, and the stretches they make, said in one warning each.

    Why: a copied packet goes into the output bit for bit, so garbage that landed in an .mp4's AAC packets was
    copied on without a word, and every player that decodes it refuses it as invalid data and plays nothing
    there: a gap in the sound (measured: 20 of 20 AAC packets overwritten with random bytes were refused, not
    decoded to noise). Re-coding the sound around it would change every undamaged file's bytes too; the damage
    is the source's, so it is copied as it is, and said. A refusal before the first packet that decodes is a
    decoder started mid-stream (a stretch's first packets, MP3's bit reservoir), not damage."""

    stream: av.audio.stream.AudioStream  # the source's, whose decoder is used
    origin: Fraction  # where the source's clock starts, as players count its time from (seconds)
    heard: bool = False  # a packet has decoded
    start: Fraction | None = None  # where the damaged stretch open now starts (seconds, the source's clock)
    end: Fraction = Fraction(0)  # and where its last refused packet ends
    packets: int = 0  # its refused packets

    def check(self, packet: av.Packet) -> None:
        """Decode a packet about to be copied; a refused one joins the damaged stretch, one that decodes ends it."""
        try:
            self.stream.codec_context.decode(packet)
        except REFUSED:
            if self.heard and packet.pts is not None:
                at = packet.pts * Fraction(packet.time_base)
                self.start = at if self.start is None else self.start
                self.end, self.packets = at + (packet.duration or 0) * Fraction(packet.time_base), self.packets + 1
            return
        except (av.error.FFmpegError, ValueError):
            return  # not damage as a player meets it; the copy goes on as before
        self.heard = True
        self.close()

    def close(self) -> None:
        """Say the damaged stretch open now, if any."""
        if self.start is None:
            return
        log.warning("stream #%d (audio): damaged sound at %.3f s is copied as it is: %d %s (%.2f s) that its decoder "
                    "refuses, which players pass over, leaving a gap in the sound", self.stream.index,
                    float(self.start - self.origin), self.packets,
                    "packet" if self.packets == 1 else "packets", float(self.end - self.start))
        self.start, self.packets = None, 0
