"""A decoded frame's side data: its display matrix (rotation, mirroring) and HDR10 mastering metadata."""
from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np


@dataclass(frozen=True)
class Hdr10:
    """HDR10 static metadata in x265's notation (x264's too): master_display "G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)"
    (chromaticity in 0.00002, luminance in 0.0001 cd/m2), max_cll "MaxCLL,MaxFALL" (cd/m2); either may be None."""

    master_display: str | None
    max_cll: str | None


def frame_side_data(frame: av.VideoFrame) -> dict[str, bytes]:
    """The frame's side data by type name; {} when PyAV has no name for one of its types (a JPEG's EXIF)."""
    try:
        return {data.type.name: bytes(data) for data in frame.side_data}
    except ValueError:
        return {}


def display_matrix(side_data: dict[str, bytes]) -> tuple[int, ...] | None:
    """The 3x3 display matrix (rotation, mirroring) as its nine 32-bit integers, when the frame has one."""
    matrix = side_data.get("DISPLAYMATRIX")
    return tuple(int(v) for v in np.frombuffer(matrix, dtype="<i4")) if matrix and len(matrix) == 36 else None


def hdr10(side_data: dict[str, bytes]) -> Hdr10 | None:
    """AVMasteringDisplayMetadata (10 rationals r, g, b, white point xy, min and max luminance; two flags) and
    AVContentLightMetadata (MaxCLL, MaxFALL), as x265 writes them."""
    master, light = side_data.get("MASTERING_DISPLAY_METADATA"), side_data.get("CONTENT_LIGHT_LEVEL")
    display = None
    if master is not None and len(master) >= 88:
        values = np.frombuffer(master[:80], dtype="<i4").reshape(10, 2).astype(np.float64)
        has_primaries, has_luminance = np.frombuffer(master[80:88], dtype="<i4")
        if has_primaries and has_luminance and (values[:, 1] != 0).all():
            ratio = values[:, 0] / values[:, 1]
            xy = [round(v * 50_000) for v in ratio[:8]]  # r, g, b, white point
            lum = [round(v * 10_000) for v in ratio[8:]]  # min, max
            display = (f"G({xy[2]},{xy[3]})B({xy[4]},{xy[5]})R({xy[0]},{xy[1]})WP({xy[6]},{xy[7]})"
                       f"L({lum[1]},{lum[0]})")
    cll = None
    if light is not None and len(light) >= 8:
        max_cll, max_fall = np.frombuffer(light[:8], dtype="<u4")
        cll = f"{max_cll},{max_fall}"
    return Hdr10(display, cll) if display or cll else None
