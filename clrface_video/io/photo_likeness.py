"""Whether a photo file shows another picture than a photo: small grey thumbnails correlated, so that a rerun tells
its own earlier output of a retouched original from a user's unrelated file under the output's name."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

THUMB = (32, 32)  # pixels: a restored face, a retouch or a new scan moves a thumbnail this small little
# Thumbnails correlated less than this are other pictures. On the 25 research photos (`python
# benchmarks/photo_likeness.py ../shared/data/photos`) the 300 pairs of different photos correlate 0.53 at most,
# each photo with itself brightened, at lower contrast, in grey or blurred 0.96 at least (cropped by 5% a side:
# 0.54, whose output is then refused, not replaced)
LIKE = 0.6
FLAT = 2.0  # levels of 255: a thumbnail whose luma varies less than this shows nothing to correlate


def thumbnail(path: Path) -> np.ndarray | None:
    """`path`'s picture upright (its EXIF orientation), in grey, area-averaged to THUMB; None where Pillow cannot
    read it (a RAW, a damaged file): then nothing is told."""
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.draft("L", (THUMB[0] * 2, THUMB[1] * 2))  # a JPEG decoded at an eighth of its size at most
            grey = ImageOps.exif_transpose(image).convert("L")
            return np.asarray(grey.resize(THUMB, Image.Resampling.BOX), np.float64)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def correlation(photo: Path, other: Path) -> float | None:
    """How alike two photos' thumbnails are, whatever their exposure and contrast (-1 to 1); None where either
    cannot be read or shows too little to tell (FLAT: a blank page, a uniform test card)."""
    thumbs = [thumbnail(photo), thumbnail(other)]
    if any(thumb is None or thumb.std() < FLAT for thumb in thumbs):
        return None
    first, second = ((thumb - thumb.mean()) / thumb.std() for thumb in thumbs)
    return float((first * second).mean())


def another_picture(photo: Path, other: Path) -> bool:
    """Whether `other` shows another picture than `photo` (correlation under LIKE), not `photo` restored, retouched
    or scanned again; False where that cannot be told."""
    alike = correlation(photo, other)
    return alike is not None and alike < LIKE
