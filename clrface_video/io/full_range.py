"""RGB to YUV where swscale is off: 16-bit RGB readied for either range, full range with the chroma rounded."""
from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from clrface_video.io.decode import RANGE_JPEG, SWS_THREADS

DEEP = 16
CHROMA_PLANES = (1, 2)  # Cb and Cr; plane 0 is luma and plane 3 alpha, both scaled 0..max
ALPHA_PLANE = 3
DEEP_RGB = frozenset({"rgb48le", "rgba64le"})  # the writer's 16-bit RGB(A) frames


def wide_format(pix_fmt: str) -> str | None:
    """The 16-bit planar YUV format with `pix_fmt`'s planes and subsampling (yuv420p -> yuv420p16le, yuvj422p ->
    yuv422p16le, yuva444p10le -> yuva444p16le), or its 4:4:4 one where FFmpeg has no 16-bit twin (yuv411p,
    yuv410p, yuv440p10le -> yuv444p16le: to_full_range averages the chroma down); None where `pix_fmt` is not
    planar YUV below 16 bits."""
    fmt = av.VideoFormat(pix_fmt)
    if not pix_fmt.startswith("yuv") or fmt.is_bit_stream or fmt.components[0].bits >= DEEP:
        return None
    family = pix_fmt.replace("yuvj", "yuv").split("p", 1)[0]  # yuv420, yuva444, ...
    try:
        wide = f"{family}p16le"
        av.VideoFormat(wide)
    except ValueError:
        wide = f"{family[:-3]}444p16le"  # yuv444p16le or yuva444p16le
    return wide


def to_full_range(reformatter: VideoReformatter, rgb: av.VideoFrame, pix_fmt: str, wide: str,
                  matrix: int) -> av.VideoFrame:
    """`rgb` as a full-range `pix_fmt` frame by way of `wide`, its wide_format (not None), chroma unbiased.
    A 16-bit `rgb` frame is changed in place (ready_deep_rgb).

    Why: swscale's RGB to full-range 8-bit or 10-bit YUV truncates chroma instead of rounding it, with any flags
    (RGB 139,152,171 gives Cb 139 and Cr 119 where BT.601 says 139.69 and 119.96; 10-bit neutral grey gives 511),
    so every restored full-range video came out about half a code value low in Cb and Cr, a green cast that grew
    with each run (benchmarks/rgb_to_yuv.py). At 16 bits its values are right; they are rounded to the output depth
    here by the full-range definition, scale 2^n - 1 about the chroma centre 2^(n-1). Where the output's
    subsampling has no 16-bit format (4:1:1, 4:1:0, 4:4:0), each output chroma sample is the mean of the 4:4:4
    samples it covers, rounded the same way. A 16-bit frame's alpha, put on the output depth's grid by
    ready_deep_rgb, is cut as swscale cuts it, round(v / 2^(16 - n)), which keeps it exactly."""
    fmt = av.VideoFormat(pix_fmt)
    top = (1 << fmt.components[0].bits) - 1
    deep_rgb = rgb.format.name in DEEP_RGB
    if deep_rgb:
        ready_deep_rgb(rgb, fmt.components[0].bits)
    deep = reformatter.reformat(rgb, format=wide, src_colorspace=matrix, dst_colorspace=matrix,
                                src_color_range=RANGE_JPEG, dst_color_range=RANGE_JPEG, threads=SWS_THREADS)
    out = av.VideoFrame(rgb.width, rgb.height, pix_fmt)
    dtype = np.uint8 if top < 256 else np.dtype("<u2")
    block = (64 // fmt.chroma_height(64), 64 // fmt.chroma_width(64))  # the output's chroma subsampling
    for index, (source, target) in enumerate(zip(deep.planes, out.planes, strict=True)):
        samples = np.frombuffer(source, "<u2").reshape(source.height, -1)[:, :source.width]
        if index == ALPHA_PLANE and deep_rgb:
            shift = DEEP - top.bit_length()
            samples = np.minimum((samples.astype(np.uint32) + (1 << shift >> 1)) >> shift, top)
            np.frombuffer(target, dtype).reshape(target.height, -1)[:, :target.width] = samples
            continue
        if (source.height, source.width) == (target.height, target.width):
            count, samples = 1, samples.astype(np.uint32)
        else:  # 4:4:4 chroma of an output without a 16-bit format
            count, samples = _block_sums(samples, block, target.height, target.width)
        # round(v * top / 65535), and for chroma round(2^(n-1) + (v - 32768) * top / 65535), in integers, in
        # place, v being the mean of `count` samples
        offset = (1 << (DEEP - 1)) - 1
        if index in CHROMA_PLANES:
            offset += ((top + 1) // 2) * 65535 - (1 << (DEEP - 1)) * top
        samples *= top
        samples += offset * count
        samples //= 65535 * count
        np.frombuffer(target, dtype).reshape(target.height, -1)[:, :target.width] = samples
    return out


def ready_deep_rgb(rgb: av.VideoFrame, bits: int) -> None:
    """Ready a 16-bit RGB(A) frame, in place, for swscale's conversion to `bits`-bit YUV of either range: its
    colour samples scaled by 255/256 (rounded), its alpha rounded to `bits` bits and shifted back up.

    Why: swscale's rgb48 to YUV multiplies by 256/255 in any range (rgb48 grey 32896 gives 16-bit luma 33024,
    and everything above 65280 clips to 65535; 65535 gave limited 10-bit luma 943), so 10-bit output came out
    0.4% bright; its rgb24 input is scaled right. round(x * 255 / 256) = x - round(x / 256), in 16 bits, on the
    whole plane (strided over the colours alone it took 8x as long), alpha put back after. Alpha swscale cuts by
    round(v / 2^(16 - n)), the inverse of its reading by x2^(16 - n), not of full scale (io.decode reads alpha to
    full scale: 10-bit 512 is 32800, which it cut to 513); on the grid round(v * (2^n - 1) / 65535) x 2^(16 - n)
    that cut is exact. That rounding is taken as (v - (v >> n) + 2^(15 - n)) >> (16 - n), in 16 bits, which
    gives back every n-bit alpha (9-14 bits) that io.decode read."""
    channels = 4 if rgb.format.name == "rgba64le" else 3
    plane = rgb.planes[0]
    samples = np.frombuffer(plane, "<u2").reshape(rgb.height, -1)[:, :rgb.width * channels]
    alpha = samples[:, 3::4].copy() if channels == 4 else None
    rounded = samples >> 7
    rounded += 1
    rounded >>= 1
    samples -= rounded
    if alpha is None:
        return
    if bits < DEEP:
        shift = DEEP - bits
        alpha -= alpha >> bits
        alpha += 1 << (shift - 1)
        alpha >>= shift
        alpha <<= shift
    samples[:, 3::4] = alpha


def _block_sums(samples: np.ndarray, block: tuple[int, int], height: int, width: int) -> tuple[int, np.ndarray]:
    """(k, sums): the sums, as uint32, of the `block` (rows, columns) of k samples that each of `height` x `width`
    output samples covers, the last row and column repeated where the picture's size is not a multiple of it.
    uint32 holds what to_full_range makes of them: k * 65535 * (2^n - 1) stays below 2^32 for every subsampled
    format without a 16-bit twin (4:1:0 at 8 bits: k = 16; 4:4:0 at 12 bits: k = 2)."""
    fy, fx = block
    padded = np.pad(samples, ((0, height * fy - samples.shape[0]), (0, width * fx - samples.shape[1])), mode="edge")
    sums = np.zeros((height, width), np.uint32)
    for row in range(fy):
        for column in range(fx):
            sums += padded[row::fy, column::fx]
    return fy * fx, sums
