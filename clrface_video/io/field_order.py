"""A decoded frame's own field order (top or bottom first), which PyAV does not give, read through FFmpeg's filters."""
from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

import av

TOP_FIRST, BOTTOM_FIRST = 2, 3  # AVFieldOrder's AV_FIELD_TT and AV_FIELD_BB
MARKS = ((0, "white"), (1, "black"))  # the frame's first row drawn white, its second black


def frame_field_order(frame: av.VideoFrame) -> int:
    """TOP_FIRST or BOTTOM_FIRST by an interlaced frame's own flag, 0 for a progressive frame or where the filters
    cannot tell. PyAV 18 gives a frame's interlaced flag but not its top-field-first one; FFmpeg's separatefields
    filter hands on the first field first by that flag, so with the first row marked white and the second black
    (on the filters' copy, the frame unchanged), the first field's first row says which field it is.

    Why: an interlaced FFV1 in Matroska whose stream states no field order (each frame's slices carry it) was
    written progressive with --deinterlace off, its fields kept but flagged lost."""
    if not frame.interlaced_frame:
        return 0
    graph = av.filter.Graph()
    chain = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                              time_base=frame.time_base or Fraction(1, 25))]
    chain += [graph.add("drawbox", f"x=0:y={row}:w=iw:h=1:color={colour}:t=fill") for row, colour in MARKS]
    chain += [graph.add("separatefields"), graph.add("buffersink")]
    for before, after in pairwise(chain):
        before.link_to(after)
    try:
        graph.configure()
        graph.push(frame)
        first = graph.pull()
    except (av.error.FFmpegError, ValueError):  # a format the filters take no frame of
        return 0
    return TOP_FIRST if first.reformat(format="gray").to_ndarray()[0].mean() > 127 else BOTTOM_FIRST
