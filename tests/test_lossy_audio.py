"""A lossy audio track that the output's container cannot hold is coded once more at a high rate, never left out."""
from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clrface_video.io import lossless_audio, recoded_audio
from tests.media import read_packets
from tests.test_containers_timing import ffmpeg_times, times
from tests.test_io_video import SMALL, copy_video
from tests.test_lossless_audio import decoded_seconds

RATE = 48000
FRAME = {"ac3": 1536, "aac": 1024, "mp3": 1152, "opus": 960}  # samples in a frame of each codec coded into


def toned_clip(path: Path, video_codec: str, audio_codec: str, rate: int = RATE, layout: str = "stereo", *,
               size: tuple[int, int] = SMALL, fps: int | Fraction = 24) -> Path:
    """One second of `fps` video with a 440 Hz tone in each channel of `layout` at `rate` Hz coded by
    `audio_codec` (FFmpeg's own Vorbis encoder is experimental), the track tagged French and not default, as a
    dubbed second language is."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=fps)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        audio = out.add_stream(audio_codec, rate=rate, layout=layout)
        audio.codec_context.options = {"strict": "experimental"}
        audio.metadata["language"] = "fra"
        audio.disposition = av.stream.Disposition(0)
        for i in range(round(fps)):
            frame = av.VideoFrame(*size, "yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        for start in range(0, rate, 960):
            tone = (0.3 * np.sin(2 * np.pi * 440 * (np.arange(960) + start) / rate)).astype(np.float32)
            # packed: PyAV's from_ndarray fails on more than 8 planes' pointers (IndexError for 7.1 as fltp)
            sound = av.AudioFrame.from_ndarray(np.repeat(tone, av.AudioLayout(layout).nb_channels)[None], format="flt",
                                               layout=layout)
            sound.sample_rate, sound.pts = rate, start
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


@pytest.mark.parametrize(("audio_codec", "source", "suffix", "coded", "rate"), [
    ("vorbis", ".webm", ".ts", "ac3", RATE), ("vorbis", ".mkv", ".mov", "aac", RATE),
    ("libopus", ".webm", ".avi", "mp3", RATE), ("aac", ".mkv", ".webm", "opus", RATE),
    ("aac", ".mkv", ".webm", "opus", 44100), ("libopus", ".mkv", ".mpg", "ac3", RATE)])
def test_lossy_audio_the_container_refuses_is_coded_once_more_not_left_out(tmp_path, warnings_logged, audio_codec,
                                                                           source, suffix, coded, rate):
    """Regression: a .webm's Vorbis into a .ts or .mov, Opus into an .avi or .mpg, AAC into a .webm came out
    silent ('cannot be stored ...; it is left out'). The track is coded once more by the output's own high-rate
    codec, said in one line: as long as the video within one frame of that codec, starting with it, the source's
    440 Hz tone still its loudest, its language and flags kept. Opus codes no 44.1 kHz: such AAC goes in at 48."""
    src = toned_clip(tmp_path / f"in{source}", "libvpx-vp9" if source == ".webm" else "libx264", audio_codec, rate)
    out = copy_video(src, tmp_path / f"out{suffix}")
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        name = audio.codec_context.codec.canonical_name
        language, disposition = audio.metadata.get("language"), audio.disposition
    assert name == coded
    played, start = decoded_seconds(out)
    heard, _ = decoded_seconds(src)
    video = times(out)
    # AVI stores no encoder delay: LAME's 1105 samples of priming take the place of the track's first ones
    assert abs(len(played) - len(heard) * RATE / rate) <= FRAME[coded]  # 48 kHz coded
    assert abs(start - float(video[0])) < 1 / 24
    assert np.argmax(np.abs(np.fft.rfft(played[-RATE:]))) == 440  # 1 Hz bins over its last second
    said = sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})
    assert len(said) == 1 and said[0].startswith(f"audio stream 1 ({av.Codec(audio_codec, 'w').canonical_name}) cannot be "
                                                 f"copied into {suffix}; it is re-encoded as {coded} at ")
    assert said[0].endswith(f"{'' if rate == RATE else ', 48 kHz'} (lossy to lossy, a little lost; .mkv keeps it as it "
                            "is)")
    assert suffix not in (".mov", ".webm") or language in ("fra", "fre")  # those of these that store a language
    assert suffix != ".webm" or not disposition & av.stream.Disposition.default  # .mov marks a lone track default


@pytest.mark.parametrize(("audio_codec", "source", "suffix"), [
    ("libopus", ".webm", ".mp4"), ("vorbis", ".webm", ".mkv"), ("aac", ".mkv", ".mov"), ("libopus", ".mkv", ".ts")])
def test_lossy_audio_the_container_holds_is_still_copied_bit_for_bit(tmp_path, warnings_logged, audio_codec,
                                                                    source, suffix):
    """Only a track the container refuses is coded again: one it holds keeps every packet's bytes."""
    src = toned_clip(tmp_path / f"in{source}", "libvpx-vp9" if source == ".webm" else "libx264", audio_codec)
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert [p[0] for p in read_packets(out, "audio")] == [p[0] for p in read_packets(src, "audio")]
    assert "audio stream" not in warnings_logged.text


@pytest.mark.parametrize(("audio_codec", "suffix", "rate", "pcm", "changed"), [
    ("aac", ".mxf", RATE, "pcm_s24le", "nothing more lost"),
    ("libmp3lame", ".mxf", RATE, "pcm_s24le", "nothing more lost"),
    ("aac", ".mxf", 44100, "pcm_s24le", "resampled to 48 kHz"),
    ("aac", ".dv", RATE, "pcm_s16le", "nothing more lost")])
def test_lossy_audio_into_a_pcm_only_container_is_decoded_to_pcm_not_left_out(tmp_path, warnings_logged, audio_codec,
                                                                               suffix, rate, pcm, changed):
    """Regression: .mxf and .dv hold PCM alone, and an .mkv's AAC or MP3 came out of them silent ('cannot be
    stored ...; it is left out'). The track is decoded to the container's PCM (24 bits in .mxf, DV's 16), said in one
    line: as long as the source's decoded track within one of its frames, starting where it and the video start,
    the 440 Hz tone still its loudest; at the source's rate each sample is its decoded one (to 24 or 16 bits), and
    44.1 kHz goes into .mxf at the 48 kHz it alone takes."""
    dv = suffix == ".dv"
    src = toned_clip(tmp_path / "in.mkv", "libx264", audio_codec, rate, size=(720, 576) if dv else SMALL,
                     fps=25 if dv else 24)
    out = copy_video(src, tmp_path / f"out{suffix}")
    with av.open(str(out)) as container:
        audio = container.streams.audio[0].codec_context
        assert (audio.codec.canonical_name, audio.sample_rate, audio.channels) == (pcm, RATE, 2)
    played, start = decoded_seconds(out)
    heard, heard_start = decoded_seconds(src)
    frame = FRAME["mp3" if audio_codec == "libmp3lame" else audio_codec]
    assert abs(len(played) - len(heard) * RATE / rate) <= frame * RATE / rate
    assert abs(start - heard_start) < 1 / RATE and abs(start - float(times(out)[0])) < 1 / 24
    assert np.argmax(np.abs(np.fft.rfft(played[-RATE:]))) == 440  # 1 Hz bins over its last second
    if rate == RATE:  # nothing more lost than a step of the PCM's depth
        step = 2.0 ** (1 - (24 if pcm == "pcm_s24le" else 16))
        assert np.max(np.abs(played[:len(heard)] - np.clip(heard[:len(played)], -1, 1))) <= step
    said = sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})
    name = av.Codec(audio_codec, "w").canonical_name
    assert said == [(f"audio stream 1 ({name}) cannot be copied into {suffix}, which holds PCM only; it is decoded "
                     f"to {pcm}, {changed} (.mkv keeps it as it is)")]


@pytest.mark.parametrize(("audio_codec", "source", "suffix", "coded", "said"), [
    ("libopus", ".mkv", ".mov", ("pcm_s24le", 8),
     ("cannot be copied into .mov, whose lossy codecs take fewer than its 8 channels; it is decoded to pcm_s24le, "
     "nothing more lost (.mkv keeps it as it is)")),
    ("libopus", ".mkv", ".avi", ("pcm_s24le", 8),
     ("cannot be copied into .avi, whose lossy codecs take fewer than its 8 channels; it is decoded to pcm_s24le, "
     "nothing more lost (.mkv keeps it as it is)")),
    ("pcm_s16le", ".mov", ".ts", ("ac3", 6),
     ("cannot be stored losslessly in .ts; it is re-encoded as ac3 at 640 kb/s, mixed down to 5.1 (lossy; .mkv and "
     ".mov keep it as it is)"))])
def test_a_7_1_track_no_encoder_of_the_container_takes_is_decoded_or_mixed_down_not_a_crash(tmp_path, audio_codec,
                                                                                             source, suffix, coded,
                                                                                             said):
    """Regression: a 7.1 Opus track into a .mov, 7.1 PCM into a .ts, was tried on AAC, whose encoder (FFmpeg 8)
    crashes the process on 8 channels, and then left out: the film's surround track came out silent; so was a 7.1
    Opus track in an .avi, whose MP3 takes 2. A .mov or .avi gets it decoded to 24-bit PCM in its 8 channels, a
    .ts mixed down to AC-3's 5.1, said in one line. Run in a child
    process, which that crash would kill: it ends cleanly with the video and a track as long as the source's within
    a frame of its codec, its 440 Hz tone still the loudest."""
    src = toned_clip(tmp_path / f"in{source}", "libx264", audio_codec, layout="7.1")
    out = tmp_path / f"out{suffix}"
    code = ("import logging, sys; from pathlib import Path; from tests.test_io_video import copy_video; "
            "logging.basicConfig(); copy_video(Path(sys.argv[1]), Path(sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", code, str(src), str(out)], check=False,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "audio stream" in line]
    assert lines == [(f"WARNING:clrface_video.io.recoded_audio:audio stream 1 ({av.Codec(audio_codec, 'w').canonical_name}) "
                     f"{said}")]
    with av.open(str(out)) as container:
        audio = container.streams.audio[0].codec_context
        assert (audio.codec.canonical_name, audio.channels) == coded  # AC-3's 5.1 reads back as 5.1(side)
    played, _ = decoded_seconds(out)
    heard, _ = decoded_seconds(src)
    assert abs(len(played) - len(heard)) <= FRAME["opus" if audio_codec == "libopus" else coded[0]]
    assert np.argmax(np.abs(np.fft.rfft(played[-RATE:]))) == 440  # 1 Hz bins over its last second
    assert len(times(out)) == 24


def sides(path: Path) -> np.ndarray:
    """The first audio stream's decoded samples, one column a channel, as floats of full scale 1."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray() for frame in container.decode(audio=0)]
        channels = container.streams.audio[0].codec_context.channels
    samples = np.concatenate([f.T if f.shape[0] == channels > 1 else f.reshape(-1, channels) for f in frames])
    return samples / 32768 if samples.dtype == np.int16 else samples.astype(np.float64)


@pytest.mark.parametrize("audio_codec", ["pcm_s16le", "aac"])
def test_a_mono_track_into_dv_is_on_both_sides_at_its_own_level(tmp_path, warnings_logged, audio_codec):
    """Regression: DV holds stereo only, and a mono voice decoded into a .dv was mixed to stereo at -3 dB a side
    (swresample's upmix: a 0.3 peak came out 0.212). Each side is now the source's one channel as it was: both
    sides equal, each one's peak and RMS the source's (within a 16-bit step), its samples too, said in one line."""
    src = toned_clip(tmp_path / "in.mkv", "libx264", audio_codec, layout="mono", size=(720, 576), fps=25)
    out = copy_video(src, tmp_path / "out.dv")
    heard, played = sides(src)[:, 0], sides(out)
    assert played.shape[1] == 2 and np.array_equal(played[:, 0], played[:, 1])
    assert abs(len(played) - len(heard)) <= FRAME["aac"]  # the video's second, an AAC track's last frame aside
    heard, side = heard[:len(played)], played[:len(heard), 0]
    step = 2.0 ** -15
    assert abs(np.max(np.abs(side)) - np.max(np.abs(heard))) <= step
    assert abs(np.sqrt(np.mean(side ** 2)) - np.sqrt(np.mean(heard ** 2))) <= step
    assert np.max(np.abs(side - np.clip(heard, -1, 1))) <= step
    said = sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})
    assert said == [(f"audio stream 1 ({av.Codec(audio_codec, 'w').canonical_name}) cannot be copied into .dv, which "
                     "holds PCM only; it is decoded to pcm_s16le, its one channel on both sides of stereo (.mkv keeps "
                     "it as it is)")]


@pytest.mark.parametrize(("audio_codec", "layout"), [("pcm_s16le", "stereo"), ("aac", "mono")])
def test_a_44_1_khz_track_into_an_ntsc_dv_is_resampled_to_48_not_left_out(tmp_path, warnings_logged, audio_codec,
                                                                          layout):
    """Regression: FFmpeg's DV muxer takes 44.1 and 32 kHz beside PAL's 25 fps but refuses them beside NTSC's 29.97
    (measured), so a 44.1 kHz home video into an NTSC .dv came out silent ('cannot be stored in .dv; it is left
    out'). It is resampled to 48 kHz: read back at 48000 Hz in stereo, as long as the pictures, its 440 Hz tone the
    loudest, said in the one warning."""
    src = toned_clip(tmp_path / "in.mkv", "libx264", audio_codec, 44100, layout, size=(720, 480),
                     fps=Fraction(30000, 1001))
    out = copy_video(src, tmp_path / "out.dv")
    with av.open(str(out)) as container:
        audio = container.streams.audio[0].codec_context
        assert (audio.sample_rate, audio.channels) == (RATE, 2)
    played = sides(out)
    assert abs(len(played) - 30 * 1001 / 30000 * RATE) <= FRAME["aac"]  # the pictures' 30 frames, padded to them
    assert np.argmax(np.abs(np.fft.rfft(played[-RATE:, 0]))) == 440  # 1 Hz bins over its last second
    said = sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})
    assert len(said) == 1 and "cannot be copied into .dv, which holds PCM only; it is decoded to pcm_s16le, " \
        "resampled to 48 kHz" in said[0]


def test_the_api_says_a_44_1_khz_tracks_resampling_for_an_ntsc_dv_once(tmp_path, warnings_logged):
    """restore_video's report and the package's log each hold the warning once, as the CLI prints it: the log
    records seemed to hold it twice, as the warnings_logged fixture recorded each one through the package's
    logger and again through the root logger it propagates to (the tests above counted a set of lines)."""
    from clrface_video import restore_video

    src = toned_clip(tmp_path / "in.mp4", "libx264", "aac", 44100, size=(720, 480), fps=Fraction(30000, 1001))
    report = restore_video(src, tmp_path / "out.dv", model="baseline-bicubic-sharpen", device="cpu")
    said = ("audio stream 1 (aac) cannot be copied into .dv, which holds PCM only; it is decoded to pcm_s16le, "
            "resampled to 48 kHz (.mkv keeps it as it is)")
    lost = "stream #1's (language) cannot be stored in .dv; they are left out (.mkv keeps them)"  # its 'fra'
    assert report.warnings == [said, lost]
    assert [r.getMessage() for r in warnings_logged.records] == [said, lost]


@pytest.mark.parametrize(("audio_codec", "suffix"), [("aac", ".mpg"), ("vorbis", ".vob"), ("pcm_s16le", ".mpg")])
def test_a_44_1_khz_track_recoded_for_a_dvd_program_stream_is_resampled_to_48(tmp_path, warnings_logged, audio_codec,
                                                                              suffix):
    """Regression: a 44.1 kHz track re-coded as AC-3 for an .mpg or .vob stayed at 44.1 kHz, valid MPEG-PS but not
    what DVD players and authoring tools take (DVD's AC-3 is 48 kHz; a .vob is written by FFmpeg's svcd muxer,
    which the rate table names too). It is resampled to 48 kHz: read back at 48000 Hz, as long as the source
    within an AC-3 frame, its 440 Hz tone still the loudest, the rate said in the one warning."""
    src = toned_clip(tmp_path / "in.mkv", "libx264", audio_codec, 44100)
    out = copy_video(src, tmp_path / f"out{suffix}")
    with av.open(str(out)) as container:
        audio = container.streams.audio[0].codec_context
        assert (audio.codec.canonical_name, audio.sample_rate) == ("ac3", RATE)
    played, _ = decoded_seconds(out)
    heard, _ = decoded_seconds(src)
    assert abs(len(played) - len(heard) * RATE / 44100) <= FRAME["ac3"]
    assert np.argmax(np.abs(np.fft.rfft(played[-RATE:]))) == 440  # 1 Hz bins over its last second
    said = sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})
    assert len(said) == 1 and f" {suffix}; it is re-encoded as ac3 at 448 kb/s, 48 kHz (lossy" in said[0]


def assert_tone_kept(src: Path, out: Path, frame: int) -> None:
    """`out`'s track as long as `src`'s within a `frame` of samples, its 440 Hz tone still the loudest."""
    played, _ = decoded_seconds(out)
    heard, _ = decoded_seconds(src)
    assert abs(len(played) - len(heard)) <= frame
    assert np.argmax(np.abs(np.fft.rfft(played[-RATE:]))) == 440  # 1 Hz bins over its last second


@pytest.mark.parametrize("source", [".webm", ".mkv"])
def test_vorbis_into_mp4_is_coded_as_aac_which_its_players_play(tmp_path, warnings_logged, source):
    """Regression: FFmpeg's MP4 muxer takes Vorbis, so a .webm's or .mkv's Vorbis was copied into the .mp4, where
    QuickTime, browsers and phones play no sound. It is coded as AAC at the high rate other re-coded lossy tracks
    get, said in one line: as long as the source within an AAC frame, its 440 Hz tone still the loudest."""
    src = toned_clip(tmp_path / f"in{source}", "libvpx-vp9" if source == ".webm" else "libx264", "vorbis")
    out = copy_video(src, tmp_path / "out.mp4")
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.codec.canonical_name == "aac"
    assert_tone_kept(src, out, FRAME["aac"])
    said = sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})
    assert said == [("audio stream 1 (vorbis) in .mp4 plays in few players (not QuickTime, browsers or phones); it "
                     "is re-encoded as aac at 512 kb/s (lossy to lossy, a little lost; .mkv keeps it as it is)")]


def burst_clip(path: Path, audio_codec: str, layout: str = "stereo") -> Path:
    """One second of 24 fps video, silence in each channel of `layout` but for a 0.1 s burst of noise from 0.5 s,
    the time of frame 12: a moment whose sound can be found again, to the sample, after any lossy coding."""
    rng = np.random.default_rng(1)
    sound = np.zeros(RATE, np.float32)
    sound[RATE // 2:RATE * 6 // 10] = np.clip(0.3 * rng.standard_normal(RATE // 10), -0.9, 0.9)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = *SMALL, "yuv420p"
        audio = out.add_stream(audio_codec, rate=RATE, layout=layout)
        for i in range(24):
            frame = av.VideoFrame(*SMALL, "yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        size = audio.codec_context.frame_size or 960
        for start in range(0, RATE, size):
            part = np.pad(sound[start:start + size], (0, max(0, start + size - RATE)))
            samples = av.AudioFrame.from_ndarray(np.repeat(part, av.AudioLayout(layout).nb_channels)[None],
                                                 format="flt", layout=layout)
            samples.sample_rate, samples.pts = RATE, start
            out.mux(audio.encode(samples))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def burst_lag(src: Path, out: Path) -> int:
    """How many samples later `out`'s burst sounds after its first picture than `src`'s does (each decoded from
    its first audio frame's time, as players place it): where their cross-correlation peaks."""
    heard, heard_start = decoded_seconds(src)
    played, played_start = decoded_seconds(out)
    burst = heard[round((0.45 - heard_start) * RATE):round((0.65 - heard_start) * RATE)]
    found = played_start + int(np.argmax(np.correlate(played, burst, "valid"))) / RATE
    return round((found - float(ffmpeg_times(out)[0]) - 0.45 + float(ffmpeg_times(src)[0])) * RATE)


@pytest.mark.parametrize("coded", ["mp3", "aac", "mp2", "ac3"])
def test_a_track_coded_again_for_avi_starts_with_the_picture_not_its_encoders_delay_late(tmp_path, monkeypatch,
                                                                                        coded):
    """Regression: AVI stores no encoder delay, so an .mkv's Opus coded into an .avi as MP3 was heard with LAME's
    1105 samples of priming first: the sound 23 ms after its pictures (AAC's 1024, MP2's 481, AC-3's 256 samples,
    measured, where those are the codec coded). The priming now takes the place of the track's first samples: the
    burst at frame 12's time sounds within a millisecond of it, as in the source."""
    if coded != "mp3":
        entry = next(entry for entry in (lossless_audio.AAC, *lossless_audio.DVD) if entry[0] == coded)
        monkeypatch.setitem(lossless_audio.HIGH_RATE, "avi", (entry,))
    src = burst_clip(tmp_path / "in.mkv", "libopus")
    out = copy_video(src, tmp_path / "out.avi")
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.codec.canonical_name == coded
    assert times(out)[12] == Fraction(1, 2)
    assert abs(burst_lag(src, out)) <= RATE // 1000


@pytest.mark.parametrize(("suffix", "coded"), [(".avi", "mp3"), (".mov", "aac"), (".mxf", "pcm_s24le")])
def test_a_matroska_opus_track_coded_again_keeps_its_samples_times_to_the_sample(tmp_path, suffix, coded):
    """Regression: Matroska times packets to the millisecond, and an Opus track's first one, its pre-skip of 312
    samples before 0, reads as -7 ms (336 samples): coded again (as MP3, AAC or PCM) the track came out 24 samples
    (0.5 ms) off. Each packet now starts where the one before it ended (the first at its codec delay) where its
    time says so within the clock's rounding: the burst sounds at its sample after the first picture."""
    src = burst_clip(tmp_path / "in.mkv", "libopus")
    out = copy_video(src, tmp_path / f"out{suffix}")
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.codec.canonical_name == coded
    assert abs(burst_lag(src, out)) <= 1


def test_a_lossy_7_1_track_decoded_for_mp4_goes_in_as_flac_not_iso_pcm(tmp_path, warnings_logged, monkeypatch):
    """Regression: a 7.1 lossy track an .mp4 cannot play as it is (Vorbis: this FFmpeg codes none in 7.1, so an
    Opus track stands in, marked unplayed there too) was decoded to ISO PCM, which few players read, as FFmpeg's
    ALAC encoder refuses 7.1 and its AAC encoder crashes on it. It is decoded to FLAC (24 bits), which browsers,
    VLC and FFmpeg read: 8 channels in 7.1, as long as the source within an Opus frame, the tone still loudest."""
    monkeypatch.setitem(recoded_audio.UNPLAYED, "mp4", recoded_audio.UNPLAYED["mp4"] | {"opus"})
    src = toned_clip(tmp_path / "in.mkv", "libx264", "libopus", layout="7.1")
    out = copy_video(src, tmp_path / "out.mp4")
    with av.open(str(out)) as container:
        audio = container.streams.audio[0].codec_context
        assert (audio.codec.canonical_name, audio.channels, audio.layout.name) == ("flac", 8, "7.1")
        assert lossless_audio._depth(audio) == 24
    assert_tone_kept(src, out, FRAME["opus"])
    said = sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})
    assert said == [("audio stream 1 (opus) cannot be copied into .mp4, whose lossy codecs take fewer than its 8 "
                     "channels; it is decoded to flac, nothing more lost (.mkv keeps it as it is)")]


@pytest.mark.parametrize("suffix", [".mp4", ".ts", ".nut"])
def test_a_matroska_opus_track_copied_keeps_its_samples_times_to_the_sample(tmp_path, suffix):
    """Regression: the same -7 ms of an Opus track's 312-sample pre-skip (336 samples), copied unchanged into an
    .mp4 (its edit list skipping 336), a .ts or a .nut, put the sound 24 samples (0.5 ms) early. The copy now
    starts each packet where the one before it ended (the first at the codec delay) within the clock's rounding:
    the burst sounds at its sample after the first picture, and the .mp4 skips exactly the pre-skip."""
    src = burst_clip(tmp_path / "in.mkv", "libopus")
    out = copy_video(src, tmp_path / f"out{suffix}")
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.codec.canonical_name == "opus"
        first = next(p for p in container.demux(stream) if p.size)
    if suffix == ".mp4":
        assert first.pts * first.time_base == Fraction(-312, RATE)
    assert burst_lag(src, out) == 0
