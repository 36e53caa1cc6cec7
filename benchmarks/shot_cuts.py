"""The largest frame-to-frame changes of videos by faces.shots' measures, to check its cut thresholds.

    python benchmarks/shot_cuts.py VIDEO [VIDEO ...] [--frames 400] [--top 4]

For each video, the frames with the largest layout (normalised luma) and colour changes from the frame before, and the
frames faces.shots.is_cut takes for cuts (where face tracks end).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from clrface_video.faces.shots import CUT_COLOUR, CUT_LAYOUT, is_cut, shot_change, thumbnail
from clrface_video.io.decode import read_frames
from clrface_video.io.pixels import to_uint8


def _listed(rows: list[tuple[int, float, float, bool]]) -> str:
    return ", ".join(f"{index}: {layout:.2f} / {colour:.2f}" for index, layout, colour, _ in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=400, help="frames read from the start of each video")
    parser.add_argument("--top", type=int, default=4)
    args = parser.parse_args()
    print(f"cut when layout >= {CUT_LAYOUT} and colour >= {CUT_COLOUR}")
    for video in args.videos:
        rows, before = [], None
        for frame in read_frames(video):
            if frame.index >= args.frames:
                break
            thumb = thumbnail(to_uint8(frame.image))
            if before is not None:
                rows.append((frame.index, *shot_change(before, thumb), is_cut(before, thumb)))
            before = thumb
        print(f"{video.name}: {len(rows) + 1} frames; cuts at {[r[0] for r in rows if r[3]]}")
        print(f"  largest layout change (frame: layout / colour): {_listed(sorted(rows, key=lambda r: -r[1])[:args.top])}")
        print(f"  largest colour change: {_listed(sorted(rows, key=lambda r: -r[2])[:args.top])}")


if __name__ == "__main__":
    main()
