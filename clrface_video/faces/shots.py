"""Shot changes: a frame's thumbnail, and whether two consecutive frames lie on either side of a cut."""
from __future__ import annotations

import cv2
import numpy as np

THUMBNAIL = (32, 18)  # width, height: enough to tell two shots apart, cheap for any frame size
# A cut changes both the picture and its colours. Measured with benchmarks/shot_cuts.py on the research
# clips: the four cuts gave 26-31 grey levels and 0.19-0.61; camera moves, fast motion and talking heads at
# most 12.6 grey levels and 0.12 (a clip's frames differ from the next by less).
CUT_LUMA = 18.0  # mean absolute difference of the thumbnails' luma, grey levels
CUT_COLOUR = 0.15  # share of the hue-saturation histogram that moved (total variation distance)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 frame shrunk to THUMBNAIL (18, 32, 3) uint8, area-averaged."""
    return cv2.resize(np.ascontiguousarray(image), THUMBNAIL, interpolation=cv2.INTER_AREA)


def _colours(thumb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    counts = cv2.calcHist([hsv], [0, 1], None, [12, 4], [0, 180, 0, 256]).ravel()
    return counts / max(float(counts.sum()), 1.0)


def shot_change(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(luma difference in grey levels, colour histogram distance in 0..1) between two thumbnails."""
    luma = [cv2.cvtColor(t, cv2.COLOR_RGB2GRAY).astype(np.float32) for t in (before, after)]
    return float(np.abs(luma[0] - luma[1]).mean()), float(np.abs(_colours(before) - _colours(after)).sum() / 2)


def is_cut(before: np.ndarray | None, after: np.ndarray) -> bool:
    """Whether the frame of thumbnail `after` starts a new shot (None before: the first frame, no cut)."""
    if before is None:
        return False
    luma, colour = shot_change(before, after)
    return luma >= CUT_LUMA and colour >= CUT_COLOUR
