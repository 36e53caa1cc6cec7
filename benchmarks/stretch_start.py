"""Measure how far a restored stretch's frames lie from its source's at the start it was asked for, and at others.

    python benchmarks/stretch_start.py FOLDER_OR_VIDEO... [--model auto] [--length 0.25]

Each video gets a --length stretch restored from 1 s (--model: the shipped model where installed), written to a
temporary folder removed afterwards; io.stretch_start.likeness then compares it with the source from 1 s (the
right start: restoration and encoding are the distance) and from every 0.5 s step to the video's end (other
starts; those within 0.5 s of 1 s left out, as one moment). It prints, per video, the right start's distance and
the nearest other one's, then the largest right and smallest other distance over all: stretch_start.UNLIKE must
lie between them. Distances are mean absolute luma differences (0-255) of THUMB_WIDTH-pixel thumbnails.
"""
from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

from clrface_video.config import RestoreConfig
from clrface_video.io.extent import extent
from clrface_video.io.stretch_start import UNLIKE, likeness
from clrface_video.pipeline import restore_video

START = Fraction(1)
STEP = Fraction(1, 2)


def measure(video: Path, model: str, length: Fraction, folder: Path) -> tuple[float, float] | None:
    """The distance at the right start and the smallest at another, or None for a video too short to try."""
    known = extent(video)
    seconds = None if known is None else known.seconds or known.file_seconds
    if seconds is None or seconds < START + 2 * STEP + length:
        return None
    output = folder / f"{video.stem}.mkv"
    restore_video(video, output, RestoreConfig(model=model, device="cpu", start=float(START), duration=float(length)))
    right = likeness(video, output, START, length)
    others = [likeness(video, output, STEP * n, length) for n in range(int((seconds - length) / STEP) + 1)
              if abs(STEP * n - START) >= STEP]
    found = [other.distance for other in others if other is not None]
    return None if right is None or not found else (right.distance, min(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--length", type=Fraction, default=Fraction(1, 4))
    args = parser.parse_args()
    videos = sorted(v for p in args.paths for v in (sorted(p.glob("*.mp4")) if p.is_dir() else [p]))
    rights, others = [], []
    with tempfile.TemporaryDirectory() as folder:
        for video in videos:
            measured = measure(video, args.model, args.length, Path(folder))
            if measured is None:
                print(f"{video.name}: too short")
                continue
            rights.append(measured[0])
            others.append(measured[1])
            print(f"{video.name}: right start {measured[0]:.2f}, nearest other start {measured[1]:.2f}")
    if rights:
        print(f"largest at the right start {max(rights):.2f}; smallest at another {min(others):.2f}; "
              f"UNLIKE is {UNLIKE:g}")


if __name__ == "__main__":
    main()
