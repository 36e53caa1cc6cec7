"""Encoding cost of `--preset`: milliseconds per frame, file size and PSNR of libx264 at one --crf, by preset.

    python benchmarks/bench_encode.py VIDEO                      # its first 48 frames, crf 18
    python benchmarks/bench_encode.py VIDEO --frames 96 --presets ultrafast,veryfast,medium

The frames are decoded once into memory (48 HD frames are about 300 MB), then each preset encodes the same
frames through the project's VideoWriter, timed, and the result is decoded again for its PSNR against them.
On HD footage with few faces, encoding can cost as much as detection and pasting together.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np

from clrface_video.io.decode import probe_video, read_frames
from clrface_video.io.encode import VideoWriter


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--presets", default="ultrafast,veryfast,fast,medium,slow")
    args = parser.parse_args()
    info = replace(probe_video(args.video), other_streams=0)  # video only: what is timed is the encoder
    frames = list(islice(read_frames(args.video), args.frames))
    print(f"{args.video.name}: {len(frames)} frames of {info.width}x{info.height}, libx264 crf {args.crf}")
    print(f"{'preset':>10} {'ms/frame':>9} {'KiB':>8} {'PSNR dB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            out = Path(tmp) / f"{preset}.mp4"
            start = time.perf_counter()
            with VideoWriter(out, args.video, info, codec="libx264", crf=args.crf, preset=preset) as writer:
                for frame in frames:
                    writer.write(frame)
            seconds = time.perf_counter() - start
            back = [f.image for f in read_frames(out)]
            quality = np.mean([psnr(a.image, b) for a, b in zip(frames, back, strict=True)])
            print(f"{preset:>10} {1000 * seconds / len(frames):9.1f} {out.stat().st_size / 1024:8.0f} {quality:8.2f}")


if __name__ == "__main__":
    main()
