"""Seconds per frame of each stage of `clrface-video restore` on a video stretch, the best of several runs.

    python benchmarks/stage_times.py VIDEO [--start 0] [--duration 1] [--repeats 3] [--model baseline-bicubic-sharpen]
        [--codec auto] [--keep OUT.mp4]

The models are loaded once, then the stretch is restored --repeats times (on the CPU, identity guidance as the
CLI's default); each stage's figure is its least time over the runs (the machine's other work only adds time).
With the baseline model the restorer costs almost nothing, so the stages around it show: decode, detect, track,
align, paste, encode. --keep writes the last run's output there (benchmarks/same_output.py compares two).
"cpu" is the process's CPU time (all its threads) a frame, least over the runs: threads that busy-wait add to it
while the other processes of a shared machine do not.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from clrface_video.config import RestoreConfig
from clrface_video.pipeline import load_models, restore_video
from clrface_video.report import STAGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="baseline-bicubic-sharpen")
    parser.add_argument("--codec", default="auto", help="as restore's --codec (ffv1 into .mkv: lossless)")
    parser.add_argument("--keep", type=Path, help="copy the last run's output here (its suffix picks the container)")
    args = parser.parse_args()
    config = RestoreConfig(model=args.model, device="cpu", start=args.start, duration=args.duration,
                           codec=args.codec, overwrite=True)
    models = load_models(config, video=True)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / f"out{(args.keep or args.video).suffix}"
        for _ in range(args.repeats):
            cpu = time.process_time()
            report = restore_video(args.video, output, config, models=models)
            cpu = time.process_time() - cpu
            for stage, seconds in {**report.stages, "total": report.seconds, "cpu": cpu}.items():
                best[stage] = min(best.get(stage, seconds), seconds)
        if args.keep is not None:
            shutil.copyfile(output, args.keep)
    frames = max(report.frames, 1)
    print(f"{args.video.name} {args.start:g}+{args.duration:g} s: {report.frames} frames, {report.faces} faces; "
          f"best of {args.repeats}, ms per frame")
    print("  " + "  ".join(f"{stage} {best[stage] * 1000 / frames:.1f}" for stage in (*STAGES, "total", "cpu")
                           if stage in best))


if __name__ == "__main__":
    main()
