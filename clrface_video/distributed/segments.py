"""Video segments: split at keyframes (demux only), decode one segment, join encoded segments without re-encoding."""
from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import ClrfaceError, backend_name, one_line
from ..io.clock import DTS_CLOCK_FORMATS, SORTED_CLOCK_FORMATS, STAMPS_ONLY, lasting, stamps_only
from ..io.completeness import check_complete
from ..io.copies import muxer_options, packet_time
from ..io.damage import Damage
from ..io.decode import (
    VideoInfo,
    decoding,
    frame_to_array,
    open_input,
    source_planes,
    stated_end,
    stream_fps,
    video_stream,
)
from ..io.deinterlace import deinterlaced
from ..io.encode import VideoWriter
from ..io.output_stream import (
    PLAYER_MPEG_MUXERS,
    container_takes,
    other_containers,
    renamed_muxer,
    tag_for_apple,
    turned_upright,
    upright_turns,
)
from ..types import Frame

TIME_TOLERANCE = Fraction(1, 200)  # seconds a container may move a segment's frames
MATROSKA = frozenset({".mkv", ".webm", ".mka"})


def segment_suffix(output: Path, codec: str = "libx264") -> str:
    """Segment files go in Matroska for a Matroska output (same codecs, same 1 ms clock), else in .mov

    (which keeps the source time base, or an exact multiple of it), unless QuickTime cannot hold the codec
    (ffv1 into an .mp4): Matroska then, its clock put back to the source's when the segments are joined."""
    if output.suffix.lower() in MATROSKA or not container_takes(".mov", codec):
        return ".mkv"
    return ".mov"



@dataclass(frozen=True)
class Segment:
    """Frames whose pts lie in [start, end) of the source time base; None means open on that side.

    Segment 0 starts at None (everything before the second segment's keyframe), the last ends at None.
    A video whose packets carry no pts is one segment with both ends None.
    """

    number: int
    start: int | None
    end: int | None

    def holds(self, pts: int | None) -> bool:
        if pts is None:
            return self.start is None and self.end is None
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)


def list_keyframes(path: Path) -> tuple[list[int], list[int]] | None:
    """(sorted pts of every video packet, sorted pts of the keyframe packets), by demuxing only (no decode).

    None when some packet has no pts (the video cannot be split by time and stays one segment), and for AVI
    and MXF, whose frames take their times from the packets in sorted order from the start of the file
    (io.clock: FFmpeg's own are a frame late, or in decode order), which a segment seeked into cannot count.
    MPEG-1/2 in MPEG-PS is read with the packs' own stamps (io.clock.STAMPS_ONLY), as read_frames reads it, and
    only its packets that have one are listed: a segment from a keyframe without one would time its frames by a
    later stamp, which the end of a file cut short lacks (its last keyframe's segment read no frame at all).
    """
    with open_input(path) as container:
        if container.format.name in DTS_CLOCK_FORMATS | SORTED_CLOCK_FORMATS:
            return None
        stream = video_stream(container, path)
        own = stamps_only(container, stream)
        if own:
            container.flags |= STAMPS_ONLY
        every, keys = [], []
        for packet in container.demux(stream):
            if packet.size == 0 or (own and packet.pts is None):
                continue
            if packet.pts is None:
                return None
            every.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    return sorted(every), sorted(set(keys))


def plan_segments(path: Path, pieces: int) -> list[Segment]:
    """Split at keyframes into about `pieces` segments of at least len/pieces packets each (the last may be shorter)."""
    listed = list_keyframes(path)
    if listed is None or not listed[0]:
        return [Segment(0, None, None)]
    every, keys = listed
    min_frames = -(-len(every) // max(pieces, 1))
    starts: list[int] = []
    previous = 0  # packet position where the current segment starts
    for key in keys:
        position = bisect.bisect_left(every, key)
        if position - previous >= min_frames and position < len(every):
            starts.append(key)
            previous = position
    bounds: list[int | None] = [None, *starts, None]
    return [Segment(i, bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def read_segment(path: Path, segment: Segment, high_depth: bool, first_index: int = 0,
                 deint: str | None = None, *, check_end: bool = True, damage: Damage | None = None,
                 samples: bool = False) -> Iterator[Frame]:
    """Decode the frames of one segment in presentation order; index counts on from first_index.

    Seeks to the keyframe at the segment start as read_frames seeks (io.decode.decoding: earlier where the seek
    lands after it, as MPEG-TS's can) and keeps frames with start <= pts < end; frames of an open GOP's leading
    pictures (pts before the next keyframe, decoded after it) stay in this segment.
    deint: deinterlace as read_frames does; a segment's first frame has no earlier neighbour to read. As
    read_frames, a damaged packet is passed over with a warning (its frame left out), and the last segment of an
    .mpg cut short says where it ends; a segment failed on the first damaged packet, and said nothing of a cut.
    The last segment, read to its end, checks the file's end as read_frames does (io.completeness.check_complete,
    with first_index the frame's number in the whole file): a .mkv cut short, which stops decoding before the
    length it states, was restored short without a word. check_end False leaves that out, for a reader that
    counts the segment's frames from 0 (the workers' detect) and would name the wrong frame. damage: where the
    damaged packets passed over and the frames they left out are counted (a fresh count when None). samples: each
    frame's YUV samples too, as read_frames hands them to a restore's writer (io.decode.source_planes).
    """
    with ExitStack() as open_files:
        container, stream, timed = decoding(open_files, path, None, None, start_pts=segment.start,
                                            damage=Damage() if damage is None else damage)
        time_base = Fraction(stream.time_base)
        index, end_s = first_index, None
        try:
            for frame in lasting(deinterlaced(timed, stream, deint), stated_end(path, stream)):  # as read_frames
                if segment.end is not None and frame.pts is not None and frame.pts >= segment.end:
                    return
                if not segment.holds(frame.pts):
                    continue
                yield Frame(image=frame_to_array(frame, high_depth), index=index, pts=frame.pts, time_base=time_base,
                            duration=frame.duration or None, source=source_planes(frame, deint) if samples else None)
                index += 1
                end_s = end_s if frame.pts is None else float((frame.pts + (frame.duration or 0)) * time_base)
            if segment.end is None and check_end:  # the file's last frames: where it ends, as read_frames says it
                check_complete(container, stream, path, index, end_s, stream_fps(stream), decoded=None)
        except av.error.FFmpegError as error:
            raise ClrfaceError(f"{path.name}: decoding segment {segment.number} failed at frame {index} "
                               f"({one_line(error)})") from error


def segment_pts(path: Path) -> tuple[list[int], Fraction] | None:
    """Sorted pts of the packets of a finished segment file and their time base, or None if it is unreadable."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            found = [p.pts for p in container.demux(stream) if p.size and p.pts is not None]
            return sorted(found), Fraction(stream.time_base)
    except (av.error.FFmpegError, IndexError, OSError):
        return None


def segment_complete(path: Path, info: VideoInfo, expected: list[int | None]) -> bool:
    """Whether a segment file holds the expected frames: as many packets, at the expected times (within 5 ms).

    Containers may shift a segment that does not start at 0 by a rounding of its edit list or clock;
    join_segments puts the exact source pts back.
    """
    if not path.exists():
        return False
    found = segment_pts(path)
    if found is None or len(found[0]) != len(expected):
        return False
    if any(p is None for p in expected):
        return True
    pts, time_base = found
    wanted = sorted(Fraction(p) * info.time_base for p in expected)  # type: ignore[arg-type]
    return all(abs(p * time_base - w) <= TIME_TOLERANCE for p, w in zip(pts, wanted))


ANNEX_B_FILTERS = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}  # packets as an MPEG-PS carries them


class PacketWriter(VideoWriter):
    """A VideoWriter that muxes already-encoded video packets (the segments) instead of encoding frames.

    The video stream is a copy of the first segment's (same encoder settings, so the same extradata);
    rotation is set from the source where the output keeps it (else the segments hold upright frames), and
    audio, subtitle and data streams are copied from the source once, interleaved as the video advances,
    exactly as VideoWriter does.
    """

    def __init__(self, output: Path, source: Path, info: VideoInfo, template: av.stream.Stream) -> None:
        super().__init__(output, source, info)
        self.template = template
        self._last_dts: int | None = None
        self._annex_b: av.bitstream.BitStreamFilterContext | None = None

    def _open(self) -> None:
        self._ready_folder()
        self._source = open_input(self.source, self.info.fps)
        self._out = av.open(str(self.partial), "w", format=renamed_muxer(self.output),  # a camcorder's .MOD too
                            options=muxer_options(self._source, self.output))
        self._video = self._out.add_stream_from_template(self.template)
        # the source's clock, as add_video_stream gives it: a Matroska segment's 1 ms one (ffv1 into an .mp4) timed
        # the .mp4's frames 1/16000 s apart, every pts rounded
        self._video.time_base = self.info.time_base
        tag_for_apple(self._out, self._video)  # the template's tag is not copied
        codec = self.template.codec_context.name
        if self._out.format.name in PLAYER_MPEG_MUXERS and codec in ANNEX_B_FILTERS:
            # a segment's (.mov, .mkv) H.264 or HEVC packets are length-prefixed, their parameter sets apart; an
            # MPEG program stream's muxer, unlike a transport stream's, does not turn them into start codes, and
            # FFmpeg read the .mpg's video back as VVC, no frame decoded
            self._annex_b = av.bitstream.BitStreamFilterContext(ANNEX_B_FILTERS[codec], self.template, self._video)
        if self.info.fps:  # a QuickTime timecode track counts frames at the video's rate
            self._video.codec_context.framerate = self.info.fps
        # the segments' frames were written upright where the output keeps no rotation (video.restore_video_ray)
        self.info = turned_upright(self.info, upright_turns(self.info, self._out.format.name))
        if self.info.display_matrix is not None:
            self._video.set_display_matrix(self.info.display_matrix)
        elif self.info.rotation:
            self._video.set_display_rotation(self.info.rotation)
        self._open_source()
        try:
            self._out.start_encoding()
        except av.error.FFmpegError as error:
            raise ClrfaceError(f"a {self.output.suffix} file cannot hold this video ({one_line(error)}); "
                               f"use {other_containers(self.output)}") from error

    def write_packet(self, packet: av.Packet) -> None:
        """Mux one encoded video packet (timestamps in its own time base) after the copies that precede it."""
        assert self._out is not None and self._video is not None
        if packet.dts is not None and self._last_dts is not None and packet.dts <= self._last_dts:
            packet.dts = self._last_dts + 1  # two encoders met here: keep decode order strictly increasing
            if packet.pts is not None and packet.dts > packet.pts:
                raise ClrfaceError("segments cannot be joined (decode timestamps overlap); use "
                                   f"{backend_name('local')}")
        self._last_dts = packet.dts
        self._mux_copies_until(packet_time(packet) if packet.dts is not None or packet.pts is not None else None)
        try:
            for coded in [packet] if self._annex_b is None else self._annex_b.filter(packet):
                coded.stream = self._video
                self._out.mux(coded)
        except av.error.FFmpegError as error:
            raise ClrfaceError(f"segments cannot be joined into {self.output.name} ({one_line(error)}); "
                               f"use {backend_name('local')}") from error
        self.frames_written += 1

    def _finish(self) -> None:
        assert self._out is not None
        if self.frames_written == 0:
            raise ClrfaceError(f"no frames were written to {self.output.name}")
        if self._copied is not None:
            self._copied.finish(None)
        self._close_marked()
        os.replace(self.partial, self.output)


def join_segments(paths: list[Path], expected: list[list[int | None]], output: Path, source: Path,
                  info: VideoInfo) -> int:
    """Concatenate the encoded video packets of the segment files into `output` (atomic); returns packets written.

    Packets are copied, never re-encoded. Each segment's packets get back the exact source pts
    (`expected`, the pts its frames had: the i-th smallest packet pts becomes the i-th smallest
    expected one) and their dts move by the same offset, so the frame count and timestamps are
    those of the source. The segments' encoder settings must match, which is checked here.
    """
    first = av.open(str(paths[0]))
    try:
        template = first.streams.video[0]
        extradata = template.codec_context.extradata
        with PacketWriter(output, source, info, template) as writer:
            for path, wanted in zip(paths, expected, strict=True):
                with av.open(str(path)) as container:
                    stream = container.streams.video[0]
                    if stream.codec_context.extradata != extradata:
                        raise ClrfaceError(f"segment {path.name} was encoded with other settings; "
                                           "delete the job folder and run again")
                    packets = [p for p in container.demux(stream) if p.size and (p.dts is not None or p.pts is not None)]
                    for packet in _retimed(packets, wanted, Fraction(stream.time_base), info.time_base):
                        writer.write_packet(packet)
            return writer.frames_written
    finally:
        first.close()


def _retimed(packets: list[av.Packet], wanted: list[int | None], time_base: Fraction,
             target: Fraction) -> list[av.Packet]:
    """The packets with the source pts put back (in the source time base `target`), in decode order.

    Matroska stores no decode times, so with B-frames some of its packets come back without one; and its 1 ms
    clock, put back on the source's, can round a decode time past its frame's pts (ffv1 segments joined into an
    .mp4, whose muxer refuses that). Then every packet gets the i-th smallest pts less the least shift that keeps
    each dts <= its pts.
    """
    if any(p is None for p in wanted) or any(p.pts is None for p in packets) or len(packets) != len(wanted):
        return packets
    found = sorted(p.pts for p in packets)
    exact = dict(zip(found, sorted(wanted)))  # type: ignore[arg-type]
    offset = exact[found[0]] - Fraction(found[0]) * time_base / target
    moved = None if any(p.dts is None for p in packets) else \
        [round(Fraction(p.dts) * time_base / target + offset) for p in packets]
    if moved is None or any(dts > exact[p.pts] for dts, p in zip(moved, packets)):
        moved = _decode_times([exact[p.pts] for p in packets])
    for packet, dts in zip(packets, moved):
        if packet.duration:  # each frame's length, in the new clock too (a 1 ms Matroska tick is not 1/16000 s)
            packet.duration = max(1, round(Fraction(packet.duration) * time_base / target))
        packet.time_base = target
        packet.pts, packet.dts = exact[packet.pts], dts
    return packets


def _decode_times(pts: list[int]) -> list[int]:
    """Strictly increasing decode times for packets with these pts in decode order, each <= its pts."""
    ranked = sorted(pts)
    shift = max(0, max(r - p for r, p in zip(ranked, pts)))
    return [r - shift for r in ranked]
