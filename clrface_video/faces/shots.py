"""Shot changes: a frame's thumbnail, and whether two consecutive frames lie on either side of a cut."""
from __future__ import annotations

import numpy as np

from ..opencv import cv2

THUMBNAIL = (32, 18)  # width, height: enough to tell two shots apart, cheap for any frame size
# A cut changes both the picture's layout and its colours. The layout is compared on luma scaled to zero mean
# and unit spread, so that a camera flash or a change of exposure, which brightens the same picture, is not
# one. Measured with benchmarks/shot_cuts.py on the research clips: hamilton's three cuts gave 0.82-0.92 and
# 0.32-0.61; camera moves, fast motion and talking heads in every clip at most 0.34 and 0.12. A flash frame
# (x1.3 + 30, as in tests/test_faces_track.py) gave 0.40 and 0.25, the generated cut there 0.97 and 0.63.
CUT_LAYOUT = 0.6  # mean absolute difference of the thumbnails' normalised luma (in units of its spread)
CUT_COLOUR = 0.15  # share of the hue-saturation histogram that moved (total variation distance)
FLAT = 4.0  # grey levels: the least spread luma is divided by (a black frame is not blown up into noise)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 frame shrunk to THUMBNAIL (18, 32, 3) uint8, area-averaged."""
    return cv2.resize(np.ascontiguousarray(image), THUMBNAIL, interpolation=cv2.INTER_AREA)


def _colours(thumb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    counts = cv2.calcHist([hsv], [0, 1], None, [12, 4], [0, 180, 0, 256]).ravel()
    return counts / max(float(counts.sum()), 1.0)


def _layout(thumb: np.ndarray) -> np.ndarray:
    luma = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return (luma - luma.mean()) / max(float(luma.std()), FLAT)


def shot_change(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(layout change: normalised luma difference, colour change: histogram distance in 0..1) of two thumbnails."""
    return (float(np.abs(_layout(before) - _layout(after)).mean()),
            float(np.abs(_colours(before) - _colours(after)).sum() / 2))


def is_cut(before: np.ndarray | None, after: np.ndarray) -> bool:
    """Whether the frame of thumbnail `after` starts a new shot (None before: the first frame, no cut)."""
    if before is None:
        return False
    layout, colour = shot_change(before, after)
    return layout >= CUT_LAYOUT and colour >= CUT_COLOUR
