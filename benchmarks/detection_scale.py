"""How small a face RetinaFace finds, and what scanning a large photo at a larger scale costs.

    python benchmarks/detection_scale.py [FACES_DIR] [--count 24] [--photos PHOTOS] [--skip-spans]

Part 1 (FACES_DIR, default ../shared/data/faces-hq): each face is shrunk until its eye-to-mouth span is
4-14 px, set on a grey canvas, and detected at full size: how many are found at each span. It sets
faces.detect.SMALLEST_SPAN. Part 2: a generated 6000 x 4000 photo holding 12 copies of the public-domain
astronaut's face (21 px span) is detected as a video frame is (1280 px) and as a photo is (at 1280 px,
then for small faces at visible_scale(--min-face 16) of its size), with the time each takes. Part 3: a
20000 x 400 panorama, PHOTOS/faceapi_bbt2.jpg (3 faces) at 576 x 400 set 8 times along it, 2500 px apart,
detected as a photo: faces found of 24, and the time (a QA round's; ../shared/data/photos by default).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from timing import best_seconds

SPANS = (4, 5, 6, 7, 8, 10, 12, 14)


def found_by_span(folder: Path, count: int) -> None:
    from clrface_video.faces.align import eye_mouth_span
    from clrface_video.faces.detect import make_detector
    from clrface_video.io.photo_read import read_photo

    if not folder.is_dir():
        print(f"part 1 skipped: {folder} is missing (the research data beside this checkout)")
        return
    detector = make_detector(max_side=100_000)
    faces = []
    for path in sorted(folder.iterdir())[:count]:
        image = read_photo(path).image
        found = detector.detect(image)
        if found:
            faces.append((image, eye_mouth_span(found[0].landmarks)))
    print(f"part 1: {len(faces)} faces of {folder}, found at each eye-to-mouth span (px at the detector's input)")
    for span in SPANS:
        hits = 0
        for image, full in faces:
            small = cv2.resize(image, None, fx=span / full, fy=span / full, interpolation=cv2.INTER_AREA)
            canvas = np.full((max(300, small.shape[0] + 100), max(300, small.shape[1] + 100), 3), 120, np.uint8)
            canvas[50:50 + small.shape[0], 50:50 + small.shape[1]] = small
            hits += bool(detector.detect(canvas))
        print(f"  span {span:2d} px: {hits}/{len(faces)}")


def large_photo() -> None:
    from skimage import data

    from clrface_video.config import RestoreConfig
    from clrface_video.pipeline import detector_for

    face = cv2.resize(data.astronaut()[20:260, 130:330], (100, 120), interpolation=cv2.INTER_AREA)
    photo = np.full((4000, 6000, 3), 96, np.uint8)
    for i in range(4):
        for j in range(3):
            photo[500 + 1400 * j:620 + 1400 * j, 400 + 1500 * i:500 + 1500 * i] = face
    print("part 2: a 6000 x 4000 photo with 12 faces (21 px span), best of 3")
    for video in (True, False):
        detector = detector_for(RestoreConfig(), "cpu", video=video)
        detector.detect(photo[:64, :64])  # the session's first run
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            found = detector.detect(photo)
            seconds.append(time.perf_counter() - start)
        print(f"  as {'a video frame' if video else 'a photo'}: {len(found)} faces in {min(seconds):.2f} s")


def panorama(photos: Path) -> None:
    from PIL import Image

    from clrface_video.config import RestoreConfig
    from clrface_video.pipeline import detector_for

    source = photos / "faceapi_bbt2.jpg"
    if not source.is_file():
        print(f"part 3 skipped: {source} is missing")
        return
    group = np.asarray(Image.open(source).convert("RGB").resize((576, 400)))
    strip = np.full((400, 20000, 3), (90, 120, 150), np.uint8)
    for x in range(0, 20000, 2500):
        strip[:, x:x + 576] = group
    detector = detector_for(RestoreConfig(), "cpu", video=False)
    print(f"part 3: a 20000 x 400 panorama, 8 copies of a group of 3 ({len(detector.detect(group))} found in one), "
          "best of 3")
    found = detector.detect(strip)
    print(f"  {len(found)} of 24 faces in {best_seconds(lambda: detector.detect(strip), 3):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces", nargs="?", type=Path, default=Path("../shared/data/faces-hq"))
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--skip-spans", action="store_true", help="leave out part 1")
    args = parser.parse_args()
    if not args.skip_spans:
        found_by_span(args.faces, args.count)
    large_photo()
    panorama(args.photos)


if __name__ == "__main__":
    main()
