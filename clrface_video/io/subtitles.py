"""Text subtitles carried between containers: each cue decoded from one format and encoded in the one the output takes."""
from __future__ import annotations

import av

# Text subtitle codecs (FFmpeg's canonical names); bitmap subtitles (DVD, PGS) cannot be converted to text.
TEXT_CODECS = frozenset({"mov_text", "subrip", "ass", "ssa", "webvtt", "text"})
# What an output container takes, best first: SubRip in Matroska, mov_text (3GPP timed text) in MP4 and
# QuickTime, WebVTT in WebM.
TARGETS = ("subrip", "mov_text", "webvtt")
STYLED = frozenset({"ass", "ssa"})  # positions, effects and most of their styling do not survive the others


def target_codec(codec: str, accepted: set[str] | frozenset[str]) -> str | None:
    """The text codec to convert a `codec` stream to, for a muxer that takes `accepted` codecs (None: none fits)."""
    if codec not in TEXT_CODECS:
        return None
    return next((target for target in TARGETS if target in accepted), None)


class CueConverter:
    """Re-encodes a text subtitle stream's cues for another container, as FFmpeg's own conversion does: each
    packet is decoded (to an ASS event) and encoded again; the cue's timing is the packet's.

    mov_text samples follow one another: a cue that overlaps the next is cut where the next starts (else the
    muxer would push every later cue back), so each cue is held until the next one's start is known."""

    def __init__(self, source: av.subtitles.stream.SubtitleStream, target: av.subtitles.stream.SubtitleStream) -> None:
        self.decoder = source.codec_context
        if not self.decoder.is_open:
            self.decoder.open(strict=False)
        self.encoder = target.codec_context
        self.encoder.subtitle_header = self.decoder.subtitle_header  # the styles the cues refer to
        target.time_base = source.time_base
        self.encoder.open(strict=False)  # now, so that a cue format it cannot take fails here, not the file
        self.sequential = self.encoder.name == "mov_text"
        self._held: av.Packet | None = None
        self.cut = 0  # cues shortened so as not to overlap the next

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        """The cues ready to mux after `packet`: its own for the target codec (none for an empty one; mov_text
        writes gaps as cues), or, for mov_text, the one held before it."""
        cues = self.decoder.decode2(packet)
        if cues is None or len(cues) == 0 or not any(cue.ass.strip() for cue in cues):
            return []
        converted = self.encoder.encode_subtitle(cues)
        converted.pts, converted.dts = packet.pts, packet.dts
        converted.duration, converted.time_base = packet.duration, packet.time_base
        if not self.sequential:
            return [converted]
        ready, self._held = self._held, converted
        if ready is None:
            return []
        if ready.pts is not None and converted.pts is not None and ready.duration \
                and ready.pts + ready.duration > converted.pts:
            ready.duration = max(1, converted.pts - ready.pts)
            self.cut += 1
        return [ready]

    def flush(self) -> list[av.Packet]:
        """The cue still held (mov_text), at the end of the stream."""
        held, self._held = self._held, None
        return [held] if held is not None else []
