"""Measure how far a restored stretch's frames lie from its source's at the start it was asked for, and at others.

    python benchmarks/stretch_start.py FOLDER_OR_VIDEO... [--model auto] [--length 0.25]

Each video gets a --length stretch restored from 1 s (--model: the shipped model where installed), written to a
temporary folder removed afterwards; io.stretch_start.likeness then compares it with the source from 1 s (the
right start: restoration and encoding are the distance) and from every 0.5 s step to the video's end (other
starts; those within 0.5 s of 1 s left out, as one moment). It prints, per video, the right start's distance, the
nearest other one's, how many other starts lie past stretch_start.UNLIKE (told apart) and how long the right start's
comparison took (what a rerun that leaves the stretch as is adds), then the largest right
distance over all (UNLIKE must lie above it) and the share of other starts told apart. Distances are mean absolute
luma differences (0-255) of THUMB_WIDTH-pixel thumbnails.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from clrface_video.config import RestoreConfig
from clrface_video.io.extent import extent
from clrface_video.io.stretch_start import UNLIKE, likeness
from clrface_video.pipeline import restore_video

START = Fraction(1)
STEP = Fraction(1, 2)


def measure(video: Path, model: str, length: Fraction, folder: Path) -> tuple[float, list[float], float] | None:
    """The distance at the right start, those at the others and the seconds the first took, or None for a video
    too short to try."""
    known = extent(video)
    seconds = None if known is None else known.seconds or known.file_seconds
    if seconds is None or seconds < START + 2 * STEP + length:
        return None
    output = folder / f"{video.stem}.mkv"
    restore_video(video, output, RestoreConfig(model=model, device="cpu", start=float(START), duration=float(length)))
    began = time.perf_counter()
    right = likeness(video, output, START, length)
    took = time.perf_counter() - began
    others = [likeness(video, output, STEP * n, length) for n in range(int((seconds - length) / STEP) + 1)
              if abs(STEP * n - START) >= STEP]
    found = [other.distance for other in others if other is not None]
    return None if right is None or not found else (right.distance, found, took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--length", type=Fraction, default=Fraction(1, 4))
    args = parser.parse_args()
    videos = sorted(v for p in args.paths for v in (sorted(p.glob("*.mp4")) if p.is_dir() else [p]))
    rights, others = [], []  # the right starts' distances; the other starts' (all videos)
    with tempfile.TemporaryDirectory() as folder:
        for video in videos:
            measured = measure(video, args.model, args.length, Path(folder))
            if measured is None:
                print(f"{video.name}: too short")
                continue
            right, other, seconds = measured
            rights.append(right)
            others.extend(other)
            told = sum(distance > UNLIKE for distance in other)
            print(f"{video.name}: right start {right:.2f}, nearest other start {min(other):.2f}, "
                  f"{told} of {len(other)} other starts told apart, {seconds:.2f} s")
    if rights:
        told = sum(distance > UNLIKE for distance in others)
        print(f"largest at the right start {max(rights):.2f} (UNLIKE is {UNLIKE:g}); other starts told apart: "
              f"{told} of {len(others)} ({100 * told / len(others):.0f}%)")


if __name__ == "__main__":
    main()
