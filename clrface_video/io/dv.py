"""DV's fixed formats: the pixel format and frame rate the dvvideo encoder codes a frame size in, asked of the codec."""
from __future__ import annotations

from fractions import Fraction

import av

from clrface_video.errors import ClrfaceError, option_name

DV_CODEC = "dvvideo"
# DV25 PAL, DV25 NTSC (and DVCPRO25 PAL), DV50 and DVCPRO HD: the consumer tape's chroma first
DV_CHROMAS = ("yuv420p", "yuv411p", "yuv422p")
RATE_TOLERANCE = Fraction(1, 10_000)  # 29.97 read back from a millisecond clock is DV's 30000/1001; 30 is not


def dv_rate(width: int, height: int, pix_fmt: str, fps: Fraction | None = None) -> Fraction | None:
    """The frame rate of the DV system the encoder codes such frames in (25, 30000/1001, 50, 60000/1001), as its
    decoder reads it back from one blank frame; None when no DV system takes them. `fps` picks between two
    systems of one size (960x720 at 50 or 59.94)."""
    encoder = av.CodecContext.create(DV_CODEC, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, pix_fmt
    encoder.time_base = 1 / (fps or Fraction(25))  # the rate only picks the nearest of a size's systems
    try:
        encoder.open()
    except (av.error.FFmpegError, ValueError):
        return None
    blank = av.VideoFrame(width, height, pix_fmt)
    for plane in blank.planes:
        plane.update(bytes(plane.buffer_size))
    decoder = av.CodecContext.create(DV_CODEC, "r")
    for packet in [*encoder.encode(blank), *encoder.encode(None)]:
        decoder.decode(packet)
    return Fraction(decoder.framerate) if decoder.framerate else None


def _same_rate(rate: Fraction, fps: Fraction | None) -> bool:
    return fps is not None and abs(rate - fps) <= rate * RATE_TOLERANCE


def dv_pix_fmt(width: int, height: int, fps: Fraction | None, source: str = "") -> str:
    """The pixel format to code frames of this size and rate as DV: the `source` format when a DV system at the
    same rate takes it (yuv411p stays yuv411p), else 4:2:0, 4:1:1 or 4:2:2, the first one the encoder takes.

    Raises ClrfaceError, before anything is written, when no DV system holds frames of this size, or none at
    this rate (a .dv file plays at its system's rate: the frames would be retimed)."""
    supported = {f.name for f in av.Codec(DV_CODEC, "w").video_formats or []}
    rates: dict[Fraction, str] = {}  # the DV systems that take these frames, at other rates
    for pix_fmt in dict.fromkeys([source, *DV_CHROMAS]):
        if pix_fmt in supported and (rate := dv_rate(width, height, pix_fmt, fps)) is not None:
            if _same_rate(rate, fps):
                return pix_fmt
            rates[rate] = pix_fmt
    if not rates:
        raise ClrfaceError(f"DV holds its standard frame sizes only (720x576 PAL, 720x480 NTSC), not {width}x{height}; "
                           f"write .mkv, .mov or .mp4 with the default {option_name('codec')} instead")
    shown = " or ".join(f"{float(rate):.4g}" for rate in rates)
    source_rate = f"{float(fps):.4g} fps" if fps else "unknown rate"
    raise ClrfaceError(f"DV plays {width}x{height} frames at {shown} fps, not at this source's {source_rate} "
                       f"(its frames would be retimed); write .mkv, .mov or .mp4 with the default {option_name('codec')} "
                       "instead")
