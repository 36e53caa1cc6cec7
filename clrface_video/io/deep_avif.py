"""10-bit AVIF photos through PyAV (FFmpeg's dav1d decoder, SVT-AV1 or libaom encoder), where Pillow's AVIF plugin
reads and writes 8 bits: read at 16 bits, written back in 10 with the photo's metadata (io.avif_meta)."""
from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from clrface_video.io.avif_meta import with_metadata
from clrface_video.io.decode import (
    RANGE_JPEG,
    RANGE_MPEG,
    SWS_MATRIX,
    SWS_THREADS,
    UNSPECIFIED,
    frame_to_array,
)
from clrface_video.io.full_range import ready_deep_rgb, to_full_range, wide_format
from clrface_video.io.output_stream import quiet_svt
from clrface_video.io.pixels import to_uint8
from clrface_video.io.scheduling import scheduled_as_before

AV1_ENCODERS = ("libsvtav1", "libaom-av1")  # FFmpeg's AV1 encoders of 10-bit stills, the first there is used
AVIF_DEEP = 10  # the depth a deep AVIF is written in: AV1's main profile, which SVT-AV1 codes, holds 8 or 10
# why a 12- or 16-bit picture goes into an AVIF at AVIF_DEEP, said with the loss: no AVIF writer here codes 12 (SVT-AV1
# codes the main profile only; Pillow's AVIF writer, through libavif and libaom, takes 8-bit pictures; pillow-heif
# has no AV1 encoder), and the main profile is what phones' and browsers' AV1 decoders are built for
AVIF_DEEP_WHY = "AV1's main profile, 10 bits at most, which SVT-AV1 codes and every AV1 decoder reads"
PIX_FMT = "yuv420p10le"  # 4:2:0, as phones and cameras write an AVIF, and all SVT-AV1 codes (no 4:4:4, no grey)
# the encoder's constant quality: as close to the photo as Pillow's AVIF quality 90 (LOSSY_QUALITY) or closer, on
# each photo tried (benchmarks/avif_quality.py), where a higher crf fell behind it on some
CRF = "7"
BT601 = 6  # H.273's BT.601 matrix, libavif's where a file names none; the matrix of a source with an ICC profile
SWS_TAGGED = frozenset({1, 4, 5, 6, 7, 9})  # the matrices swscale converts as tagged (SWS_MATRIX maps 10 to 9)
MATCH = 1.0  # the most, in 8-bit codes on average, that the deep reading may differ from Pillow's


@cache
def av1_encoder() -> str | None:
    """The AV1 encoder a deep AVIF is written with (AV1_ENCODERS), or None where this FFmpeg has none: the photo is
    then read and written at 8 bits, as Pillow's AVIF plugin does, said in its warning."""
    return next((name for name in AV1_ENCODERS if name in av.codecs_available), None)


def read_deep_avif(path: Path, shown: np.ndarray) -> np.ndarray | None:
    """A 10- or 12-bit AVIF's picture, colour or grey (in three equal channels), at full-scale 16 bits, decoded by FFmpeg (io.decode.frame_to_array:
    its matrix and range), where an AV1 encoder is there to write it back so and it shows what Pillow's 8-bit
    reading, `shown`, does; None otherwise (a rotation or mirror, irot or imir, that only one of them applies, a
    file FFmpeg cannot read): it is read at 8 bits, as before."""
    if av1_encoder() is None:
        return None
    try:
        with av.open(str(path)) as container:
            deep = frame_to_array(next(container.decode(video=0)), high_depth=True)
    except (av.FFmpegError, StopIteration, ValueError, IndexError):
        return None
    if deep.shape != shown.shape or np.abs(to_uint8(deep).astype(np.int16) - shown).mean() > MATCH:
        return None
    return deep


def avif_bytes(rgb: np.ndarray, nclx: tuple[int, int, int, int] | None, exif: bytes | None, xmp: bytes | None,
               icc: bytes | None) -> bytes:
    """A 16-bit RGB picture as a 10-bit AVIF: coded in the source's matrix and range and tagged with its colour
    description (`nclx`; without one, BT.601 full range, libavif's default), its EXIF, XMP and ICC profile kept
    (io.avif_meta). RGB to YUV as the video writer does it (io.full_range: swscale's gain undone, full-range
    chroma rounded)."""
    primaries, transfer, matrix, full = nclx or (UNSPECIFIED, UNSPECIFIED, BT601, 1)
    matrix = matrix if matrix in SWS_TAGGED else BT601
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb48le")
    reformatter, sws = VideoReformatter(), SWS_MATRIX[matrix]
    if full:
        yuv = to_full_range(reformatter, frame, PIX_FMT, wide_format(PIX_FMT) or PIX_FMT, sws)
    else:
        ready_deep_rgb(frame, AVIF_DEEP)
        yuv = reformatter.reformat(frame, format=PIX_FMT, src_colorspace=sws, dst_colorspace=sws,
                                   src_color_range=RANGE_JPEG, dst_color_range=RANGE_MPEG, threads=SWS_THREADS)
    buffer = io.BytesIO()
    quiet_svt()
    with scheduled_as_before(), av.open(buffer, "w", format="avif") as out:  # SVT-AV1 makes the thread real-time
        stream = out.add_stream(av1_encoder(), rate=1, options={"crf": CRF})
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], PIX_FMT
        context = stream.codec_context
        context.color_primaries, context.color_trc, context.colorspace = primaries, transfer, matrix
        context.color_range = RANGE_JPEG if full else RANGE_MPEG
        yuv.color_primaries, yuv.color_trc, yuv.colorspace, yuv.color_range = (primaries, transfer, matrix,
                                                                               context.color_range)
        for packet in [*stream.encode(yuv), *stream.encode()]:
            out.mux(packet)
    return with_metadata(buffer.getvalue(), exif, xmp, icc)
