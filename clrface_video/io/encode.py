"""VideoWriter: encode RGB frames, copy the source's other streams bit for bit, rename atomically on close."""
from __future__ import annotations

import errno
import logging
import os
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from clrface_video.atomic import discard, partial_folder, partial_name, remove_leftovers
from clrface_video.errors import ClrfaceError, one_line, option_name, reason
from clrface_video.io import stretch_tag
from clrface_video.io.apng import apng_plays, copy_delays, frame_delays, is_apng_output, set_last_delay
from clrface_video.io.copies import CopiedStreams, copy_metadata, muxer_options, open_at_its_time
from clrface_video.io.decode import (
    RANGE_JPEG,
    RANGE_MPEG,
    SWS_BT601,
    SWS_MATRIX,
    SWS_THREADS,
    VideoInfo,
    has_alpha,
    open_input,
    video_stream,
)
from clrface_video.io.full_range import ready_deep_rgb, to_full_range, wide_format
from clrface_video.io.output_stream import (
    CFR_CONTAINERS,
    CFR_ONLY_CODECS,
    FieldFlags,
    add_video_stream,
    auto_codec,
    check_codec,
    check_mxf_rate,
    field_parity,
    other_containers,
    renamed_muxer,
    turned_upright,
    upright_turns,
    yuv_colorspace,
)
from clrface_video.io.palette import PaletteFilter, is_gif
from clrface_video.io.picture_cut import CUT_CODECS, CUT_MUXERS, PictureCut
from clrface_video.io.pixels import luma, to_uint8
from clrface_video.io.scheduling import scheduled_as_before
from clrface_video.io.sequence import (
    COUNTER,
    first_number,
    frame_numbers,
    is_sequence,
    sequence_codec,
    sequence_pix_fmt,
)
from clrface_video.io.source_planes import kept_frame
from clrface_video.io.timecode import (
    first_kept_offset,
    move_timecodes,
    quicktime_timecode_rate,
    timecode_frames,
    timecode_rate,
)
from clrface_video.types import Box, Frame, TimeSpan

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)

AUTO = "auto"
RGB_FORMATS = frozenset({"rgb24", "rgba"})  # encoder pixel formats the frames are handed in as they are
WRITE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT})
TIMECODE_MUXERS = frozenset({"mov", "mp4", "ipod"})  # muxers that write the timecode tag as a track counted in frames
# muxers whose tracks all start at 0 whatever their first times (MXF: its essence is laid out from the start), so
# a whole video's sound before its first frame would be heard that much early (measured: 844 ms on
# face_recognition_hamilton.mp4, whose pictures start 0.852 s in and its sound at 0.008 s)
STARTLESS_MUXERS = frozenset({"mxf"})
# muxers that stop the file where a track ends (measured: FFmpeg's MXF muxer left out the frames after the sound's
# end, its DV muxer refused them): their PCM tracks are given silence to the pictures' end
SOUND_TO_END_MUXERS = frozenset({"mxf", "dv"})
# x265 learns its B-frame decode delay from the frame after it (the third, with its default B-pyramid) and, given
# no more frames, stamps every packet's dts from memory it never set: a 1- or 2-frame clip into .mp4, .mkv or .mov
# failed as it closed ('Invalid argument', 'Not yet implemented'), or not, as that memory held (measured: every run
# of the CLI on a 2-frame 128x96 clip; never with b-pyramid=0 or bframes=0). So few frames are coded in order
X265_UNSET_DTS_FRAMES = 2


def default_output_path(output: Path | str, source: Path | str) -> Path:
    """The output path, given the input's extension when it has none."""
    output = Path(output)
    return output if output.suffix else output.with_name(output.name + Path(source).suffix)


def partial_path(output: Path, pid: int | None = None) -> Path:
    """Hidden temporary name next to `output` that keeps its extension (so the muxer is chosen right), this
    process's own (atomic.partial_name: two runs writing one output at once do not share it), or process `pid`'s.

    For an image sequence, the pattern inside a hidden folder beside the frames."""
    if is_sequence(output):
        return partial_folder(output.parent, COUNTER.sub("", output.stem), output.name, pid) / output.name
    return partial_name(output, pid)


def output_exists(output: Path) -> bool:
    """Whether `output` (a file, or any frame of an image sequence) is already there."""
    return bool(frame_numbers(output)) if is_sequence(output) else output.exists()


def _gray_frame(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A one-channel frame of an RGB image's BT.601 luma (io.pixels.luma), in numpy: swscale's rgb48 -> gray16
    path scales by 65535/65280, so a grey scan would not come back as it went in. Cut to 9-15 bits in numpy too,
    round(v * (2^n - 1) / 65535): swscale's gray16 -> gray12/gray14 cut dithers, which changed 3-4% of a 12- or
    14-bit ramp's codes by one."""
    if image.dtype == np.uint16:
        grey = luma(image)
        bits = av.VideoFormat(pix_fmt).components[0].bits
        if 8 < bits < 16 and pix_fmt.endswith("le"):
            top = (1 << bits) - 1
            frame = av.VideoFrame(image.shape[1], image.shape[0], pix_fmt)
            plane = frame.planes[0]
            np.frombuffer(plane, "<u2").reshape(plane.height, -1)[:, :plane.width] = \
                (grey.astype(np.uint32) * top + 32767) // 65535
            return frame
        frame = av.VideoFrame.from_ndarray(grey.astype("<u2"), format="gray16le")
        return frame if pix_fmt == "gray16le" else frame.reformat(format=pix_fmt)
    return av.VideoFrame.from_ndarray(luma(image), format="gray")


def _muxer_refused(error: av.error.FFmpegError, out: av.container.OutputContainer) -> bool:
    """Whether an EPERM from writing the header is a muxer's bare -1 (FFmpeg's MXF muxer refusing a codec it has no
    essence label for, such as HEVC or MPEG-4 Part 2), not the file system's: the file was already open."""
    return error.errno == errno.EPERM and Path(out.name).exists()


class VideoWriter:
    """Encode frames into `output` with the timing, rotation and colour of `source`.

    Audio, subtitle and data streams of the source are copied packet for packet, interleaved
    as the video advances. Frames keep their pts. Everything is written to a hidden partial
    file in the output folder and renamed on a clean exit; on an error it is deleted.

        with VideoWriter(out_path, src_path, probe_video(src_path)) as writer:
            for frame in read_frames(src_path):
                writer.write(frame)
    """

    def __init__(self, output: Path | str, source: Path | str, info: VideoInfo, *,
                 codec: str = "auto", crf: int | None = None, span: TimeSpan | None = None, preset: str | None = None,
                 segment: bool = False, turns: int | None = None) -> None:
        self.output = default_output_path(output, source)
        self.source = Path(source)
        self.info = info
        self.codec = codec
        self.crf = crf
        self.preset = preset
        self.span = span  # only this stretch of the source: its frames and copied packets move to start at 0
        # a Ray job's segment, joined into the output later: the tags it cannot keep are the joined output's to say
        self.segment = segment
        self._shift: Fraction | None = None  # seconds taken off every timestamp (a stretch's: its first frame's time)
        self._start: Fraction | None = None  # source time where the stretch starts
        self._end: Fraction | None = None  # source time where the copied packets stop
        self.partial = partial_path(self.output)
        self.frames_written = 0
        self._out: av.container.OutputContainer | None = None
        self._source: av.container.InputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._copied: CopiedStreams | None = None  # the source's audio, subtitles and data
        self._pix_fmt = ""
        self._range = 0  # the range the output is written at (output_stream.output_range), set once
        self._wide: str | None = None  # full-range output: its 16-bit format (io.full_range.wide_format), set once
        self._palette: PaletteFilter | None = None  # a GIF's per-frame palettes
        self._fields: FieldFlags | None = None  # kept interlaced frames flagged with their field order
        self._delays: dict[int, int] = {}  # frame durations by pts, for packets that come out without them
        self._last_delay: Fraction | None = None  # seconds the last frame of a GIF or APNG is shown
        self._written_pts: list[int] = []  # an APNG's frames, by source pts, to copy their stored delays
        self._shown: list[Fraction | None] = []  # and how long each is shown (a stretch's first and last: less)
        self._reformatter = VideoReformatter()  # one swscale context for the whole stream
        self._region_reformatter = VideoReformatter()  # and one for the changed boxes (io.source_planes)
        self._last_pts = -1  # the last frame's number on the encoder's clock (_frame_number)
        self._crowded = 0  # frames left out there: each less than a frame after the one before (_frame_number)
        self._pictures_end = Fraction(0)  # where the last frame written ends, in seconds of the output's clock
        self._phase: Fraction | None = None  # seconds the first frame lies off the encoder's frame grid (_frame_number)
        self._muxed = False  # whether a video packet has been muxed
        self._cut: PictureCut | None = None  # MPEG-1/2 in a program stream: each packet from its picture start
        self._turns = 0  # quarter turns that write the frames upright, for a container that keeps no rotation
        self._turns_asked = turns  # those asked (a Ray segment's: as the output it is joined into keeps no
        # rotation), or None: as this output's own container asks

    def _partial_name(self, pid: int) -> str:
        """The name of process `pid`'s temporary file (a sequence's: folder) for this output."""
        partial = partial_path(self.output, pid)
        return partial.parent.name if is_sequence(self.output) else partial.name

    # -- context manager ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            with scheduled_as_before():  # libsvtav1 makes the thread real-time as it opens, encodes and closes
                self._open()
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            with scheduled_as_before():
                self._finish()
        except av.error.FFmpegError as error:
            self._abort()
            raise ClrfaceError(f"writing {self.output.name} failed: {reason(error)}") from error
        except BaseException:
            self._abort()
            raise

    def _ready_folder(self) -> None:
        """Check the output folder is there and remove a killed run's temporary output for this output, before
        any writer (this one, the Ray backend's PacketWriter) opens its own."""
        if not self.output.parent.is_dir():
            raise ClrfaceError(f"output folder does not exist: {self.output.parent}")
        remove_leftovers(self.output.parent, self._partial_name)

    def _open(self) -> None:
        self._ready_folder()
        pix_fmt = None
        if is_sequence(self.output):  # numbered stills, in the encoder their extension names, at the source depth
            self.codec = sequence_codec(self.output)
            pix_fmt = sequence_pix_fmt(self.codec, self.info.bit_depth, gray=self.info.pix_fmt.startswith("gray"),
                                       alpha=self.info.alpha)
            first = first_number(self.source, self.span, self.info.fps)  # a scan's numbers kept
            self.partial.parent.mkdir(exist_ok=True)
            self._out = av.open(str(self.partial), "w", format="image2", options={"start_number": str(first)})
        else:
            muxer = None
            if is_gif(self.output):  # the gif muxer takes only the gif encoder's 256-colour frames
                self.codec, pix_fmt = "gif", "pal8"
            elif is_apng_output(self.output):  # an animated PNG: lossless RGB(A) frames
                deep = self.info.bit_depth > 8
                pix_fmt = ("rgba64be" if deep else "rgba") if self.info.alpha else ("rgb48be" if deep else "rgb24")
                self.codec, muxer = "apng", "apng"
            else:
                muxer = renamed_muxer(self.output)  # a camcorder's .MOD or .TOD: its container, under its name
                if self.codec == AUTO:
                    self.codec = auto_codec(self.output, self.info)
            check_mxf_rate(self.output, self.info.fps)  # before any stream is set up, or its warnings said
            self._source = open_input(self.source, self.info.fps)
            options = muxer_options(self._source, self.output)
            if muxer == "apng":
                options["plays"] = str(apng_plays(self.source))
            try:
                self._out = av.open(str(self.partial), "w", format=muxer, options=options)
            except ValueError as error:
                raise ClrfaceError(f"unknown output container for {self.output.name}; use .mp4, .mkv or .mov") \
                    from error
        self._turns = upright_turns(self.info, self._out.format.name) if self._turns_asked is None \
            else self._turns_asked
        self.info = turned_upright(self.info, self._turns)  # the frames as shown, where no rotation tag is kept
        self.codec = check_codec(self.codec)
        self._video = add_video_stream(self._out, self.info, self.codec, self.crf, pix_fmt, self.preset)
        self._pix_fmt = self._video.pix_fmt
        self._range = self._video.codec_context.color_range  # the source's, or limited (output_stream.output_range)
        self._wide = wide_format(self._pix_fmt) if self._range == RANGE_JPEG else None
        if self._pix_fmt == "pal8":
            self._palette = PaletteFilter(self.info.width, self.info.height, self._video.codec_context.time_base)
        if self.codec in CUT_CODECS and self._out.format.name in CUT_MUXERS:
            self._cut = PictureCut()
        parity = field_parity(self.info)
        if parity is not None and self._palette is None:
            self._fields = FieldFlags(parity, self.info.width, self.info.height, self._pix_fmt,
                                      self._video.codec_context.time_base)
        self._open_source()
        try:
            self._out.start_encoding()  # writes the header now, so set-up errors surface here
        except av.error.FFmpegError as error:
            refused = _muxer_refused(error, self._out)
            if error.errno in WRITE_ERRNOS and not refused:
                raise ClrfaceError(f"cannot write {self.output.parent}: {error.strerror}") from error
            if "avcodec_open2" in str(error):  # the encoder itself refused these frames, not the container
                raise ClrfaceError(f"the {self.codec} encoder would not open for {self.info.width}x{self.info.height} "
                                   f"{self._pix_fmt} ({one_line(error)}); try {option_name('codec')} prores_ks, ffv1 or libx264") \
                    from error
            why = "" if refused else f" ({one_line(error)})"  # a bare -1 names only the hidden file and EPERM
            raise ClrfaceError(f"a {self.output.suffix} file cannot hold {self.codec} video{why}; "
                               f"use {other_containers(self.output, self.codec)}, or another {option_name('codec')}") from error

    def _open_source(self) -> None:
        """Streams to copy from the source (when info says it has any), then its tags and chapters."""
        if self._source is None:
            self._source = open_input(self.source, self.info.fps)  # an image sequence needs its first number
        end = None  # the stretch's end in the source's clock
        if self.span is not None:
            video = video_stream(self._source, self.source)
            origin = (video.start_time or 0) * Fraction(video.time_base)
            self._start = origin + Fraction(self.span.start)
            if self.span.end is not None:  # copies stop just before its end (a packet at its end belongs to what follows)
                end = origin + Fraction(self.span.end)
                self._end = end - Fraction(1, 10**6)
        elif self._out.format.name in STARTLESS_MUXERS:
            self._start = self._startless_origin()
        self._copied = CopiedStreams(self._source, self._out, any_streams=bool(self.info.other_streams),
                                     start=self._start, end=end)
        if self.span is None and self._out.format.name in CFR_CONTAINERS:
            self._shift = self._counted_origin()
        elif self.span is None:
            self._shift = self._start
        copy_metadata(self._source, self._out, self._video, self._copied.copies, self.source,
                      chapters=self.span is None, name_unkept=not self.segment)
        stretch_tag.tag(self._out, self.span)  # after the source's tags: an earlier run's is not copied
        self._count_timecode()
        self._move_timecode()

    def _startless_origin(self) -> Fraction | None:
        """Where a whole video's output starts in a container whose tracks all start at 0 (STARTLESS_MUXERS): its
        first frame's time, where that is after 0, with the copies cut there as a stretch's are, so the sound
        heard with each frame is the sound it had (None: the video starts at or before 0)."""
        assert self._source is not None
        video = video_stream(self._source, self.source)
        origin = Fraction(video.start_time or 0) * Fraction(video.time_base)
        return origin if origin > 0 else None

    def _counted_origin(self) -> Fraction | None:
        """An AVI's 0 in the source's clock: the earliest start of the video and the streams copied with it (None
        at or before 0). AVI stores no start time: its first video chunk and its audio's first sample are both
        shown at 0 (the muxer puts the first frame in chunk 0 whatever its number), so a source that starts
        later (MPEG-PS and TS: 0.5 s or more) has every time moved back by its start, copies too, as a stretch's
        are, keeping the frames' spacing and the audio's offset from them."""
        assert self._source is not None and self._copied is not None
        indices = {video_stream(self._source, self.source).index, *self._copied.copies}
        starts = [stream.start_time * stream.time_base for stream in self._source.streams
                  if stream.index in indices and stream.start_time is not None and stream.time_base is not None]
        earliest = min(starts, default=0)
        return Fraction(earliest) if earliest > 0 else None

    def _count_timecode(self) -> None:
        """A QuickTime timecode track counts frames at the video's rate: give it the source's timecode rate, which
        for a variable-rate clip is not its average rate (a 24 fps timecode would be recounted at 19.88)."""
        assert self._out is not None and self._video is not None
        if "timecode" not in self._video.metadata or self._out.format.name not in TIMECODE_MUXERS \
                or is_sequence(self.source):
            return
        rate = quicktime_timecode_rate(self.source)
        if rate is not None:
            self._video.codec_context.framerate = rate

    def _move_timecode(self) -> None:
        """With --start, the output's timecode tags name its own first frame (an editor relinks a preview to its
        source by it): the source's start timecode plus the timecode frames up to the first frame kept."""
        assert self._out is not None
        if self.span is None or self.span.start <= 0 or is_sequence(self.source) or is_sequence(self.output):
            return
        tags = [self._out.metadata, *(stream.metadata for stream in self._out.streams)]
        if any(key.lower() == "timecode" for metadata in tags for key in metadata):  # Matroska's is TIMECODE
            rate = timecode_rate(self.source, self.info.fps)
            move_timecodes(tags, timecode_frames(first_kept_offset(self.source, self.span), rate), rate)

    # -- frames ------------------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        """Encode one RGB frame (uint8 or uint16) at its pts, after the copied packets that precede it."""
        if self._out is None or self._video is None:
            raise RuntimeError("VideoWriter.write called outside its with block")
        pts = self._frame_pts(frame)
        seconds = pts * self.info.time_base  # in the source's clock
        if self.span is not None and self._shift is None:
            # the output's 0 is where its first frame (the one on screen at --start) begins, and its copies are cut
            # there too, in sync: shown from --start, that frame was shorter than the rest (10 ms of 40 at --start
            # 0.51), which an editor reads as a variable rate
            self._shift = seconds
            early = self._start - seconds if self._start is not None else 0
            if early > 0 and self._copied is not None:  # and ends as much earlier, as read_frames ends it
                # (TimeSpan.opened_at): it lasts --duration; a copied video opens from that frame's time too
                self._end = None if self._end is None else self._end - early
                self._copied.opened_earlier(early)
        if self.codec == "apng":
            self._written_pts.append(pts)
            self._shown.append(frame.duration * frame.time_base if frame.duration and frame.time_base else None)
        number = self._frame_number(seconds)
        if number is None:
            self._crowded += 1
            return
        video_frame = self._to_video_frame(frame, number)
        try:
            self._mux_copies_until(seconds)
            self._encode(video_frame)
        except av.error.FFmpegError as error:
            raise ClrfaceError(f"encoding frame {frame.index} into {self.output.name} failed: {reason(error)}") \
                from error
        self.frames_written += 1
        shown = frame.duration * frame.time_base if frame.duration and frame.time_base else 1 / (self.info.fps or 25)
        self._pictures_end = number * self._video.codec_context.time_base + shown

    def _frame_pts(self, frame: Frame) -> int:
        if frame.pts is None:
            fps = self.info.fps or Fraction(25)
            return round(Fraction(frame.index) / fps / self.info.time_base)
        if frame.time_base is None or frame.time_base == self.info.time_base:
            return frame.pts
        return round(frame.pts * frame.time_base / self.info.time_base)

    def _counts_frames(self) -> bool:
        """Whether the output times frames by their count at one rate: its container (AVI) or its encoder
        (CFR_ONLY_CODECS: MPEG-4 Part 2 and the like)."""
        assert self._out is not None
        return self._out.format.name in CFR_CONTAINERS or self.codec in CFR_ONLY_CODECS

    def _frame_number(self, seconds: Fraction) -> int | None:
        """A frame's pts on the encoder's clock: the tick its time rounds to, or the next free one, so that no two
        frames share a tick. Where frames are counted at one rate (_counts_frames), two of a variable rate's can
        round to one number: the next is taken while that is less than a frame late, None past that (the frame is
        left out), so that no frame is shown a frame or more late and the frames after it do not drift off their
        times and the audio. Elsewhere the clock is the source's own, whose frames fall on ticks of their own,
        except where a stretch starts off its grid: a scan's 1/30 s clock cut at 1.25 s put the frame on screen
        then (shown from 0) and the next one (half a tick later) on one tick, which the muxer refused."""
        assert self._out is not None and self._video is not None
        tick = self._video.codec_context.time_base
        since = seconds - (self._shift or 0)
        counted = self._counts_frames()
        if self._phase is None:  # AVI stores no start: its first frame is its first chunk
            on_grid = not counted or self._out.format.name in CFR_CONTAINERS
            self._phase = Fraction(0) if on_grid else since - round(since / tick) * tick
        exact = (since - self._phase) / tick
        number = max(round(exact), self._last_pts + 1)
        if counted and number - exact >= 1:
            return None
        self._last_pts = number
        return number

    def _to_video_frame(self, frame: Frame, number: int) -> av.VideoFrame:
        """The frame in the encoder's pixel format, at `number` on the encoder's clock (_frame_number)."""
        if self._turns:
            frame = replace(frame, image=np.rot90(frame.image, self._turns),
                            alpha=None if frame.alpha is None else np.rot90(frame.alpha, self._turns))
        image = frame.image
        if image.shape != (self.info.height, self.info.width, 3):
            raise ValueError(f"frame {frame.index} is {image.shape}, expected "
                             f"({self.info.height}, {self.info.width}, 3)")
        if self._pix_fmt.startswith("gray"):
            yuv = _gray_frame(image, self._pix_fmt)
        elif self._palette is not None or self._pix_fmt in RGB_FORMATS:  # a GIF's palette filters, an APNG
            pixels = to_uint8(image)  # both 8 bits a channel
            if self._pix_fmt == "rgba":
                pixels = np.dstack([pixels, to_uint8(frame.alpha) if frame.alpha is not None else
                                    np.full(pixels.shape[:2], 255, np.uint8)])
            yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgba" if pixels.shape[2] == 4
                                             else "rgb24")
            if frame.duration and frame.time_base is not None:  # each frame's delay is stored, the last one's too
                self._last_delay = frame.duration * frame.time_base
        else:
            matrix = SWS_MATRIX.get(yuv_colorspace(self.info.colorspace, self.info.pix_fmt, self._pix_fmt), SWS_BT601)
            source = frame.source
            if source is not None and not self._turns and source.written_as(
                    self._pix_fmt.replace("yuvj", "yuv"), self.info.width, self.info.height, matrix,
                    self._range == RANGE_JPEG):  # the source's samples; the restored RGB's only where it changed
                yuv = kept_frame(source, frame.touched, self._pix_fmt,
                                 lambda box: self._converted(frame, matrix, box, self._region_reformatter))
            else:
                yuv = self._converted(frame, matrix, None, self._reformatter)
        yuv.color_primaries, yuv.color_trc = self.info.color_primaries, self.info.color_trc
        yuv.colorspace, yuv.color_range = yuv_colorspace(self.info.colorspace, self.info.pix_fmt, self._pix_fmt), self._range
        codec_tb = self._video.codec_context.time_base
        yuv.pts = number
        yuv.time_base = codec_tb
        if frame.duration and frame.time_base is not None:  # the muxer stores it: the last frame keeps its length
            yuv.duration = max(1, round(frame.duration * frame.time_base / codec_tb))
        return self._fields.flag(yuv) if self._fields is not None else yuv

    def _converted(self, frame: Frame, matrix: int, box: Box | None, reformatter: VideoReformatter) -> av.VideoFrame:
        """The frame's RGB, or its `box` of it, in the encoder's YUV (or RGB) format, converted with swscale's
        `matrix`. Everything explicit, one swscale thread (see SWS_THREADS); transfer and primaries are only
        tagged (_to_video_frame), never converted."""
        image, alpha = frame.image, frame.alpha
        if box is not None:
            x0, y0, x1, y1 = box
            image, alpha = image[y0:y1, x0:x1], None if alpha is None else alpha[y0:y1, x0:x1]
        deep = image.dtype == np.uint16
        rgb_format = "rgb48le" if deep else "rgb24"
        if has_alpha(self._pix_fmt):  # the frame's transparency beside its colours (opaque where it has none)
            opaque = np.iinfo(image.dtype).max
            alpha = alpha if alpha is not None else np.full(image.shape[:2], opaque, image.dtype)
            image, rgb_format = np.dstack([image, alpha.astype(image.dtype)]), "rgba64le" if deep else "rgba"
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, dtype=image.dtype), format=rgb_format)
        if self._wide is not None:
            return to_full_range(reformatter, rgb, self._pix_fmt, self._wide, matrix)  # chroma rounded
        output = av.VideoFormat(self._pix_fmt)
        if deep and not output.is_rgb:  # 16-bit RGB into YUV: swscale's gain undone, alpha kept exact
            ready_deep_rgb(rgb, output.components[0].bits)
        return reformatter.reformat(rgb, format=self._pix_fmt, src_colorspace=matrix, dst_colorspace=matrix,
                                    src_color_range=RANGE_JPEG,
                                    dst_color_range=RANGE_JPEG if self._range == RANGE_JPEG else RANGE_MPEG,
                                    threads=SWS_THREADS)

    def _encode(self, frame: av.VideoFrame | None) -> None:
        """Encode and mux one frame (None: flush the encoder), through the GIF palette filters if any."""
        if self._palette is None:
            self._encode_frame(frame)
            return
        for paletted in self._palette.push(frame) if frame is not None else self._palette.flush():
            self._encode_frame(paletted)
        if frame is None:
            self._encode_frame(None)

    def _encode_frame(self, frame: av.VideoFrame | None) -> None:
        """Encode one frame (None: flush) and mux its packets, each with its frame's duration, which the GIF and
        APNG muxers store as the frame's delay (the apng encoder answers a frame later, and with none)."""
        assert self._out is not None and self._video is not None
        if frame is not None and frame.duration:
            self._delays[frame.pts] = frame.duration
        with scheduled_as_before():
            packets = self._video.encode(frame)
        unset_dts = frame is None and self.codec == "libx265" and self.frames_written <= X265_UNSET_DTS_FRAMES
        for packet in packets:
            if unset_dts:  # (an I and a P frame at most): each is decoded at its own time (X265_UNSET_DTS_FRAMES)
                packet.dts = packet.pts
            packet.duration = self._delays.pop(packet.pts, None) or packet.duration
            if self._phase:
                self._off_grid(packet)
            if not self._muxed:  # an AVI's video that begins after a copied stream: shown from its own time
                open_at_its_time(self._out, self._video, packet)
                self._muxed = True
            self._out.mux(self._cut.push(packet) if self._cut is not None else packet)
        if frame is None and self._cut is not None:
            self._out.mux(self._cut.flush())

    def _off_grid(self, packet: av.Packet) -> None:
        """A packet of an encoder that counts frames (mpeg2video, mpeg4) moved by the first frame's phase, onto
        the stream's own clock: counted from 0, a PAL DVD's frames, which begin half a frame off 1/25 s, were all
        half a frame (20 ms) late against the copied sound."""
        assert self._video is not None and self._phase is not None
        clock = self._video.time_base
        for name in ("pts", "dts"):
            stamp = getattr(packet, name)
            if stamp is not None:
                setattr(packet, name, round((stamp * packet.time_base + self._phase) / clock))
        packet.duration = round(packet.duration * packet.time_base / clock)
        packet.time_base = clock

    # -- copied streams ----------------------------------------------------------------------------
    def _mux_copies_until(self, limit: Fraction | None) -> None:
        """Mux the source's copied packets whose time is <= limit (all of them when limit is None)."""
        if self._copied is not None:
            self._copied.mux_until(limit, self._shift)

    # -- closing -----------------------------------------------------------------------------------
    def _finish(self) -> None:
        assert self._out is not None and self._video is not None
        if self.frames_written == 0:
            raise ClrfaceError(f"no frames were written to {self.output.name}")
        self._encode(None)
        if self._crowded:
            rate = f"{float(1 / self._video.codec_context.time_base):g}"
            counter = f"a {self.output.suffix} file" if self._out.format.name in CFR_CONTAINERS else self.codec
            log.warning("%d frames of the variable rate are left out of %s: each came less than 1/%s s after the one "
                        "before, and %s counts frames at %s fps; .mkv or .mp4 with libx264 keep every frame",
                        self._crowded, self.output.name, rate, counter, rate)
        if self._copied is not None:  # MXF and DV stop the file where a track ends: sound lasts as the pictures do
            sound_to = self._pictures_end if self._out.format.name in SOUND_TO_END_MUXERS else None
            self._copied.finish(self._end, self._shift, sound_to)
        self._close_marked()
        if self.codec == "apng":  # the source APNG's own delays (a zero one too), or at least the last frame's
            delays = frame_delays(self.source)  # none unless the source is an APNG
            copied = bool(delays) and copy_delays(self.partial, delays, self._source_numbers(), self._shown)
            if not copied and self._last_delay is not None:
                set_last_delay(self.partial, self._last_delay)
        if is_sequence(self.output):  # each finished frame into place, then the hidden folder goes
            for frame in sorted(self.partial.parent.iterdir()):
                os.replace(frame, self.output.parent / frame.name)
            self.partial.parent.rmdir()
        else:
            os.replace(self.partial, self.output)

    def _source_numbers(self) -> list[int]:
        """The source frame number of each frame written, by its pts among the source's packets (-1: none)."""
        with open_input(self.source) as container:
            stream = video_stream(container, self.source)
            numbers = {round(packet.pts * stream.time_base / self.info.time_base): number for number, packet
                       in enumerate(p for p in container.demux(stream) if p.pts is not None)}
        return [numbers.get(pts, -1) for pts in self._written_pts]

    def _close_marked(self) -> None:
        """Close the output, and say the stretch it holds where only a box after its moov can (io.stretch_tag)."""
        assert self._out is not None
        muxer = self._out.format.name
        self._close_containers()
        stretch_tag.append_box(self.partial, muxer, self.span)

    def _close_containers(self) -> None:
        out, source, self._out, self._source = self._out, self._source, None, None
        try:
            if out is not None:
                out.close()
        finally:
            if source is not None:
                source.close()

    def _abort(self) -> None:
        try:
            self._close_containers()
        except Exception:  # noqa: BLE001 - cleanup after an error must not hide it
            self._out = self._source = None
        if is_sequence(self.output):
            shutil.rmtree(self.partial.parent, ignore_errors=True)
        else:
            discard(self.partial)
