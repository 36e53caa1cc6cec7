"""The colour a video keeps when read to RGB and written back to YUV, and the time the writing takes per frame.

    python benchmarks/rgb_to_yuv.py VIDEO [--frames 6] [--full-range] [--depth 10 | --pix-fmt yuv411p]

Each of the first FRAMES frames (re-encoded in memory to full range with --full-range, the way a phone, webcam or
MJPEG clip is stored, and to 10 bits with --depth 10, or to any YUV format with --pix-fmt: yuv411p for DV,
yuv440p, nv12, ...) is read to RGB as the pipeline reads it (io.decode), then turned back into YUV of its own
format and range by swscale alone (the writer before io/full_range.py) and by the writer's path (io.full_range
for full range, io.full_range.ready_deep_rgb then swscale for limited 10-bit; there is none for nv12, which the
writer never writes); printed: the mean Y, Cb and Cr
differences against the source frame in 8-bit code values (0 = kept) and the median milliseconds the YUV to RGB
read and the RGB to YUV conversion took per frame, one thread (the median, as other jobs on a shared machine
stretch some frames). Run it with PYTHONPATH set to an older checkout to see that checkout's figures.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Y, Cb and Cr of a planar or semi-planar (nv12, nv21) 8-10 bit YUV frame as float64 in 8-bit code values,
    without the row padding."""
    bits = frame.format.components[0].bits
    dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
    scale = 255 / ((1 << bits) - 1)
    if frame.format.name.startswith("nv"):  # one plane of interleaved chroma, Cr first in nv21 and nv42
        luma, chroma = (np.frombuffer(p, dtype).reshape(p.height, -1)[:, :p.width * (1 + i)].astype(np.float64)
                        for i, p in enumerate(frame.planes))
        first, second = chroma[:, 0::2], chroma[:, 1::2]
        cb, cr = (second, first) if frame.format.name in ("nv21", "nv42") else (first, second)
        return [luma * scale, cb * scale, cr * scale]
    return [np.frombuffer(p, dtype).reshape(p.height, -1)[:, :p.width].astype(np.float64) * scale
            for p in frame.planes[:3]]


def main() -> None:
    from clrface_video.io.decode import RANGE_JPEG, RANGE_MPEG, SWS_BT601, SWS_MATRIX, frame_to_array
    from clrface_video.io.full_range import to_full_range, wide_format

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--full-range", action="store_true", help="re-encode the frames to full range first")
    parser.add_argument("--depth", type=int, choices=(8, 10), default=8)
    parser.add_argument("--pix-fmt", help="the frames' YUV format (default yuv420p, or yuv420p10le with --depth 10)")
    args = parser.parse_args()
    with av.open(str(args.video)) as container:
        frames = [f for _, f in zip(range(args.frames), container.decode(video=0))]
    pix_fmt = args.pix_fmt or ("yuv420p" if args.depth == 8 else "yuv420p10le")
    deep = av.VideoFormat(pix_fmt).components[0].bits > 8
    range_ = RANGE_JPEG if args.full_range else RANGE_MPEG
    sources = []
    for frame in frames:  # the source's own matrix tag, or BT.601 where it has none
        matrix = SWS_MATRIX.get(int(frame.colorspace), SWS_BT601)  # also its AVColorSpace value
        source = VideoReformatter().reformat(
            frame, format=pix_fmt, src_colorspace=matrix, dst_colorspace=matrix, src_color_range=RANGE_MPEG,
            dst_color_range=range_, interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND, threads=1)
        source.colorspace, source.color_range = matrix, range_
        sources.append(source)
    first = sources[0]
    print(f"{args.video.name}: {first.width}x{first.height} {pix_fmt} "
          f"{'full' if args.full_range else 'limited'} range, {len(sources)} frames")
    reader, rgbs, reads = VideoReformatter(), [], []
    for source in sources:
        start = time.perf_counter()
        rgbs.append(frame_to_array(source, deep, reader))
        reads.append(time.perf_counter() - start)
    print(f"  read to RGB (io.decode) {1000 * np.median(reads):.1f} ms/frame")
    rgb_format = "rgb48le" if deep else "rgb24"

    def swscale(reformatter: VideoReformatter, rgb: av.VideoFrame, matrix: int) -> av.VideoFrame:
        return reformatter.reformat(rgb, format=pix_fmt, src_colorspace=matrix, dst_colorspace=matrix,
                                    src_color_range=RANGE_JPEG, dst_color_range=range_, threads=1)

    paths: list[tuple[str, Callable[[VideoReformatter, av.VideoFrame, int], av.VideoFrame]]] = [
        ("swscale alone", swscale)]
    wide = wide_format(pix_fmt)
    if args.full_range and wide is not None:
        paths.append(("io.full_range", lambda r, rgb, m: to_full_range(r, rgb, pix_fmt, wide, m)))
    try:  # the writer's limited-range path for 16-bit RGB (not in checkouts before it)
        from clrface_video.io.full_range import ready_deep_rgb
    except ImportError:
        ready_deep_rgb = None
    if deep and not args.full_range and ready_deep_rgb is not None:
        bits = av.VideoFormat(pix_fmt).components[0].bits

        def writer(reformatter: VideoReformatter, rgb: av.VideoFrame, matrix: int) -> av.VideoFrame:
            ready_deep_rgb(rgb, bits)
            return swscale(reformatter, rgb, matrix)

        paths.append(("writer (limited)", writer))
    for label, convert in paths:
        reformatter, shifts, seconds = VideoReformatter(), [], []
        for source, rgb in zip(sources, rgbs, strict=True):
            start = time.perf_counter()
            back = convert(reformatter, av.VideoFrame.from_ndarray(rgb, format=rgb_format), int(source.colorspace))
            seconds.append(time.perf_counter() - start)
            shifts.append([float((b - a).mean()) for a, b in zip(planes(source), planes(back), strict=True)])
        y, cb, cr = np.mean(shifts, axis=0)
        print(f"  {label:16s} Y {y:+.3f}  Cb {cb:+.3f}  Cr {cr:+.3f}  to YUV {1000 * np.median(seconds):.1f} "
              f"ms/frame")


if __name__ == "__main__":
    main()
