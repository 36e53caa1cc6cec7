"""Deinterlace decoded frames with FFmpeg's bwdif filter: one progressive frame per frame, the source's timestamps."""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import av


def bwdif_deint(mode: str, interlaced: bool) -> str | None:
    """bwdif's `deint` for a source under --deinterlace `mode`, or None to leave the frames alone.

    auto on a source whose first frame is flagged interlaced: the flagged frames only ("interlaced"),
    so a progressive stretch later in the file passes through; on: every frame ("all"), for captures
    whose flags were lost; off, or auto on a progressive source: None.
    """
    if mode not in ("auto", "on", "off"):  # config.DEINTERLACE, checked there for users
        raise ValueError(f"deinterlace mode must be auto, on or off, got {mode!r}")
    if mode == "on":
        return "all"
    return "interlaced" if mode == "auto" and interlaced else None


def deinterlaced(frames: Iterable[av.VideoFrame], stream: av.video.stream.VideoStream,
                 deint: str | None) -> Iterator[av.VideoFrame]:
    """`frames` (decoded from `stream`) through bwdif in send_frame mode, in order, one out per one in.

    bwdif reads a frame's neighbours, so output lags input by a frame and the last come out on flush.
    It also halves the time base; each output frame is given its input frame's pts, duration and time
    base back.
    With deint None the frames are passed through as they are.
    """
    if deint is None:
        yield from frames
        return
    graph = av.filter.Graph()
    source = graph.add_buffer(template=stream)
    bwdif = graph.add("bwdif", f"mode=send_frame:parity=auto:deint={deint}")
    sink = graph.add("buffersink")
    source.link_to(bwdif)
    bwdif.link_to(sink)
    graph.configure()
    stamps: deque[tuple[int | None, int, object]] = deque()  # (pts, duration, time_base) of frames sent

    def ready() -> Iterator[av.VideoFrame]:
        while True:
            try:
                frame = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            frame.pts, frame.duration, frame.time_base = stamps.popleft()
            yield frame

    for frame in frames:
        stamps.append((frame.pts, frame.duration, frame.time_base))
        graph.push(frame)
        yield from ready()
    graph.push(None)
    yield from ready()
