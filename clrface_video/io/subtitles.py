"""Text subtitles carried between containers: each cue decoded from one format and encoded in the one the output takes."""
from __future__ import annotations

from dataclasses import dataclass

import av

# Text subtitle codecs (FFmpeg's canonical names); bitmap subtitles (DVD, PGS) cannot be converted to text.
TEXT_CODECS = frozenset({"mov_text", "subrip", "ass", "ssa", "webvtt", "text"})
# What an output container takes, best first: SubRip in Matroska, mov_text (3GPP timed text) in MP4 and
# QuickTime, WebVTT in WebM.
TARGETS = ("subrip", "mov_text", "webvtt")
STYLED = frozenset({"ass", "ssa"})  # positions, effects and most of their styling do not survive the others
ASS_FIELDS_BEFORE_TEXT = 8  # a Dialogue event's ReadOrder, Layer, Style, Name, MarginL, MarginR, MarginV, Effect


def target_codec(codec: str, accepted: set[str] | frozenset[str]) -> str | None:
    """The text codec to convert a `codec` stream to, for a muxer that takes `accepted` codecs (None: none fits)."""
    if codec not in TEXT_CODECS:
        return None
    return next((target for target in TARGETS if target in accepted), None)


@dataclass
class _Cue:
    """A decoded cue (its ASS events) on screen from start to end, in the stream's time base."""

    start: int
    end: int
    event: av.subtitles.subtitle.SubtitleSet


class CueConverter:
    """Re-encodes a text subtitle stream's cues for another container, as FFmpeg's own conversion does: each
    packet is decoded (to ASS events) and encoded again, with the packet's timing.

    mov_text shows one sample at a time: where cues overlap (a song's lyrics over dialogue), the time is cut
    into stretches, each showing every cue on screen then, one above the other, so that no cue is shown
    late or for less than its time. Cues are therefore held until the next one's start is known."""

    def __init__(self, source: av.subtitles.stream.SubtitleStream, target: av.subtitles.stream.SubtitleStream) -> None:
        self.decoder = source.codec_context
        if not self.decoder.is_open:
            self.decoder.open(strict=False)
        self.encoder = target.codec_context
        self.encoder.subtitle_header = self.decoder.subtitle_header  # the styles the cues refer to
        target.time_base = source.time_base
        self.time_base = source.time_base
        self.encoder.open(strict=False)  # now, so that a cue format it cannot take fails here, not the file
        self.sequential = self.encoder.name == "mov_text"
        self._on_screen: list[_Cue] = []
        self._shown_to: int | None = None  # where the stretches written so far end
        self.overlaps = 0  # stretches that show two cues or more

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        """The cues ready to mux after `packet`: its own for the target codec (none for an empty one; mov_text
        writes gaps as cues), or, for mov_text, the stretches before its start."""
        cues = self.decoder.decode2(packet)
        if cues is None or len(cues) == 0 or not any(cue.ass.strip() for cue in cues):
            return []
        if not self.sequential:
            return [self._encode(cues, packet.pts, packet.duration)]
        if packet.pts is None or not packet.duration:  # never on screen in a sample track
            return []
        ready = self._until(packet.pts)
        self._on_screen.append(_Cue(packet.pts, packet.pts + packet.duration, cues))
        return ready

    def flush(self) -> list[av.Packet]:
        """The stretches still held (mov_text), at the end of the stream."""
        return self._until(None)

    def _until(self, time: int | None) -> list[av.Packet]:
        """The stretches from where the last one ended to `time` (None: until every cue on screen has ended)."""
        out = []
        while self._on_screen:
            end = min(cue.end for cue in self._on_screen)
            if time is not None and end > time:
                out += self._stretch(time)
                break
            out += self._stretch(end)
            self._on_screen = [cue for cue in self._on_screen if cue.end > end]
        if time is not None:
            self._shown_to = time if self._shown_to is None else max(self._shown_to, time)
        return out

    def _stretch(self, end: int) -> list[av.Packet]:
        start = min(cue.start for cue in self._on_screen)
        start = start if self._shown_to is None else max(self._shown_to, start)
        self._shown_to = end if self._shown_to is None else max(self._shown_to, end)
        if end <= start:
            return []
        if len(self._on_screen) == 1:
            return [self._encode(self._on_screen[0].event, start, end - start)]
        self.overlaps += 1  # one event whose text holds every cue's, one per line
        lines = [rect.ass for cue in self._on_screen for rect in cue.event]
        texts = [line.split(b",", ASS_FIELDS_BEFORE_TEXT)[-1] for line in lines]
        head = lines[0].split(b",", ASS_FIELDS_BEFORE_TEXT)[:ASS_FIELDS_BEFORE_TEXT]
        merged = av.subtitles.subtitle.SubtitleSet.create(b",".join([*head, b"\\N".join(texts)]), 0, end - start)
        return [self._encode(merged, start, end - start)]

    def _encode(self, event: av.subtitles.subtitle.SubtitleSet, pts: int | None, duration: int | None) -> av.Packet:
        packet = self.encoder.encode_subtitle(event)
        packet.pts = packet.dts = pts
        packet.duration, packet.time_base = duration or 0, self.time_base
        return packet
