"""Where an output's stretch of its source began: its frames set beside the source's at the times asked, as small
luma thumbnails, for an output that does not say (a stretch's times start at 0; io.stretch_tag is written only where
the container keeps it, and not by versions before it)."""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from clrface_video.errors import InputError
from clrface_video.io.decode import probe_video, read_frames
from clrface_video.io.extent import DEFAULT_FRAME
from clrface_video.io.orientation import quarter_turns
from clrface_video.io.pixels import luma
from clrface_video.io.sequence import frame_path
from clrface_video.io.webp_anim import is_animated_webp
from clrface_video.io.webp_frames import read_webp_frames
from clrface_video.opencv import cv2
from clrface_video.types import TimeSpan

THUMB_WIDTH = 32  # pixels: a face restored at 512 px moves a thumbnail this small by a few levels at most
# Frames further than this from the source's at the time asked (mean absolute luma difference of thumbnails, 0-255)
# are another moment. On the 20 research clips (`python benchmarks/stretch_start.py ../shared/data/videos`, the
# shipped model on the CPU) a stretch lies 0.06-1.47 from the start it was restored from; 405 of the 450 other
# starts 0.5 s or more away lie past 3 (every one in 15 clips); the rest are in LivePortrait's talking heads, still
# faces on a still background, where another start looks the same (docs/results.md).
UNLIKE = 3.0
SECOND = Fraction(1)  # seconds into a stretch where a second frame is compared (its first may be a fade or a cut)
# An output's frame is set beside each of the source's within this many seconds of its time (at most NEAR_FRAMES):
# the frame a run started with may be a neighbour of the one read here (a deinterlaced source's, a rate's rounding)
NEAR = Fraction(1, 10)
NEAR_FRAMES = 8


@dataclass(frozen=True)
class Likeness:
    """How far an output's frames lie from its source's at the asked times: `distance`, the mean over the frames
    compared (likeness) of the mean absolute difference of their thumbnails (0-255), each to the nearest source
    frame (NEAR)."""

    distance: float

    @property
    def other(self) -> bool:
        return self.distance > UNLIKE


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A frame's luma on the 0-255 scale (a deep frame's too), area-averaged to THUMB_WIDTH pixels across."""
    grey = luma(image).astype(np.float32) / (257 if image.dtype == np.uint16 else 1)
    height, width = grey.shape
    return cv2.resize(grey, (THUMB_WIDTH, max(1, round(height * THUMB_WIDTH / width))), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Numbered:
    """An image-sequence output's frames: the first one's number, and the source's rate they were written at."""

    first: int
    rate: Fraction


def likeness(source: Path, output: Path, start: Fraction, length: Fraction, fps: Fraction | None = None,
             numbered: Numbered | None = None) -> Likeness | None:
    """How like `source`'s frames from `start` on (a scan read at `fps`) `output`'s are, at its first frame and
    SECOND into it (its middle, for a stretch of `length` seconds shorter than twice that); an image-sequence
    output's frames by their numbers (`numbered`). Each file is read once, from the first sample to the second:
    a source with one keyframe (facenet_crowd_1080p.mp4) is decoded from its start at each seek. None where a
    frame cannot be read from either."""
    times = [Fraction(0), min(length / 2, SECOND)]
    asked = _thumbnails(source, [start + at for at in times], fps, NEAR, _upright_turns(source, fps))
    held = [_numbered_frame(output, at, numbered) for at in times] if numbered is not None else \
        [found[0] if found else None for found in _thumbnails(output, times, turns=_upright_turns(output))]
    distances = []
    for near, frame in zip(asked, held, strict=True):
        if not near or frame is None:
            return None
        if frame.shape != near[0].shape:
            frame = cv2.resize(frame, near[0].shape[::-1], interpolation=cv2.INTER_AREA)
        distances.append(min(float(np.abs(thumb - frame).mean()) for thumb in near))
    return Likeness(sum(distances) / len(distances))


def other_start(source: Path, output: Path, span: TimeSpan | None, length: Fraction | None,
                fps: Fraction | None = None, numbered: Numbered | None = None) -> str | None:
    """Why `output`, as long as the stretch `span` asks (`length` seconds), holds another stretch of `source`: its
    frames are unlike the source's from the asked start on (a --start 60 try left under the name a --start 30 run
    now asks for). None where they are alike, where the whole is asked (its length tells it) or the frames
    cannot be read (the output is judged by its length and date alone, as before)."""
    if span is None or length is None or length <= 0 or (span.start <= 0 and span.end is None):
        return None
    found = likeness(source, output, Fraction(span.start), length, fps, numbered)
    if found is None or not found.other:
        return None
    return f"its frames are not the video's from {float(span.start):g} s (they differ by {found.distance:.0f} " \
        "levels of 255)"


def _upright_turns(path: Path, fps: Fraction | None = None) -> int:
    """Quarter turns (np.rot90) that show `path`'s frames as its players do: a phone clip's rotation tag, which an
    output that cannot keep it (.avi, .gif, frames) has applied to its pixels instead; 0 where it has none."""
    try:
        return quarter_turns(probe_video(path, fps).rotation)
    except (InputError, av.error.FFmpegError, OSError, ValueError):
        return 0


def _thumbnails(path: Path, times: list[Fraction], fps: Fraction | None = None, reach: Fraction = Fraction(0),
                turns: int = 0) -> list[list[np.ndarray]]:
    """For each of `times` (seconds from the first frame, ascending), the thumbnails of the frames of `path` (a
    scan read at `fps`) shown from `reach` before it to `reach` after it, at most NEAR_FRAMES, and the frame on
    screen then, turned `turns` quarter turns as shown; [] for each where the file cannot be read. With a reach (a
    source's), also the frame on screen as far after the frame on screen at times[0] as each time lies after it: a
    run opens its stretch with that frame, whole, from where it begins (TimeSpan.opened_at), so an output's frames
    lie up to a frame before the times asked, beyond NEAR in a clip under 10 fps (a 5 fps GIF's rerun was redone
    each time). One read, from the keyframe before the first."""
    begin = max(Fraction(0), times[0] - reach)
    shown: list[tuple[Fraction, np.ndarray]] = []  # (seconds, thumbnail) of each frame read, up to the last window
    span = TimeSpan(float(begin))
    try:
        frames = read_webp_frames(path, span) if is_animated_webp(path) else read_frames(path, fps=fps, span=span)
        with closing(frames):
            origin = None
            for frame in frames:
                at = frame.pts * frame.time_base if frame.pts is not None else frame.index * DEFAULT_FRAME
                origin = at - begin if origin is None else origin  # the first frame read is the one shown at begin
                seconds = at - origin
                if seconds > times[-1] + reach:
                    break
                shown.append((seconds, thumbnail(np.rot90(frame.image, turns))))
    except (InputError, av.error.FFmpegError, OSError):
        return [[] for _ in times]
    opened = _on_screen(shown, times[0])
    early = times[0] - opened[0] if opened is not None and reach else Fraction(0)
    found = []
    for wanted in times:
        near = [thumb for seconds, thumb in shown if abs(seconds - wanted) <= reach][:NEAR_FRAMES]
        for moment in {wanted, wanted - early}:
            on_screen = _on_screen(shown, moment)
            if on_screen is not None and not any(on_screen[1] is thumb for thumb in near):
                near.append(on_screen[1])
        found.append(near)
    return found


def _on_screen(shown: list[tuple[Fraction, np.ndarray]], seconds: Fraction) -> tuple[Fraction, np.ndarray] | None:
    """The frame of `shown` (in time order) on screen at `seconds`: the last that begins at or before it."""
    return next((frame for frame in reversed(shown) if frame[0] <= seconds), None)


def _numbered_frame(output: Path, seconds: Fraction, numbered: Numbered) -> np.ndarray | None:
    """The thumbnail of an image-sequence output's frame on screen at `seconds` from its first, by its number at
    the source's rate."""
    still = frame_path(output, numbered.first + int(seconds * numbered.rate))
    found = _thumbnails(still, [Fraction(0)])[0] if still.is_file() else []
    return found[0] if found else None
