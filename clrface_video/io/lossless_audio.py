"""Which codecs an audio track the output's container cannot hold as it is may be coded again in (recoded_audio tries
them), and its samples moved across: a lossless one losslessly in a codec it holds, else decoded to the PCM a PCM-only
container holds (MXF, DV), else (MPEG-TS holds none FFmpeg reads back; lossy audio) once at a high rate in one its
players read."""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from clrface_video.io import wavpack

PCM_DEPTH = re.compile(r"pcm_[su](16|24|32)[lb]e")  # the depth a PCM codec's name gives
# Encoders for each depth of the decoded samples, in the order they are tried: PCM of the same depth first (what
# editors' tools take in .mov and .mxf, and any depth is kept: FFmpeg's ALAC encoder codes 24 bits at most), then
# the Blu-ray and DVD PCM that MPEG-TS and MPEG-PS hold, then ALAC and FLAC (32 bits: FLAC alone, FULL_DEPTH).
ENCODERS = {
    16: ("pcm_s16le", "pcm_s16be", "pcm_bluray", "pcm_dvd", "alac", "flac"),
    24: ("pcm_s24le", "pcm_s24be", "pcm_bluray", "pcm_dvd", "alac", "flac"),
    32: ("pcm_s32le", "pcm_s32be", "flac"),
    "flt": ("pcm_f32le", "pcm_f32be"),
    "dbl": ("pcm_f64le", "pcm_f64be"),
}
# MP4 muxers, where ALAC goes first, then FLAC: ISO PCM in an .mp4 (ipcm) is read by few players (FFmpeg's since
# 6.0; not QuickTime, browsers or phones), ALAC by Apple's and FFmpeg's, FLAC by browsers, VLC and FFmpeg, and
# FFmpeg's ALAC encoder refuses 7.1, which FLAC codes (measured: both read back from a trial .mp4)
MP4_MUXERS = frozenset({"mp4", "ipod"})
MP4_PLAYED = ("alac", "flac")
# Options that have an encoder code all 32 bits of a sample: FFmpeg's FLAC encoder codes 32-bit samples as 24 bits
# (their low 8 lost) unless allowed its "experimental" 32-bit mode, and its ALAC encoder always (measured, 2 s of
# 32-bit noise read back from an .mp4: 255 off at most, and with the option, FLAC every sample as it was)
FULL_DEPTH = {"flac": {"strict": "experimental"}}
# Float samples no encoder of an .mp4's players codes exactly (FFmpeg writes them as ISO PCM, fpcm): they are coded as
# ALAC, else FLAC (7.1), at 24 bits, as a lossy track too wide for AAC is (WIDE_PCM), the rounding said
ROUNDED = {"flt", "dbl"}
SHORTEST_24_BIT = frozenset({"truehd", "mlp"})  # lossless codecs that code 24 bits at most, decoded as s32
# (encoder, sample format, bits per second for each channel, most in all) for a track that no lossless codec the
# muxer holds carries, tried in order: a lossless one where none reads back, a lossy one the muxer refuses (Opus
# into .mov or .avi, Vorbis into .ts, AAC into .webm), coded once more at a high rate rather than left out, which
# made a silent output. FFmpeg's MPEG-TS muxer takes PCM, FLAC and ALAC but writes them as data streams (measured:
# read back, no audio), and Blu-ray PCM only in an .m2ts's 192-byte packets (mpegts_m2ts_mode) at 48, 96 or
# 192 kHz; so a .ts gets AC-3 at its highest rate (what broadcast and Blu-ray players read; 32 to 48 kHz, up to
# 5.1), else AAC (any rate and up to 7.1). An MPEG-PS (.mpg, .vob) gets AC-3 at DVD's highest rate, else MP2; a
# .webm Opus at the most libopus codes; an .avi MP3 (what hardware players read there), else AAC; any other AAC.
AAC = ("aac", "fltp", 256_000, None)
DVD = (("ac3", "fltp", 448_000, 448_000), ("mp2", "s16", 192_000, 384_000))
HIGH_RATE = {"mpegts": (("ac3", "fltp", 640_000, 640_000), AAC), "mpeg": DVD, "vob": DVD, "dvd": DVD, "svcd": DVD,
             "webm": (("libopus", "flt", 256_000, None),), "avi": (("libmp3lame", "fltp", 160_000, 320_000), AAC)}
# Muxers whose players expect one rate: DVD-Video's AC-3 and MP2 are 48 kHz only, and a 44.1 kHz track re-coded at
# its own rate for an .mpg or .vob, valid MPEG-PS, was not what DVD players and authoring tools take. FFmpeg picks
# its svcd muxer for a file named .vob (registered before the vob muxer, both claiming the extension; measured)
PLAYED_RATES = dict.fromkeys(("mpeg", "vob", "svcd", "dvd"), (48000,))
# a layout with its surround pair behind the listener, as WAV and QuickTime state 5.1, and the same channels named
# at the sides, the only ones FFmpeg's Blu-ray PCM encoder takes (AV_CH_LAYOUT_5POINT1 and its kin; Blu-ray's own
# Ls/Rs): a 5.1 track into an .m2ts was coded lossy as AC-3. Measured: PyAV's encode moves each sample across as
# it was (16 and 24 bits, read back equal)
SIDE_TWINS = {"5.1": "5.1(side)", "5.0": "5.0(side)", "quad": "quad(side)"}
# Muxers that hold linear PCM alone (FFmpeg's mxf and dv; measured on a trial header): a track that no lossless codec
# carries there, lossy audio above all, is decoded to this PCM, at the first of its rates the track can keep, rather
# than left out (a silent output). MXF takes 48 kHz only, in any layout; 24 bits keep the float samples a lossy
# decoder gives within 2^-23 of full scale, while 16 would round them once more (to 2^-15, -96 dBFS, undithered).
# DV takes 16-bit stereo only, at 48, 44.1 or 32 kHz (44.1 and 32 beside PAL's 25 fps only: recoded_audio tries 48 next).
@dataclass(frozen=True)
class PcmOnly:
    codec: str
    sample_format: str
    rates: tuple[int, ...]
    layout: str | None = None  # the one layout the muxer takes, else any


PCM_ONLY = {"mxf": PcmOnly("pcm_s24le", "s32", (48000,)), "dv": PcmOnly("pcm_s16le", "s16", (48000, 44100, 32000),
                                                                        "stereo")}
# FFmpeg's AAC encoder codes at most 6144 bits per channel in a frame of 1024 samples, 6 a sample, and lowers a rate
# asked above that (measured: 48 kb/s for 8 kHz mono): the rate a warning names is the one coded
MOST_BITS_PER_SAMPLE = {"aac": 6}
# channels a lossy encoder is handed at most: FFmpeg 8's AAC encoder crashes the process (a segmentation fault, not
# an error) on any 8-channel layout (7.1, 7.1(wide), octagonal; measured, 7.0 and 6.1 coded), so a 7.1 Opus or
# Vorbis track into a .mov, or 7.1 PCM into a .ts, killed the whole restore on its trial file
MOST_CHANNELS = {"aac": 7}
# the layout a high-rate encoder takes at most, into which a track with more channels is mixed (PyAV's encoder
# resamples the decoded frames to it, by swresample's default matrix) where no encoder of the
# muxer takes them all: a .ts's 7.1 PCM went silent, as AC-3 codes 5.1 at most and AAC crashes on 8 channels
MIXED_DOWN = {"ac3": "5.1"}
# Muxers whose lossy encoders take fewer channels than a track has (7.1: MOST_CHANNELS): it is decoded to this PCM
# (or ALAC, FLAC), tried in order, rather than left out. A lossy decoder's float samples keep to 2^-23 in 24 bits, as
# in .mxf (FFmpeg's FLAC encoder codes s32 as 24 bits); an .mp4 tries ALAC, then FLAC first (ISO PCM there is read
# by few players: MP4_PLAYED), each only where it reads back on a trial (measured: FFmpeg's ALAC encoder refuses
# 7.1 there; FLAC and ISO PCM 7.1 read back). An .avi's MP3 takes 2 channels, and a 7.1 Opus track was left out
# of it (measured: 24-bit PCM in 7.1 reads back there).
WIDE_PCM = {"mov": (PcmOnly("pcm_s24le", "s32", ()),), "avi": (PcmOnly("pcm_s24le", "s32", ()),),
            "mp4": (PcmOnly("alac", "s32p", ()), PcmOnly("flac", "s32", ()), PcmOnly("pcm_s24le", "s32", ()))}
# 8-bit PCM into an .mp4: each sample moved to 16 bits exactly, in the codecs its players read (MP4_PLAYED)
WIDENED = (PcmOnly("alac", "s16p", ()), PcmOnly("flac", "s16", ()))
# the bits of a sample that a decoded track is coded in, by the codecs above (the FLAC encoder's without FULL_DEPTH)
CODED_BITS = {"pcm_s16le": 16, "pcm_s24le": 24, "alac": 24, "flac": 24}


def _depth(context: av.audio.codeccontext.AudioCodecContext, stored: int | None = None) -> int | str | None:
    """The depth of a stream's decoded samples: 16, 24 or 32 bits, or "flt"/"dbl" for float; None for 8-bit and
    other formats. 32-bit integers hold 24-bit samples too (FLAC's, PCM's, TrueHD's, a WavPack block's `stored`
    bits): where the codec's own parameters do not say 24, all 32 bits are kept."""
    kind = context.format.name.rstrip("p")
    if kind in ("s16", "flt", "dbl"):
        return 16 if kind == "s16" else kind
    if kind != "s32":
        return None
    name = context.codec.canonical_name
    pcm = PCM_DEPTH.fullmatch(name)
    if pcm is not None:
        return int(pcm.group(1))
    if name == "flac" and context.extradata:  # STREAMINFO, after "fLaC" and a block header in Matroska's
        info = context.extradata[8:] if context.extradata[:4] == b"fLaC" else context.extradata
        return 24 if len(info) >= 34 and ((info[12] & 1) << 4 | info[13] >> 4) + 1 <= 24 else 32
    return 24 if name in SHORTEST_24_BIT or (stored or 32) <= 24 else 32


def _block(stream: av.audio.stream.AudioStream) -> wavpack.Block | None:
    """A WavPack track's first block, which says whether it is lossless; None for other codecs."""
    codec = stream.codec_context.codec
    return wavpack.first_block(stream) if codec is not None and codec.canonical_name == "wavpack" else None


def depth(stream: av.audio.stream.AudioStream) -> int | str | None:
    """The depth of a stream's decoded samples (_depth), a WavPack track's by its first block."""
    block = _block(stream)
    return _depth(stream.codec_context, block.bits if block is not None else None)


def lossless(stream: av.audio.stream.AudioStream) -> bool:
    """Whether a stream is coded losslessly: by a codec that only codes so (PCM, FLAC, ALAC, TrueHD), or WavPack
    whose first block is not hybrid (wavpack); not DTS, which may be either."""
    codec = stream.codec_context.codec
    if codec is not None and codec.canonical_name == "wavpack":
        block = _block(stream)
        return block is not None and not block.hybrid
    return codec is not None and codec.lossless and not codec.lossy


def encoders(stream: av.audio.stream.AudioStream, muxer: str) -> list[tuple[str, str]]:
    """(encoder, sample format) pairs that code a lossless stream's decoded samples exactly, in the order to try
    them for `muxer` (with full_depth's options); none for lossy audio (AAC, MP3, Opus: its samples are not the
    source's), nor for hybrid WavPack and DTS: those go to high_rate_encoders."""
    context, kind = stream.codec_context, depth(stream)
    if not lossless(stream) or kind is None:
        return []
    names = ENCODERS[kind]
    if muxer in MP4_MUXERS:
        names = (*(name for name in MP4_PLAYED if name in names), *(name for name in names if name not in MP4_PLAYED))
    width = context.format.bytes
    pairs = []
    for name in names:
        if name not in av.codecs_available:
            continue
        kinds = [kind.name for kind in av.Codec(name, "w").audio_formats or []]
        same = [kind for kind in kinds if kind.rstrip("p") == context.format.name.rstrip("p")]
        if same and av.AudioFormat(same[0]).bytes == width:
            pairs.append((name, same[0]))
    return pairs


def iso_pcm(stream: av.audio.stream.AudioStream, muxer: str) -> bool:
    """Whether a PCM track copied into `muxer` would be ISO PCM in an .mp4, which few players read, where ALAC or
    FLAC codes its samples exactly (16, 24 or 32 bits), or at 24 bits (float: rounded): a .mov's or .mkv's PCM,
    stereo or 7.1, was copied so, silent in QuickTime and browsers, and 32-bit and float PCM were still."""
    return muxer in MP4_MUXERS and stream.codec_context.codec.canonical_name.startswith("pcm_") and \
        (any(name in MP4_PLAYED for name, _ in encoders(stream, muxer)) or bool(rounded(stream, muxer)))


def full_depth(codec: str, stream: av.audio.stream.AudioStream) -> dict[str, str]:
    """The options `codec` needs to code every bit of a lossless stream's samples (FULL_DEPTH: 32-bit FLAC)."""
    return FULL_DEPTH.get(codec, {}) if depth(stream) == 32 else {}


def rounded(stream: av.audio.stream.AudioStream, muxer: str) -> tuple[PcmOnly, ...]:
    """The codecs a lossless track whose samples `muxer`'s players read in no codec exactly is decoded to, tried in
    order (ROUNDED: float into an .mp4, as ALAC, else FLAC, at 24 bits); none for any other."""
    return WIDE_PCM["mp4"][:2] if muxer in MP4_MUXERS and depth(stream) in ROUNDED and lossless(stream) else ()


def widened(stream: av.audio.stream.AudioStream, muxer: str) -> tuple[PcmOnly, ...]:
    """The codecs 8-bit PCM (an old AVI or QuickTime capture's) is decoded to for `muxer`, tried in order: into an
    .mp4, which holds no 8-bit PCM, 16-bit ALAC, else FLAC (WIDENED), every sample kept; it was coded as AAC and
    said to be lossy to store there. None for any other track or muxer."""
    eight = stream.codec_context.format.name.rstrip("p") == "u8" and lossless(stream)
    return WIDENED if eight and muxer in MP4_MUXERS else ()


def rounding(stream: av.audio.stream.AudioStream, codec: str) -> str | None:
    """What is lost of a lossless stream's decoded samples coded by `codec` (CODED_BITS), for a warning: the bits
    cut (a 32-bit or float track into an .mxf's 24-bit PCM was said to keep every sample) and, for float, the
    samples beyond full scale, which integer PCM cannot hold; None where every one is kept. 8-bit PCM (an old
    capture's) fits any of them: into an .mxf it was said to be rounded to 24 bits, every sample kept."""
    kind, bits = depth(stream), CODED_BITS.get(codec, 32)
    if kind is None and stream.codec_context.format.name.rstrip("p") == "u8":
        return None
    if isinstance(kind, int) and kind <= bits:
        return None
    beyond = ", any beyond full scale clipped" if kind in ROUNDED else ""
    return f"rounded to {bits} bits (each within 2^-{bits - 1} of full scale{beyond})"


def layouts(layout: av.AudioLayout | str) -> list[str]:
    """The layouts to try a lossless encoder in: the track's own, then its surround pair named at the sides
    (SIDE_TWINS), which an encoder that refuses the first may take."""
    name = layout if isinstance(layout, str) else layout.name
    return [name, *([SIDE_TWINS[name]] if name in SIDE_TWINS else [])]


def high_rate_encoders(context: av.audio.codeccontext.AudioCodecContext, muxer: str) -> tuple[tuple[str, str, int], ...]:
    """(encoder, sample format, bits per second) to try for a stream that no lossless codec `muxer` holds carries
    (HIGH_RATE, by its channels): a lossless stream coded lossy once, a lossy one once more, which loses a little,
    where leaving it out lost all its sound; none that takes fewer channels than it has (MOST_CHANNELS)."""
    samples = context.sample_rate * context.channels
    return tuple((name, kind, min(each * context.channels, most or each * context.channels,
                                  MOST_BITS_PER_SAMPLE.get(name, each) * samples))
                 for name, kind, each, most in HIGH_RATE.get(muxer, (AAC,))
                 if name in av.codecs_available and context.channels <= MOST_CHANNELS.get(name, context.channels))


def mixed_down(codec: str, channels: int) -> str | None:
    """The layout `codec` takes a track of `channels` in, mixed down (MIXED_DOWN), where it takes fewer; else None."""
    layout = MIXED_DOWN.get(codec)
    return layout if layout is not None and av.AudioLayout(layout).nb_channels < channels else None


def coded_rate(codec: str, rate: int) -> int:
    """The sample rate a lossy `codec` codes a track of `rate` Hz at: its own, else the lowest above it that the
    encoder takes, else its highest. libopus codes 48 kHz and a few below, and an .mp4's 44.1 kHz AAC into a .webm
    was left out; PyAV's encoder resamples the decoded frames, their times with them."""
    return nearest_rate(rate, av.Codec(codec, "w").audio_rates)


def played_rate(muxer: str, rate: int) -> int:
    """The rate a track of `rate` Hz is coded again at for `muxer`: the one its players expect (PLAYED_RATES),
    else its own."""
    return nearest_rate(rate, PLAYED_RATES.get(muxer))


def nearest_rate(rate: int, rates: tuple[int, ...] | None) -> int:
    """`rate` where `rates` (none: any) hold it, else the lowest above it, else the highest: resampled up, no
    sound above the source's own band is lost."""
    if not rates or rate in rates:
        return rate
    return min((r for r in rates if r > rate), default=max(rates))


class SampleConverter:
    """A lossless track's packets decoded and coded again by the output stream's encoder, each sample as it was.
    A stretch's first packet, moved to start before 0, loses its samples before 0: decoded, a track can be cut
    at any sample, so it starts with the stretch's first frame in any container. A mono track into a stereo
    stream (DV's) is put on both sides as it is (_on_both_sides). Where the output is heard from its first
    coded sample (`from_first_sample`: AVI stores no encoder delay), the encoder's priming takes the place of the
    track's first samples (encoder_delay), so the sound after it starts with the picture."""

    def __init__(self, source: av.audio.stream.AudioStream, target: av.audio.stream.AudioStream, *,
                 from_first_sample: bool = False) -> None:
        self._decoder = source.codec_context
        self._target = target
        self._both_sides = source.codec_context.channels == 1 and target.codec_context.channels == 2
        self._rate = source.codec_context.sample_rate
        self._next: int | None = None  # the sample after the last one decoded, none before the first
        self._priming = encoder_delay(target.codec_context) if from_first_sample else 0

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        at = self._packet_start(packet) + skipped_samples(packet)
        ready = []
        for frame in self._decoder.decode(packet):  # one packet may hold several frames, one after another
            ready += self._encode(frame, at)
            at += frame.samples
        return ready

    def _packet_start(self, packet: av.Packet) -> int:
        """The sample a packet starts at (less the priming): where the one before it ended, or for the first the
        stream's codec delay before 0, wherever that lies within its clock's rounding of its time, else that time.
        Matroska times packets to the millisecond: an Opus track's first, 312 samples before 0, read as -7 ms
        (336 samples), and the track came out 24 samples (0.5 ms) off in every container it was coded into."""
        stamp = packet.pts if packet.pts is not None else packet.dts
        exact = stamp * packet.time_base * self._rate - self._priming
        expected = -(self._decoder.delay or 0) - self._priming if self._next is None else self._next
        return expected if abs(exact - expected) <= packet.time_base * self._rate / 2 else round(exact)

    def flush(self) -> list[av.Packet]:
        end = self._next or 0
        ready = [packet for frame in self._decoder.decode(None) for packet in self._encode(frame, end)]
        return ready + list(self._target.encode(None))

    def _encode(self, frame: av.AudioFrame, at: int) -> list[av.Packet]:
        """One decoded frame that starts at sample `at`, without its samples before 0."""
        self._next = at + frame.samples
        if self._next <= 0:
            return []
        if at < 0:
            frame, at = _from_sample(frame, -at), 0
        if self._both_sides:
            frame = _on_both_sides(frame)
        frame.pts, frame.time_base = at, Fraction(1, self._rate)
        return list(self._target.encode(frame))


def encoder_delay(context: av.audio.codeccontext.AudioCodecContext) -> int:
    """The samples of priming an encoder set up like `context` puts before the first one it is given (the first
    packet's time before 0: LAME's 1105, AAC's 1024, MP2's 481, AC-3's 256; PCM's 0), measured on silence by an
    encoder of its own, as PyAV does not give FFmpeg's initial_padding. A container that stores no such delay
    (AVI) has it heard: an Opus track coded into an .avi as MP3 sounded 23 ms after its pictures (measured)."""
    trial = av.CodecContext.create(context.codec.name, "w")
    trial.sample_rate, trial.layout, trial.format = context.sample_rate, context.layout, context.format
    if context.bit_rate:
        trial.bit_rate = context.bit_rate
    samples = context.frame_size or 1024
    for number in range(64):  # an encoder holds back a few frames at most before its first packet
        first = next(iter(trial.encode(silent_frame(context, samples, number * samples, context.sample_rate))), None)
        if first is not None:
            return max(0, -first.pts) if first.pts is not None else 0
    return 0


def silent_frame(context: av.audio.codeccontext.AudioCodecContext, samples: int, at: int, rate: int) -> av.AudioFrame:
    """`samples` of silence at `rate` in an encoder's sample format and layout, from sample `at` (a trial encode's,
    where a rate other than the encoder's is resampled as the track's frames will be): zero
    bytes in each of its planes (one a channel; packed, one in all). PyAV 18 counts one plane past an 8-channel
    planar frame's eighth, and writing it was a segmentation fault: 7.1(wide) PCM into an .mp4, tried as ALAC
    (s16p), killed the whole restore on its trial file (measured)."""
    silence = av.AudioFrame(format=context.format.name, layout=context.layout, samples=samples)
    for plane in silence.planes[:len(context.layout.channels) if context.format.is_planar else 1]:
        plane.update(bytes(plane.buffer_size))
    silence.sample_rate, silence.pts = rate, at
    return silence


def skipped_samples(packet: av.Packet) -> int:
    """The samples a packet's decoder drops from its start (its skip_samples: an encoder's delay, LAME's 1105 in
    Matroska's MP3, an MP4 edit list's AAC priming), so its first decoded sample sounds that much after its time.
    Counted from the packet's time, those 1105 samples were cut a second time and the track began 47 late."""
    if not packet.has_sidedata("skip_samples"):
        return 0
    return int.from_bytes(bytes(packet.get_sidedata("skip_samples"))[:4], "little")


def _from_sample(frame: av.AudioFrame, first: int) -> av.AudioFrame:
    """A decoded frame's samples from `first` on, copied plane by plane (one a channel; packed, one in all): PyAV 18
    counts one plane past an 8-channel frame's eighth (a pointer that is no plane), and to_ndarray read it, a
    segmentation fault on a 7.1 Opus track's first frame, cut at its pre-skip (measured)."""
    planes = len(frame.layout.channels) if frame.format.is_planar else 1
    width = frame.format.bytes * (1 if frame.format.is_planar else len(frame.layout.channels))  # a sample's bytes
    cut = av.AudioFrame(format=frame.format.name, layout=frame.layout, samples=frame.samples - first)
    for source, target in zip(frame.planes[:planes], cut.planes[:planes]):
        kept = bytes(source)[first * width:frame.samples * width]
        target.update(kept + bytes(target.buffer_size - len(kept)))
    cut.sample_rate = frame.sample_rate
    return cut


def _on_both_sides(frame: av.AudioFrame) -> av.AudioFrame:
    """A mono frame as stereo, its one channel on each side at the level it had: left to the encoder's resampler,
    swresample's default upmix put it at -3 dB a side (measured: a 0.3 peak into .dv came out 0.212 each side), so
    a mono voice came out quieter than it went in."""
    width = frame.format.bytes
    samples = np.frombuffer(bytes(frame.planes[0]), np.uint8)[:frame.samples * width].reshape(frame.samples, width)
    both = av.AudioFrame(format=frame.format.name, layout="stereo", samples=frame.samples)
    for side, plane in zip([samples] * 2 if frame.format.is_planar else [np.repeat(samples, 2, axis=0)], both.planes):
        kept = side.tobytes()
        plane.update(kept + bytes(plane.buffer_size - len(kept)))
    both.sample_rate = frame.sample_rate
    return both
