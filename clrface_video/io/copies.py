"""The source's audio, subtitle and data streams, tags and chapters, carried onto an output as its video advances."""
from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from clrface_video.errors import one_line
from clrface_video.io import subtitles
from clrface_video.io.decode import COPY_STREAM_TYPES, _video_stream

log = logging.getLogger(__name__)

# Tags a muxer or the source's encoder wrote about the file itself (brands, writing application, mkvmerge's
# per-stream statistics, length): the output's muxer writes its own. Every other tag is copied.
MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "vendor_id", "duration",
                        "bps", "number_of_frames", "number_of_bytes"})


@dataclass(frozen=True)
class Copy:
    """One output stream fed from a source stream: packets copied bit for bit, or, for text subtitles the
    output's container cannot hold as they are, cues re-encoded by `converter`."""

    stream: av.stream.Stream
    converter: subtitles.CueConverter | None = None


def packet_time(packet: av.Packet) -> Fraction:
    """A packet's time in seconds (its dts, else its pts)."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    return Fraction(stamp) * packet.time_base


def _muxer_accepts(format_name: str, template: av.stream.Stream) -> bool:
    """Whether a muxer can store a copy of `template` (tried on a throwaway in-memory file)."""
    trial = av.open(io.BytesIO(), "w", format=format_name.split(",")[0])
    try:
        trial.add_stream_from_template(template)
        trial.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError):
        return False
    finally:
        try:
            trial.close()
        except (av.error.FFmpegError, ValueError):
            pass


def _converted_subtitles(stream: av.stream.Stream, name: str, out: av.container.OutputContainer,
                         output: Path) -> Copy | None:
    """A text subtitle stream the output's container cannot hold as it is, in the text codec it takes."""
    target = subtitles.target_codec(name, out.supported_codecs)
    if target is None:
        return None
    try:
        encoded = out.add_stream(target)
        converted = Copy(encoded, subtitles.CueConverter(stream, encoded))
    except (av.error.FFmpegError, ValueError) as error:
        log.warning("subtitle stream %d (%s) cannot be converted to %s (%s); it is left out",
                    stream.index, name, target, one_line(error))
        return None
    if name in subtitles.STYLED:
        log.warning("subtitle stream %d (%s) is converted to %s for %s: its text is kept, its positions and "
                    "effects are not", stream.index, name, target, output.suffix)
    else:
        log.info("subtitle stream %d (%s) is converted to %s for %s", stream.index, name, target, output.suffix)
    return converted


def add_copies(source: av.container.InputContainer, out: av.container.OutputContainer,
               output: Path) -> dict[int, Copy]:
    """Output streams for the source's audio, subtitle and data streams, by input stream index."""
    copies: dict[int, Copy] = {}
    for stream in source.streams:
        if stream.type not in COPY_STREAM_TYPES:
            continue
        if stream.type == "data" and "timecode" in stream.metadata:
            continue  # a QuickTime timecode track: the muxer rebuilds it from the video's timecode tag
        ctx = stream.codec_context
        name = ctx.codec.canonical_name if ctx is not None and ctx.codec is not None else None
        same_kind = out.format.name == source.format.name  # its own container held it: DV, MXF muxers need video
        if name and (same_kind or _muxer_accepts(out.format.name, stream)):  # to try a stream alone
            try:
                copies[stream.index] = Copy(out.add_stream_from_template(stream))
            except (av.error.FFmpegError, ValueError) as error:
                log.warning("%s stream %d cannot be copied (%s); it is left out", stream.type, stream.index, error)
            continue
        converted = _converted_subtitles(stream, name, out, output) if stream.type == "subtitle" and name else None
        if converted is not None:
            copies[stream.index] = converted
            continue
        log.warning("%s stream %d (%s) cannot be stored in %s; it is left out",
                    stream.type, stream.index, name or stream.metadata.get("handler_name") or "no codec",
                    output.suffix)
    return copies


def _kept_tags(metadata: dict[str, str]) -> dict[str, str]:
    def muxer_written(key: str) -> bool:
        name = key.lower().split("-")[0]  # mkvmerge writes "BPS-eng", "DURATION-eng", ...
        return name in MUXER_TAGS or name.startswith("_statistics")

    return {key: value for key, value in metadata.items() if not muxer_written(key)}


def copy_metadata(source: av.container.InputContainer, out: av.container.OutputContainer,
                  video: av.stream.Stream, copies: dict[int, Copy], path: Path, *,
                  chapters: bool = True) -> None:
    """The source's tags (title, creation time, languages, ...) on the file and on each stream, the streams'
    dispositions (default, forced, ...), and its chapters (unless `chapters` is False: a cut-out stretch),
    onto the output before its header is written."""
    out.metadata.update(_kept_tags(dict(source.metadata)))
    pairs = [(_video_stream(source, path), video)] + [(source.streams[i], c.stream) for i, c in copies.items()]
    for original, copy in pairs:
        copy.metadata.update(_kept_tags(dict(original.metadata)))
        copy.disposition = original.disposition
    marks = source.chapters() if chapters else []
    if marks:
        out.set_chapters(marks)


def _is_mov_text_gap(packet: av.Packet, copy: Copy) -> bool:
    """An empty mov_text cue: the mp4/mov muxer writes its own gap cues, so copying them would double them."""
    return (copy.converter is None and packet.size == 2 and copy.stream.codec_context.name == "mov_text"
            and bytes(packet) == b"\x00\x00")


class CopiedStreams:
    """The copied streams' packets, demuxed from the source once and muxed into the output in time order.

    `shift` (seconds) is taken off every timestamp when only a stretch of the source is written: packets
    before it are left out."""

    def __init__(self, source: av.container.InputContainer, out: av.container.OutputContainer, output: Path,
                 *, any_streams: bool = True) -> None:
        self.out = out
        self.copies = add_copies(source, out, output) if any_streams else {}
        self._packets: Iterator[av.Packet] = iter(())
        if self.copies:
            self._packets = source.demux([s for s in source.streams if s.index in self.copies])
        self._next: av.Packet | None = None

    def mux_until(self, limit: Fraction | None, shift: Fraction | None = None) -> None:
        """Mux the packets whose time is <= limit (all of them when limit is None)."""
        while True:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    return
            packet = self._next
            copy = self.copies.get(packet.stream_index)
            if packet.dts is None or copy is None or _is_mov_text_gap(packet, copy):
                self._next = None
                continue
            if limit is not None and packet_time(packet) > limit:
                return
            self._next = None
            if shift is not None:  # a stretch: packets before it are left out, the rest move with the frames
                if packet_time(packet) < shift:
                    continue
                move = round(shift / packet.time_base)
                packet.pts = None if packet.pts is None else packet.pts - move
                packet.dts = None if packet.dts is None else packet.dts - move
            if copy.converter is not None:
                packet = copy.converter.convert(packet)
                if packet is None:
                    continue
            packet.stream = copy.stream
            self.out.mux(packet)
