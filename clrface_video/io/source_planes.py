"""A decoded frame's own YUV samples, kept so that the pixels a restore leaves alone are written back as decoded.

Why: every frame went YUV -> RGB -> paste -> YUV, and the trip back rounds: a clip with no face at all came out of
FFV1 with 7.4% of its Cb and 12.9% of its Cr samples moved (by up to 2), and a 10-bit ProRes 4:2:2 source by up to
19/1023 outside its faces (docs/results.md). Where the output is written in the source's pixel format, size,
matrix and range, the writer now takes the source's samples everywhere but the boxes the paste changed
(kept_frame).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import av
import numpy as np

from clrface_video.types import Box, SourcePlanes

MARGIN = 8  # pixels round a changed box converted with it: swscale's 4:2:0 chroma reads a row past a region's
# edge (tests/test_source_planes.py -k box fails with none), so a changed pixel's chroma needs room round it


def keep_planes(frame: av.VideoFrame, matrix: int, full_range: bool) -> SourcePlanes | None:
    """The frame's planes, read to RGB with swscale's `matrix` and range, for a planar little-endian YUV frame; None
    for others (RGB, grey, NV12), which the writer converts as before."""
    name = frame.format.name
    if not name.startswith("yuv") or not frame.format.is_planar or frame.format.is_big_endian:
        return None
    return SourcePlanes(name.replace("yuvj", "yuv"), frame.width, frame.height, matrix, full_range,
                        tuple(_samples(frame, i) for i in range(len(frame.planes))))


def _sample_bytes(fmt: av.VideoFormat) -> int:
    return 2 if any(component.bits > 8 for component in fmt.components) else 1


def _samples(frame: av.VideoFrame, index: int) -> np.ndarray:
    """Plane `index`'s samples as (rows, bytes a row) uint8, a copy without the row padding."""
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, :plane.width * _sample_bytes(frame.format)].copy()


def regions(boxes: Sequence[Box], pix_fmt: str, width: int, height: int, margin: int = MARGIN) -> list[Box]:
    """The boxes grown by `margin`, out to the chroma subsampling's grid (a chroma sample is converted whole,
    from all the pixels it covers), within the frame; boxes that then overlap are joined into their bounding box,
    so that no box's edge, where swscale's chroma filter reads only its side, falls on another's changed pixels."""
    fmt = av.VideoFormat(pix_fmt)
    step_x, step_y = -(-width // fmt.chroma_width(width)), -(-height // fmt.chroma_height(height))
    grown = [(max(0, (x0 - margin) // step_x * step_x), max(0, (y0 - margin) // step_y * step_y),
              min(width, -(-(x1 + margin) // step_x) * step_x), min(height, -(-(y1 + margin) // step_y) * step_y))
             for x0, y0, x1, y1 in boxes]
    joined: list[Box] = []
    while grown:
        box = grown.pop()
        other = next((i for i, seen in enumerate(joined) if _overlap(box, seen)), None)
        if other is None:
            joined.append(box)
        else:  # the union may now meet others: look again
            seen = joined.pop(other)
            grown.append((min(box[0], seen[0]), min(box[1], seen[1]), max(box[2], seen[2]), max(box[3], seen[3])))
    return joined


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def kept_frame(source: SourcePlanes, boxes: Sequence[Box], pix_fmt: str,
               convert: Callable[[Box], av.VideoFrame]) -> av.VideoFrame:
    """A `pix_fmt` frame (the source's, or its yuvj name) of the source's samples, each region of `boxes`
    (regions) taken from convert(region): the restored RGB of that region in that format. No boxes: the frame
    exactly as decoded."""
    frame = av.VideoFrame(source.width, source.height, pix_fmt)
    fmt = frame.format
    size = _sample_bytes(fmt)
    step_x = -(-source.width // fmt.chroma_width(source.width))
    step_y = -(-source.height // fmt.chroma_height(source.height))
    targets = []
    for plane, samples in zip(frame.planes, source.planes):
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :samples.shape[1]]
        rows[:] = samples
        targets.append(rows)
    for box in regions(boxes, source.pix_fmt, source.width, source.height):
        part = convert(box)
        for index, (target, plane) in enumerate(zip(targets, part.planes)):
            chroma = index in (1, 2)  # Y and alpha are at full size
            x0, y0 = (box[0] // step_x, box[1] // step_y) if chroma else box[:2]
            converted = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            target[y0:y0 + plane.height, x0 * size:(x0 + plane.width) * size] = converted[:, :plane.width * size]
    return frame
