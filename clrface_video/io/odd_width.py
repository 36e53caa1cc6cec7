"""A frame of odd width whose chroma is halved in height (4:2:0, 4:4:0, 4:1:0) made one column wider for swscale."""
from __future__ import annotations

from math import ceil

import av
import numpy as np


def needs_even_width(frame: av.VideoFrame) -> bool:
    """Whether swscale misreads `frame` as 16-bit RGB (rgb48, rgba64): an odd width with its chroma halved in
    height. Measured with FFmpeg 8: a 10-bit 4:2:0 frame 637 wide came out 63 grey levels off on average, its rows
    after the first scrambled (8-bit 4:2:0, NV12 and P010 alike), where 4:2:2, 4:4:4 and even widths read right;
    so a 10-bit AVIF of odd size came back 8-bit, and an odd-width 10-bit video came back scrambled, unsaid."""
    chroma = [component for component in frame.format.components if component.is_chroma]
    return frame.width % 2 == 1 and bool(chroma) and chroma[0].height < frame.height


def even_width(frame: av.VideoFrame) -> av.VideoFrame:
    """`frame` one column wider, its colour tags kept: each full-width plane's (luma's, alpha's) last column
    repeated; the chroma planes, ceil(width / 2) wide for either width, as they were. Its first `frame.width`
    columns read as 16-bit RGB are the frame's own."""
    wider = av.VideoFrame(frame.width + 1, frame.height, frame.format.name)
    for number, (plane, old) in enumerate(zip(wider.planes, frame.planes, strict=True)):
        pixel = sum(ceil(component.bits / 8) for component in frame.format.components if component.plane == number)
        used = old.width * pixel
        rows = np.frombuffer(old, np.uint8).reshape(old.height, -1)
        new = np.zeros((plane.height, plane.line_size), np.uint8)
        new[:, :used] = rows[:, :used]
        if plane.width > old.width:
            new[:, used:used + pixel] = rows[:, used - pixel:used]
        plane.update(new.tobytes())
    wider.colorspace, wider.color_range = frame.colorspace, frame.color_range
    wider.color_primaries, wider.color_trc = frame.color_primaries, frame.color_trc
    return wider
