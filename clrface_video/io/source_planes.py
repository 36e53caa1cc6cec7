"""A decoded frame's own YUV samples, kept so that the pixels a restore leaves alone are written back as decoded.

Why: every frame went YUV -> RGB -> paste -> YUV, and the trip back rounds: a clip with no face at all came out of
FFV1 with 7.4% of its Cb and 12.9% of its Cr samples moved (by up to 2), and a 10-bit ProRes 4:2:2 source by up to
19/1023 outside its faces (docs/results.md). Where the output is written in the source's pixel format, size,
matrix and range, the writer now takes the source's samples everywhere but the pixels the paste changed
(kept_frame): inside a face's box, its corners round the oval mask and its margin are as decoded too.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import av
import numpy as np

from clrface_video.types import Box, Change, SourcePlanes

MARGIN = 8  # pixels round a changed box converted with it: swscale's chroma reads past the pixels a sample covers
# (a row for 4:2:0, 2 columns for 4:1:1: benchmarks/chroma_reach.py; tests/test_source_planes.py -k whole fails with
# no margin), so a changed pixel's chroma needs room round it



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


def _chroma_steps(fmt: av.VideoFormat, width: int, height: int) -> tuple[int, int]:
    """The pixels across and down that one chroma sample of `fmt` covers at this size (2, 2 for 4:2:0)."""
    return -(-width // fmt.chroma_width(width)), -(-height // fmt.chroma_height(height))


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
    step_x, step_y = _chroma_steps(fmt, width, height)
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


def kept_frame(source: SourcePlanes, changes: Sequence[Change], pix_fmt: str,
               convert: Callable[[Box], av.VideoFrame]) -> av.VideoFrame:
    """A `pix_fmt` frame (the source's, or its yuvj name) of the source's samples but those whose pixels the paste
    changed: in each region of the changes' boxes (regions), convert(region), the restored RGB of that region in
    that format, gives the luma of the changed pixels and the chroma samples that cover one (a sample whose pixels
    the paste left alone keeps the source's, though the filter also reads a row or two round them). No changes: the
    frame exactly as decoded."""
    frame = av.VideoFrame(source.width, source.height, pix_fmt)
    fmt = frame.format
    size = _sample_bytes(fmt)
    step_x, step_y = _chroma_steps(fmt, source.width, source.height)
    targets = []
    for plane, samples in zip(frame.planes, source.planes):
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :samples.shape[1]]
        rows[:] = samples
        targets.append(rows)
    for box in regions([change.box for change in changes], source.pix_fmt, source.width, source.height):
        changed = _changed_pixels(box, changes)
        part = convert(box)
        for index, (target, plane) in enumerate(zip(targets, part.planes)):
            steps = (step_x, step_y) if index in (1, 2) else (1, 1)  # Y and alpha are at full size
            x0, y0 = box[0] // steps[0], box[1] // steps[1]
            converted = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width * size]
            where = _changed_samples(changed, *steps)
            np.copyto(target[y0:y0 + plane.height, x0 * size:(x0 + plane.width) * size], converted,
                      where=where if size == 1 else np.repeat(where, size, axis=1))  # each byte of a sample
    return frame


def _changed_pixels(region: Box, changes: Sequence[Change]) -> np.ndarray:
    """(rows, columns) bool of `region`: the changed pixels of the changes whose boxes lie in it."""
    x0, y0, x1, y1 = region
    changed = np.zeros((y1 - y0, x1 - x0), bool)
    for change in changes:
        bx0, by0, bx1, by1 = change.box
        if x0 <= bx0 and bx1 <= x1 and y0 <= by0 and by1 <= y1:
            part = changed[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
            np.logical_or(part, change.pixels, out=part)
    return changed


def _changed_samples(changed: np.ndarray, step_x: int, step_y: int) -> np.ndarray:
    """Per sample of a plane subsampled (step_x, step_y) times, whether a pixel it covers is `changed` (or-ed over
    strided views: numpy's any over a reshaped block's axes took 40x as long)."""
    if step_x == step_y == 1:
        return changed
    rows, columns = -(-changed.shape[0] // step_y), -(-changed.shape[1] // step_x)
    padded = np.zeros((rows * step_y, columns * step_x), bool)
    padded[:changed.shape[0], :changed.shape[1]] = changed
    samples = padded[::step_y, ::step_x].copy()
    for dy in range(step_y):
        for dx in range(step_x):
            samples |= padded[dy::step_y, dx::step_x]
    return samples
