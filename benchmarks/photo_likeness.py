"""Measure how alike photos' thumbnails are (io.photo_likeness), to place LIKE between other pictures and a photo's
own restored, retouched or rescanned copies.

    python benchmarks/photo_likeness.py FOLDER

Every pair of FOLDER's photos is compared (other pictures: LIKE must lie above the largest); then each photo with
its own copies, written as JPEG (q90) into a temporary folder removed afterwards: restored (the classical baseline
restorer on the CPU), brightened by 40%, at 60% contrast, in grey, blurred (an eighth of its size and back),
turned a quarter and cropped by 5% a side. It prints the largest correlation of other pictures and the smallest
of each kind of copy, and how many of them fall under LIKE (refused).
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from clrface_video.config import RestoreConfig
from clrface_video.io.photo_likeness import LIKE, correlation
from clrface_video.pipeline import restore_image

EDITS = {
    "brightened": lambda image: ImageEnhance.Brightness(image).enhance(1.4),
    "lower contrast": lambda image: ImageEnhance.Contrast(image).enhance(0.6),
    "grey": lambda image: image.convert("L"),
    "blurred": lambda image: image.resize((image.width // 8, image.height // 8)).resize(image.size),
    "turned a quarter": lambda image: image.rotate(90, expand=True),
    "cropped 5%": lambda image: image.crop((image.width // 20, image.height // 20,
                                            image.width - image.width // 20, image.height - image.height // 20)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    photos = sorted(path for path in parser.parse_args().folder.iterdir()
                    if path.suffix.lower() in {".jpg", ".jpeg", ".png"})
    others = [correlation(a, b) for a, b in itertools.combinations(photos, 2)]
    told = [value for value in others if value is not None]
    print(f"other pictures: {len(told)} pairs, largest {max(told):.3f}")
    config = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", track_identity=False)
    copies: dict[str, list[float]] = {"restored": []}
    with tempfile.TemporaryDirectory() as folder:
        for photo in photos:
            restored = Path(folder) / photo.name
            restore_image(photo, restored, config)
            copies["restored"].append(correlation(photo, restored))
            upright = ImageOps.exif_transpose(Image.open(photo)).convert("RGB")
            for name, edit in EDITS.items():
                copy = Path(folder) / "copy.jpg"
                edit(upright).save(copy, quality=90)
                copies.setdefault(name, []).append(correlation(photo, copy))
    for name, values in copies.items():
        known = [value for value in values if value is not None]
        refused = sum(value < LIKE for value in known)
        print(f"{name}: {len(known)} photos, smallest {min(known):.3f}, {refused} under LIKE ({LIKE})")


if __name__ == "__main__":
    main()
