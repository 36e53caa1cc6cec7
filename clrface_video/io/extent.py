"""How long a video file lasts, from its container's own figures (no frame decoded): what a rerun compares to
tell whether an output holds the stretch of its source that is asked now."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import InputError, option_name
from ..types import TimeSpan
from .apng import apng_seconds, is_animated_png
from .decode import open_input, stream_fps, video_stream
from .sequence import find_sequence, is_sequence, scan_rate
from .stretch_tag import held_stretch
from .webp_anim import is_animated_webp, webp_seconds

SLACK_FRAMES = 2  # lengths this many frames apart are one: containers round a stream's end (Matroska to 1 ms)
DEFAULT_FRAME = Fraction(1, 24)  # a frame's length where the file gives no rate (an animated WebP's ms clock)
# A file that gives no length (a Matroska written live, a stream dump) is measured by its packets' times, read
# without decoding, up to this size (2 hours at 2.4 Mbit/s); a larger file's length stays unknown, its output
# judged by its own length against the stretch asked and by its stretch tag (other_stretch). Two hours of liveportrait_d6.mp4 looped (398 MiB, 525,798 packets) are read
# in 1.7-2.0 s on the 2-core CPU: `python benchmarks/packet_scan.py ../shared/data/videos/liveportrait_d6.mp4`.
MAX_SCANNED_BYTES = 2 << 30


@dataclass(frozen=True)
class Extent:
    """How long a file's restored video stream lasts, by its own figure (`seconds`, None where the file gives it
    only for all its streams together) or the file's (`file_seconds`, the longest stream's), and one frame's length
    at its rate."""

    seconds: Fraction | None
    file_seconds: Fraction | None
    frame: Fraction

    def like(self, other: Extent) -> tuple[Fraction | None, Fraction | None]:
        """This length and `other`'s, each by the same figure: the streams' own where both have one, else the
        files' (a source whose audio runs on past its video then reads as long as its output, which copies it)."""
        if self.seconds is not None and other.seconds is not None:
            return self.seconds, other.seconds
        return self.file_seconds, other.file_seconds


def extent(path: Path, fps: Fraction | None = None) -> Extent | None:
    """The length of the video stream a job restores from or writes into `path`: a scan's frames at `fps`; the
    stream's duration, else
    Matroska's per-track DURATION tag; the container's; an animated PNG's or WebP's delays added up (FFmpeg gives
    none for the one and cannot read the other); where the file states none of these (a Matroska written live, a
    stream dump), its packets' times, for a file up to MAX_SCANNED_BYTES: without a length, a --start try left
    under a whole run's name was taken as done. None where the file cannot be read."""
    if is_sequence(path):  # a scan: its frames at `fps`
        rate = scan_rate(fps)
        try:
            seconds = find_sequence(path).count / rate
        except InputError:
            return None
        return Extent(seconds, seconds, 1 / rate)
    animated = webp_seconds if is_animated_webp(path) else apng_seconds if is_animated_png(path) else None
    if animated is not None:
        seconds = animated(path)
        return Extent(seconds, seconds, DEFAULT_FRAME)
    try:
        with open_input(path) as container:
            stream = video_stream(container, path)
            fps = stream_fps(stream)
            seconds = _stream_seconds(stream)
            file_seconds = None if container.duration is None else Fraction(container.duration, av.time_base)
            if seconds is None and file_seconds is None and path.stat().st_size <= MAX_SCANNED_BYTES:
                seconds, file_seconds = _packet_seconds(container, stream, fps)
    except (InputError, av.error.FFmpegError, OSError):
        return None
    return Extent(seconds, file_seconds, 1 / fps if fps else DEFAULT_FRAME)


def _stream_seconds(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's length: its duration, or Matroska's DURATION tag (HH:MM:SS.nnnnnnnnn, written on each track),
    which is where the track ends: less its start (a video that begins 0.85 s after its audio)."""
    if stream.time_base is None:
        return None
    if stream.duration is not None:
        return stream.duration * Fraction(stream.time_base)
    tag = stream.metadata.get("DURATION", "")
    try:
        hours, minutes, seconds = tag.split(":")
        end = (int(hours) * 60 + int(minutes)) * 60 + Fraction(seconds)
    except ValueError:  # none, or another tool's words
        return None
    return end - (stream.start_time or 0) * Fraction(stream.time_base)


def _packet_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    fps: Fraction | None) -> tuple[Fraction | None, Fraction | None]:
    """The video stream's length and the file's (its streams' earliest start to their latest end) from the
    packets' times, demuxed only: what a container that states no length (Matroska written live) holds. A
    packet's end is its pts plus its duration (a video frame's at the stream's rate where the muxer gave none);
    the largest end, not the last packet's, as B-frames come out of order. A stream whose packets have no times
    at all (a raw H.264 dump) lasts as long as their durations added up, as its frames are read one after
    another. Counted in each stream's own ticks, a Fraction made only at the end: a long file has hundreds of
    thousands of packets. None where the video has no packets."""
    bases = {s.index: Fraction(s.time_base) for s in container.streams if s.time_base is not None}
    if stream.index not in bases:
        return None, None
    unstated = dict.fromkeys(bases, 0)  # the duration of a packet that states none, in its stream's ticks
    unstated[stream.index] = round((1 / fps if fps else DEFAULT_FRAME) / bases[stream.index])
    spans: dict[int, tuple[int, int]] = {}
    untimed = dict.fromkeys(bases, 0)  # the durations of the packets without a pts, added up
    for packet in container.demux():
        index, pts = packet.stream_index, packet.pts
        if index not in bases:
            continue
        duration = packet.duration or unstated[index]
        if pts is None:
            untimed[index] += duration if packet.size else 0  # PyAV's empty packet at the end has none
            continue
        first, last = spans.get(index, (pts, pts + duration))
        spans[index] = (min(first, pts), max(last, pts + duration))
    ticks = {index: spans.get(index, (0, untimed[index])) for index in bases if index in spans or untimed[index]}
    if stream.index not in ticks:
        return None, None
    times = {index: (first * bases[index], last * bases[index]) for index, (first, last) in ticks.items()}
    first, last = times[stream.index]
    whole = min(start for start, _ in times.values()), max(end for _, end in times.values())
    return last - first, whole[1] - whole[0]


def other_stretch(source: Path, output: Path, span: TimeSpan | None, fps: Fraction | None = None) -> str | None:
    """Why the video `output` does not hold the stretch `span` of `source` (all of it when None), its end cut at
    the source's: a try of ten seconds left under the name a whole run now asks for, or the other way round, or
    an output that cannot be opened at all (a copy cut short, written over since: each output is renamed into
    place only when whole); None where it does, or where either length is not known. Lengths within
    SLACK_FRAMES frames of the source are one; another stretch as long as this one is not told apart here (where it
    began: io.stretch_tag, io.stretch_start). A `span` starting at or past the source's end is an InputError, as the
    job would meet it, before the output is judged (its warning had said it held more than the negative length
    asked, and a read-only one was 'make it writable to redo it')."""
    source_extent, output_extent = extent(source, fps), extent(output)
    if source_extent is None:
        return None
    if output_extent is None:
        return "it cannot be read as a video"
    held, whole = output_extent.like(source_extent)
    if whole is None and held is not None:  # a source that states no length, too large to read through
        own = output_extent.seconds if output_extent.seconds is not None else held  # its video's, not its audio's
        return _against_an_unknown_end(output, own, span, source_extent.frame)
    if whole is None or held is None:
        return None
    start = Fraction(span.start) if span is not None else Fraction(0)
    if span is not None and start >= whole > 0:  # nothing is asked: said as a first run says it, not a stretch of -4 s
        raise InputError(f"{source.name} has no frames from {span.start:g} s on: it ends at {_s(whole)} s "
                         f"({option_name('start')} is past its end)")
    end = whole if span is None or span.end is None else min(Fraction(span.end), whole)
    if abs(held - (end - start)) <= SLACK_FRAMES * source_extent.frame:
        return None
    asked = "all of it" if span is None else f"from {_s(start)} s" if span.end is None else \
        f"{_s(start)}-{_s(end)} s"
    return f"it holds {_s(held)} s of the video, not the {_s(end - start)} s asked ({asked})"


def _against_an_unknown_end(output: Path, held: Fraction, span: TimeSpan | None, frame: Fraction) -> str | None:
    """other_stretch where the source's length is not known (a file over MAX_SCANNED_BYTES that states none, a
    recorder's live Matroska), so a stretch cut at its end cannot be told from all of it by lengths: an output longer
    than the stretch asked holds more than it; one shorter than asked (all of the source asked: any) ran to the
    source's end unless its stretch tag (io.stretch_tag) says it was asked to stop where it stops. Both were taken
    as done, a 0.5 s try under the whole run's name and the whole film under the try's. An output that names no
    stretch is judged by its date alone, as before."""
    start = Fraction(span.start) if span is not None else Fraction(0)
    end = None if span is None or span.end is None else Fraction(span.end)
    slack = SLACK_FRAMES * frame
    if end is not None and held > end - start + slack:
        return f"it holds {_s(held)} s of the video, not the {_s(end - start)} s asked ({_s(start)}-{_s(end)} s)"
    if end is not None and held >= end - start - slack:
        return None
    tagged = held_stretch(output)
    if tagged is None or tagged.duration is None or held < tagged.duration - slack:
        return None  # it runs to the source's end: cut there, or all of it asked
    asked = "all of it" if span is None else f"all of it from {_s(start)} s" if end is None else \
        f"the {_s(end - start)} s asked ({_s(start)}-{_s(end)} s)"
    return f"it holds a {_s(held)} s stretch of the video (as its stretch tag says), not {asked}"


def asked_seconds(source: Path, span: TimeSpan, fps: Fraction | None = None) -> Fraction | None:
    """How long the stretch `span` of `source` (a scan read at `fps`) lasts, its end cut at the source's; None
    where neither its end nor the source's length is known."""
    known = extent(source, fps)
    whole = None if known is None else known.seconds if known.seconds is not None else known.file_seconds
    ends = [Fraction(end) for end in (span.end, whole) if end is not None]
    return min(ends) - Fraction(span.start) if ends else None


def _s(seconds: Fraction) -> str:
    return f"{round(float(seconds), 2):g}"
