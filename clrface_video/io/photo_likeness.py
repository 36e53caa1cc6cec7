"""Whether a photo file shows another picture than a photo: small grey thumbnails correlated, so that a rerun tells
its own earlier output of a retouched original from a user's unrelated file under the output's name."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from clrface_video.io.photo_read import heif_support

THUMB = (32, 32)  # pixels: a restored face, a retouch or a new scan moves a thumbnail this small little
# Thumbnails correlated less than this are other pictures. On the 25 research photos (`python
# benchmarks/photo_likeness.py ../shared/data/photos`) the 300 pairs of different photos correlate 0.53 at most,
# each photo with itself brightened, at lower contrast, in grey or blurred 0.96 at least (cropped by 5% a side:
# 0.54, whose output is then refused, not replaced; turned a quarter: each but the 3 square ones, compared turned)
LIKE = 0.6
FLAT = 2.0  # levels of 255: a thumbnail whose luma varies less than this shows nothing to correlate


@dataclass(frozen=True)
class Thumb:
    grey: np.ndarray  # THUMB, float64: the picture upright, in grey, area-averaged
    portrait: bool  # taller than wide, upright


def thumbnail(path: Path) -> Thumb | None:
    """`path`'s picture upright (its EXIF orientation), in grey, area-averaged to THUMB; None where Pillow cannot
    read it (a RAW, a damaged file): then nothing is told. HEIC and HEIF are read through pillow-heif, as photos
    are (photo_read.heif_support): unread, a user's own older .heic under the output's name was written over."""
    heif_support()
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.draft("L", (THUMB[0] * 2, THUMB[1] * 2))  # a JPEG decoded at an eighth of its size at most
            grey = ImageOps.exif_transpose(image).convert("L")
            return Thumb(np.asarray(grey.resize(THUMB, Image.Resampling.BOX), np.float64), grey.height > grey.width)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def correlation(photo: Path, other: Path) -> float | None:
    """How alike two photos' thumbnails are, whatever their exposure and contrast (-1 to 1); None where either
    cannot be read or shows too little to tell (FLAT: a blank page, a uniform test card). Where one stands upright
    and the other lies (portrait against landscape), the best of it turned either way: a photo turned a quarter
    since it was restored (its pixels, or its EXIF orientation: a library's rotate button) correlated -0.25 to
    0.5 with its own restored copy, on every research photo, and that copy was refused as another picture."""
    thumbs = [thumbnail(photo), thumbnail(other)]
    if any(thumb is None or thumb.grey.std() < FLAT for thumb in thumbs):
        return None
    first, second = ((thumb.grey - thumb.grey.mean()) / thumb.grey.std() for thumb in thumbs)
    turns = (1, 3) if thumbs[0].portrait != thumbs[1].portrait else ()
    return float(max((first * np.rot90(second, turn)).mean() for turn in (0, *turns)))


def another_picture(photo: Path, other: Path) -> bool:
    """Whether `other` shows another picture than `photo` (correlation under LIKE), not `photo` restored, retouched
    or scanned again; False where that cannot be told."""
    alike = correlation(photo, other)
    return alike is not None and alike < LIKE
