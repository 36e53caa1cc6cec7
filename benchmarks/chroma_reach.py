"""Which chroma samples swscale's RGB to YUV conversion (the writer's: bilinear, one thread) moves when one pixel
changes: how far past the pixels a sample covers its filter reads, which io.source_planes.MARGIN must hold.

    python benchmarks/chroma_reach.py [--formats yuv420p yuv422p yuv411p yuv420p10le] [--trials 3]

For each format, pixels at every offset within two chroma samples are inverted in turn on random 64 x 64 pictures;
prints, per offset, how many pixels past the chroma sample that covers it the farthest moved sample lies, rows and
columns (the largest over the trials).
"""
from __future__ import annotations

import argparse

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from clrface_video.io.source_planes import MARGIN

SIDE = 64


def chroma(image: np.ndarray, pix_fmt: str) -> np.ndarray:
    """The Cb plane of `image` (rgb24, or rgb48le for a deeper format) converted to `pix_fmt` (BT.709, limited)."""
    deep = image.dtype == np.uint16
    frame = VideoReformatter().reformat(av.VideoFrame.from_ndarray(image, format="rgb48le" if deep else "rgb24"),
                                        format=pix_fmt, src_colorspace=1, dst_colorspace=1, src_color_range=2,
                                        dst_color_range=1, threads=1)
    plane = frame.planes[1]
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width * (2 if deep else 1)] \
        .copy().view("<u2" if deep else np.uint8)


def beyond(pixel: int, sample: int, step: int) -> int:
    """How many pixels past those sample `sample` covers (step of them) `pixel` lies: 0 where it covers it."""
    return max(0, sample * step - pixel, pixel - (sample + 1) * step + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", nargs="+", default=["yuv420p", "yuv422p", "yuv411p", "yuv420p10le"])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for pix_fmt in args.formats:
        fmt = av.VideoFormat(pix_fmt)
        deep = any(component.bits > 8 for component in fmt.components)
        step_x, step_y = SIDE // fmt.chroma_width(SIDE), SIDE // fmt.chroma_height(SIDE)
        past = [0, 0]  # rows, columns
        for _ in range(args.trials):
            image = rng.integers(0, 65536 if deep else 256, (SIDE, SIDE, 3)).astype(np.uint16 if deep else np.uint8)
            before = chroma(image, pix_fmt)
            for offset in range(2 * max(step_x, step_y)):
                y, x = SIDE // 2 + min(offset, 2 * step_y - 1), SIDE // 2 + min(offset, 2 * step_x - 1)
                changed = image.copy()
                changed[y, x] = np.iinfo(image.dtype).max - changed[y, x]
                for row, column in np.argwhere(chroma(changed, pix_fmt) != before):
                    past[0] = max(past[0], beyond(y, int(row), step_y))
                    past[1] = max(past[1], beyond(x, int(column), step_x))
        print(f"{pix_fmt}: moved samples lie up to {past[0]} rows and {past[1]} columns past the pixel's own "
              f"(the margin: {MARGIN})")


if __name__ == "__main__":
    main()
