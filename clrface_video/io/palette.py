"""GIF frames: each RGB frame gets its own 256-colour palette (FFmpeg's palettegen + paletteuse), streamed."""
from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import av

GIF_SUFFIX = ".gif"


def is_gif(path: object) -> bool:
    """Whether an output path is a GIF (the gif muxer takes only the gif encoder's palette frames)."""
    return str(path).lower().endswith(GIF_SUFFIX)


class PaletteFilter:
    """rgb24 frames in, pal8 frames out, one palette per frame, so a frame never waits for the rest of the video.

        palette = PaletteFilter(width, height, time_base)
        for rgb in frames:
            for pal8 in palette.push(rgb): encode(pal8)
        for pal8 in palette.flush(): encode(pal8)
    """

    def __init__(self, width: int, height: int, time_base: Fraction) -> None:
        self._graph = av.filter.Graph()
        source = self._graph.add_buffer(width=width, height=height, format="rgb24", time_base=time_base)
        split = self._graph.add("split")
        palette = self._graph.add("palettegen", "stats_mode=single")  # a palette from this frame alone
        use = self._graph.add("paletteuse", "new=1")  # ... and each frame's own palette applied to it
        sink = self._graph.add("buffersink")
        source.link_to(split)
        split.link_to(palette, 0, 0)
        split.link_to(use, 1, 0)
        palette.link_to(use, 0, 1)
        use.link_to(sink)
        self._graph.configure()

    def push(self, frame: av.VideoFrame) -> Iterator[av.VideoFrame]:
        """The pal8 frames ready after `frame` (rgb24, with pts and time_base set)."""
        self._graph.push(frame)
        return self._ready()

    def flush(self) -> Iterator[av.VideoFrame]:
        """The frames still inside the filters, at the end of the stream."""
        self._graph.push(None)
        return self._ready()

    def _ready(self) -> Iterator[av.VideoFrame]:
        while True:
            try:
                yield self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
