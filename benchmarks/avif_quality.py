"""How close a 10-bit AVIF written by io.deep_avif comes to a photo, and how large it is, at several constant
qualities (crf), beside Pillow's 8-bit AVIF at the quality restore writes AVIF with (LOSSY_QUALITY): what the
deep writer's CRF was chosen by.

    python benchmarks/avif_quality.py [PHOTO] [--crf 4 7 10 15]

PHOTO (default: scikit-image's astronaut.png) is read as an 8-bit RGB photo and written each way in memory;
printed: the bytes written and the mean difference from the photo, in 8-bit code values, of the file read back
by Pillow (libavif), the reader viewers use.
"""
from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image

from clrface_video.io import deep_avif
from clrface_video.io.photo_write import LOSSY_QUALITY


def _difference(avif: bytes, rgb: np.ndarray) -> float:
    with Image.open(io.BytesIO(avif)) as image:
        return float(np.abs(np.asarray(image.convert("RGB"), np.int16) - rgb).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", nargs="?")
    parser.add_argument("--crf", nargs="+", default=["4", "7", "10", "15"])
    args = parser.parse_args()
    if args.photo:
        with Image.open(args.photo) as image:
            rgb = np.asarray(image.convert("RGB"))
    else:
        from skimage import data

        rgb = data.astronaut()
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "AVIF", quality=LOSSY_QUALITY["AVIF"])
    print(f"Pillow, 8-bit, quality {LOSSY_QUALITY['AVIF']}: {len(buffer.getvalue())} bytes, "
          f"difference {_difference(buffer.getvalue(), rgb):.3f}")
    for crf in args.crf:
        deep_avif.CRF = crf
        avif = deep_avif.avif_bytes(rgb.astype(np.uint16) * 257, None, None, None, None)
        print(f"io.deep_avif, 10-bit, crf {crf}: {len(avif)} bytes, difference {_difference(avif, rgb):.3f}")


if __name__ == "__main__":
    main()
