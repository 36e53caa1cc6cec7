"""Re-encode a prepare-faces folder as WebP with its manifest, to move training data to a remote GPU.

The prepared JPEGs (q95) of the 22k faces take about 130 MB; WebP at quality 85 keeps about 40 dB
PSNR against them at about a third of the size (45.5 MiB). --max-train keeps that many training faces,
evenly spread over the manifest (and so over its datasets), and every held-out face, to leave room in an
upload for FaceNet (scripts/pack_facenet.py --int8). Usage:

    python scripts/pack_faces.py runs/data runs/data-webp --quality 85 [--max-train 13000]
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import cv2

from clrface_video.io.cv_files import imread
from clrface_video.train.manifest import MANIFEST, PreparedFace, read_manifest, write_manifest


def spread_subset(rows: list[PreparedFace], max_train: int | None) -> list[PreparedFace]:
    """Every held-out row, and at most max_train training rows picked at even steps through the manifest."""
    train = [i for i, r in enumerate(rows) if r.split == "train"]
    if max_train is None or max_train >= len(train):
        return rows
    step = len(train) / max_train
    kept = {train[int(k * step)] for k in range(max_train)}
    return [r for i, r in enumerate(rows) if r.split != "train" or i in kept]


def pack(src: Path, dst: Path, quality: int, max_train: int | None = None) -> tuple[int, int]:
    """Write the faces of src's manifest (spread_subset) to dst as WebP; returns (faces, bytes written)."""
    rows, out, total = spread_subset(read_manifest(src / MANIFEST), max_train), [], 0
    for row in rows:
        image = imread(src / row.file, cv2.IMREAD_COLOR)  # any path, on Windows too
        if image is None:
            raise SystemExit(f"error: cannot read {src / row.file}")
        name = str(Path(row.file).with_suffix(".webp"))
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise SystemExit(f"error: cannot encode {row.file} as WebP")
        (dst / name).write_bytes(data.tobytes())
        total += len(data)
        out.append(replace(row, file=name))
    write_manifest(dst / MANIFEST, out)
    return len(out), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a folder written by clrface-video prepare-faces")
    parser.add_argument("dst", type=Path, help="output folder (created)")
    parser.add_argument("--quality", type=int, default=85, help="WebP quality 1-100 (default 85)")
    parser.add_argument("--max-train", type=int, default=None,
                        help="keep at most this many training faces, evenly spread (default: all)")
    args = parser.parse_args()
    faces, size = pack(args.src, args.dst, args.quality, args.max_train)
    print(f"{faces} faces, {size / 2**20:.1f} MiB in {args.dst}")


if __name__ == "__main__":
    main()
