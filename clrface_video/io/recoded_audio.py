"""An audio track the output's muxer refuses (or writes as few players play it), coded again for it: the encoders
lossless_audio names for the track, each tried on a trial file (trial_file) until one reads back, then added to the
output and said in a warning."""
from __future__ import annotations

import io
import logging
from pathlib import Path

import av

from clrface_video.io import lossless_audio, trial_file
from clrface_video.io.output_stream import container_suffix

log = logging.getLogger(__name__)

DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
# Codecs a muxer takes and writes but few of its players play, coded again as though it refused them: FFmpeg writes
# Vorbis into an .mp4 (copied so, measured), which QuickTime, browsers and phones do not play
UNPLAYED = {"mp4": frozenset({"vorbis"})}


def ordered_layout(layout: av.AudioLayout) -> av.AudioLayout | str:
    """A channel layout, or where its channels have no order (Matroska stores none for PCM) the usual one for
    its channel count."""
    if all(channel.name == "NONE" for channel in layout.channels) and len(layout.channels) in DEFAULT_LAYOUTS:
        return DEFAULT_LAYOUTS[len(layout.channels)]
    return layout


def unplayed(stream: av.stream.Stream, out: av.container.OutputContainer) -> bool:
    """Whether `stream` is audio the output's muxer would hold as it is, but few of its players play (UNPLAYED;
    PCM in an .mp4, ISO PCM there, where ALAC or FLAC take it: lossless_audio.iso_pcm)."""
    codec = stream.codec_context.codec if stream.type == "audio" else None
    muxer = out.format.name.split(",")[0]
    return codec is not None and (codec.canonical_name in UNPLAYED.get(muxer, ()) or
                                  lossless_audio.iso_pcm(stream, muxer))


def converted_audio(stream: av.audio.stream.AudioStream, name: str,
                    out: av.container.OutputContainer) -> av.audio.stream.AudioStream | None:
    """The output stream an audio track the output's muxer refuses is coded again into (its packets go through a
    lossless_audio.SampleConverter): a lossless one losslessly in the first codec it
    holds (lossless_audio.encoders), else, where the output holds PCM alone, its PCM (_decoded_to_pcm), else any
    track once at a high rate (lossless_audio.high_rate_encoders). Left
    out, an editor's sound was lost (FLAC in .mov is refused even with strict experimental, measured, though .mp4
    holds it), and so was a .webm's Opus in a .mov or .avi, its Vorbis in a .ts or .mov; copied into an .mp4, its
    Vorbis was silent in most players (unplayed)."""
    muxer = out.format.name.split(",")[0]
    iso = " (ISO PCM)" if lossless_audio.iso_pcm(stream, muxer) else ""
    why = f"in {container_suffix(out)}{iso} plays in few players (not QuickTime, browsers or phones)" \
        if unplayed(stream, out) else f"cannot be copied into {container_suffix(out)}"
    rounded = next((copy for pcm in lossless_audio.rounded(stream, muxer) or lossless_audio.widened(stream, muxer)
                    if (copy := _decoded_to_pcm(stream, name, out, pcm, why)) is not None), None)
    if rounded is not None:  # float into an .mp4: at 24 bits in a codec its players read, not exactly as ISO PCM;
        return rounded  # 8-bit PCM at 16 bits
    layouts = lossless_audio.layouts(ordered_layout(stream.codec_context.layout))
    found = next(((codec, kind, layout) for codec, kind in lossless_audio.encoders(stream, muxer) for layout in layouts
                  if _encoded_reads_back(out, stream, codec, kind, layout=layout,
                                         options=lossless_audio.full_depth(codec, stream))), None)
    if found is not None:
        encoded = _add_encoder(out, stream, *found[:2], layout=found[2],
                               options=lossless_audio.full_depth(found[0], stream))
        log.warning("audio stream %d (%s) %s; it is re-encoded losslessly as %s, every sample kept", stream.index,
                    name, why, found[0])
        return encoded
    if muxer in lossless_audio.PCM_ONLY:
        return _decoded_to_pcm(stream, name, out, lossless_audio.PCM_ONLY[muxer],
                               f"cannot be copied into {container_suffix(out)}, which holds PCM only")
    entries = lossless_audio.high_rate_encoders(stream.codec_context, muxer)
    played = lossless_audio.played_rate(muxer, stream.codec_context.sample_rate)
    asked = None if played == stream.codec_context.sample_rate else played
    # at the source's rate first (8 kHz AAC, not AC-3 resampled to 32), or the one the container's players expect
    # (a DVD's 48 kHz), then at one the encoder codes (Opus, 48), in the source's channels; mixed down last (7.1 to
    # AC-3's 5.1), where no encoder takes them all
    tries = [(entry, asked) for entry in entries] + \
        [(entry, rate) for entry in entries if (rate := lossless_audio.coded_rate(entry[0], played)) != played]
    tries = [(entry, rate, None) for entry, rate in tries] + \
        [(entry, rate, layout) for entry, rate in tries
         if (layout := lossless_audio.mixed_down(entry[0], stream.codec_context.channels)) is not None]
    lossy, rate, layout = next(((entry, rate, layout) for entry, rate, layout in tries
                                if _encoded_reads_back(out, stream, *entry, rate=rate, layout=layout)), (None,) * 3)
    if lossy is None:  # no lossy encoder there takes its channels: decoded to PCM where the muxer holds it
        wide = f"cannot be copied into {container_suffix(out)}, whose lossy codecs take fewer than its " \
            f"{stream.codec_context.channels} channels"
        return next((copy for pcm in lossless_audio.WIDE_PCM.get(muxer, ())
                     if (copy := _decoded_to_pcm(stream, name, out, pcm, wide)) is not None), None)
    encoded = _add_encoder(out, stream, *lossy, rate=rate, layout=layout)
    mixed = ("" if rate is None else f", {rate / 1000:g} kHz") + ("" if layout is None else f", mixed down to {layout}")
    if lossless_audio.lossless(stream):
        log.warning("audio stream %d (%s) cannot be stored losslessly in %s; it is re-encoded as %s at %d kb/s%s "
                    "(lossy; .mkv and .mov keep it as it is)", stream.index, name, container_suffix(out), lossy[0],
                    lossy[2] // 1000, mixed)
    else:
        log.warning("audio stream %d (%s) %s; it is re-encoded as %s at %d kb/s%s (lossy to lossy, a little lost; %s "
                    "keeps it as it is)", stream.index, name, why, encoded.codec_context.codec.canonical_name,
                    lossy[2] // 1000, mixed, _keeps(stream, name))
    return encoded


def _decoded_to_pcm(stream: av.audio.stream.AudioStream, name: str, out: av.container.OutputContainer,
                    pcm: lossless_audio.PcmOnly, why: str) -> av.audio.stream.AudioStream | None:
    """A track an output that holds PCM alone (.mxf, .dv) cannot hold as it is, decoded to its PCM (at a rate and
    in a layout it takes, resampled or mixed where it must be): no lossy codec is stored there, and leaving the
    track out made a silent output. So too a track with more channels than any lossy encoder of the output takes
    (7.1 into .mov or .mp4, lossless_audio.WIDE_PCM), and float PCM into an .mp4 (lossless_audio.rounded). A lossy
    track's decoded samples are what any player hears of it, so only a change of rate or channels alters them; a
    lossless one's are also rounded where the codec holds fewer bits (lossless_audio.rounding). `why` says why it
    is not copied, in the one warning."""
    context = stream.codec_context
    layout = pcm.layout or ordered_layout(context.layout)
    nearest = lossless_audio.nearest_rate(context.sample_rate, pcm.rates)
    # NTSC DV takes 48 kHz alone (measured: FFmpeg's muxer refuses 44.1 and 32 beside 29.97 fps, PAL's takes them),
    # so the other rates are tried after the nearest: a 44.1 kHz track was left out of an NTSC .dv
    rate = next((rate for rate in (nearest, *sorted(set(pcm.rates) - {nearest}, reverse=True))
                 if _encoded_reads_back(out, stream, pcm.codec, pcm.sample_format, layout=layout, rate=rate)), None)
    if rate is None:
        return None
    encoded = _add_encoder(out, stream, pcm.codec, pcm.sample_format, layout=layout, rate=rate)
    lossless = lossless_audio.lossless(stream)
    cut = lossless_audio.rounding(stream, pcm.codec) if lossless else None
    changed = [f"resampled to {rate / 1000:g} kHz"] * (rate != context.sample_rate) + \
        [f"its one channel on both sides of {pcm.layout}" if context.channels == 1 else f"mixed to {pcm.layout}"] * \
        (pcm.layout is not None and context.channels != len(encoded.layout.channels)) + [cut] * (cut is not None)
    log.warning("audio stream %d (%s) %s; it is decoded to %s, %s (%s keeps it as it is)", stream.index, name, why,
                pcm.codec, " and ".join(changed) or ("every decoded sample kept" if lossless else "nothing more lost"),
                _keeps(stream, name))
    return encoded


def _keeps(stream: av.audio.stream.AudioStream, name: str) -> str:
    """A container that holds a lossy track as it is, for a warning: Matroska, which holds Opus, Vorbis, AAC, MP3
    and AC-3 (measured), else the source's own (WMA's .wmv)."""
    with av.open(io.BytesIO(), "w", format="matroska") as trial:
        holds = name in trial.supported_codecs
    return ".mkv" if holds else Path(stream.container.name).suffix.lower()


def _encoded_reads_back(out: av.container.OutputContainer, source: av.audio.stream.AudioStream, codec: str,
                        sample_format: str, bit_rate: int | None = None, *, layout: str | None = None,
                        rate: int | None = None, options: dict[str, str] | None = None) -> bool:
    """Whether frames of silence coded by `codec` (trial_file.TRIAL_AUDIO_PACKETS), muxed on a trial file like the
    output, read back as `codec`: a muxer may take a stream it writes as no demuxer reads it (PCM in MPEG-TS comes back as data). In
    .mxf and .dv, whose muxers refuse sound before the first picture (measured: invalid data), the codec is tried
    as a copy's is, by the header alone."""
    def write(trial: av.container.OutputContainer) -> tuple[int, str] | None:
        encoded = _add_encoder(trial, source, codec, sample_format, bit_rate, layout=layout, rate=rate,
                               options=options)
        trial.start_encoding()
        if out.format.name in trial_file.VIDEO_MUXERS:
            return None
        samples = encoded.codec_context.frame_size or 1024
        packets = []
        for number in range(trial_file.TRIAL_AUDIO_PACKETS):
            packets += encoded.encode(lossless_audio.silent_frame(encoded.codec_context, samples, number * samples,
                                                                  source.codec_context.sample_rate))
        for packet in [*packets, *encoded.encode(None)]:
            trial.mux(packet)
        return encoded.index, encoded.codec_context.codec.canonical_name  # libmp3lame's MP3 decodes as mp3float

    return trial_file.on_trial(out, write)


def _add_encoder(out: av.container.OutputContainer, source: av.audio.stream.AudioStream, codec: str,
                 sample_format: str, bit_rate: int | None = None, *, layout: str | None = None,
                 rate: int | None = None, options: dict[str, str] | None = None) -> av.audio.stream.AudioStream:
    """An audio stream coded by `codec` at the source's rate (or `rate`, resampled: lossy codecs and PCM-only
    containers' PCM, lossless_audio.PCM_ONLY) and
    channels (in `layout`, else the source's), from samples in `sample_format` (at `bit_rate` bits per second, a
    lossy codec's), with the encoder's `options` (lossless_audio.full_depth)."""
    stream = out.add_stream(codec, rate=rate or source.codec_context.sample_rate,
                            layout=layout or ordered_layout(source.codec_context.layout))
    stream.codec_context.format = sample_format
    if options:
        stream.codec_context.options = options
    if bit_rate:
        stream.codec_context.bit_rate = bit_rate
    return stream
