"""How many of a video's YUV samples a restore into FFV1 changes, plane by plane, against the source's own.

    python benchmarks/kept_samples.py VIDEO [--duration 1] [--model baseline-bicubic-sharpen]

Restores the video's first --duration seconds into a lossless FFV1 .mkv in a temporary folder (the source's pixel
format), decodes the source's frames and the output's, and prints, per plane, the share of samples that differ
and the largest difference (in the plane's own codes). Run it with PYTHONPATH set to an older checkout to see
that checkout's writer (which took every sample through RGB).
"""
from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from clrface_video.config import RestoreConfig
from clrface_video.pipeline import restore_video


def planes(path: Path) -> Iterator[list[np.ndarray]]:
    """Each frame's planes: its samples as integers, the row padding left out."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            deep = any(component.bits > 8 for component in frame.format.components)
            yield [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                   [:, :plane.width * (2 if deep else 1)].view("<u2" if deep else np.uint8).astype(np.int32)
                   for plane in frame.planes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--model", default="baseline-bicubic-sharpen")
    args = parser.parse_args()
    config = RestoreConfig(model=args.model, device="cpu", duration=args.duration, codec="ffv1", overwrite=True,
                           track_identity=False)
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.mkv"
        report = restore_video(args.video, output, config)
        changed, total, largest = np.zeros(4), np.zeros(4), np.zeros(4, int)
        frames = 0
        for source, restored in zip(planes(args.video), planes(output)):  # the output holds the first frames
            for index, (a, b) in enumerate(zip(source, restored, strict=True)):
                difference = np.abs(a - b)
                changed[index] += np.count_nonzero(difference)
                total[index] += difference.size
                largest[index] = max(largest[index], int(difference.max()))
            frames += 1
    names = ("Y", "Cb", "Cr", "alpha")[:int(np.count_nonzero(total))]
    print(f"{args.video.name}: {frames} frames, {report.faces} faces restored into FFV1")
    print("  " + "  ".join(f"{name} {100 * changed[i] / total[i]:.3f}% changed (up to {largest[i]})"
                           for i, name in enumerate(names)))


if __name__ == "__main__":
    main()
