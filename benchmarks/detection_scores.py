"""The detector's scores on photos and video frames, and a picture of the doubtful detections to judge by eye.

    python benchmarks/detection_scores.py PATH [PATH ...] [--frames 12] [--floor 0.3] [--below 0.9] [--grid doubtful.png]

PATH is a photo, a video or a folder of them. Every detection scoring at least FLOOR is counted in score
bands; those scoring under BELOW are drawn into GRID (96 px tiles of the detector's box, each labelled
with its score and where it came from), so that what a threshold would keep or drop can be seen. For
videos, the first FRAMES frames. The README's `--detection-threshold` row was measured with this script.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

BANDS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TILE = 96


def sources(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        found.extend(sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path])
    return found


def images_of(path: Path, frames: int):
    """(label, RGB image) of a photo, or of a video's first `frames` frames."""
    from clrface_video.eval.temporal import read_clip
    from clrface_video.io.decode import is_image_path
    from clrface_video.io.photo_read import read_photo

    if is_image_path(path):
        yield path.name, read_photo(path).image
    else:
        for frame in read_clip(path, frames):
            yield f"{path.name}:{frame.index}", frame.image


def tile(image: np.ndarray, box: np.ndarray, text: str) -> np.ndarray:
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    crop = image[max(0, y0):min(height, y1), max(0, x0):min(width, x1)]
    out = cv2.resize(crop, (TILE, TILE)) if crop.size else np.zeros((TILE, TILE, 3), np.uint8)
    cv2.putText(out, text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 0), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--floor", type=float, default=0.3)
    parser.add_argument("--below", type=float, default=0.9)
    parser.add_argument("--grid", type=Path, default=Path("doubtful.png"))
    args = parser.parse_args()

    from clrface_video.config import RestoreConfig
    from clrface_video.faces.detect import make_detector
    from clrface_video.io.decode import is_image_path
    from clrface_video.pipeline import detector_for

    # photos as the pipeline scans them (also finer for their small faces); video frames at 1280 px, both at FLOOR
    video = make_detector(threshold=args.floor)
    photo = detector_for(RestoreConfig(det_threshold=args.floor), "cpu", video=False)
    tiles = []
    for path in sources(args.paths):
        scores = []
        detector = photo if is_image_path(path) else video
        for label, image in images_of(path, args.frames):
            for face in detector.detect(image):
                scores.append(face.score)
                if face.score < args.below:
                    tiles.append(tile(image, face.box, f"{face.score:.2f} {label}"[:24]))
        edges = (args.floor, *(b for b in BANDS if b > args.floor))
        counts = np.histogram(scores, bins=edges)[0]
        print(f"{path.name:36s} {len(scores):4d} faces;", "  ".join(
            f"{lo:.1f}-{hi:.1f}: {n}" for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)))
    if tiles:
        columns = 8
        rows = -(-len(tiles) // columns)
        grid = np.zeros((rows * TILE, columns * TILE, 3), np.uint8)
        for i, t in enumerate(tiles):
            grid[(i // columns) * TILE:(i // columns + 1) * TILE, (i % columns) * TILE:(i % columns + 1) * TILE] = t
        cv2.imwrite(str(args.grid), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        print(f"{len(tiles)} detections under {args.below} drawn -> {args.grid}")


if __name__ == "__main__":
    main()
