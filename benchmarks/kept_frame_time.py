"""CPU time of io.source_planes.kept_frame for a 1080p 4:2:0 frame with face boxes: the changed pixels an oval
in each box (as the paste's mask leaves the corners), against whole boxes changed (what the writer converted before).

    python benchmarks/kept_frame_time.py [--faces 8] [--side 160] [--repeats 50]

The boxes' RGB is converted by swscale as the writer's is (one thread); prints the least CPU ms a frame of each.
Run it with PYTHONPATH set to an older checkout (before types.Change) to time that checkout's kept_frame, which
converted whole boxes either way.
"""
from __future__ import annotations

import argparse
import time

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from clrface_video.io.decode import source_planes
from clrface_video.io.source_planes import kept_frame

try:
    from clrface_video.types import Change
except ImportError:  # an older checkout: kept_frame took the boxes alone
    Change = None

WIDTH, HEIGHT = 1920, 1080


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=8)
    parser.add_argument("--side", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    reformatter = VideoReformatter()

    def converted(box: tuple[int, int, int, int]) -> av.VideoFrame:
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[box[1]:box[3], box[0]:box[2]]), format="rgb24")
        return reformatter.reformat(rgb, format="yuv420p", src_colorspace=1, dst_colorspace=1, src_color_range=2,
                                    dst_color_range=1, threads=1)

    whole = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    source = source_planes(whole, None)
    rows, columns = np.ogrid[:args.side, :args.side]
    centre, radius = (args.side - 1) / 2, args.side / 2
    oval = ((rows - centre) / radius) ** 4 + ((columns - centre) / radius) ** 4 <= 1
    spacing = WIDTH // args.faces
    boxes = [(i * spacing + 20, 300, i * spacing + 20 + args.side, 300 + args.side) for i in range(args.faces)]
    for name, pixels in (("whole boxes", np.ones_like(oval)), ("changed pixels", oval)):
        changes = boxes if Change is None else [Change(box, pixels) for box in boxes]
        best = float("inf")
        for _ in range(args.repeats):
            start = time.process_time()
            kept_frame(source, changes, "yuv420p", converted)
            best = min(best, time.process_time() - start)
        print(f"{name}: {args.faces} boxes of {args.side} px, {best * 1000:.2f} ms a frame")


if __name__ == "__main__":
    main()
