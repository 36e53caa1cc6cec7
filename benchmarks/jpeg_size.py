"""How much larger a restored JPEG is than its source: the writer's quality (the source's own, at least 95).

    python benchmarks/jpeg_size.py [PHOTOS] [--qualities 75 88 95]

Each JPEG in PHOTOS (default ../shared/data/photos) is saved at each quality with 4:2:0 subsampling, as cameras
and web pages write them, read with io.photo_read.read_photo and written again with io.photo_write.write_photo
with its pixels untouched (a photo with a restored face is written the same way); the ratio of the written
file's size to the source's is printed per quality, as the median and the range over the photos.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from PIL import Image

from clrface_video.io.photo_read import read_photo
from clrface_video.io.photo_write import write_photo


def ratios(photos: list[Path], quality: int, folder: Path) -> list[float]:
    """Written size / source size for each photo saved at `quality` (4:2:0)."""
    found = []
    for path in photos:
        source = folder / f"q{quality}_{path.stem}.jpg"
        Image.open(path).convert("RGB").save(source, quality=quality, subsampling=2)
        photo = read_photo(source)
        out = write_photo(folder / f"out_{source.name}", photo.image, photo)
        found.append(out.stat().st_size / source.stat().st_size)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="?", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--qualities", type=int, nargs="+", default=[75, 88, 95])
    args = parser.parse_args()
    photos = sorted(args.photos.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no .jpg photos in {args.photos}")
    print(f"{len(photos)} JPEGs of {args.photos}, saved at each quality (4:2:0), read and written again")
    with tempfile.TemporaryDirectory() as folder:
        for quality in args.qualities:
            found = ratios(photos, quality, Path(folder))
            print(f"  quality {quality}: written at quality {max(95, quality)}, {statistics.median(found):.2f}x the "
                  f"source's size (median; {min(found):.2f}-{max(found):.2f}x)")


if __name__ == "__main__":
    main()
