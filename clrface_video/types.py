"""Small frozen dataclasses that flow through the pipeline: frames, faces, crops, tracks."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

SPAN_TOLERANCE = Fraction(1, 1000)  # seconds: a frame this close to a stretch's edge counts as on it
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels, end exclusive


@dataclass(frozen=True)
class SourcePlanes:
    """The samples a frame was decoded to, and how they were read to RGB (what its RGB is the conversion of).

    planes: per plane, (rows, bytes a row) uint8: its samples without the row padding, in the format's byte order.
    pix_fmt: the planes' FFmpeg format, a yuvj one under its yuv name (the same planes; full_range says the range).
    matrix: swscale's matrix (SWS_MATRIX) the frame was read with. full_range: read as full (JPEG) range.
    """

    pix_fmt: str
    width: int
    height: int
    matrix: int
    full_range: bool
    planes: tuple[np.ndarray, ...]

    def written_as(self, pix_fmt: str, width: int, height: int, matrix: int, full_range: bool) -> bool:
        """Whether an output frame of this format, size, matrix and range holds these samples as they are."""
        return (self.pix_fmt, self.width, self.height, self.matrix, self.full_range) == \
            (pix_fmt, width, height, matrix, full_range)


@dataclass(frozen=True)
class Change:
    """One pasted face's box and which of its pixels the paste changed: a writer that keeps the source's samples
    converts the restored RGB only there (the box's corners round the face's oval mask, and its margin, are as
    decoded).

    pixels: (y1 - y0, x1 - x0) bool, True where the paste's mask is above 0; a box's worth, never the frame's.
    """

    box: Box
    pixels: np.ndarray


@dataclass(frozen=True)
class Frame:
    """One decoded video frame or photo.

    image: (H, W, 3) RGB, uint8, or uint16 for high bit depth (full 0..65535 scale).
    pts / time_base: the source timestamp, passed through untouched (None for photos).
    duration: how long the frame shows, in time_base units, when the source says (a GIF's last delay).
    alpha: (H, W) transparency with the image's dtype, for a video that has it (ProRes 4444, FFV1), else None.
    source: the YUV samples `image` was read from (io.source_planes), where the writer can keep them; None for
    photos and frames whose picture decoding changed (deinterlaced). touched: the pasted faces' Changes, outside
    whose changed pixels `image` is still the exact conversion of `source` (story's paste sets them): whatever else
    changes `image` drops `source`.
    """

    image: np.ndarray
    index: int = 0
    pts: int | None = None
    time_base: Fraction | None = None
    duration: int | None = None
    alpha: np.ndarray | None = None
    source: SourcePlanes | None = None
    touched: tuple[Change, ...] = ()


@dataclass(frozen=True)
class TimeSpan:
    """A stretch of a video in seconds from its first frame: [start, end), end None for the rest of it."""

    start: float = 0.0
    end: float | None = None

    def not_yet(self, seconds: Fraction, until: Fraction | None = None) -> bool:
        """Whether a frame shown from `seconds` until `until` is over before the stretch starts: the stretch begins
        with the frame on screen at its start, as it ends with the one on screen at its end (a frame that ends
        within SPAN_TOLERANCE of its start is over). A frame whose end is not known (None) is before it when it
        starts before its start (by more than that tolerance)."""
        if until is None or until <= seconds:
            return seconds < Fraction(self.start) - SPAN_TOLERANCE
        return until <= Fraction(self.start) + SPAN_TOLERANCE

    def past(self, seconds: Fraction) -> bool:
        """Whether a frame at `seconds` comes at or after the stretch's end (the same tolerance)."""
        return self.end is not None and seconds >= Fraction(self.end) - SPAN_TOLERANCE

    def opened_at(self, seconds: Fraction) -> TimeSpan:
        """The stretch a run holds once its first frame, the one on screen at its start, begins at `seconds`: from
        there, as long as asked. That frame is shown whole, as long as the frames after it (cut at the start, it was
        shorter, which gave the output a variable rate), and the end moves back as much, so the output lasts what
        was asked (a rerun finds it done) and its sound, cut at the same times, stays in sync."""
        early = self.start - float(seconds)
        if early <= 0:
            return self
        return TimeSpan(float(seconds), None if self.end is None else self.end - early)


@dataclass(frozen=True)
class Face:
    """One detected face in frame pixels.

    box: (4,) float32 x1, y1, x2, y2.
    landmarks: (5, 2) float32: left eye, right eye, nose tip, left mouth corner, right mouth
    corner (left/right as seen in the image).
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float


@dataclass(frozen=True)
class LeftAlone:
    """A photo's face left as it was, where and why, for the report (a folder's names the photos that hold one).

    box: x1, y1, x2, y2 in the photo's upright pixels, rounded.
    why: 'too small' (its eye-to-mouth `span` under 75% of --min-face), 'too large' (`size`, its crop's side in
    the photo, past 1.25 x --max-upscale x the model's crop), else 'low score' or 'strength 0'.
    span / size: in pixels, to one decimal.
    """

    box: tuple[int, int, int, int]
    why: str
    span: float
    size: float


@dataclass(frozen=True)
class AlignedCrop:
    """A face warped to the restorer's template.

    image: (S, S, 3) uint8 RGB crop.
    matrix: (2, 3) float64 affine mapping frame pixels -> crop pixels (inverse for paste-back).
    """

    image: np.ndarray
    matrix: np.ndarray


@dataclass(frozen=True)
class TrackedFace:
    """A face of one frame after tracking: smoothed landmarks and the id of its track."""

    face: Face
    track_id: int
    landmarks: np.ndarray  # (5, 2) float32, smoothed along the track


@dataclass
class FaceTrack:
    """State of one person across frames (mutable: updated as frames arrive).

    identity: (D,) float32 L2-normalised running mean of the embeddings of its good frames,
    or None before the first one.
    person: the id of this person's first track; a track that re-identified a finished one (a face back after
    a gap or a cut, FaceTracker.sample) has that track's person, and took over its identity and seed.
    """

    track_id: int
    first_frame: int
    last_frame: int
    identity: np.ndarray | None = None
    identity_weight: float = 0.0
    seed: int = 0
    frames: int = 0
    history: list[int] = field(default_factory=list)
    person: int = -1  # set by the tracker when the track starts
