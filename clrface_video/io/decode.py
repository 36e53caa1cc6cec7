"""Probe videos and stream their frames as RGB arrays with the source timestamps untouched."""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from itertools import chain
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from clrface_video.errors import InputError, one_line, option_name
from clrface_video.io.apng import is_animated_png
from clrface_video.io.clock import STAMPS_ONLY, lasting, stamps_only, timed_frames
from clrface_video.io.completeness import check_complete, check_gif_frames, index_beyond_eof, size_changed
from clrface_video.io.damage import Damage
from clrface_video.io.deinterlace import deinterlaced
from clrface_video.io.field_order import frame_field_order
from clrface_video.io.odd_width import even_width, needs_even_width
from clrface_video.io.quicktime import moov_cut, moov_missing, track_end
from clrface_video.io.sequence import find_sequence, is_sequence, open_options, unreadable_frame
from clrface_video.io.side_data import Hdr10, display_matrix, frame_side_data, hdr10
from clrface_video.io.source_planes import keep_planes
from clrface_video.io.webp_anim import is_animated_webp
from clrface_video.types import SPAN_TOLERANCE, Frame, SourcePlanes, TimeSpan

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mts",
                              ".m2ts", ".vob", ".mxf", ".dv", ".3gp", ".wmv", ".asf", ".gif", ".apng",
                              ".mod", ".tod"})  # an animated GIF or PNG is restored as a video, into its format;
# .MOD and .TOD: SD and HD camcorders' MPEG-2, written as .mpg and .ts (output_stream.RENAMED_CONTAINERS)
# .jfif and .jpe: JPEGs as Windows browsers save them; .hif: the HEIF photos of Canon and Fujifilm cameras;
# .mpo: a 3D camera's (Fujifilm W3, Nintendo 3DS) JPEG of several views (io.multi_picture)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic",
                              ".heif", ".hif", ".avif", ".mpo"})
# Camera RAW files (Adobe DNG; Canon, Nikon, Sony, Olympus, Panasonic, Fujifilm, Pentax, Samsung, Sigma,
# Hasselblad, Phase One, Epson, Kodak, Mamiya, Leaf, Minolta, Leica): most are TIFF inside, so Pillow and FFmpeg
# read their small embedded preview as if it were the photo. restore does not develop RAW.
RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                            ".raf", ".pef", ".srw", ".x3f", ".3fr", ".fff", ".iiq", ".erf", ".kdc", ".dcr", ".mef",
                            ".mos", ".mrw", ".rwl"})
UNSPECIFIED = 2  # AVColorPrimaries, AVColorTransferCharacteristic and AVColorSpace's "unspecified"
COPY_STREAM_TYPES = ("audio", "subtitle", "data")
# Streams whose demuxer's average rate is not the video's: raw elementary streams (no container clock: it reports
# a default 25) and raw DV (its average is its clock's tick, 60000, not the DV system's 25 or 30000/1001).
RAW_STREAM_FORMATS = frozenset({"h264", "hevc", "mpegvideo", "m4v", "rawvideo", "obu", "vvc", "dv"})
# AVColorSpace -> swscale matrix (PyAV's Colorspace values); unknown tags use swscale's default (BT.601).
SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
SWS_BT601 = 5
NEAR_SQUARE = 0.01  # pixel aspect ratios this close to 1 are aligned as square, and not warned of where lost
RANGE_MPEG, RANGE_JPEG = 1, 2
# AVFieldOrder (VideoInfo.field_order): progressive, and the orders that show the top or the bottom field first
FIELD_PROGRESSIVE, FIELDS_TOP_FIRST, FIELDS_BOTTOM_FIRST = 1, (2, 5), (3, 4)
DV_SD_HEIGHTS = (480, 576)  # NTSC and PAL DV (DV25, DVCPRO50): interlaced bottom field first
# Every RGB<->YUV conversion runs swscale on one thread. With FFmpeg 8 (PyAV 18's sws_scale_frame),
# threaded swscale converting rgb48le to 10-bit YUV intermittently writes wrong values into the
# first pixels of each slice (rows h/3 and 2h/3 with 3 threads), differently from run to run, so
# results depended on timing and on what else ran in the process.
SWS_THREADS = 1
# YUV to RGB with chroma interpolated at full width and rounding done right: swscale's default path came out
# about 1 level darker (luma -1.04 to -1.08 on liveportrait_s20 and the 1080p crowd clip, read and written again;
# with these flags -0.02 to +0.004), a shift every restored video carried in all its pixels. It costs about
# 13 ms more for a 1080p frame on one thread (benchmarks/yuv_to_rgb.py). 8-bit YUV only (_plain_yuv).
YUV_TO_RGB = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
LIMITED_ROWS = 16  # rows _limited_scale scales at a time (16 rows of 1080p: 180 kB a temporary)
# WebM keeps a VP8/VP9 frame's alpha in a second picture beside it (Matroska BlockAdditional, the track tagged
# alpha_mode=1); FFmpeg's own vp8/vp9 decoders leave it out, libvpx's read it (yuva420p frames).
ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What a writer needs to reproduce a video's geometry, timing and colour.

    frames: the container's frame count, or None when the container does not store it.
    rotation: counter-clockwise display rotation in degrees (pixels are never rotated).
    color_*: FFmpeg enum values (AVColorPrimaries, AVColorTransferCharacteristic,
    AVColorSpace, AVColorRange) as PyAV exposes them.
    other_streams: how many streams besides the restored video (audio, subtitles, data, attachments, cover
    pictures) a writer has to carry over or say it leaves out.
    codec: the source's video decoder name.
    display_matrix: the 9 int32 of FFmpeg's display matrix (rotation and mirroring), or None.
    interlaced: the first frame is flagged interlaced (fields, as from DV, VHS or broadcast captures).
    sample_aspect_ratio: the shape of a pixel (width / height) when it is not square (anamorphic DV,
    DVD), or None.
    hdr10: the mastering display and content light levels of an HDR10 source (from its first frame), or None.
    alpha: the frames carry transparency (a pixel format with alpha, and a first frame not wholly opaque).
    base_fps: the rate of the stream's finest regular tick, which a variable rate's frames fall on (25 for a
    25 fps camera that dropped frames, whose average rate `fps` is lower); a constant-rate file's clock.
    field_order: FFmpeg's AVFieldOrder of the stream (0 unknown, 1 progressive, 2 top first, 3 bottom first, 4-5
    mixed), for writing interlaced frames back as such.
    """

    path: Path
    width: int
    height: int
    frames: int | None
    fps: Fraction | None
    time_base: Fraction
    pix_fmt: str
    bit_depth: int
    rotation: int
    color_primaries: int
    color_trc: int
    colorspace: int
    color_range: int
    duration_s: float | None
    has_audio: bool
    other_streams: int
    codec: str = ""
    display_matrix: tuple[int, ...] | None = None
    interlaced: bool = False
    sample_aspect_ratio: Fraction | None = None
    hdr10: Hdr10 | None = None
    alpha: bool = False
    field_order: int = 0
    base_fps: Fraction | None = None  # the rate every frame's time is a multiple of (FFmpeg's r_frame_rate)

    @property
    def pixel_aspect(self) -> float:
        """Width over height of one pixel for aligning faces: 1 for square pixels, and for ratios within
        1% of square (such as 389/388, which scaling to an even width leaves behind: below landmark noise)."""
        ratio = float(self.sample_aspect_ratio) if self.sample_aspect_ratio else 1.0
        return 1.0 if abs(ratio - 1.0) < NEAR_SQUARE else ratio


STILL_SUFFIXES = {"jpeg": "jpg", "tiff": "tif", "jpegls": "jls"}  # a still picture's usual extension, by reader


def media_kind(path: Path | str) -> str | None:
    """"video" or "photo" by the file's extension (an animated PNG or WebP is a video), "raw" for a camera RAW
    file (which restore does not read: check_not_raw), None for other files."""
    suffix = Path(path).suffix.lower()
    if suffix in RAW_EXTENSIONS:
        return "raw"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "video" if is_animated_png(path) or is_animated_webp(path) else "photo"
    return None


def check_not_raw(path: Path) -> None:
    """InputError for a camera RAW file (RAW_EXTENSIONS), before anything reads it: read as a TIFF or a video it
    gives its embedded preview, or a message that sends the user to rename it."""
    if media_kind(path) == "raw":
        raise InputError(f"{path.name} is a camera RAW file, which restore does not read: export a TIFF or JPEG "
                         "from your RAW developer (Lightroom, darktable, RawTherapee, ...) and restore that")


def is_video_path(path: Path | str) -> bool:
    """True when the file name has a common video extension, or it is an animated PNG."""
    return media_kind(path) == "video"


def is_image_path(path: Path | str) -> bool:
    """True when the file name has a common still-image extension (and it is not an animated PNG)."""
    return media_kind(path) == "photo"


def open_input(path: Path, fps: Fraction | None = None) -> av.container.InputContainer:
    """Open a media file, or a numbered image sequence (read at `fps`, 24 when None), turning every failure
    into a one-line InputError (an MP4/MOV cut before its moov said to be truncated, not unreadable)."""
    if is_sequence(path):
        sequence = find_sequence(path)
        try:
            return av.open(str(path), format="image2", options=open_options(sequence, fps))
        except (av.error.FFmpegError, ValueError) as error:
            raise InputError(f"cannot read {path.name} as an image sequence ({one_line(error)})") from error
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if not path.is_file():
        raise InputError(f"input is not a file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name} is empty (0 bytes)")  # by its name, as a folder's line names its path
    if moov_cut(path):  # FFmpeg would open what of its index is there, and read the file short
        raise InputError(f"{path.name} is truncated or still being written (its index, the moov box, is cut short)")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        if moov_missing(path):  # an MP4 or MOV whose index is written last, cut before it
            raise InputError(f"{path.name} is truncated or still being written (its index, the moov box, is "
                             "missing)") from error
        raise InputError(f"cannot read {path.name} as a video ({one_line(error)})") from error


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The video stream restored: of those that are not a cover picture (mp4/mkv "attached_pic"), the first one
    marked default (the one players show: a file may put a preview or another angle first), else the first.
    Every reader of the source (probe_video, read_frames, the writer's copies, Ray's segments) asks here."""
    moving = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not moving:
        raise InputError(f"{path.name} has no video stream")
    shown = [s for s in moving if s.disposition & av.stream.Disposition.default]
    return (shown or moving)[0]


def frame_decoder(stream: av.video.stream.VideoStream) -> av.CodecContext:
    """A decoder for the stream's packets: its own, or for WebM VP8/VP9 with alpha a new libvpx one (ALPHA_DECODERS)
    so that the alpha reaches the frames; warns that it is left out where FFmpeg was built without libvpx."""
    name = ALPHA_DECODERS.get(stream.codec_context.name)
    tagged = any(key.lower() == "alpha_mode" and value == "1" for key, value in stream.metadata.items())
    if name is None or not tagged:  # the key is ALPHA_MODE where a tag of that name was written too (a copy's)
        return stream.codec_context
    if not _can_decode(name):
        _alpha_left_out(stream.container.name, name)
        return stream.codec_context
    decoder = av.CodecContext.create(name, "r")
    decoder.thread_type = stream.codec_context.thread_type
    return decoder


@cache
def _can_decode(name: str) -> bool:
    try:
        av.Codec(name, "r")
    except av.error.FFmpegError:
        return False
    return True


@cache
def _alpha_left_out(path: str, decoder: str) -> None:
    """Say once per file (it is opened to probe it, then to read it) that its alpha is not read."""
    log.warning("%s: the video's alpha channel is left out: this FFmpeg has no %s decoder to read it",
                Path(path).name, decoder)


def _bit_depth(pix_fmt: str) -> int:
    try:
        return max(8, av.VideoFormat(pix_fmt).components[0].bits)
    except (ValueError, IndexError):
        return 8


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 path: Path) -> av.VideoFrame:
    decoder = frame_decoder(stream)
    try:
        for packet in container.demux(stream):
            for frame in decoder.decode(packet):
                return frame
    except av.error.FFmpegError as error:
        if is_sequence(path):
            raise unreadable_frame(path, 0) from error
        raise InputError(f"{path.name}: cannot decode the first frame ({one_line(error)})") from error
    raise InputError(f"{path.name} has no video frames (zero-length video)")


def _field_order(ctx: av.video.codeccontext.VideoCodecContext, first: av.VideoFrame) -> int:
    """The stream's AVFieldOrder, or where it states none, an interlaced first frame's own: for a
    standard-definition DV tape, bottom field first (as DV 525/625 always is), else the frame's flag
    (io.field_order: an FFV1 in Matroska carries it in each frame only). Their fields kept by --deinterlace off
    were written as progressive frames into every encoder but dvvideo."""
    if ctx.field_order or not first.interlaced_frame:
        return int(ctx.field_order or 0)
    if ctx.name == "dvvideo" and first.height in DV_SD_HEIGHTS:
        return FIELDS_BOTTOM_FIRST[0]
    return frame_field_order(first)


def _stated_colour(ctx: av.codec.context.CodecContext) -> tuple[int, int, int]:
    """The container's primaries, transfer and matrix, read before a frame is decoded (a decoder overwrites
    them with its frame header's)."""
    return int(ctx.color_primaries), int(ctx.color_trc), int(ctx.colorspace)


def _colour_tag(decoded: int, stated: int) -> int:
    """The first frame's primaries, transfer or matrix, or the container's where the frame's is unspecified: a
    ProRes frame header (FFmpeg's prores_ks writes its frames' tags, not the stream's) may say unspecified where
    the .mov's colr atom, which editors and players read, names BT.709."""
    return int(stated) if decoded == UNSPECIFIED and stated not in (0, UNSPECIFIED) else int(decoded)


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def stream_fps(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The frame rate: the container's average, or for a raw stream (RAW_STREAM_FORMATS) the rate its own
    headers give."""
    raw = stream.container.format.name in RAW_STREAM_FORMATS
    rate = (stream.guessed_rate or stream.average_rate) if raw else \
        (stream.average_rate or stream.guessed_rate or stream.base_rate)
    return Fraction(rate) if rate else None


def _sample_aspect_ratio(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's pixel shape where it states one, square (1) too, which the output then states as well where its
    encoder or container keeps any (H.264, HEVC, AV1, MPEG-1/2/4 Part 2; ProRes in .mov): taken as unset, a source's
    1:1 came out unset from all but MPEG-1/2/4 Part 2 and AV1, which state one always, leaving players to guess."""
    ratio = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(ratio) if ratio else None


def _transparent(frame: av.VideoFrame, high_depth: bool) -> bool:
    """Whether any pixel of the frame is less than opaque (a GIF's or a camera's alpha plane is often all opaque)."""
    alpha = frame_to_array(frame, high_depth, alpha=True)[..., 3]
    return bool(alpha.min() < 0.99 * np.iinfo(alpha.dtype).max)  # within 1% of opaque counts as opaque


def _still_picture(container: av.container.InputContainer, path: Path, fps: Fraction | None) -> str | None:
    """The format ("jpeg", "png", "webp", ...) of a file that is one still picture under another name, read by
    FFmpeg's picture readers (jpeg_pipe, ...); None for a video. Those readers also read pictures stored one
    after another (a capture of PNG frames), which is a video, as is an .apng of one frame (FFmpeg's APNG
    reader takes only an animated one), and a numbered image sequence. Not so a JPEG followed by another: FFmpeg
    reads a JPEG stream with its mjpeg reader, and jpeg_pipe's second picture is a photo's own (an MPO's
    other view, a phone's depth map)."""
    still = container.format.name.removesuffix("_pipe")
    if still == container.format.name or is_sequence(path) or path.suffix.lower() == ".apng":
        return None
    if still == "jpeg":
        return still
    with open_input(path, fps) as again:
        pictures = (packet for packet in again.demux(again.streams.video[0]) if packet.size)
        return still if next(pictures, None) is None or next(pictures, None) is None else None


def probe_video(path: Path | str, fps: Fraction | None = None) -> VideoInfo:
    """Read a video's geometry, timing, colour and stream layout (decodes one frame).

    Raises InputError for a missing or empty file, a file that is not media, a file without
    a video stream, or a video without frames. `path` may be a numbered image sequence
    (io.sequence), read at `fps` frames per second (24 when None).
    """
    path = Path(path)
    with open_input(path, fps) as container:
        stream = video_stream(container, path)
        ctx = stream.codec_context
        still = _still_picture(container, path, fps)
        if still is not None:
            raise InputError(f"{path.name} is a {still.upper()} image, not a video file: name it "
                             f".{STILL_SUFFIXES.get(still, still)} and restore it as the image it is (its metadata "
                             "kept, an animation too)")
        if index_beyond_eof(stream, path):
            raise InputError(f"{path.name} is truncated: its index or header points past the end of the file")
        check_gif_frames(container, path)  # before any model loads or Ray starts
        stated = _stated_colour(ctx)
        first = _first_frame(container, stream, path)
        side_data = frame_side_data(first)
        pix_fmt = first.format.name
        transparent = has_alpha(pix_fmt) and _transparent(first, _bit_depth(pix_fmt) > 8)
        return VideoInfo(
            path=path,
            width=first.width,
            height=first.height,
            frames=find_sequence(path).count if is_sequence(path) else stream.frames or None,
            fps=stream_fps(stream),
            time_base=Fraction(stream.time_base),
            pix_fmt=pix_fmt,
            bit_depth=_bit_depth(pix_fmt),
            rotation=int(first.rotation),
            color_primaries=_colour_tag(first.color_primaries or ctx.color_primaries, stated[0]),
            color_trc=_colour_tag(first.color_trc or ctx.color_trc, stated[1]),
            colorspace=_colour_tag(first.colorspace or ctx.colorspace, stated[2]),
            color_range=int(first.color_range or ctx.color_range),
            duration_s=_duration_s(container, stream),
            has_audio=bool(container.streams.audio),
            other_streams=sum(1 for s in container.streams if s.index != stream.index),
            codec=ctx.name,
            display_matrix=display_matrix(side_data),
            hdr10=hdr10(side_data),
            alpha=transparent,
            field_order=_field_order(ctx, first),
            interlaced=bool(first.interlaced_frame),
            sample_aspect_ratio=_sample_aspect_ratio(stream),
            base_fps=Fraction(stream.guessed_rate) if stream.guessed_rate else None,
        )


def has_alpha(pix_fmt: str) -> bool:
    """Whether an FFmpeg pixel format carries transparency (yuva444p10le, rgba, bgra, gbrap, ya8, ...)."""
    return len(av.VideoFormat(pix_fmt).components) in (2, 4)


def frame_to_array(frame: av.VideoFrame, high_depth: bool,
                   reformatter: VideoReformatter | None = None, *, alpha: bool = False) -> np.ndarray:
    """(H, W, 3) RGB: uint8, or uint16 full scale (rgb48) when high_depth; uses the frame's colour tags.
    With alpha, (H, W, 4) RGBA (the frame's transparency last; opaque where the frame has none).

    The matrix and range are passed to swscale explicitly, and it runs on one thread: FFmpeg 8's
    threaded swscale intermittently writes wrong pixels at slice starts (see SWS_THREADS).
    Pass one `reformatter` per stream to reuse its swscale context.
    """
    if reformatter is None:
        reformatter = VideoReformatter()
    widened = high_depth and needs_even_width(frame)  # swscale scrambles these (io.odd_width)
    if widened:
        frame = even_width(frame)
    range_ = int(frame.color_range)
    if range_ not in (RANGE_MPEG, RANGE_JPEG) and frame.format.name.startswith("gray"):
        range_ = RANGE_JPEG  # an untagged grey still (a black-and-white scan) uses the whole range
    formats = ("rgba64le", "rgba") if alpha else ("rgb48le", "rgb24")
    rgb = reformatter.reformat(frame, format=formats[0] if high_depth else formats[1],
                               src_colorspace=SWS_MATRIX.get(int(frame.colorspace)),  # None: the frame's own tag
                               src_color_range=range_ if range_ in (RANGE_MPEG, RANGE_JPEG) else None,
                               interpolation=YUV_TO_RGB if _plain_yuv(frame.format.name) and not high_depth
                               else None, threads=SWS_THREADS)
    array = rgb.to_ndarray()
    if widened:
        array = np.ascontiguousarray(array[:, :-1])
    bits = _bit_depth(frame.format.name)
    if high_depth and bits > 8 and not frame.format.is_rgb:  # RGB is read right
        gray = frame.format.name.startswith("gray")
        if bits < 16 and (gray or range_ == RANGE_JPEG):  # swscale reads grey as full range, whatever its tag
            _full_scale(array[..., :3], bits)
        elif not gray and range_ != RANGE_JPEG:
            _limited_scale(array[..., :3])
        if alpha and bits < 16:  # swscale reads a YUV frame's alpha x2^(16 - bits), in either range
            _full_scale(array[..., 3], bits)
    return array


def source_planes(frame: av.VideoFrame, deint: str | None) -> SourcePlanes | None:
    """The frame's YUV planes with the matrix and range frame_to_array reads them with (an unspecified matrix as
    swscale's BT.601, an unspecified range as limited), for the writer to keep where nothing was restored; None
    for a deinterlaced frame (bwdif's, not the source's), or one whose matrix swscale is not told (its own tag)."""
    colorspace = int(frame.colorspace)
    if deint is not None or (colorspace not in SWS_MATRIX and colorspace != UNSPECIFIED):
        return None
    return keep_planes(frame, SWS_MATRIX.get(colorspace, SWS_BT601), int(frame.color_range) == RANGE_JPEG)


def _full_scale(rgb: np.ndarray, bits: int) -> None:
    """Stretch, in place, rgb48 samples that swscale read from full-range YUV or grey of `bits` (9-15) bits (grey
    of either range: swscale reads a limited grey as full range, as at 8 bits), or alpha from YUV of any range
    (10-bit opaque 1023 gave 65472), to full scale.

    Why: swscale reads those samples by x2^(16 - bits), not x65535/(2^bits - 1), so 10-bit white came out
    65472 and every colour 0.1% dark (all three channels alike: the conversion is linear); with its rgb48 to YUV
    gain of 256/255 (io.full_range) a full-range 10-bit clip came back 0.3 luma codes (8-bit) brighter each run.
    x * 65535 / (top << shift) = x + x * (2^shift - 1) / (top << shift); the second term is taken from x's top
    `bits` bits, which keeps it in 16-bit integers (a third of the time of uint32 arithmetic) and within one
    16-bit step of exact."""
    shift, top = 16 - bits, (1 << bits) - 1
    extra = rgb >> shift
    extra *= (1 << shift) - 1
    extra += top // 2
    extra //= top
    np.minimum(rgb, 65535 - extra, out=rgb)  # colours swscale clipped at 65535 stay there
    rgb += extra


def _limited_scale(rgb: np.ndarray) -> None:
    """Scale, in place, rgb48 samples (H, W, 3) that swscale read from limited-range YUV of 9-16 bits by 256/255.

    Why: swscale reads those by 255/256 of full scale (10-bit white 940 gave 65283, mid grey 502 gave 32641 for
    32767.5, every colour 0.4% dark, all three channels alike), which a copy back into YUV hid (rgb48 to YUV
    gains 256/255: io.full_range.ready_deep_rgb) but a 16-bit PNG, TIFF or DPX sequence kept. x * 256 / 255 =
    x + x / 255, the second term as ((x >> 1) + (x >> 9) + 64) >> 7 in 16-bit integers, within one 16-bit step
    of round(x / 255); colours swscale clipped at 65535 (super-white) stay there. It runs on LIMITED_ROWS rows at
    a time: the temporaries stay in cache (a 1080p frame took 3.9 ms instead of 16.6 in one piece)."""
    for top in range(0, rgb.shape[0], LIMITED_ROWS):
        rows = rgb[top:top + LIMITED_ROWS]
        extra = rows >> 1
        extra += rows >> 9
        extra += 64
        extra >>= 7
        np.minimum(rows, 65535 - extra, out=rows)
        rows += extra


def _plain_yuv(pix_fmt: str) -> bool:
    """An 8-bit YUV format (yuv420p, yuvj422p, nv12, ...): the ones YUV_TO_RGB is measured on; swscale's
    accurate path makes deeper ones (10-bit to rgb48) worse, not better."""
    return pix_fmt.startswith(("yuv", "nv")) and _bit_depth(pix_fmt) == 8


def _first_size(path: Path, fps: Fraction | None) -> tuple[int, int]:
    """(height, width) of a video's first frame, read on its own."""
    with open_input(path, fps) as container:
        first = _first_frame(container, video_stream(container, path), path)
        return first.height, first.width


def stated_end(path: Path, stream: av.video.stream.VideoStream) -> tuple[int, int] | None:
    """Where a QuickTime/MP4 file states its video track ends, in the stream's ticks, and that figure's
    precision in ticks (io.clock.lasting's `end`); None for other containers, or a file that states none."""
    if stream.container.format.name.split(",")[0] != "mov" or is_sequence(path):
        return None
    found = track_end(path, stream.id)
    if found is None:
        return None
    seconds, precision = found
    time_base = Fraction(stream.time_base)
    return round(seconds / time_base), max(1, math.ceil(precision / time_base))


Decoding = tuple[av.container.InputContainer, av.video.stream.VideoStream, Iterator[av.VideoFrame]]


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
          seconds: float | Fraction, damage: Damage | None = None, since: int | None = None
          ) -> tuple[av.VideoFrame | None, Iterator[av.VideoFrame]] | None:
    """The first frame decoded after a seek to the keyframe at or before `seconds` from the stream's start (None
    at the end), and the frames after it; None when the file cannot seek. since: as timed_frames."""
    target = (stream.start_time or 0) + int(Fraction(seconds) / Fraction(stream.time_base))
    frames = timed_frames(container, stream, stream_fps(stream), damage, frame_decoder(stream), since)
    try:
        container.seek(target, stream=stream, backward=True)
        return next(frames, None), frames
    except (av.error.FFmpegError, ValueError):
        return None


def decoding(open_files: ExitStack, path: Path, fps: Fraction | None, start: float | Fraction | None, *,
             start_pts: int | None = None, damage: Damage | None = None, since: int | None = None) -> Decoding:
    """The video opened in `open_files`, its stream and its frames (timed_frames): from the keyframe at or before
    `start` seconds from its first frame (or at or before pts `start_pts`: a Ray segment's keyframe), or from the
    first frame when neither is given or the file cannot seek (a raw .h264 stream). MPEG-TS seeks by guessed byte
    positions and can land a keyframe late, or at the end: the seek goes back 1, 2, 4 ... s before the start
    until it lands at or before it (from the first frame at worst), so that no frame of the stretch is lost and
    a long recording is not decoded from its start. The caller leaves out the frames before its start.
    damage: where damaged packets passed over are counted (timed_frames); None: the first one raises. Damage
    before the start is not said (since, timed_frames): a Ray segment decoded from an earlier keyframe said its
    neighbour's again, and counted it twice."""
    container = open_files.enter_context(open_input(path, fps))
    stream = video_stream(container, path)
    if stamps_only(container, stream):  # the packs' own stamps, none filled in by FFmpeg (io.clock._Plausible)
        container.flags |= STAMPS_ONLY
    matrix = _stated_colour(stream.codec_context)[2]
    check_gif_frames(container, path)  # whether from the first frame, a --start or a Ray segment's keyframe
    stream.thread_type = "AUTO"
    origin, time_base = stream.start_time or 0, Fraction(stream.time_base)
    if start_pts is not None:
        start = (start_pts - origin) * time_base
    if start is not None and since is None:
        since = start_pts if start_pts is not None else origin + int(Fraction(start) / time_base)
    if start is None:
        frames = timed_frames(container, stream, stream_fps(stream), damage, frame_decoder(stream), since)
        return container, stream, _in_stated_matrix(frames, matrix)
    back = 0
    while back < start and (landed := _seek(container, stream, start - back, damage, since)) is not None:
        first, frames = landed
        if first is not None and (first.pts is None or (first.pts - origin) * time_base <= start + SPAN_TOLERANCE):
            return container, stream, _in_stated_matrix(chain([first], frames), matrix)
        back = back * 2 or 1
    return decoding(open_files, path, fps, None, damage=damage, since=since)  # anew from the first frame


def _in_stated_matrix(frames: Iterator[av.VideoFrame], matrix: int) -> Iterator[av.VideoFrame]:
    """The frames, each whose matrix is unspecified tagged with the container's (_colour_tag), so that it is read
    to RGB as editors read it, and as VideoInfo.colorspace writes it back."""
    for frame in frames:
        frame.colorspace = _colour_tag(int(frame.colorspace), matrix)
        yield frame


def read_frames(path: Path | str, deint: str | None = None, fps: Fraction | None = None,
                span: TimeSpan | None = None, *, alpha: bool = False, samples: bool = False) -> Iterator[Frame]:
    """Yield the frames of a video one at a time, decoded with threads.

    Frames are RGB uint8 for 8-bit sources and uint16 (rgb48, full scale) for deeper ones.
    pts and time_base are the source's, untouched (a stream that stores no times, a raw .h264's, gets its frames'
    count at its rate, as a writer would time them); a frame's duration lasts to the next frame's time
    (io.clock.lasting); index counts from 0. Rotation is not
    applied to the pixels (see VideoInfo.rotation). A corrupt or truncated stream raises
    InputError naming the frame index where decoding failed; a few damaged packets are passed over with a
    warning (io.clock.timed_frames), their frames left out. deint: bwdif's frame selection
    ("interlaced" or "all", see io.deinterlace.bwdif_deint) to deinterlace the frames, None not to.
    fps: the frame rate of a numbered image sequence (see probe_video). span: only the frames whose time
    from the first frame lies in it (a seek to the keyframe before its start, then decoding to its end).
    alpha: also hand over each frame's transparency (Frame.alpha; see VideoInfo.alpha).
    samples: also hand over each frame's YUV samples (Frame.source, source_planes), for a writer that keeps them
    where nothing was restored (a restore's; a reader that only looks at the frames leaves them out).
    """
    path = Path(path)
    with ExitStack() as open_files:
        whole = span is None or span.start <= 0  # decoded from the first frame, so `counted` is the file's count
        damage = Damage()
        container, stream, timed = decoding(open_files, path, fps, None if span is None or whole else span.start,
                                            damage=damage)
        time_base = Fraction(stream.time_base)
        origin = stream.start_time or 0  # pts of the first frame
        rate = stream_fps(stream) or Fraction(fps or 25)
        counted = 0  # frames decoded so far, for the time of frames that carry no pts
        last_seen = Fraction(0)  # where the last decoded frame ends, for a --start past the end
        index = 0
        high_depth: bool | None = None
        size = None if whole else _first_size(path, fps)  # (height, width) of the file's first frame, which every
        # frame must keep (the output is made that size, even for a stretch that starts after a change)
        reformatter = VideoReformatter()
        end_s: float | None = None
        decoded = lasting(deinterlaced(timed, stream, deint), stated_end(path, stream))
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except av.error.FFmpegError as error:
                raise InputError(f"{path.name}: decoding failed at frame {index} ({one_line(error)})") from error
            counted += 1
            if frame.pts is None:  # a stream with no times at all (a raw .h264 or .hevc): its count's at its rate, so
                frame.pts = origin + round((counted - 1) / rate / time_base)  # a stretch's frames are not all at 0
            if span is not None:
                seconds = (frame.pts - origin) * time_base
                last_seen = seconds + Fraction(frame.duration or 0) * time_base
                if span.not_yet(seconds, last_seen if frame.duration else None):
                    continue
                if index == 0:
                    span = span.opened_at(seconds)
                if span.past(seconds):
                    if index == 0:
                        raise InputError(f"{path.name} has no frame from {span.start:g} s to {float(span.end):g} s "
                                         f"({option_name('start')} and {option_name('duration')} fall between two frames; "
                                         f"give a longer {option_name('duration')})")
                    return  # the rest of the file is not read, so it is not checked either
                if span.end is not None and frame.duration:  # shown to the next frame,
                    room = (Fraction(span.end) - seconds) / time_base  # but not past the stretch (a VFR gap)
                    frame.duration = max(1, min(frame.duration, round(room)))
            if high_depth is None:
                high_depth = _bit_depth(frame.format.name) > 8
            image = frame_to_array(frame, high_depth, reformatter, alpha=alpha)
            size = size or image.shape[:2]
            if image.shape[:2] != size:
                raise size_changed(path, frame, origin, counted if whole else None, size, image.shape[:2])
            yield Frame(image=np.ascontiguousarray(image[..., :3]), index=index, pts=frame.pts, time_base=time_base,
                        duration=frame.duration or None,
                        alpha=np.ascontiguousarray(image[..., 3]) if alpha else None,
                        source=source_planes(frame, deint) if samples else None)
            index += 1
            end_s = float((frame.pts + (frame.duration or 0)) * time_base)
        if index == 0 and span is not None:  # a start within SPAN_TOLERANCE of a frame's end is at that end
            option = option_name("start")
            where = f"{option} is past its end" if last_seen <= span.start else \
                f"{option} is within {float(SPAN_TOLERANCE * 1000):g} ms of its end, which counts as at it"
            raise InputError(f"{path.name} has no frames from {span.start:g} s on: it ends at {float(last_seen):g} s "
                             f"({where})")
        if index == 0:
            raise InputError(f"{path.name} has no video frames (zero-length video)")
        check_complete(container, stream, path, index, end_s, stream_fps(stream),
                       decoded=counted + damage.frames if whole else None)
