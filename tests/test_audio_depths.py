"""Audio of every depth a player may meet (32-bit and float PCM, WavPack) comes out playable, every sample kept or its
rounding said; a 44.1 kHz lossless track goes into an .mxf at the 48 kHz it takes, in time and in tune."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.test_io_video import SMALL, copy_video
from tests.test_lossless_audio import interleaved

SECOND = 48000
FULL_SCALE = {"s16": 2 ** 15, "s32": 2 ** 31, "flt": 1, "dbl": 1}


def audio_clip(path: Path, codec: str, sample_format: str, samples: np.ndarray, *, rate: int = SECOND,
               options: dict[str, str] | None = None) -> Path:
    """One second of 24 fps video beside `samples` (channels, count) coded by `codec` from `sample_format`."""
    step = samples.shape[1] // 24
    planar = av.AudioFormat(sample_format).is_planar
    with av.open(str(path), "w") as out:
        video, audio = out.add_stream("libx264", rate=24), out.add_stream(codec, rate=rate, layout="stereo")
        video.width, video.height, video.pix_fmt = *SMALL, "yuv420p"
        audio.codec_context.format = sample_format
        audio.codec_context.options = options or {}
        for i in range(24):
            frame = av.VideoFrame(*SMALL, "yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
            part = samples[:, i * step:(i + 1) * step]
            sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(part if planar else part.T.reshape(1, -1)),
                                               format=sample_format, layout="stereo")
            sound.sample_rate, sound.pts = rate, i * step
            out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
        out.mux(video.encode(None))
    return path


def noise(kind: str, bits: int = 32) -> np.ndarray:
    """A second of stereo noise at every `bits` of a sample (the low ones of 32 zero for 24), or float noise whose
    few loudest samples pass full scale (a float mix's headroom)."""
    rng = np.random.default_rng(11)
    if kind in ("flt", "dbl"):
        return (rng.standard_normal((2, SECOND)) * 0.25).astype(np.float32 if kind == "flt" else np.float64)
    if kind == "s16":
        return rng.integers(-2 ** 15, 2 ** 15, (2, SECOND)).astype(np.int16)
    return (rng.integers(-2 ** (bits - 1), 2 ** (bits - 1), (2, SECOND), dtype=np.int64) << (32 - bits)).astype(np.int32)


def scaled(path: Path) -> np.ndarray:
    """The first audio stream's decoded samples, interleaved, as float at full scale 1."""
    with av.open(str(path)) as container:
        kind = container.streams.audio[0].codec_context.format.name.rstrip("p")
    return interleaved(path).astype(np.float64) / FULL_SCALE[kind]


def coded(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.audio[0].codec_context.codec.canonical_name


def audio_lines(warnings_logged) -> list[str]:
    return sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})


ISO_PCM = "in .mp4 (ISO PCM) plays in few players (not QuickTime, browsers or phones)"
ROUNDED_24 = "rounded to 24 bits (each within 2^-23 of full scale, any beyond full scale clipped)"


def test_32_bit_pcm_into_mp4_is_kept_every_bit_as_flac(tmp_path, warnings_logged):
    """Regression: 32-bit PCM went into an .mp4 as ISO PCM (ipcm), which QuickTime, browsers and most editors do
    not play. FFmpeg's ALAC encoder and its FLAC encoder by default code 24 bits (the low 8 lost); FLAC in its
    32-bit mode keeps them: each sample of noise at all 32 bits comes back as it was."""
    src = audio_clip(tmp_path / "mix.mov", "pcm_s32le", "s32", noise("s32"))
    out = copy_video(src, tmp_path / "out.mp4")
    assert coded(out) == "flac"
    heard, played = interleaved(src), interleaved(out)
    assert len(played) == len(heard) and (played == heard).all()
    assert audio_lines(warnings_logged) == [(f"audio stream 1 (pcm_s32le) {ISO_PCM}; it is re-encoded losslessly as "
                                            "flac, every sample kept")]


@pytest.mark.parametrize(("codec", "kind"), [("pcm_f32le", "flt"), ("pcm_f64le", "dbl")])
def test_float_pcm_into_mp4_is_coded_as_alac_its_rounding_said(tmp_path, warnings_logged, codec, kind):
    """Regression: float PCM went into an .mp4 as ISO PCM (fpcm), silent in QuickTime and browsers. No codec their
    players read holds float, so it goes in as 24-bit ALAC, said in one line: each sample within one 24-bit step
    (2^-23) of its own, those beyond full scale at full scale."""
    src = audio_clip(tmp_path / "mix.mov", codec, kind, noise(kind))
    out = copy_video(src, tmp_path / "out.mp4")
    assert coded(out) == "alac"
    heard, played = scaled(src), scaled(out)
    assert len(played) == len(heard)
    inside = np.abs(heard) < 1
    assert np.abs(played - heard)[inside].max() <= 2 ** -23 and (~inside).any()
    assert np.abs(played[~inside]).min() >= 1 - 2 ** -23
    assert audio_lines(warnings_logged) == [(f"audio stream 1 ({codec}) {ISO_PCM}; it is decoded to alac, "
                                            f"{ROUNDED_24} (.mkv keeps it as it is)")]


@pytest.mark.parametrize(("codec", "kind", "said"), [
    ("pcm_s32le", "s32", "rounded to 24 bits (each within 2^-23 of full scale)"), ("pcm_f32le", "flt", ROUNDED_24)])
def test_32_bit_and_float_pcm_into_mxf_say_they_are_rounded(tmp_path, warnings_logged, codec, kind, said):
    """Regression: MXF holds 24-bit PCM at most, and a 32-bit or float track decoded to it was said to keep 'every
    decoded sample'. The warning now says the rounding, which the samples show (within 2^-23 inside full scale)."""
    src = audio_clip(tmp_path / "mix.mov", codec, kind, noise(kind))
    out = copy_video(src, tmp_path / "out.mxf")
    heard, played = scaled(src), scaled(out)
    inside = np.abs(heard) < 1
    assert np.abs(played[:len(heard)] - heard)[inside].max() <= 2 ** -23
    assert audio_lines(warnings_logged) == [(f"audio stream 1 ({codec}) cannot be copied into .mxf, which holds PCM "
                                            f"only; it is decoded to pcm_s24le, {said} (.mkv keeps it as it is)")]


@pytest.mark.parametrize(("kind", "bits", "suffix", "into"), [
    ("s16p", 16, ".mp4", "alac"), ("s32p", 24, ".mp4", "alac"), ("s32p", 32, ".mp4", "flac"),
    ("s16p", 16, ".mov", "pcm_s16le"), ("s32p", 24, ".mov", "pcm_s24le"), ("fltp", 32, ".mov", "pcm_f32le"),
    ("s32p", 24, ".avi", "pcm_s24le"), ("fltp", 32, ".avi", "pcm_f32le"), ("s16p", 16, ".mxf", "pcm_s16le")])
def test_lossless_wavpack_is_kept_sample_for_sample(tmp_path, warnings_logged, kind, bits, suffix, into):
    """Regression: FFmpeg calls WavPack lossy and lossless alike, and a lossless WavPack track from an .mkv (what
    archives keep) was coded as AAC for an .mp4 or .mov and as MP3 for an .avi, with a warning that it was lossy to
    begin with. Its blocks say it is lossless (not hybrid) and how many bits a sample holds: it goes in as ALAC or
    FLAC (32 bits), or PCM of its depth, every decoded sample the source's."""
    options = {"bits_per_raw_sample": "24"} if bits == 24 else None
    src = audio_clip(tmp_path / "archive.mkv", "wavpack", kind, noise(kind.rstrip("p"), bits), options=options)
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert coded(out) == into
    heard, played = interleaved(src), interleaved(out)
    assert len(played) >= len(heard) and (played[:len(heard)] == heard).all()
    assert audio_lines(warnings_logged) == [(f"audio stream 1 (wavpack) cannot be copied into {suffix}; it is "
                                            f"re-encoded losslessly as {into}, every sample kept")]


def test_float_wavpack_into_mp4_is_coded_as_alac_its_rounding_said(tmp_path, warnings_logged):
    """A float WavPack track into an .mp4 goes in as float PCM does (ALAC at 24 bits, said), not as AAC."""
    src = audio_clip(tmp_path / "archive.mkv", "wavpack", "fltp", noise("flt"))
    out = copy_video(src, tmp_path / "out.mp4")
    assert coded(out) == "alac"
    heard, played = scaled(src), scaled(out)
    inside = np.abs(heard) < 1
    assert np.abs(played - heard)[inside].max() <= 2 ** -23
    assert audio_lines(warnings_logged) == [(f"audio stream 1 (wavpack) cannot be copied into .mp4; it is decoded to "
                                            f"alac, {ROUNDED_24} (.mkv keeps it as it is)")]


@pytest.mark.parametrize(("codec", "kind", "suffix"), [("flac", "s16", ".mkv"), ("pcm_s24le", "s32", ".mov")])
def test_44_1_khz_lossless_audio_into_mxf_is_resampled_in_time_and_in_tune(tmp_path, warnings_logged, codec, kind,
                                                                          suffix):
    """An .mxf takes 48 kHz audio alone (FFmpeg's muxer refuses 44.1 kHz), so a CD-rate lossless track is resampled
    to 48 kHz, said in one line: a 1 kHz tone that starts at 0.5 s starts there still (within a sample), at its
    level, and follows the tone at 48 kHz closely (resampling's error, not a lost or moved sample)."""
    rate = 44100
    t = np.arange(rate) / rate
    tone = np.where(t >= 0.5, 0.3 * np.sin(2 * np.pi * 1000 * (t - 0.5)), 0)
    samples = np.repeat(np.round(tone * FULL_SCALE[kind])[None], 2, axis=0)
    src = audio_clip(tmp_path / f"cd{suffix}", codec, kind, samples.astype(np.int16 if kind == "s16" else np.int32),
                     rate=rate)
    out = copy_video(src, tmp_path / "out.mxf")
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.sample_rate == SECOND
    played = scaled(out)[::2]  # the left channel
    assert abs(np.flatnonzero(np.abs(played) > 0.01)[0] - SECOND // 2) <= 1
    expected = 0.3 * np.sin(2 * np.pi * 1000 * (np.arange(SECOND // 2) / SECOND))
    steady = slice(SECOND // 2 + 480, SECOND - 480)  # 10 ms from the tone's start and the sound's end
    assert np.abs(played[steady] - expected[480:SECOND // 2 - 480]).max() < 1e-4  # -80 dB
    assert audio_lines(warnings_logged) == [(f"audio stream 1 ({codec}) cannot be copied into .mxf, which holds PCM "
                                            "only; it is decoded to pcm_s24le, resampled to 48 kHz (.mkv keeps it as "
                                            "it is)")]


def test_8_bit_pcm_into_mxf_is_not_said_to_be_rounded(tmp_path, warnings_logged):
    """Regression: 8-bit PCM (an old AVI or QuickTime capture's) decoded to an .mxf's 24-bit PCM was said to be
    'rounded to 24 bits'; every sample is kept (each 8-bit step is a whole number of 24-bit ones), and it says so."""
    levels = np.random.default_rng(5).integers(0, 256, (2, SECOND)).astype(np.uint8)
    src = audio_clip(tmp_path / "capture.mov", "pcm_u8", "u8", levels)
    out = copy_video(src, tmp_path / "out.mxf")
    played = interleaved(out).astype(np.float64) / 2 ** 31
    heard = (interleaved(src).astype(np.float64) - 128) / 128
    assert len(played) >= len(heard) and (played[:len(heard)] == heard).all()
    assert audio_lines(warnings_logged) == [("audio stream 1 (pcm_u8) cannot be copied into .mxf, which holds PCM "
                                             "only; it is decoded to pcm_s24le, every decoded sample kept (.mkv keeps "
                                             "it as it is)")]


def test_8_bit_pcm_into_mp4_is_kept_every_sample_as_16_bit_alac(tmp_path, warnings_logged):
    """Regression: 8-bit PCM (an old AVI or QuickTime capture's) into an .mp4, which holds no 8-bit PCM, was coded
    as AAC at 512 kb/s, said 'cannot be stored losslessly'. 16-bit ALAC holds each 8-bit sample exactly (its level
    moved to the top byte): it goes in so, every sample kept and said so."""
    levels = np.random.default_rng(5).integers(0, 256, (2, SECOND)).astype(np.uint8)
    src = audio_clip(tmp_path / "capture.mov", "pcm_u8", "u8", levels)
    out = copy_video(src, tmp_path / "out.mp4")
    assert coded(out) == "alac"
    played, heard = interleaved(out).astype(np.int64), interleaved(src).astype(np.int64) - 128
    assert len(played) == len(heard) and (played == heard << 8).all()
    assert audio_lines(warnings_logged) == [("audio stream 1 (pcm_u8) cannot be copied into .mp4; it is decoded to "
                                             "alac, every decoded sample kept (.mkv keeps it as it is)")]
