"""The output video stream's setup: encoder, pixel format, time base, colour tags, fields, HDR10, options."""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av

from clrface_video.config import DEFAULT_CRF
from clrface_video.errors import ClrfaceError, one_line, option_name
from clrface_video.io.decode import (
    FIELDS_BOTTOM_FIRST,
    FIELDS_TOP_FIRST,
    RANGE_JPEG,
    RANGE_MPEG,
    VideoInfo,
    has_alpha,
)
from clrface_video.io.dv import DV_CODEC, RATE_TOLERANCE, dv_pix_fmt
from clrface_video.io.orientation import quarter_turns
from clrface_video.io.side_data import Hdr10

log = logging.getLogger(__name__)

# containers that hold no H.264, whose players and tools expect MPEG-2 (DVD, MPEG program streams, XDCAM MXF), or
# whose H.264 FFmpeg reads back wrong (AVI: it guesses a decode delay, so the first frame comes a frame late and
# the next ones out of order; MPEG-4 Part 2, AVI's own Xvid family, reads back at its chunk times)
AUTO_CODECS = {".webm": "libvpx-vp9", ".dv": "dvvideo", ".mpg": "mpeg2video", ".mpeg": "mpeg2video",
               ".vob": "mpeg2video", ".m2v": "mpeg2video", ".mxf": "mpeg2video", ".avi": "mpeg4",
               ".wmv": "wmv2", ".asf": "wmv2"}  # ASF stores no pts: FFmpeg reads H.264 there a frame late, reordered
# camcorder files under extensions FFmpeg has no muxer for, by the extension players know their container by and
# the muxer FFmpeg writes it with: JVC's and Panasonic's SD camcorders' .MOD (an MPEG-2 program stream, written
# as .mpg is) and JVC's HD camcorders' .TOD (an MPEG-2 transport stream)
RENAMED_CONTAINERS = {".mod": (".mpg", "mpeg"), ".tod": (".ts", "mpegts")}
# a source's intra, lossless or broadcast codec that --codec auto keeps (as this encoder) in these outputs, where
# an editor or an archive expects it back (each pairing written and read back; FFmpeg's MXF, MPEG-PS and -TS
# muxers accept any codec when the stream is added and refuse most when the header is written)
KEPT_CODECS = {"prores": ("prores_ks", (".mov", ".mkv", ".mxf")), "ffv1": ("ffv1", (".mkv", ".avi", ".mxf")),
               "dnxhd": ("dnxhd", (".mov", ".mxf")), "huffyuv": ("huffyuv", (".avi",)),
               "ffvhuff": ("ffvhuff", (".avi",)), "utvideo": ("utvideo", (".avi",)),
               "mpeg2video": ("mpeg2video", (".ts", ".m2ts"))}
# MP4/QuickTime muxers tag HEVC hev1 by default, which Apple's players (QuickTime, Safari, iOS) refuse: hvc1
HVC1_MUXERS = frozenset({"mov", "mp4", "ipod"})
HDR_TRANSFERS = frozenset({16, 18})  # AVColorTransferCharacteristic: SMPTE ST 2084 (PQ), ARIB STD-B67 (HLG)
CFR_CONTAINERS = frozenset({"avi"})  # containers that time frames by their count at one rate
MAX_CFR_RATE = 240  # frames per second: the fastest cameras record (slow motion); a base rate above it is a tick
MXF_RATES = frozenset(Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1),
                                                  (50, 1), (60000, 1001), (60, 1)))  # those FFmpeg's MXF writer
# takes, and MPEG-2's own frame rate codes (which --codec auto's mpeg2video needs)
# containers whose H.264 FFmpeg reads back with the wrong times when frames are reordered (AVI stores no pts;
# MXF's index gives them in decode order): their video is written without B-frames
NO_REORDER_CONTAINERS = frozenset({"avi", "mxf"})
CFR_ONLY_CODECS = frozenset({"mpeg1video", "mpeg2video", "mpeg4", "msmpeg4", "msmpeg4v2", "h263", "h263p"})
RATE_CODE_CODECS = frozenset({"mpeg1video", "mpeg2video"})  # a frame rate code in each sequence header
MPEG4_MAX_CLOCK = 65535  # MPEG-4 Part 2 codes its ticks a second (vop_time_increment_resolution) in 16 bits
# MPEG-4 Part 2 in AVI is tagged as Xvid wrote it: FFmpeg's default FMP4 is unknown to many hardware players
AVI_MPEG4_TAG = "XVID"
# encoders that code a picture as two fields only with interlaced DCT and motion on (else progressive: the fields
# of a kept interlaced source were flagged lost); they, ffv1 and dvvideo take the field order from each frame
FIELD_DCT_CODECS = frozenset({"mpeg2video", "mpeg4", "prores_ks"})
CRF_CODECS = frozenset({"libx264", "libx265", "libsvtav1", "libvpx", "libvpx-vp9", "libaom-av1"})
PRESET_CODECS = frozenset({"libx264", "libx265"})  # the encoders --preset speeds up or slows down
CRF_MAX = {"libx264": 51, "libx265": 51}  # the others take 0-63
# FFmpeg's MPEG-1/2/4 Part 2 encoders ignored --crf (each frame at quantiser 2, PyAV setting no bit rate): it
# sets them a fixed quantiser instead
QSCALE_CODECS = frozenset({"mpeg1video", "mpeg2video", "mpeg4", "wmv2"})
MPEG_VIDEO_CODECS = frozenset({"mpeg1video", "mpeg2video"})
# FFmpeg's program-stream muxers (.mpg, .vob, ...): files for DVD and VCD players, which decode MPEG-2's Main
# Profile, 4:2:0 only; a 4:2:2 source's chroma is halved there (and warned of), kept in .mxf or .ts
PLAYER_MPEG_MUXERS = frozenset({"mpeg", "vcd", "svcd", "vob", "dvd"})
# MPEG program and transport streams (.mpg, .vob, .ts, .m2ts) take any encoder's packets, but FFmpeg reads back
# as video only these formats (by the encoder's canonical name): FFV1, ProRes, Ut Video, DNxHR, MJPEG, WMV 8, AV1
# and VP9 came back as a data stream from a .ts and as MP3 audio from a .mpg, a file with no video (measured)
STREAM_MUXERS = PLAYER_MPEG_MUXERS | {"mpegts"}
STREAM_VIDEO_FORMATS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video"})
QUIET_OPTIONS = {"libx265": {"x265-params": "log-level=error"}}
# where a non-square pixel shape survives: in the bitstream of these encoders, or in these containers' own tag
# for any encoder (Matroska, WebM and AVI take it from the bitstream only, as PyAV writes them)
SAR_IN_BITSTREAM = frozenset({"libx264", "libx265", "mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "dvvideo"})
SAR_CONTAINERS = frozenset({"mov", "mp4", "ipod", "3gp", "3g2"})
ROTATION_CONTAINERS = SAR_CONTAINERS | {"matroska", "webm"}  # those that store a display matrix (rotation)
LOSSLESS_CODECS = frozenset({"ffv1", "utvideo", "huffyuv", "ffvhuff"})  # they keep the source's pixel format
LOSSLESS_IMAGE_CODECS = frozenset({"png", "apng", "tiff", "dpx"})  # image sequences' and animated PNG's
RGB_PREFIXES = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr")
LOSSLESS_FORMATS = {  # by the frames' bit depth, an RGB or grey source's formats in a lossless encoder's terms
    "rgb": {8: ("bgr0", "gbrp", "rgb24"), 10: ("gbrp10le",), 12: ("gbrp12le",), 16: ("gbrp16le", "rgb48le")},
    "rgba": {8: ("bgra", "gbrap", "rgba"), 10: ("gbrap10le",), 12: ("gbrap12le",), 16: ("gbrap16le", "rgba64le")},
    "gray": {8: ("gray",), 10: ("gray10le",), 12: ("gray12le",), 16: ("gray16le",)},
}


def encoder_formats(codec: str) -> set[str]:
    """The pixel formats encoder `codec` takes (empty where FFmpeg does not list them)."""
    return {f.name for f in (av.Codec(codec, "w").video_formats or [])}


def choose_pix_fmt(codec: str, bit_depth: int, width: int, height: int, alpha: bool = False,
                   source: str = "") -> str:
    """The encoder pixel format: 4:2:0 at the source depth, 4:4:4 when a side is odd (4:2:0 needs even sizes);
    with alpha, the same with an alpha plane first (yuva444p10le for ProRes 4444), then without. An archival or
    editing encoder (not a CRF one) keeps a `source` pixel format's 4:2:2 or 4:4:4 chroma where it can, and a
    lossless one (FFV1) the source's own format, or for RGB and greyscale sources one of theirs at their depth."""
    lossless = _lossless_pix_fmt(codec, bit_depth, alpha, source)
    if lossless is not None:
        return lossless
    odd = width % 2 == 1 or height % 2 == 1
    chromas = ("yuv444p",) if odd else ("yuv420p", "yuv422p", "yuv444p")
    kept = _chroma(source)
    if kept in ("yuv422p", "yuv444p") and codec not in CRF_CODECS and not odd:  # 4:1:1 goes 4:2:2 by the order
        chromas = (kept, *[c for c in ("yuv444p", "yuv422p", "yuv420p") if c != kept])
    # Same depth first; 8-bit may go up to 10 (prores_ks has no 8-bit format); deeper falls back to 8.
    depths = {8: ("", "10le"), 10: ("10le", "12le", "")}.get(bit_depth, ("12le", "10le", "16le", ""))
    candidates = [chroma + depth for depth in depths for chroma in chromas]
    if alpha:
        candidates = [name.replace("yuv", "yuva") for name in candidates] + candidates
    supported = encoder_formats(codec)
    for name in candidates:
        if not supported or name in supported:
            return name
    raise ClrfaceError(f"codec {codec} cannot encode {width}x{height} frames at {bit_depth}-bit "
                       f"(it supports {', '.join(sorted(supported))}); try {option_name('codec')} libx264")


def _lossless_pix_fmt(codec: str, bit_depth: int, alpha: bool, source: str) -> str | None:
    """For a lossless encoder: the source's pixel format, or the RGB or grey one of its depth that the encoder
    takes (an RGB scan is not subsampled to 4:2:0, a 16-bit one not cut to 12 bits); None otherwise."""
    if codec not in LOSSLESS_CODECS or not source:
        return None
    supported = encoder_formats(codec)
    family = "rgba" if source.startswith(RGB_PREFIXES) and alpha else "rgb" if source.startswith(RGB_PREFIXES) \
        else "gray" if source.startswith("gray") else None
    wanted = [source] + (list(LOSSLESS_FORMATS[family].get(bit_depth, ())) if family else [])
    return next((name for name in wanted if name in supported), None)


# Outputs FFmpeg reads back as limited range whatever range they were written at: by the format an encoder writes
# (its codec's canonical name: `prores` covers prores_ks, prores_aw and the encoder FFmpeg names plain `prores`),
# the muxers where that happens (None: all of them). Each entry measured by benchmarks/range_readback.py (docs/results.md). ProRes,
# MPEG-1/2 and VP8 (libvpx): the decoder says limited for every frame. The others store no range in their
# bitstream, and AVI, DV and QuickTime's colour box (nclc) store none either; Matroska and MXF do (FFV1, MPEG-4
# Part 2); the muxers not named refuse the encoder.
LIMITED_OUTPUTS: dict[str, frozenset[str] | None] = {
    "prores": None, "mpeg1video": None, "mpeg2video": None, "vp8": None,
    "mpeg4": frozenset({"avi", "mov"}), "cfhd": frozenset({"avi", "mov"}), "dvvideo": frozenset({"avi", "mov", "dv"}),
    "ffv1": frozenset({"avi"}), "huffyuv": frozenset({"avi"}), "ffvhuff": frozenset({"avi"}),
    "utvideo": frozenset({"avi"}),
}
# MP4 stores the range of those encoders in its colour box (colr nclx), which FFmpeg's muxer writes only where the
# primaries, transfer and matrix are all known (measured: ffv1 and mpeg4 read back full with all three, else
# unspecified, which is read as limited)
COLR_MUXERS = frozenset({"mp4"})
ROOMY_CONTAINERS = ((".mkv", ".mov"), (".avi",))  # suggested: the first pair, else .avi (HuffYUV, Ut Video)
UNSPECIFIED = 2  # AVColorPrimaries, AVColorTransferCharacteristic and AVColorSpace's "unspecified"


def output_range(codec: str, out: av.container.OutputContainer, info: VideoInfo) -> int:
    """The range the output's YUV is written at (the writer's frames and the stream's tag): the source's, but
    limited where the (encoder, muxer) pairing is read back as limited whatever it was written as
    (LIMITED_OUTPUTS, COLR_MUXERS), with a warning where the source is full-range YUV. An RGB or grey output
    (lossless FFV1 of a scan) is written and read at full scale whatever its tag: its values are kept.

    Why: a full-range source (a phone's or webcam's clip, a full-range FFV1 master, a 16-bit PNG sequence) was
    written full and read back as limited, its levels stretched: 10-bit full-range grey 512 was stored as 512
    and read 2.2% bright in ProRes, 8-bit grey 128 read as 130 and near-black 30 as 16 in an .avi."""
    written = av.Codec(codec, "w").canonical_name
    if info.color_range != RANGE_JPEG or written not in LIMITED_OUTPUTS:
        return info.color_range
    muxers, muxer = LIMITED_OUTPUTS[written], out.format.name
    tagged = UNSPECIFIED not in (info.color_primaries, info.color_trc, info.colorspace)
    if muxers is not None and muxer not in muxers and not (muxer in COLR_MUXERS and not tagged):
        return info.color_range
    if not info.pix_fmt.startswith(RGB_PREFIXES + ("gray", "pal8")):  # YUV: its own full range is given up
        log.warning("the source's full-range levels are written video range: %s in %s is read back as video range "
                    "only; libx264 or ffv1 in .mkv keep them", codec, Path(str(out.name)).suffix or muxer)
    return RANGE_MPEG


COLORSPACE_RGB, COLORSPACE_BT709 = 0, 1  # AVColorSpace values
CHROMA_NAMES = {"yuv420p": "4:2:0", "yuv422p": "4:2:2", "yuv444p": "4:4:4", "yuv411p": "4:1:1"}
# the codecs that keep a source's chroma that a 4:2:0 output halves (prores_ks has no 4:1:1: its 4:2:2 holds all of
# NTSC DV's), said after the codec option as the front end names it (option_name)
CHROMA_KEEPERS = {"yuv411p": "ffv1 keeps it (prores_ks as 4:2:2)"}


def yuv_colorspace(colorspace: int, source_pix_fmt: str, pix_fmt: str) -> int:
    """The matrix to convert with and to tag: an RGB source's (FFmpeg's 0, a DPX scan; or none, as FFmpeg's TIFF
    decoder and an animated WebP give) turned into YUV frames takes BT.709, since matrix 0 on YUV means 'these
    planes are G, B, R' to a player. An untagged TIFF scan was converted with BT.601 and left untagged, which
    players take for BT.709 at HD sizes and up: its skin tones shifted."""
    rgb = colorspace == COLORSPACE_RGB or (colorspace == UNSPECIFIED and source_pix_fmt.startswith(RGB_PREFIXES))
    return COLORSPACE_BT709 if rgb and pix_fmt.startswith("yuv") else colorspace


def _chroma(pix_fmt: str) -> str:
    """The YUV chroma layout of a pixel format: yuv422p for 4:2:2 (ProRes 422, DNxHR, DV50), yuv444p for 4:4:4 YUV,
    yuv411p for 4:1:1 (NTSC DV: full height, a quarter of the width, which 4:2:0 halves in height), else yuv420p
    (RGB sources, for which 4:2:0 is the delivery default)."""
    if pix_fmt.startswith(("yuv411", "yuvj411")):
        return "yuv411p"
    if pix_fmt.startswith(("yuv422", "yuva422", "yuvj422")):
        return "yuv422p"
    if pix_fmt.startswith(("yuv444", "yuva444", "yuvj444")):
        return "yuv444p"
    return "yuv420p"


def other_containers(name: str | Path, codec: str | None = None) -> str:
    """The roomy containers to suggest for a file that cannot hold what was asked, less its own kind; with
    `codec`, those whose muxer takes it (DNxHD: .mov, not .mkv; HuffYUV: .avi), so that the advice works."""
    own = Path(name).suffix.lower()
    for kinds in ROOMY_CONTAINERS:
        takers = [s for s in kinds if s != own and (codec is None or container_takes(s, codec))]
        if takers:
            return " or ".join(takers)
    return " or ".join(s for s in ROOMY_CONTAINERS[0] if s != own)


def known_suffix(suffix: str) -> str:
    """The extension FFmpeg knows a file's container by: `suffix`, or a camcorder's (.MOD, .TOD) stand-in."""
    return RENAMED_CONTAINERS.get(suffix.lower(), (suffix, ""))[0]


def renamed_muxer(path: Path) -> str | None:
    """The muxer a file named with a camcorder's extension (RENAMED_CONTAINERS) is written with; None for others,
    whose muxer FFmpeg picks by their extension."""
    return RENAMED_CONTAINERS.get(path.suffix.lower(), ("", None))[1]


@contextmanager
def _probe_file(suffix: str) -> Iterator[av.container.OutputContainer]:
    """A throwaway file named *`suffix` (a camcorder's by its stand-in), open for writing with the muxer FFmpeg
    picks for that name."""
    with tempfile.TemporaryDirectory(prefix="clrface-probe-") as folder:
        out = av.open(str(Path(folder) / f"probe{known_suffix(suffix)}"), "w")
        try:
            yield out
        finally:
            out.close()


def container_takes(suffix: str, codec: str) -> bool:
    """Whether FFmpeg's muxer for files named *`suffix` takes a video stream of encoder `codec`."""
    with _probe_file(suffix) as out:
        try:
            return reads_back(out, out.add_stream(codec, rate=25))
        except ValueError:
            return False


def muxer_name(output: Path) -> str:
    """The name of FFmpeg's muxer that writes a file named `output`, asked before anything is written: the Ray
    backend's segments are written upright for an output that keeps no rotation tag (upright_turns)."""
    with _probe_file(output.suffix) as out:
        return out.format.name


def reads_back(out: av.container.OutputContainer, stream: av.video.stream.VideoStream) -> bool:
    """Whether FFmpeg reads the video `stream` of `out` back as video: not so for most formats in an MPEG program
    or transport stream (STREAM_VIDEO_FORMATS), whose muxers take them all."""
    return out.format.name not in STREAM_MUXERS or stream.codec_context.codec.canonical_name in STREAM_VIDEO_FORMATS


def auto_codec(output: Path, info: VideoInfo | None = None) -> str:
    """The encoder `--codec auto` takes for an output file: the source's own codec where it is an intra,
    lossless or MPEG-2 one that the output's container is known to hold (a ProRes master comes back ProRes,
    an FFV1 archive lossless), what its container holds where that is not H.264, where MPEG-2 is expected, or
    where FFmpeg reads H.264 back at the wrong times (.avi: MPEG-4 Part 2, 8-bit; .wmv, .asf: WMV 8), libx265 for an HDR source
    (PQ or HLG: TVs, phones and browsers play HDR from HEVC, and few of them decode the 10-bit H.264 that
    libx264 would write), else libx264. MPEG-2 is written only at the rates it codes (mpeg2_codes; an .mxf's,
    its broadcast ones, MXF_RATES): a variable-rate phone clip's average rate would not open the encoder."""
    suffix = known_suffix(output.suffix).lower()
    kept = KEPT_CODECS.get(info.codec) if info is not None else None
    if kept is not None and suffix in kept[1]:
        return kept[0]
    if suffix in AUTO_CODECS and (AUTO_CODECS[suffix] != "mpeg2video" or info is None
                                  or broadcast_rate(info.fps) is not None
                                  or (suffix != ".mxf" and mpeg2_codes(info.fps))):
        return AUTO_CODECS[suffix]
    if info is not None and info.color_trc in HDR_TRANSFERS and container_takes(suffix, "libx265"):
        return "libx265"
    return "libx264"


def mpeg2_codes(fps: Fraction | None, codec: str = "mpeg2video") -> bool:
    """Whether the MPEG-2 encoder codes frames at `fps`, asked of it: its frame rate codes (23.976 to 60) times
    (n+1)/(d+1), so 20 fps (keep_real_3) too, but no variable rate's average. Such an .mpg got libx264 instead,
    which FFmpeg reads back with a frame at another's time (read_frames mends it: io.clock): the muxer stamps a
    pack with the first frame that begins in it, and FFmpeg's H.264 parser gives that stamp to a frame whose start
    code the pack boundary splits, as well."""
    if not fps:
        return False
    fps = coded_rate(codec, fps)
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 16, 16, "yuv420p"
    encoder.time_base, encoder.framerate = 1 / fps, fps
    try:
        encoder.open()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def container_suffix(out: av.container.OutputContainer) -> str:
    """The output's file extension, for messages (its partial name keeps it): what the user named, where FFmpeg's
    muxer name ('a image2 file', 'a avi file') was said."""
    return Path(str(out.name)).suffix or out.format.name


def sar_advice(codec: str, suffix: str) -> str:
    """Where a pixel shape `codec` cannot carry in its bitstream survives: an .mp4 where it takes the codec
    (FFV1 and VP9 too, which a .mov refuses when its header is written), else a .mov (ProRes, DNxHR), or libx264
    where the output's own format (`suffix`) takes it (a .webm does not: it was advised there too). Matroska's
    display size comes from a stream field PyAV cannot set, so an .mkv is never the answer."""
    keeper = next((other for other in (".mp4", ".mov") if container_takes(other, codec)), None)
    x264 = f"{option_name('codec')} libx264"
    ways = [way for way in (keeper, x264 if container_takes(suffix, "libx264") else None) if way] \
        or [f".mp4 with {x264}"]
    return f"{ways[0]} keeps it" + "".join(f", or {way}" for way in ways[1:])


def cfr_rate(info: VideoInfo) -> Fraction:
    """The frame rate a constant-rate container (AVI) is written at: the source's base rate where its average
    is lower (a variable rate: each frame keeps its time, each gap its length, however long the gaps are), else
    the average. A base rate above MAX_CFR_RATE is a clock's tick (jittered times), not a rate frames fall on."""
    assert info.fps
    return info.base_fps if info.base_fps and info.fps < info.base_fps <= MAX_CFR_RATE else info.fps


def counted_rate(codec: str, info: VideoInfo) -> Fraction:
    """The rate an encoder that counts frames (CFR_ONLY_CODECS) numbers them at: a variable rate's base rate
    (cfr_rate), on whose ticks every frame falls at its own time, where the encoder codes it, else the average.
    Numbered at the average, a variable-rate clip's MPEG-2 frames each took the next tick: its frames came evenly
    spaced, up to 40 ms off their times, and the last one 13 ms early (tests/test_containers_timing.py)."""
    assert info.fps
    base = coded_rate(codec, cfr_rate(info))
    if codec in RATE_CODE_CODECS and base != coded_rate(codec, info.fps) and not mpeg2_codes(base, codec):
        return coded_rate(codec, info.fps)
    return base


def codec_time_base(codec: str, info: VideoInfo) -> Fraction:
    """The source time base, or one frame of counted_rate for the MPEG-1/2/4 family, which only encodes constant
    rates."""
    if codec in CFR_ONLY_CODECS and info.fps:
        return 1 / counted_rate(codec, info)
    return info.time_base


def broadcast_rate(fps: Fraction | None) -> Fraction | None:
    """The broadcast rate (MXF_RATES) that `fps` is, within RATE_TOLERANCE, or None: 29.97 stored as 2997/100
    (an older FFmpeg's `-r 29.97`: face_recognition_hamilton.mp4) is NTSC's 30000/1001, 3.6 ms an hour away,
    which MXF's muxer and MPEG-2's frame rate codes take; 2997/100 itself they refused (a .mxf not written,
    a .mpg given H.264, which DVD players do not play), as DV's took it already (io.dv)."""
    if not fps:
        return None
    return next((rate for rate in sorted(MXF_RATES) if abs(rate - fps) <= rate * RATE_TOLERANCE), None)


def check_mxf_rate(output: Path, fps: Fraction | None) -> None:
    """Refuse an .mxf output of a video whose rate is no broadcast one (FFmpeg's MXF writer takes those alone,
    MXF_RATES), as the writer opens: before its streams are set up, so the refusal is said alone, not after
    warnings of what those streams would have lost. A rate unknown is coded at 25 fps, which MXF takes."""
    if fps and known_suffix(output.suffix).lower() == ".mxf" and broadcast_rate(fps) is None:
        raise ClrfaceError(f"a .mxf file holds only broadcast frame rates (23.976 to 60 fps), and this video "
                           f"runs at {float(fps):.4g} fps; use .mkv or .mov")


def coded_rate(codec: str, fps: Fraction) -> Fraction:
    """The rate `codec` codes frames of `fps` at: for MPEG-1/2, whose sequence header holds one of a few rate
    codes, the broadcast rate that `fps` is (broadcast_rate), else `fps` itself."""
    near = broadcast_rate(fps) if codec in RATE_CODE_CODECS else None
    return near or fps


def fit_clock(codec: str, time_base: Fraction) -> Fraction:
    """The encoder's clock: `time_base`, or for MPEG-4 Part 2 the nearest one it codes (MPEG4_MAX_CLOCK): a phone
    clip's average rate (384000/19003 fps) would not open the encoder, and the nearest clock moves its frames by
    less than 0.1 ms an hour."""
    return time_base.limit_denominator(MPEG4_MAX_CLOCK) if codec == "mpeg4" else time_base


def check_codec(codec: str) -> str:
    """The encoder FFmpeg picks for a `--codec` name: itself, or for a format's name the encoder behind it
    (h264 is libx264, hevc libx265, vp9 libvpx-vp9, av1 libsvtav1), whose --crf and --preset then apply."""
    try:
        found = av.Codec(codec, "w")
    except ValueError as error:
        raise ClrfaceError(f"unknown video encoder {codec!r} (try libx264, libx265, libsvtav1, ffv1, prores_ks)") \
            from error
    if found.type != "video":
        raise ClrfaceError(f"{codec!r} is not a video encoder (try libx264)")
    return found.name


def mpeg_quantiser(crf: int) -> int:
    """The fixed quantiser (1 best to 31) an MPEG-1/2/4 Part 2 encoder gets for --crf: a ninth of it, so the
    default 18 gives 2, what these encoders wrote before --crf reached them, and 51 gives 6."""
    return max(1, min(31, round(crf / 9)))


def crf_or_default(crf: int | None) -> int:
    """The --crf asked, or DEFAULT_CRF where none was (None)."""
    return DEFAULT_CRF if crf is None else crf


def encoder_settings(codec: str, crf: int | None, preset: str | None) -> tuple[int | None, str | None]:
    """The --crf and --preset an encoder is given (add_video_stream), None for those it takes none of: what
    a report says was used (an MPEG-1/2/4 Part 2 encoder's --crf is its quantiser, mpeg_quantiser)."""
    return (crf_or_default(crf) if codec in CRF_CODECS | QSCALE_CODECS else None), \
        (preset if codec in PRESET_CODECS else None)


def _quality_options(codec: str, crf: int | None, preset: str | None) -> dict[str, str]:
    """The encoder options --crf and --preset set (a constant quality, or for MPEG-1/2/4 Part 2 a fixed
    quantiser), each given to an encoder that takes none said in one warning: a lossless FFV1's --crf 28 was
    passed over in silence, as if it had made a smaller file. None: not given (the default, said nothing of)."""
    options: dict[str, str] = {}
    if crf is not None and codec not in CRF_CODECS | QSCALE_CODECS:
        kind = " (lossless)" if codec in LOSSLESS_CODECS | LOSSLESS_IMAGE_CODECS else ""
        log.warning("%s is for %s; %s%s takes none, so it is ignored", option_name("crf"),
                    ", ".join(sorted(CRF_CODECS | QSCALE_CODECS)), codec, kind)
    crf = crf_or_default(crf)
    if codec in CRF_MAX and crf > CRF_MAX[codec]:
        raise ClrfaceError(f"{option_name('crf')} {crf} is beyond {codec}'s range (0-{CRF_MAX[codec]})")
    if codec in CRF_CODECS:
        options["crf"] = str(crf)
    if codec in QSCALE_CODECS:  # bounded both ways: PyAV's frames carry no quality of their own to ask for
        quantiser = str(mpeg_quantiser(crf))
        options.update(flags="+qscale", qmin=quantiser, qmax=quantiser)
    if preset is not None:
        if codec in PRESET_CODECS:
            options["preset"] = preset
        else:
            log.warning("%s is for libx264 and libx265; %s takes none, so it is ignored", option_name("preset"), codec)
    if codec == "libvpx-vp9":
        options["b"] = "0"
    return options


def tag_for_apple(out: av.container.OutputContainer, stream: av.video.stream.VideoStream) -> None:
    """HEVC in an MP4 or QuickTime file tagged hvc1 (parameter sets in the sample description), which Apple's
    players need; FFmpeg's muxers write hev1 unless told."""
    if stream.codec_context.codec.canonical_name == "hevc" and out.format.name.split(",")[0] in HVC1_MUXERS:
        stream.codec_tag = "hvc1"


def add_video_stream(out: av.container.OutputContainer, info: VideoInfo, codec: str, crf: int | None,
                      pix_fmt: str | None = None, preset: str | None = None) -> av.video.stream.VideoStream:
    if codec == DV_CODEC and pix_fmt is None:  # DV's fixed sizes and rates are checked before any stream is added
        pix_fmt = dv_pix_fmt(info.width, info.height, info.fps, info.pix_fmt)
    try:
        rate = (counted_rate(codec, info) if codec in CFR_ONLY_CODECS else coded_rate(codec, info.fps)) \
            if info.fps else Fraction(25)
        stream = out.add_stream(codec, rate=rate)
    except ValueError as error:
        raise ClrfaceError(f"{one_line(error)}; use {other_containers(out.name, codec)}, or another "
                           f"{option_name('codec')}") \
            from error
    if not reads_back(out, stream):
        raise ClrfaceError(f"a {container_suffix(out)} file cannot hold {codec} video (it would be read back as no "
                           f"video at all); use {other_containers(out.name, codec)}, or another {option_name('codec')}")
    tag_for_apple(out, stream)
    stream.width, stream.height = info.width, info.height
    if pix_fmt is None and codec in MPEG_VIDEO_CODECS and out.format.name in PLAYER_MPEG_MUXERS \
            and info.width % 2 == 0 and info.height % 2 == 0:
        pix_fmt = "yuv420p"
    stream.pix_fmt = pix_fmt or choose_pix_fmt(codec, info.bit_depth, info.width, info.height, info.alpha,
                                               info.pix_fmt)
    if _chroma(info.pix_fmt) != "yuv420p" and _chroma(stream.pix_fmt) == "yuv420p" and stream.pix_fmt.startswith("yuv"):
        log.warning("the source's %s chroma is written 4:2:0 by %s (as players expect); %s %s",
                    CHROMA_NAMES[_chroma(info.pix_fmt)], codec,
                    option_name("codec"), CHROMA_KEEPERS.get(_chroma(info.pix_fmt), "prores_ks or ffv1 keeps it"))
    depth = av.VideoFormat(stream.pix_fmt).components[0].bits
    if depth < info.bit_depth and stream.pix_fmt != "pal8":
        log.warning("the source's %d-bit depth is written at %d bits by %s; %s ffv1 (.mkv) or libx265 keep it",
                    info.bit_depth, depth, codec, option_name("codec"))
    if info.alpha and not has_alpha(stream.pix_fmt):
        log.warning("the source's alpha channel is left out: %s stores none; %s prores_ks (.mov) or ffv1 "
                    "(.mkv) keep it", codec, option_name("codec"))
    ctx = stream.codec_context
    if out.format.name in CFR_CONTAINERS and info.fps:  # frames stored by their number: a clock of one frame,
        stream.time_base = ctx.time_base = fit_clock(codec, 1 / cfr_rate(info))  # a variable rate's gaps empty
    else:
        stream.time_base = info.time_base
        ctx.time_base = fit_clock(codec, codec_time_base(codec, info))
    if out.format.name in NO_REORDER_CONTAINERS:
        ctx.max_b_frames = 0  # reordered frames would come back at the wrong times
    if out.format.name == "avi" and codec == "mpeg4":
        stream.codec_tag = AVI_MPEG4_TAG
    if out.format.name == "avi" and ctx.codec.canonical_name == "h264":
        log.warning("FFmpeg-based players read H.264 in .avi a frame late and out of order (they guess a decode "
                    "delay AVI does not store); .mkv or .mp4 keep its times, or %s auto writes MPEG-4 "
                    "Part 2 (Xvid) into .avi", option_name("codec"))
    if out.format.name in PLAYER_MPEG_MUXERS and ctx.codec.canonical_name == "h264":
        log.warning("FFmpeg-based players can show a frame of H.264 in %s at the next frame's time (where a pack "
                    "boundary splits its start code); .ts, .mkv or .mp4 keep its times", Path(str(out.name)).suffix)
    ctx.color_primaries, ctx.color_trc = info.color_primaries, info.color_trc
    ctx.colorspace, ctx.color_range = yuv_colorspace(info.colorspace, info.pix_fmt, stream.pix_fmt), output_range(codec, out, info)
    options = dict(QUIET_OPTIONS.get(codec, {}))
    if codec == "libsvtav1":
        quiet_svt()
    options.update(_quality_options(codec, crf, preset))
    if codec == "ffv1":  # as archives write it: every frame decodes alone (FFmpeg's 12-frame default carried one
        ctx.gop_size = 1  # damaged frame's coder state into the next 11, for 1.6% less size on a real clip), and
        options.update(level="3", slicecrc="1")  # each slice carries a CRC, so damage is found, not played
    if codec == "dnxhd":  # DNxHR at any size: HQ for 8-bit 4:2:2, HQX for 10-bit, 444 for 4:4:4
        options["profile"] = "dnxhr_444" if "444" in stream.pix_fmt else \
            "dnxhr_hqx" if "10" in stream.pix_fmt else "dnxhr_hq"
    if info.hdr10 is not None:
        _add_hdr10(options, codec, info.hdr10)
    if field_parity(info) is not None:  # fields kept (not deinterlaced): coded and flagged as fields, in the
        ctx.field_order = info.field_order  # source's order (FieldFlags flags each frame)
        if codec in FIELD_DCT_CODECS:
            ctx.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        if codec == "libx264":
            fields = "tff=1" if info.field_order in FIELDS_TOP_FIRST else "bff=1"
            options["x264-params"] = ":".join(filter(None, [options.get("x264-params", ""), "interlaced=1", fields]))
    if codec == "libx264":  # the stream's own timing (VUI) gives the frame rate, not the clock's tick (1/12800 said
        # 12800 fps to decoders); the frames keep their times, a variable rate's too
        options["x264-params"] = ":".join(filter(None, [options.get("x264-params", ""), "force-cfr=1"]))
    stream.options = options
    if info.sample_aspect_ratio is not None:
        ctx.sample_aspect_ratio = info.sample_aspect_ratio  # anamorphic pixels stay anamorphic
        # warned of only where a player would show it: 389/388 (an even width's rounding) squeezes nothing one can see
        if info.pixel_aspect != 1 and codec not in SAR_IN_BITSTREAM and out.format.name not in SAR_CONTAINERS:
            log.warning("the source's pixel aspect ratio (%s) is left out: %s in %s cannot carry it, so "
                        "players will show the frames squeezed; %s", info.sample_aspect_ratio, codec,
                        container_suffix(out), sar_advice(codec, Path(out.name).suffix))
    if (info.display_matrix is not None or info.rotation) and out.format.name not in ROTATION_CONTAINERS:
        log.warning("the source's rotation is left out: %s cannot store it, so players will show the "
                    "frames turned; .mp4, .mov or .mkv keep it", container_suffix(out))
    if info.display_matrix is not None:
        stream.set_display_matrix(info.display_matrix)  # rotation and mirroring, exactly
    elif info.rotation:
        stream.set_display_rotation(info.rotation)
    return stream


def upright_turns(info: VideoInfo, muxer: str) -> int:
    """Quarter turns (np.rot90) that show a source's stored frames upright, for an output whose container (FFmpeg's
    `muxer`) stores no rotation (.avi, .gif, .ts, an image sequence): its frames are written turned so, where a
    phone's portrait clip came out lying on its side. 0 where the container keeps the tag, the frames are stored
    upright, the display matrix mirrors them too, or their fields are kept (turned, fields would be columns)."""
    matrix = info.display_matrix
    if muxer in ROTATION_CONTAINERS or field_parity(info) is not None or \
            (matrix is not None and matrix[0] * matrix[4] - matrix[1] * matrix[3] < 0):
        return 0
    return quarter_turns(info.rotation)


def turned_upright(info: VideoInfo, turns: int) -> VideoInfo:
    """`info` of frames turned `turns` quarter turns upright (upright_turns): no rotation left, and a quarter turn's
    width and height, and pixel shape, swapped; `info` itself for none."""
    if not turns:
        return info
    if turns % 2:
        sar = info.sample_aspect_ratio
        info = replace(info, width=info.height, height=info.width, sample_aspect_ratio=1 / sar if sar else None)
    return replace(info, rotation=0, display_matrix=None)


def field_parity(info: VideoInfo) -> str | None:
    """setfield's name for the order of the fields an output keeps ("tff", "bff"), or None where its frames are
    progressive or deinterlaced, or their order is unknown (dvvideo writes bottom first then; a standard-definition
    DV tape's is known: decode._field_order)."""
    if not info.interlaced or info.field_order not in FIELDS_TOP_FIRST + FIELDS_BOTTOM_FIRST:
        return None
    return "tff" if info.field_order in FIELDS_TOP_FIRST else "bff"


class FieldFlags:
    """Frames flagged interlaced in the source's field order, through FFmpeg's setfield (PyAV sets no frame
    flags): mpeg2video, mpeg4, prores_ks, ffv1 and dvvideo code a picture's fields in the order its frame's
    flags give, so unflagged frames came out progressive, or bottom field first from a top-first source."""

    def __init__(self, parity: str, width: int, height: int, pix_fmt: str, time_base: Fraction) -> None:
        self._graph = av.filter.Graph()
        source = self._graph.add_buffer(width=width, height=height, format=pix_fmt, time_base=time_base)
        fields = self._graph.add("setfield", parity)
        sink = self._graph.add("buffersink")
        source.link_to(fields)
        fields.link_to(sink)
        self._graph.configure()

    def flag(self, frame: av.VideoFrame) -> av.VideoFrame:
        """`frame` flagged, its time, length and colour tags kept."""
        self._graph.push(frame)
        flagged = self._graph.pull()
        flagged.pts, flagged.time_base, flagged.duration = frame.pts, frame.time_base, frame.duration
        flagged.color_primaries, flagged.color_trc = frame.color_primaries, frame.color_trc
        flagged.colorspace, flagged.color_range = frame.colorspace, frame.color_range
        return flagged


def _add_hdr10(options: dict[str, str], codec: str, hdr10: Hdr10) -> None:
    """The source's HDR10 mastering display and light levels, as the x264 / x265 options that write them."""
    if codec == "libx265":
        extra = ["hdr10=1"] + ([f"master-display={hdr10.master_display}"] if hdr10.master_display else []) \
            + ([f"max-cll={hdr10.max_cll}"] if hdr10.max_cll else [])
        key = "x265-params"
    elif codec == "libx264":
        extra = ([f"mastering-display={hdr10.master_display}"] if hdr10.master_display else []) \
            + ([f"cll={hdr10.max_cll}"] if hdr10.max_cll else [])
        key = "x264-params"
    else:
        log.warning("the source's HDR10 mastering metadata is written by libx264 and libx265 only; the %s output "
                    "keeps its colour tags without it", codec)
        return
    options[key] = ":".join(filter(None, [options.get(key, "")] + extra))


def quiet_svt() -> None:
    """SVT-AV1 at errors only, unless the user set its level: it takes its log level from the environment alone,
    and printed its banner (some 20 lines, and a thread-priority warning) for every video or 10-bit AVIF it wrote."""
    os.environ.setdefault("SVT_LOG", "1")
