"""The brightness a video keeps when read to RGB and written back, and the time the reading takes per frame.

    python benchmarks/yuv_to_rgb.py VIDEO [--frames 6]

Each of the first FRAMES 8-bit YUV frames is turned to RGB, by swscale's default path and by the one the
pipeline reads with (io.decode.YUV_TO_RGB), then back to YUV as the writer does; printed: the mean luma
difference against the source frame (0 = kept) and the milliseconds the RGB conversion took, one thread.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter


def main() -> None:
    from clrface_video.io.decode import RANGE_JPEG, RANGE_MPEG, SWS_BT601, SWS_MATRIX, YUV_TO_RGB

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    with av.open(str(args.video)) as container:
        frames = [f for _, f in zip(range(args.frames), container.decode(video=0))]
    first = frames[0]
    print(f"{args.video.name}: {first.width}x{first.height} {first.format.name}, {len(frames)} frames")
    for label, flags in (("swscale default", None), ("pipeline (YUV_TO_RGB)", YUV_TO_RGB)):
        to_rgb, to_yuv = VideoReformatter(), VideoReformatter()
        shifts, seconds = [], 0.0
        for frame in frames:
            matrix = SWS_MATRIX.get(int(frame.colorspace), SWS_BT601)
            start = time.perf_counter()
            rgb = to_rgb.reformat(frame, format="rgb24", src_colorspace=matrix, src_color_range=RANGE_MPEG,
                                  interpolation=flags, threads=1).to_ndarray()
            seconds += time.perf_counter() - start
            back = to_yuv.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"), format=frame.format.name,
                                   src_colorspace=matrix, dst_colorspace=matrix, src_color_range=RANGE_JPEG,
                                   dst_color_range=RANGE_MPEG, threads=1)
            luma = [f.to_ndarray()[:frame.height].astype(np.float64) for f in (frame, back)]
            shifts.append(float((luma[1] - luma[0]).mean()))
        print(f"  {label:22s} luma shift {np.mean(shifts):+.3f}  to RGB {1000 * seconds / len(frames):.1f} ms/frame")


if __name__ == "__main__":
    main()
