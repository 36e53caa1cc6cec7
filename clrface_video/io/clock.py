"""Decoded frames with their presentation times, where a demuxer gives none, gives them late or out of order,
and how long each is shown."""
from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePath

import av

from clrface_video.io.damage import MAX_DAMAGED, REFUSED, Damage, Losses
from clrface_video.io.matroska_blocks import MATROSKA_FORMATS, BlockWalk
from clrface_video.io.sequence import unreadable_frame

# AVI stores no pts, only the chunk count (each packet's dts); FFmpeg guesses an H.264 frame's pts from it one
# frame late, so a frame takes the next dts in display order instead.
DTS_CLOCK_FORMATS = frozenset({"avi"})
# MXF can hand over long-GOP H.264 packets with their decode-order count as pts, which the decoder then puts in
# display order (0, 3, 2, 4, 1, ...): a frame takes the smallest pts not yet given out.
SORTED_CLOCK_FORMATS = frozenset({"mxf"})
# MPEG-PS, where FFmpeg's H.264 parser can give one pack's stamp to two frames (_own_stamps)
SHARED_STAMP_FORMATS = frozenset({"mpeg"})
# MPEG-1/2 video, whose frames each last a frame period or longer (a repeated field), never shorter: in MPEG-PS it is
# read with the packs' own stamps only (STAMPS_ONLY), each checked against the ones around it (_Plausible)
WHOLE_FRAME_CODECS = frozenset({"mpeg1video", "mpeg2video"})
STAMPS_ONLY = av.container.Flags.no_fillin.value  # a demuxer flag: an unstamped packet is left untimed
MAX_GAP = 64  # frames without a time held back at most, waiting for the next one that has a time


@dataclass
class _Gap:
    """Frames without a time (MPEG-PS stores a pts only on some packets), held until the next timed frame and
    then spaced evenly from the last timed one to it, or one `step` apart after the last when the stream ends."""

    step: int | None  # ticks of one frame at the stream's rate, for a gap with no timed frame on one side
    last: int | None = None  # the time of the last timed frame
    spacing: int | None = None  # ticks between the last two timed frames
    held: list[av.VideoFrame] = field(default_factory=list)

    def add(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        """The frames ready to go on after `frame` (frame.pts None: it waits), in order."""
        if frame.pts is None:
            self.held.append(frame)
            return self.release() if len(self.held) > MAX_GAP else []
        if self.held and (self.last is not None or self.step):
            ends = (self.last, frame.pts) if self.last is not None else \
                (frame.pts - (len(self.held) + 1) * self.step, frame.pts)  # type: ignore[operator]
            count = len(self.held) + 1
            for i, held in enumerate(self.held, 1):
                held.pts = ends[0] + round(Fraction(i * (ends[1] - ends[0]), count))
        if self.last is not None and frame.pts > self.last:
            self.spacing = round(Fraction(frame.pts - self.last, len(self.held) + 1))
        ready, self.held, self.last = [*self.held, frame], [], frame.pts
        return ready

    def release(self) -> list[av.VideoFrame]:
        """The held frames, each a step after the one before (None still when nothing gives their time)."""
        step = self.spacing or self.step
        if self.held and self.last is not None and step:
            for i, held in enumerate(self.held, 1):
                held.pts = self.last + i * step
            self.last = self.held[-1].pts
        ready, self.held = self.held, []
        return ready


@dataclass
class _Plausible:
    """Frames of MPEG-1/2 in an MPEG-PS read with the packs' own stamps (STAMPS_ONLY), a stamp left out where it is
    another frame's: one that leaves the frames between it and the stamp before or after it less than a frame period
    each (`shortest`, in ticks), where those two stamps leave them enough.

    Why: FFmpeg's MPEG-PS muxer stamps a pack with the first packet that begins in it, its demuxer (the MPEG video
    parser, as the standard has it) with the first picture start code in it. Where a pack boundary fell in a
    keyframe's sequence and GOP headers, that keyframe read the next frame's time, and FFmpeg's guessed times carried
    it on to the frames after it, up to the next stamp: in a 72-frame .mpg that FFmpeg wrote, frames 11 to 21 came
    a frame late, two frames shared one time, and one of them was left out of an .mpg written again. Untimed, the
    frame is spaced between its neighbours (_Gap), each a frame period apart."""

    shortest: Fraction
    trusted: tuple[int, int] | None = None  # the number and time of the last frame whose stamp was kept
    held: list[av.VideoFrame] = field(default_factory=list)  # a stamped frame waiting for the next stamp, then
    held_at: int = 0  # (its number) the untimed frames after it
    count: int = 0  # the frames come so far

    def add(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        """The frames ready to go on after `frame`, in order (a stamped one waits for the next stamp)."""
        at, self.count = self.count, self.count + 1
        if frame.pts is None:
            if not self.held:
                return [frame]
            self.held.append(frame)
            return self.release() if len(self.held) > MAX_GAP else []
        if self.held:
            held, after = (self.held_at, self.held[0].pts), (at, frame.pts)
            if not (self._fits(self.trusted, held) and self._fits(held, after)) and self._fits(self.trusted, after):
                self.held[0].pts = None  # another frame's stamp
        ready = self.release()
        self.held, self.held_at = [frame], at
        return ready

    def release(self) -> list[av.VideoFrame]:
        """The held frames, a stamp still on the first one kept (at the end nothing comes after it to check it by)."""
        if self.held and self.held[0].pts is not None:
            self.trusted = (self.held_at, self.held[0].pts)
        ready, self.held = self.held, []
        return ready

    def _fits(self, before: tuple[int, int] | None, after: tuple[int, int]) -> bool:
        """Whether the frames between two stamped ones (number, time) each last a frame period or more (within two
        ticks: each stamp is cut to its clock). True with none before (the first stamp read, or the first after a
        seek: a stretch's, a Ray segment's), so that a first stamp is checked by the one after it alone."""
        return before is None or after[1] - before[1] >= (after[0] - before[0]) * self.shortest - 2


def stamps_only(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> bool:
    """Whether `stream` is to be read with the demuxer's stamps only (STAMPS_ONLY: MPEG-1/2 in MPEG-PS, _Plausible)."""
    return container.format.name in SHARED_STAMP_FORMATS and stream.codec_context.name in WHOLE_FRAME_CODECS


def _own_stamps(packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
    """`packets`, each stamp kept by the last of the packets that come with it, the others left untimed.

    The MPEG-PS muxer stamps a pack with the first frame that begins in it; FFmpeg's H.264 parser gives that
    stamp to the frame before as well where the pack boundary splits that frame's start code, so a frame of an
    H.264 .mpg was shown at the next one's time (0.35 s for 0.25 s), and the frames up to it crowded there."""
    held: av.Packet | None = None
    for packet in packets:
        if held is not None:
            if held.pts is not None and held.pts == packet.pts:
                held.pts = held.dts = None
            yield held
        held = packet
    if held is not None:
        yield held


def _stamp(packet: av.Packet, clock: str) -> int | None:
    if not packet.size or clock == "pts":
        return None
    return packet.dts if clock == "dts" else packet.pts


def timed_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 rate: Fraction | None, damage: Damage | None = None,
                 decoder: av.CodecContext | None = None, since: int | None = None) -> Iterator[av.VideoFrame]:
    """Decode `stream` in display order, each frame with its time (pts, in stream.time_base ticks).

    Where the demuxer's pts are trusted the decoder's frame pts are kept as they are. AVI and MXF frames take
    the packets' timestamps in sorted order instead (DTS_CLOCK_FORMATS, SORTED_CLOCK_FORMATS): frames leave
    a decoder in display order, so the n-th frame shows at the n-th smallest time. Frames that still have no
    time are spaced evenly between their timed neighbours (`rate`, frames per second, where only one side
    has one). With `damage`, a packet the decoder refuses as invalid data (a few flipped bytes in an old file)
    is passed over and counted there, as FFmpeg's players do, up to MAX_DAMAGED of them; it and the frames the
    decoder drops after it are said in one warning per damaged stretch (io.damage.Losses).
    decoder: the codec context to decode with (a fresh one after a seek), when not the stream's own.
    since: the pts this reading starts at (a --start's, a Ray segment's), where frames lost before it are not its to say.
    """
    name = container.format.name
    clock = "dts" if name in DTS_CLOCK_FORMATS else "sorted" if name in SORTED_CLOCK_FORMATS else "pts"
    step = round(1 / (rate * stream.time_base)) if rate and stream.time_base else None
    rates = [Fraction(r) for r in (stream.base_rate, stream.average_rate, rate) if r]
    checked = _Plausible(1 / (max(rates) * stream.time_base)) if rates and stream.time_base \
        and stamps_only(container, stream) and container.flags & STAMPS_ONLY else None
    stamps: list[int] = []  # the packets' times not yet given to a frame (a heap)
    gap = _Gap(step)
    first = decoded = None  # the first packet's pts and the last decoded frame's (a sequence's damaged frame)
    own_times = clock == "pts" and name not in SHARED_STAMP_FORMATS  # each frame at its packet's pts (Losses)
    losses = None if damage is None else Losses(PurePath(container.name).name, stream.start_time or 0,
                                                Fraction(stream.time_base), step, damage, since,
                                                walk=BlockWalk(Path(container.name)) if name in MATROSKA_FORMATS else None)
    packets = container.demux(stream)
    for packet in _own_stamps(packets) if name in SHARED_STAMP_FORMATS else packets:
        first = packet.pts if first is None else first
        stamp = _stamp(packet, clock)
        if stamp is not None:
            heapq.heappush(stamps, stamp)
        if losses is not None:
            losses.packet(packet, own_times)
        try:
            frames = decoder.decode(packet) if decoder is not None else packet.decode()
        except REFUSED as error:
            if name == "image2":  # a frame file of a sequence: the one after the last decoded (a threaded decoder
                # says so a few packets later, when that frame is due), or the first read
                failed = first if decoded is None else decoded + 1
                raise unreadable_frame(Path(container.name), (failed or 0) - (stream.start_time or 0)) from error
            if losses is None or damage.packets >= MAX_DAMAGED or packet.pts is None:  # type: ignore[union-attr]
                raise
            losses.refused(packet.pts, own_times)
            if stamp is not None:  # no frame takes its time
                stamps.remove(stamp)
                heapq.heapify(stamps)
            continue
        for frame in frames:
            decoded = frame.pts
            if clock != "pts" and stamps and (clock == "dts" or frame.pts is not None):
                frame.pts = heapq.heappop(stamps)
            if losses is not None:
                losses.shown(frame)
            if checked and not frame.duration:  # FFmpeg no longer fills it in either: the last frame's, lasting's
                frame.duration = step
            for ready in checked.add(frame) if checked else (frame,):
                yield from gap.add(ready)
    if losses is not None:
        losses.end()
    for ready in checked.release() if checked else ():
        yield from gap.add(ready)
    yield from gap.release()


def lasting(frames: Iterator[av.VideoFrame], end: tuple[int, int] | None = None) -> Iterator[av.VideoFrame]:
    """`frames` (in display order), each lasting until the next one's time, which is how long it is shown.

    A demuxer's duration is not always that: Matroska gives every frame of a variable rate the track's default
    duration (its nominal rate's), and an MP4 with B-frames the step between two frames' dts; so the last frame
    of a stretch would have been written that long instead of its own. The file's last frame lasts to `end`,
    where the file states where its video ends ((ticks, precision in ticks): an MP4's track end, see
    io.quicktime.track_end) and the decoder's duration ends elsewhere by more than that precision; else it
    keeps the duration the decoder gives it (one whose next frame's time is not later too), as does the last
    frame before a decoding error, which is handed on before the error is raised (so an error names the frame
    it happened at)."""
    held: av.VideoFrame | None = None
    try:
        for frame in frames:
            if held is not None:
                if held.pts is not None and frame.pts is not None and frame.pts > held.pts:
                    held.duration = frame.pts - held.pts
                yield held
            held = frame
    except av.error.FFmpegError:
        if held is not None:
            yield held
        raise
    if held is not None:
        if end is not None and held.pts is not None and end[0] > held.pts \
                and abs(held.pts + (held.duration or 0) - end[0]) > end[1]:
            held.duration = end[0] - held.pts
        yield held
