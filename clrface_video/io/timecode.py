"""Timecodes: the rate a video's counts frames at (a QuickTime track's own), and a start timecode moved on by frames."""
from __future__ import annotations

import logging
import math
import re
import struct
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from clrface_video.errors import option_name
from clrface_video.io.decode import open_input, read_frames, video_stream
from clrface_video.io.quicktime import CONTAINER_BOXES, boxes, moov
from clrface_video.types import TimeSpan

log = logging.getLogger(__name__)

TMCD_ENTRY = struct.Struct(">I4s6sH4sIIIB")  # size, "tmcd", reserved, data ref, reserved, flags, scale, duration, n
# FFmpeg's: anything but ':' drops frames; the frames take as many digits as the rate's largest count (one at
# 10 fps or less: 01:00:00:0)
TIMECODE_TEXT = re.compile(r"(\d+):(\d{2}):(\d{2})([:;.,])(\d+)")
DROP_FRAME_FPS = (30, 60)  # the counts drop-frame exists for (29.97 and 59.94 fps)
DAY_S = 24 * 3600  # timecodes wrap past 23:59:59, as editors' tools do


def quicktime_timecode_rate(path: Path | str) -> Fraction | None:
    """Frames per second a .mov/.mp4 timecode track counts (its tmcd sample description's frames per second,
    30000/1001 when its frames last 1001/30000 s), or None when the file has none or is not QuickTime."""
    movie = moov(Path(path))
    level = [(b"moov", 0, len(movie))]
    for name in CONTAINER_BOXES[1:]:
        level = [box for _, start, end in level for box in boxes(movie, start, end) if box[0] == name]
    for _, start, end in level:
        for kind, body, stop in boxes(movie, start, end):
            if kind == b"stsd" and stop - body >= 8 + TMCD_ENTRY.size and movie[body + 12:body + 16] == b"tmcd":
                *_, scale, duration, count = TMCD_ENTRY.unpack_from(movie, body + 8)
                if not count:
                    return None
                ntsc = Fraction(count * 1000, 1001)  # 29.97 counts 30 frames a second, each 1001/30000 s long
                return ntsc if duration and Fraction(scale, duration) == ntsc else Fraction(count)
    return None


@dataclass(frozen=True)
class Timecode:
    """A SMPTE timecode's fields; separator is the one before the frames (';' for drop-frame, ':' for non-drop),
    digits the frames' least width as written (FFmpeg writes one at 10 fps or less)."""

    hours: int
    minutes: int
    seconds: int
    frames: int
    separator: str = ":"
    digits: int = 2

    @property
    def drop(self) -> bool:
        """Whether it counts drop-frame: frame numbers skipped so that 29.97 fps keeps to the clock."""
        return self.separator != ":"

    def __str__(self) -> str:
        return f"{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}{self.separator}{self.frames:0{self.digits}d}"


def parse_timecode(text: str) -> Timecode:
    """A timecode tag ("01:00:00:00", "00:59:59;28") as its fields; ValueError when it is not one."""
    found = TIMECODE_TEXT.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a timecode (HH:MM:SS:FF)")
    hours, minutes, seconds, separator, frames = found.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        raise ValueError(f"{text!r} is not a timecode (minutes and seconds run to 59)")
    return Timecode(int(hours), int(minutes), int(seconds), int(frames), separator, len(frames))


def _dropped_per_minute(fps: int) -> int:
    """Frame numbers drop-frame skips at each minute but every tenth: 2 at 30 (29.97 fps), 4 at 60 (59.94)."""
    if fps not in DROP_FRAME_FPS:
        raise ValueError(f"drop-frame timecode counts 30 or 60 frames a second, not {fps}")
    return fps // 15


def timecode_to_frame(timecode: Timecode, fps: int) -> int:
    """The frame number a timecode names, counting `fps` frames a timecode second (30 for 29.97)."""
    if timecode.frames >= fps:
        raise ValueError(f"{timecode} counts more than {fps} frames a second")
    minutes = 60 * timecode.hours + timecode.minutes
    number = (60 * minutes + timecode.seconds) * fps + timecode.frames
    if not timecode.drop:
        return number
    dropped = _dropped_per_minute(fps)
    if timecode.seconds == 0 and timecode.frames < dropped and minutes % 10:
        raise ValueError(f"{timecode} is a frame number drop-frame skips")
    return number - dropped * (minutes - minutes // 10)


def frame_to_timecode(number: int, fps: int, separator: str = ":") -> Timecode:
    """The timecode of frame `number` at `fps` frames a timecode second, drop-frame when `separator` is not ':';
    past 23:59:59 it wraps to 00:00:00."""
    if separator != ":":  # back to the count without skips: add the numbers skipped before this frame
        dropped = _dropped_per_minute(fps)
        per_minute, per_ten = 60 * fps - dropped, 600 * fps - 9 * dropped
        tens, rest = divmod(number % (DAY_S // 600 * per_ten), per_ten)
        number = tens * 600 * fps + rest + dropped * max(0, (rest - dropped) // per_minute)
    seconds, frames = divmod(number % (DAY_S * fps), fps)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return Timecode(hours, minutes, seconds, frames, separator)


def moved_timecode(text: str, frames: int, rate: Fraction) -> str:
    """A start timecode tag moved on by `frames` frames of a timecode counting at `rate` frames per second
    (30000/1001 counts 30 a timecode second), in the tag's own style (';' stays drop-frame, one frame digit one).
    """
    start = parse_timecode(text)
    fps = max(1, math.floor(rate + Fraction(1, 2)))
    moved = frame_to_timecode(timecode_to_frame(start, fps) + frames, fps, start.separator)
    return str(replace(moved, digits=start.digits))


def timecode_rate(path: Path, fps: Fraction | None) -> Fraction:
    """Frames per second a video's start timecode counts: its QuickTime timecode track's, else the video's rate
    `fps` (a raw DV file's is its DV system's, see io.decode.stream_fps)."""
    rate = quicktime_timecode_rate(path)
    return rate if rate is not None else fps or Fraction(25)


def timecode_frames(seconds: Fraction, rate: Fraction) -> int:
    """Timecode frames from a video's first frame to a frame `seconds` after it, at a timecode counting `rate`
    frames a second. A variable-rate video's frames are not one timecode frame apart: its time times the rate,
    rounded to the nearest frame (at a constant rate, exactly the frames between them)."""
    return math.floor(seconds * rate + Fraction(1, 2))


def first_kept_offset(path: Path, span: TimeSpan) -> Fraction:
    """Seconds from a video's first frame to the first frame `span` keeps, picked as read_frames picks it (a
    seek, then decoding up to it): an output's header, with its timecode, is written before any frame comes."""
    with open_input(path) as container:
        origin = video_stream(container, path).start_time or 0  # read_frames' origin, in the frames' time base
    frames = read_frames(path, span=span)
    try:
        first = next(frames)
    finally:
        frames.close()
    if first.pts is None or first.time_base is None:
        return Fraction(span.start)
    return (first.pts - origin) * first.time_base


def move_timecodes(tags: list[dict[str, str]], frames: int, rate: Fraction) -> None:
    """Move each "timecode" tag in `tags` (the file's and its streams') on by `frames` at `rate`, in place; one
    that is not a timecode this can count stays as it is, and a warning says so."""
    moved: dict[str, str] = {}
    for value in sorted({value for metadata in tags for key, value in metadata.items() if key.lower() == "timecode"}):
        try:
            moved[value] = moved_timecode(value, frames, rate)
        except ValueError as error:
            log.warning("the source's timecode %s is kept as it is, not moved to %s's first frame (%s)",
                        value, option_name("start"), error)
    for metadata in tags:
        for key, value in metadata.items():
            if key.lower() == "timecode":
                metadata[key] = moved.get(value, value)
