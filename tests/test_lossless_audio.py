"""A lossless audio track that the output's container cannot hold is coded again losslessly, never left out."""
from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clrface_video.io.decode import probe_video, read_frames
from clrface_video.io.encode import VideoWriter
from clrface_video.types import TimeSpan
from tests.media import make_clip, read_packets, silent_clip
from tests.test_containers_timing import audio_start, decoded_samples, times
from tests.test_io_video import SMALL, copy_video


def audio_codec(path) -> str:
    with av.open(str(path)) as container:
        return container.streams.audio[0].codec_context.name


@pytest.mark.parametrize("suffix", [".mov", ".mxf"])
def test_flac_from_matroska_is_kept_sample_for_sample(tmp_path, warnings_logged, suffix):
    """Regression: the mov and mxf muxers refuse FLAC (mov with strict experimental too), and an editor's .mkv
    with FLAC sound came out of a .mov run silent, with a warning. Its samples are now coded as PCM of their
    depth, each decoded sample the source's (.mxf ends the sound with the last frame, at 1 s)."""
    src = make_clip(tmp_path / "in.mkv", frames=24, size=SMALL, audio_codec="flac")
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert audio_codec(out) == "pcm_s16le"
    heard, played = decoded_samples(src), decoded_samples(out)
    assert len(played) >= 48000 and (played == heard[:len(played)]).all()
    assert f"audio stream 1 (flac) cannot be copied into {suffix}; it is re-encoded losslessly as pcm_s16le, " \
        "every sample kept" in warnings_logged.text and "left out" not in warnings_logged.text


def test_a_stretch_of_flac_coded_again_starts_at_its_first_frames_sample(tmp_path):
    """A stretch of the FLAC track coded again for .mov begins with the source's sample at the first frame's
    time (0.5 s, sample 24000), its first packet's earlier samples left out, and every sample after it follows."""
    src = make_clip(tmp_path / "in.mkv", frames=48, size=SMALL, audio_codec="flac")
    span = TimeSpan(0.5, 1.5)
    with VideoWriter(tmp_path / "part.mov", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    assert times(writer.output)[0] == 0 and audio_start(writer.output) == 0
    heard, played = decoded_samples(src), decoded_samples(writer.output)
    assert len(played) >= 48000 and (played[:48000] == heard[24000:72000]).all()


SAMPLE_DTYPES = {"u8": "u1", "s16": "i2", "s32": "i4", "flt": "f4", "dbl": "f8"}  # decoded samples' numpy types


def decoded_seconds(path) -> tuple[np.ndarray, float]:
    """The first audio stream's decoded samples (float, first channel) and where it starts, in seconds."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    step = 1 if frames[0].format.is_planar else len(frames[0].layout.channels)  # packed: channels interleaved
    # the first plane alone: PyAV 18's to_ndarray reads a ninth plane of an 8-channel frame, a segmentation fault
    dtype = np.dtype(SAMPLE_DTYPES[frames[0].format.name.rstrip("p")])
    samples = np.concatenate([np.frombuffer(f.planes[0], dtype, f.samples * step)[::step].astype(np.float64)
                              for f in frames])
    if np.issubdtype(dtype, np.integer):
        samples /= np.iinfo(dtype).max
    return samples, float(frames[0].pts * frames[0].time_base)


@pytest.mark.parametrize(("codec", "suffix"), [("pcm_s16le", ".mov"), ("flac", ".mkv")])
def test_lossless_audio_into_ts_is_carried_as_ac3_not_as_data(tmp_path, warnings_logged, codec, suffix):
    """Regression: FFmpeg's MPEG-TS muxer takes PCM and FLAC but writes them as data streams, so a .ts from an
    editor's .mov or .mkv read back with no sound, and nothing said so. No lossless codec a .ts holds reads back,
    so the track is coded once at AC-3's highest rate, said in one line: a real audio stream, as long as the video,
    starting with it, carrying the source's 440 Hz tone."""
    src = make_clip(tmp_path / f"in{suffix}", frames=24, size=SMALL, audio_codec=codec)
    out = copy_video(src, tmp_path / "out.ts")
    assert audio_codec(out) == "ac3"
    played, start = decoded_seconds(out)
    video = times(out)
    assert abs(len(played) / 48000 - float(video[-1] - video[0] + Fraction(1, 24))) <= 1536 / 48000  # one AC-3 frame
    assert abs(start - float(video[0])) < 1 / 24
    heard, _ = decoded_seconds(src)
    assert np.sqrt(np.mean(played ** 2)) == pytest.approx(np.sqrt(np.mean(heard ** 2)), rel=0.05)
    assert np.argmax(np.abs(np.fft.rfft(played[:48000]))) == 440  # 1 Hz bins over one second
    said = (f"audio stream 1 ({codec}) cannot be stored losslessly in .ts; it is re-encoded as ac3 at 640 kb/s "
            "(lossy; .mkv and .mov keep it as it is)")
    assert {r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()} == {said}  # that line only


def test_lossless_audio_into_m2ts_is_kept_sample_for_sample_as_bluray_pcm(tmp_path, warnings_logged):
    """An .m2ts (192-byte packets, as Blu-ray and AVCHD write) holds Blu-ray PCM as audio: FLAC goes there
    losslessly, each decoded sample the source's. A .ts does not, so that track is not copied into one."""
    src = make_clip(tmp_path / "in.mkv", frames=24, size=SMALL, audio_codec="flac")
    out = copy_video(src, tmp_path / "out.m2ts")
    assert audio_codec(out) == "pcm_bluray"
    heard, played = decoded_samples(src), decoded_samples(out)
    assert len(played) >= len(heard) and (played[:len(heard)] == heard).all()
    assert "re-encoded losslessly as pcm_bluray, every sample kept" in warnings_logged.text
    assert audio_codec(copy_video(out, tmp_path / "again.ts")) == "ac3"  # a .ts writes it as data: not copied


def test_mpeg_audio_into_ts_is_still_copied(tmp_path, warnings_logged):
    """A copy into .ts is read back before it is made; MP2 reads back as MP3 (the stream type says MPEG audio),
    which is still its sound: copied packet for packet, not left out."""
    src = silent_clip(tmp_path / "dvd.mpg", "mpeg2video", SMALL, 25, audio_codec="mp2")
    out = copy_video(src, tmp_path / "out.ts")
    assert [p[0] for p in read_packets(out, "audio")] == [p[0] for p in read_packets(src, "audio")]
    assert "audio stream" not in warnings_logged.text


@pytest.mark.parametrize("codec", ["aac", "libmp3lame"])
def test_lossy_audio_into_m2ts_is_copied_not_left_out(tmp_path, warnings_logged, codec):
    """Regression: a copy into MPEG-TS is read back from a trial file first, and one frame of AAC or MP3 in an
    .m2ts's 192-byte packets read back as data, so the sound was left out of every .m2ts and .mts ('cannot be
    stored'), though the muxer holds it: copied packet for packet (AAC's given its ADTS header in MPEG-TS)."""
    src = make_clip(tmp_path / "in.mkv", frames=24, size=SMALL, audio_codec=codec)
    out = copy_video(src, tmp_path / "out.m2ts")
    copied, source = read_packets(out, "audio"), read_packets(src, "audio")
    assert len(copied) == len(source)
    assert all(new[0].endswith(old[0]) for new, old in zip(copied, source, strict=True))
    assert "audio stream" not in warnings_logged.text


def test_8_khz_pcm_into_ts_is_carried_as_aac(tmp_path, warnings_logged):
    """Regression: AC-3 takes no 8 kHz track (a phone call's, a dictaphone's), and one frame of AAC at 8 kHz on
    the trial file read back as MP2, so the track was left out where AAC carries it: its tone heard in the .ts."""
    src = tmp_path / "call.mkv"
    with av.open(str(src), "w") as out:
        video, audio = out.add_stream("libx264", rate=25), out.add_stream("pcm_s16le", rate=8000, layout="mono")
        video.width, video.height, video.pix_fmt = *SMALL, "yuv420p"
        for i in range(25):
            frame = av.VideoFrame(*SMALL, "yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
            tone = 0.3 * np.sin(2 * np.pi * 440 * (np.arange(320) + i * 320) / 8000)
            sound = av.AudioFrame.from_ndarray((tone * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
            sound.sample_rate, sound.pts = 8000, i * 320
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
    out = copy_video(src, tmp_path / "out.ts")
    assert audio_codec(out) == "aac"
    played, _ = decoded_seconds(out)
    assert len(played) >= 8000
    assert np.argmax(np.abs(np.fft.rfft(played[-8000:]))) == 440  # 1 Hz bins over its last second
    assert "re-encoded as aac at 48 kb/s" in warnings_logged.text  # the most it codes at 8 kHz mono, not 512


@pytest.mark.parametrize("layout", ["5.1", "5.1(side)"])
def test_5_1_pcm_into_m2ts_is_kept_sample_for_sample(tmp_path, warnings_logged, layout):
    """Regression: FFmpeg's Blu-ray PCM encoder takes 5.1 with its surround pair at the sides only, so an editor's
    5.1 (as WAV and QuickTime state it, the pair behind) went into the .m2ts as lossy AC-3. Each channel's own
    samples (different noise in each) come back in its place."""
    noise = np.random.default_rng(5).integers(-20000, 20000, (25, 6 * 1920)).astype(np.int16)
    src = tmp_path / "mix.mov"
    with av.open(str(src), "w") as out:
        video, audio = out.add_stream("libx264", rate=25), out.add_stream("pcm_s16le", rate=48000, layout=layout)
        video.width, video.height, video.pix_fmt = *SMALL, "yuv420p"
        for i, samples in enumerate(noise):
            frame = av.VideoFrame(*SMALL, "yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
            sound = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout=layout)
            sound.sample_rate, sound.pts = 48000, i * 1920
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
    out = copy_video(src, tmp_path / "out.m2ts")
    assert audio_codec(out) == "pcm_bluray"
    heard, played = decoded_samples(src), decoded_samples(out)
    assert len(played) >= len(heard) and (played[:len(heard)] == heard).all()


def interleaved(path) -> np.ndarray:
    """The first audio stream's decoded samples, channels interleaved as packed PCM stores them, planar or packed:
    a planar frame's planes read one a channel (PyAV 18 gives an 8-channel one a ninth, which to_ndarray reads)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    channels = len(frames[0].layout.channels)
    dtype = np.dtype(SAMPLE_DTYPES[frames[0].format.name.rstrip("p")])
    if not frames[0].format.is_planar:
        return np.concatenate([np.frombuffer(f.planes[0], dtype, f.samples * channels) for f in frames])
    return np.concatenate([np.stack([np.frombuffer(plane, dtype, f.samples) for plane in f.planes[:channels]],
                                    axis=1).reshape(-1) for f in frames])


def noise_clip(path: Path, codec: str, layout: str) -> Path:
    """One second of 24 fps video and PCM (16 bits, or 24 for pcm_s24le) in `layout`, different noise in each
    channel, so that a channel moved to another's place is seen."""
    channels, wide = av.AudioLayout(layout).nb_channels, codec == "pcm_s24le"
    noise = np.random.default_rng(7).integers(-2 ** 15, 2 ** 15, (24, channels * 2000))
    with av.open(str(path), "w") as out:
        video, audio = out.add_stream("libx264", rate=24), out.add_stream(codec, rate=48000, layout=layout)
        video.width, video.height, video.pix_fmt = *SMALL, "yuv420p"
        for i, samples in enumerate(noise):
            frame = av.VideoFrame(*SMALL, "yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
            sound = av.AudioFrame.from_ndarray((samples * 256 + i).astype(np.int32)[None] if wide else
                                               samples.astype(np.int16)[None], format="s32" if wide else "s16",
                                               layout=layout)
            sound.sample_rate, sound.pts = 48000, i * 2000
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
    return path


@pytest.mark.parametrize(("codec", "suffix", "layout", "coded"), [
    ("pcm_s16le", ".mkv", "7.1", "flac"), ("pcm_s24le", ".mov", "7.1", "flac"), ("pcm_s16le", ".mov", "stereo", "alac")])
def test_pcm_into_mp4_is_coded_losslessly_as_players_read_it_not_iso_pcm(tmp_path, warnings_logged, codec, suffix,
                                                                         layout, coded):
    """Regression: the mp4 muxer takes PCM as ISO PCM (ipcm), which few players read (FFmpeg's since 6.0; not
    QuickTime, browsers or phones), and a .mov's or .mkv's PCM was copied so, a 7.1 mix as much as a stereo one.
    It is coded losslessly as ALAC, else FLAC (FFmpeg's ALAC encoder refuses 7.1; E-AC-3's takes 5.1 at most),
    said in one line: each channel's own samples (different noise in each, 16 or 24 bits) come back in place,
    in the layout the source states."""
    src = noise_clip(tmp_path / f"mix{suffix}", codec, layout)
    out = copy_video(src, tmp_path / "out.mp4")
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert (audio.codec_context.codec.canonical_name, audio.codec_context.layout.name) == (coded, layout)
    heard, played = interleaved(src), interleaved(out)
    assert len(played) == len(heard) and (played == heard).all()
    said = sorted({r.getMessage() for r in warnings_logged.records if "audio" in r.getMessage()})
    assert said == [(f"audio stream 1 ({codec}) in .mp4 (ISO PCM) plays in few players (not QuickTime, browsers or "
                     f"phones); it is re-encoded losslessly as {coded}, every sample kept")]


def test_8_channel_pcm_tried_as_planar_alac_for_mp4_is_no_crash(tmp_path):
    """Regression: 7.1(wide) PCM into an .mp4 is tried as ALAC, whose encoder takes it in 8 planes (s16p), and
    writing silence into PyAV 18's ninth plane of such a frame on the trial file was a segmentation fault that
    killed the whole restore. Run in a child process, which that crash would kill: it ends cleanly, the track ALAC
    in 7.1(wide), each channel's samples in place."""
    src = noise_clip(tmp_path / "mix.mov", "pcm_s16le", "7.1(wide)")
    out = tmp_path / "out.mp4"
    code = "import sys; from pathlib import Path; from tests.test_io_video import copy_video; " \
           "copy_video(Path(sys.argv[1]), Path(sys.argv[2]))"
    done = subprocess.run([sys.executable, "-c", code, str(src), str(out)], check=False, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with av.open(str(out)) as container:
        audio = container.streams.audio[0].codec_context
        assert (audio.codec.canonical_name, audio.layout.name) == ("alac", "7.1(wide)")
    assert (interleaved(out) == interleaved(src)).all()
