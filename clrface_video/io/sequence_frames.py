"""Which numbered frames a run writes into an image sequence, and which of them a rerun finds on disk."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from clrface_video.errors import InputError
from clrface_video.io.decode import open_input, stream_fps, video_stream
from clrface_video.io.extent import DEFAULT_FRAME, MAX_SCANNED_BYTES
from clrface_video.io.sequence import (
    find_sequence,
    first_number,
    frame_numbers,
    frame_path,
    is_sequence,
    scan_rate,
)
from clrface_video.types import TimeSpan

Shown = tuple[Fraction, Fraction]  # a frame's time on screen, in seconds from the first frame: [start, end)


@dataclass(frozen=True)
class SequenceOutput:
    """What a run writes into the sequence `pattern` (`expected`: its frame numbers, None where the source's
    frames cannot be counted without decoding) against what is on disk (`there`: every number that matches)."""

    pattern: Path
    expected: range | None
    there: list[int]
    rate: Fraction  # the source's frames per second, as they were written

    @property
    def written(self) -> list[Path]:
        """The files of the frames this run writes that are there (all there are, where those are not known)."""
        held = set(self.there)
        numbers = self.there if self.expected is None else [n for n in self.expected if n in held]
        return [frame_path(self.pattern, n) for n in numbers]

    @property
    def missing(self) -> list[int]:
        """The numbers this run writes that are not on disk; where they are not known, the gaps between those that
        are (a frame the user deleted)."""
        held = set(self.there)
        wanted = self.expected if self.expected is not None else \
            range(self.there[0], self.there[-1] + 1) if self.there else range(0)
        return [n for n in wanted if n not in held]

    @property
    def strays(self) -> list[int]:
        """The numbers on disk that this run does not write: left by an earlier, longer run (or another stretch of
        a scan, whose numbers are kept)."""
        return [] if self.expected is None else [n for n in self.there if n not in self.expected]  # a range: O(1)

    def name(self, number: int) -> str:
        return frame_path(self.pattern, number).name


def sequence_output(source: Path, pattern: Path, span: TimeSpan | None, fps: Fraction | None) -> SequenceOutput:
    """The frames a run from `source` (the stretch `span`; a scan read at `fps`) writes into `pattern`, and those
    there now. Counted from the source's packets' times, demuxed only, as read_frames keeps a stretch's frames
    (TimeSpan.not_yet, TimeSpan.past); not counted (None) for a source that cannot be read so or is larger than
    extent.MAX_SCANNED_BYTES."""
    shown, rate = _shown_frames(source, fps)
    there = frame_numbers(pattern)
    if shown is None:
        return SequenceOutput(pattern, None, there, rate)
    kept = 0
    for start, end in shown:
        if span is not None and not kept and not span.not_yet(start, end):
            span = span.opened_at(start)
        kept += span is None or not (span.not_yet(start, end) or span.past(start))
    first = first_number(source, span, rate)
    return SequenceOutput(pattern, range(first, first + kept), there, rate)


def newest_frame(source: Path) -> Path:
    """The file whose date a sequence output is judged by: a video itself, a scan's most recently changed frame."""
    if not is_sequence(source):
        return source
    return max((frame_path(source, n) for n in frame_numbers(source)), key=lambda path: path.stat().st_mtime_ns)


def _shown_frames(source: Path, fps: Fraction | None) -> tuple[list[Shown] | None, Fraction]:
    """When each of the source's frames is on screen, and its rate: a scan's at `fps` (24 when None), a video's by
    its packets' times, each to the next one's (the last for its own duration)."""
    if is_sequence(source):
        rate = scan_rate(fps)
        try:
            count = find_sequence(source).count
        except InputError:
            return None, rate
        return [(i / rate, (i + 1) / rate) for i in range(count)], rate
    try:
        with open_input(source) as container:
            stream = video_stream(container, source)
            rate = stream_fps(stream) or 1 / DEFAULT_FRAME
            if source.stat().st_size > MAX_SCANNED_BYTES:
                return None, rate
            return _packet_times(container, stream, rate), rate
    except (InputError, av.error.FFmpegError, OSError):
        return None, 1 / DEFAULT_FRAME


def _packet_times(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  rate: Fraction) -> list[Shown] | None:
    """The video's frames' times from its packets: sorted by pts (B-frames come out of order), from the stream's
    start. A packet without a pts in a stream whose others have one is part of a frame (a second field), not a
    frame; a stream with none (a raw H.264 dump) is timed by its count at its rate, as read_frames times it."""
    frame = 1 / rate
    if stream.time_base is None:
        return None
    base = Fraction(stream.time_base)
    timed: list[tuple[int, int]] = []
    untimed = 0
    for packet in container.demux(stream):
        if not packet.size:
            continue
        if packet.pts is None:
            untimed += 1
        else:
            timed.append((packet.pts, packet.duration or 0))
    if not timed:
        return [(i * frame, (i + 1) * frame) for i in range(untimed)]
    timed.sort()
    origin = stream.start_time if stream.start_time is not None else timed[0][0]
    starts = [(pts - origin) * base for pts, _ in timed]
    last = starts[-1] + (timed[-1][1] * base or frame)
    return list(zip(starts, [*starts[1:], last], strict=True))
