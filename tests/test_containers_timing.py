"""Archival containers (AVI, MPEG-PS, MPEG-TS, MXF, DV) keep every frame at its source time, and the audio in sync."""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clrface_video.distributed.segments import Segment, list_keyframes, read_segment
from clrface_video.io.decode import probe_video, read_frames
from clrface_video.io.encode import VideoWriter
from clrface_video.io.quicktime import track_end
from clrface_video.io.timecode import quicktime_timecode_rate
from clrface_video.types import TimeSpan
from tests.media import BT601_FULL, clip_image, make_clip, read_packets
from tests.test_io_video import copy_video

SMALL = (128, 96)


def times(path: Path) -> list[Fraction]:
    """Each frame's time in seconds, as the pipeline reads it."""
    return [f.pts * f.time_base for f in read_frames(path)]


def ffmpeg_times(path: Path) -> list[Fraction | None]:
    """Each frame's time as FFmpeg's demuxer and decoder give it, without the pipeline's clock."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [None if f.pts is None else f.pts * stream.time_base for f in container.decode(stream)]


def audio_start(path: Path) -> Fraction:
    packets = read_packets(path, "audio")
    return packets[0][1] * packets[0][2]


def assert_same_timing(src: Path, out: Path, frames: int) -> None:
    """Same frame count, the same spacing (within a tick of 90 kHz), the same audio bytes and a/v offset."""
    before, after = times(src), times(out)
    assert len(before) == len(after) == frames
    assert np.allclose(np.diff([float(t) for t in after]), np.diff([float(t) for t in before]), atol=1 / 90000)
    assert [p[0] for p in read_packets(out, "audio")] == [p[0] for p in read_packets(src, "audio")]
    assert float(after[0] - audio_start(out)) == pytest.approx(float(before[0] - audio_start(src)), abs=1 / 90000)


def reordered_clip(path: Path, frames: int = 12) -> Path:
    """H.264 with B-frames (x264's "fast" preset), 24 fps, no audio."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = *SMALL, "yuv420p"
        stream.options = {"preset": "fast", "threads": "1"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, SMALL), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


# -- the faults FFmpeg's demuxers leave -------------------------------------------------------------

def test_h264_in_avi_is_read_at_its_chunk_times_not_a_frame_late(tmp_path):
    src = make_clip(tmp_path / "in.avi", frames=12, size=SMALL, audio_codec="pcm_s16le")
    assert ffmpeg_times(src)[0] == Fraction(1, 24)  # FFmpeg guesses its first frame one frame late
    assert times(src) == [Fraction(i, 24) for i in range(12)]
    out = copy_video(src, tmp_path / "out.avi", codec="libx264")
    assert times(out) == times(src) and read_packets(out, "audio") == read_packets(src, "audio")


def test_codec_auto_writes_xvid_into_avi_which_plain_ffmpeg_reads_at_the_source_times(tmp_path, warnings_logged):
    """H.264 in AVI is read back by every FFmpeg-based player with a guessed decode delay: the first frame 40 ms
    after the audio, the next ones out of order. MPEG-4 Part 2 (tagged XVID, as hardware players expect) is read
    back at its chunk times by FFmpeg alone, video starting with the audio."""
    src = make_clip(tmp_path / "in.mp4", frames=8, size=SMALL, fps=25, audio_codec="pcm_s16le")
    out = copy_video(src, tmp_path / "out.avi")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.codec_tag) == ("mpeg4", "XVID")
    assert ffmpeg_times(out) == [Fraction(i, 25) for i in range(8)] == times(src)
    assert audio_start(out) == 0 and read_packets(out, "audio") == read_packets(src, "audio")
    assert not warnings_logged.records
    copy_video(src, tmp_path / "h264.avi", codec="libx264")
    assert ffmpeg_times(tmp_path / "h264.avi")[0] == Fraction(1, 25)  # what a player shows: a frame late
    assert "FFmpeg-based players read H.264 in .avi a frame late and out of order" in warnings_logged.text


@pytest.mark.parametrize("suffix", [".wmv", ".asf"])
def test_codec_auto_writes_wmv2_into_asf_which_ffmpeg_reads_at_the_source_times(tmp_path, suffix):
    """ASF stores no pts either: H.264 (the old auto codec there) was read back a frame late and reordered frames
    out of order, a home video's 0.44, 0.52, 0.48 s. WMV 8, which Windows' players expect there, keeps its times."""
    src = make_clip(tmp_path / f"in{suffix}", frames=25, size=SMALL, fps=25, codec="wmv2", audio=False)
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert ffmpeg_times(out) == times(out) == times(src) == [Fraction(i, 25) for i in range(25)]
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "wmv2"


def test_a_phone_clips_average_rate_opens_mpeg4_in_avi(tmp_path):
    """MPEG-4 Part 2 codes its clock in 16 bits: a variable rate with no base rate goes into .avi at its average,
    192000/9659 fps here, which the encoder refused; it takes the nearest clock it codes."""
    src = make_clip(tmp_path / "phone.mp4", frames=12, size=SMALL, audio=False, vfr=True)
    info = replace(probe_video(src), base_fps=None)
    assert info.fps == Fraction(192000, 9659)
    with VideoWriter(tmp_path / "out.avi", src, info) as writer:
        for frame in read_frames(src):
            writer.write(frame)
    assert probe_video(writer.output).codec == "mpeg4" and len(ffmpeg_times(writer.output)) == writer.frames_written


@pytest.mark.parametrize("audio_codec", ["aac", "libmp3lame"])
def test_an_mp4_with_compressed_audio_goes_into_avi_without_a_gap(tmp_path, audio_codec):
    """An MP3 or AAC track's encoder delay made FFmpeg's AVI muxer move every frame half a frame later: the
    second frame was stored at chunk 2 and the first shown twice. Now the frames keep their chunks, and the
    audio packets are the source's."""
    src = make_clip(tmp_path / "in.mp4", frames=12, size=SMALL, audio_codec=audio_codec)
    out = copy_video(src, tmp_path / "out.avi")
    assert times(out) == times(src) == [Fraction(i, 24) for i in range(12)]
    assert [data for data, *_ in read_packets(out, "audio")] == [data for data, *_ in read_packets(src, "audio")]


def test_mjpeg_in_avi_with_pcm_becomes_mpeg4_in_avi_at_the_same_times(tmp_path):
    src = make_clip(tmp_path / "in.avi", frames=12, size=SMALL, codec="mjpeg", audio_codec="pcm_s16le",
                    color=BT601_FULL)
    out = copy_video(src, tmp_path / "out.avi")
    assert probe_video(out).codec == "mpeg4"
    assert times(out) == times(src) == [Fraction(i, 24) for i in range(12)]
    assert_same_timing(src, out, 12)


def test_h264_in_mpeg_ps_gets_a_time_for_every_frame(tmp_path):
    """The PS muxer stores a pts on some packets only; FFmpeg leaves the others' frames without one."""
    src = make_clip(tmp_path / "in.mpg", frames=12, size=SMALL, audio_codec="mp2")
    assert None in ffmpeg_times(src)
    step = Fraction(1, 24)
    assert np.diff(times(src)).tolist() == [step] * 11
    out = copy_video(src, tmp_path / "out.mpg", codec="libx264")  # failed: the untimed frames went out of order
    assert_same_timing(src, out, 12)


def test_a_source_starting_after_0_goes_into_avi_with_its_frames_spacing_and_audio_offset(tmp_path):
    """An MPEG-PS source starts at 0.5 s (audio) and 0.51 s (video). AVI stores no start: its audio's first sample
    and its first chunk are shown at 0, and FFmpeg's muxer put the first frame in chunk 0 whatever its number, so
    the frames came out at chunks 0, 13, 14, ... (the first shown for 0.54 s). Now every time moves back by the
    source's start, as the audio's does: the frames keep their spacing and their offset from the audio."""
    src = make_clip(tmp_path / "in.mpg", frames=12, size=SMALL, audio_codec="mp2")
    with av.open(str(src)) as container:
        audio = container.streams.audio[0]
        audio_start = audio.start_time * audio.time_base
    assert audio_start == Fraction(1, 2) and times(src)[0] > audio_start
    out = copy_video(src, tmp_path / "out.avi")
    assert times(out) == [Fraction(round((t - audio_start) * 24), 24) for t in times(src)] \
        == [Fraction(i, 24) for i in range(12)]
    assert [data for data, *_ in read_packets(out, "audio")] == [data for data, *_ in read_packets(src, "audio")]


def late_audio_clip(path: Path, audio_codec: str, start: Fraction = Fraction(1, 2)) -> Path:
    """24 frames at 24 fps from 0, and a 440 Hz tone from `start` to their end (48 kHz mono), as a film whose
    sound begins after its first frames."""
    rate, frames = 48000, 24
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = *SMALL, "yuv420p"
        audio = out.add_stream(audio_codec, rate=rate, layout="mono")
        packets = []
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, SMALL), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            packets += video.encode(frame)
        packets += video.encode(None)
        size, first = audio.codec_context.frame_size or 1024, int(start * rate)
        kind = audio.codec_context.codec.audio_formats[0].name  # AAC's fltp; PCM's s16, or u8 for pcm_u8
        for at in range(first, frames * rate // 24 - size + 1, size):
            tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(at, at + size) / rate)[None, :]
            samples = {"fltp": tone.astype(np.float32), "u8": np.round(tone * 127 + 128).astype(np.uint8)}.get(
                kind, (tone * 32767).astype(np.int16))
            sound = av.AudioFrame.from_ndarray(samples, format=kind, layout="mono")
            sound.sample_rate, sound.pts, sound.time_base = rate, at, Fraction(1, rate)
            packets += audio.encode(sound)
        packets += audio.encode(None)
        for packet in sorted(packets, key=lambda p: p.dts * p.time_base):
            out.mux(packet)
    return path


def decoded_samples(path: Path) -> np.ndarray:
    """The first audio stream's samples from its first decoded frame's time on, in order."""
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])


def test_pcm_that_starts_after_the_video_is_heard_at_its_time_in_avi(tmp_path, warnings_logged):
    """Regression: AVI stores no start per stream, and FFmpeg's muxer put a soundtrack's first chunk at 0, so a
    .mkv's PCM that began 0.5 s after the first frame was heard from 0, 0.5 s early. Now silence fills the gap:
    the tone's first sample is sample 24000 (0.5 s), the source's samples follow unchanged."""
    src = late_audio_clip(tmp_path / "in.mkv", "pcm_s16le")
    out = copy_video(src, tmp_path / "out.avi")
    heard, played = decoded_samples(src), decoded_samples(out)
    assert np.flatnonzero(played)[0] == 24000 + np.flatnonzero(heard)[0]
    assert np.array_equal(played[:24000], np.zeros(24000, played.dtype)) and np.array_equal(played[24000:], heard)
    assert times(out) == [Fraction(i, 24) for i in range(24)] and not warnings_logged.records


@pytest.mark.parametrize(("codec", "silence", "quiet"), [("pcm_u8", 0x80, 128), ("pcm_alaw", 0xD5, 8),
                                                      ("pcm_mulaw", 0xFF, 0)])
def test_8_bit_pcm_that_starts_late_in_avi_is_padded_with_its_own_silence(tmp_path, warnings_logged, codec,
                                                                          silence, quiet):
    """Regression: unsigned 8-bit, A-law and mu-law PCM (old AVI captures) that began 0.5 s after the first frame
    were warned of and heard 0.5 s early in an .avi, and zero bytes, signed PCM's silence, would be a click or a
    hum in them. Now each is padded with its own silent byte: 24000 of them (0.5 s), decoded as mid-scale 128,
    A-law's nearest to 0 (+8 of 32768) and 0, then the source's bytes and samples unchanged."""
    src = late_audio_clip(tmp_path / "in.mov", codec)  # Matroska takes no A-law or mu-law
    assert audio_start(src) == Fraction(1, 2)
    out = copy_video(src, tmp_path / "out.avi")
    copied = b"".join(data for data, *_ in read_packets(out, "audio"))
    assert copied == bytes([silence]) * 24000 + b"".join(data for data, *_ in read_packets(src, "audio"))
    heard, played = decoded_samples(src), decoded_samples(out)
    assert np.array_equal(played[:24000], np.full(24000, quiet, played.dtype)) and np.array_equal(played[24000:], heard)
    assert audio_start(out) == 0 and times(out) == [Fraction(i, 24) for i in range(24)]
    assert not warnings_logged.records


def test_compressed_audio_that_starts_after_the_video_in_avi_is_warned_of(tmp_path, warnings_logged):
    """AAC cannot be given silence without re-encoding, and an empty chunk at 0 (which places a late video) leaves
    AVI audio at 0: the 0.48 s the AAC track starts after the video (0.5 s, less its encoder delay) is said."""
    src = late_audio_clip(tmp_path / "in.mkv", "aac")
    copy_video(src, tmp_path / "out.avi")
    line = "audio stream 1 (aac) starts at 0.48 s, which .avi cannot store for it: it is heard from 0, 0.48 s " \
           "early; .mkv or .mp4 keep its start"
    assert {r.getMessage() for r in warnings_logged.records} == {line}


def test_h264_in_mxf_is_written_and_read_in_order(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=12, size=SMALL, audio=False)
    out = copy_video(src, tmp_path / "out.mxf")
    assert ffmpeg_times(out) == times(src)  # written without B-frames: FFmpeg reads it right too
    assert times(out) == times(src)


def test_h264_with_b_frames_in_mxf_is_read_in_order(tmp_path):
    src = reordered_clip(tmp_path / "in.mxf")
    assert ffmpeg_times(src) != sorted(ffmpeg_times(src))  # FFmpeg's: 0, 3, 2, 4, 1, ...
    assert times(src) == [Fraction(i, 24) for i in range(12)]


def test_a_vfr_clips_timecode_counts_at_its_own_rate_not_the_average(tmp_path):
    src = make_clip(tmp_path / "in.mov", frames=12, size=SMALL, vfr=True, timecode="01:00:00:00")
    assert quicktime_timecode_rate(src) == 24 and probe_video(src).fps != 24  # 192000/9659 on average
    out = copy_video(src, tmp_path / "out.mov")
    assert quicktime_timecode_rate(out) == 24
    with av.open(str(out)) as container:
        assert container.streams.video[0].metadata["timecode"] == "01:00:00:00"
        assert [bytes(p) for p in container.demux(container.streams.data[0]) if p.size] == \
            [(3600 * 24).to_bytes(4, "big")]  # the frame count of 01:00:00:00 at 24 fps
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.streams.video[0].duration == a.streams.video[0].duration  # the last frame keeps its length
    assert times(out) == times(src)


# -- the usual archival files ----------------------------------------------------------------------

@pytest.mark.parametrize(("suffix", "audio_codec"), [(".mpg", "mp2"), (".ts", "mp2"), (".ts", "ac3")])
def test_mpeg2_with_mpeg_audio_keeps_its_timing(tmp_path, suffix, audio_codec):
    src = make_clip(tmp_path / f"in{suffix}", frames=12, size=SMALL, codec="mpeg2video", audio_codec=audio_codec)
    assert times(src)[0] > 0  # the first frame is not at 0
    assert_same_timing(src, copy_video(src, tmp_path / f"out{suffix}"), 12)
    assert_same_timing(src, copy_video(src, tmp_path / f"mpeg2{suffix}", codec="mpeg2video"), 12)


def small_frames_clip(path: Path, frames: int = 300, fps: int = 20) -> Path:
    """A 32x32 FFV1 clip at 20 fps (keep_real_3's rate, which no DVD plays) in which each frame changes a few
    pixels of the one before: H.264 codes each in tens of bytes, so many frames begin in each 2 KB pack of an
    MPEG-PS, and some pack boundaries split a frame's start code."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=fps)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            side = int(rng.integers(1, 8))
            y, x = rng.integers(0, 32 - side, 2)
            image[y:y + side, x:x + side] = rng.integers(0, 256, (side, side, 3))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def since_first(stamps: list) -> list[Fraction]:
    return [t - stamps[0] for t in stamps]


@pytest.mark.parametrize(("suffix", "codec"), [(".mpg", "mpeg2video"), (".vob", "mpeg2video"), (".ts", "h264")])
def test_small_frames_at_20_fps_keep_their_times_in_mpeg_ps_and_ts(tmp_path, suffix, codec):
    """keep_real_3 (20 fps) restored into .mpg got libx264 (MPEG-2 was kept to the DVD rates), and FFmpeg and
    read_frames read its frame 5 at 0.35 s instead of 0.25 s. MPEG-2 codes 20 fps (60 x 1/3): --codec auto
    writes it, and every frame comes back at its time, in FFmpeg and here."""
    src = small_frames_clip(tmp_path / "in.mkv")
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert probe_video(out).codec == codec
    assert since_first(times(out)) == since_first(times(src)) == [Fraction(i, 20) for i in range(300)]
    assert since_first(ffmpeg_times(out)) == since_first(times(src))


def test_a_pal_vobs_keyframes_keep_their_times(tmp_path):
    """The muxer stamps a pack with the first packet that begins in it, FFmpeg's parser with the first picture
    start code: where a pack boundary fell in a keyframe's sequence and GOP headers, that keyframe took the next
    frame's time and frames 119 to 125 were read a frame (40 ms) late. Each packet now begins at its picture."""
    src = small_frames_clip(tmp_path / "in.mkv", fps=25)
    out = copy_video(src, tmp_path / "out.vob")
    assert probe_video(out).codec == "mpeg2video"
    assert since_first(times(out)) == since_first(ffmpeg_times(out)) == [Fraction(i, 25) for i in range(300)]


def test_an_mpg_that_ffmpeg_muxed_is_read_at_its_times_where_a_pack_splits_a_keyframes_headers(tmp_path,
                                                                                             warnings_logged):
    """The same muxer stamp in an .mpg FFmpeg wrote (not one of ours, re-cut to fix it): keyframe 12 read frame 13's
    time, FFmpeg's guesses carried it on to frame 21, two frames shared a time, and an .mpg written again left one
    out, warned of as 'of the variable rate'. That stamp leaves the ten frames after it nine frame periods, which
    MPEG-2 frames cannot take, where the stamps around it fit: it is left out, and frame 12 spaced between them."""
    src = make_clip(tmp_path / "in.mpg", frames=72, size=SMALL, codec="mpeg2video", audio_codec="mp2")
    assert len(set(ffmpeg_times(src))) == 71  # as FFmpeg reads it
    assert since_first(times(src)) == [Fraction(i, 24) for i in range(72)]
    whole = [f.pts for f in read_frames(src)]
    for key in list_keyframes(src)[1]:  # a Ray segment's frames, read from a seek to its keyframe: the same times
        assert [f.pts for f in read_segment(src, Segment(1, key, None), False)] == [t for t in whole if t >= key]
    out = copy_video(src, tmp_path / "out.mpg")
    assert_same_timing(src, out, 72)
    assert since_first(times(out)) == since_first(ffmpeg_times(out)) == since_first(times(src))
    assert not warnings_logged.text


def h264_mpg_with_filler(src: Path, target: Path, filler: int) -> bool:
    """src coded by libx264 into an MPEG-PS whose first frame ends in a filler NAL unit of `filler` bytes, which
    moves every later frame's start code that many bytes along the 2 KB packs; True where FFmpeg then reads two
    frames at one time (a pack boundary split a start code)."""
    with av.open(str(src)) as source, av.open(str(target), "w") as out:
        video = out.add_stream("libx264", rate=20)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        packets = []
        for index, frame in enumerate(source.decode(video=0)):
            frame.pts, frame.time_base = index, Fraction(1, 20)
            packets += video.encode(frame)
        packets += video.encode(None)
        padded = av.Packet(bytes(packets[0]) + b"\x00\x00\x01\x0c" + b"\xff" * filler + b"\x80")
        padded.pts, padded.dts, padded.time_base = packets[0].pts, packets[0].dts, packets[0].time_base
        padded.is_keyframe, padded.stream = True, video
        for packet in [padded, *packets[1:]]:
            out.mux(packet)
    with av.open(str(target)) as container:
        stamps = [p.pts for p in container.demux(video=0) if p.pts is not None]
    return len(stamps) > len(set(stamps))


def test_h264_in_mpeg_ps_whose_pack_splits_a_start_code_is_read_at_its_times(tmp_path, warnings_logged):
    """The muxer stamps a pack with the first frame that begins in it; FFmpeg's H.264 parser gives that stamp to
    the frame before as well where the pack boundary splits that frame's start code. read_frames leaves such a
    frame untimed, spaced between its neighbours, and the writer says what other players do. libx264's bytes
    vary with what the process did before (docs/results.md), so the file is made with a filler NAL unit of the
    first length (of 64) that puts a pack boundary inside a start code."""
    src = small_frames_clip(tmp_path / "in.mkv", 120)
    split = next((tmp_path / f"split{n}.mpg" for n in range(64)
                  if h264_mpg_with_filler(src, tmp_path / f"split{n}.mpg", n)), None)
    assert split is not None, "no filler length put a pack boundary inside a start code: the case is not tested"
    assert since_first(times(split)) == since_first(times(src))
    copy_video(src, tmp_path / "out.mpg", codec="libx264")
    assert "can show a frame of H.264 in .mpg at the next frame's time" in warnings_logged.text


@pytest.mark.parametrize(("suffix", "codec"), [(".mpg", "auto"), (".mkv", "mpeg2video"), (".mp4", "mpeg4")])
def test_a_pal_mpeg_ps_whose_frames_begin_off_the_frame_grid_keeps_its_sync(tmp_path, suffix, codec):
    """A PAL DVD's first frame lies 0.54 s into its clock, half a frame off 1/25 s: an encoder that counts frames
    put every frame 20 ms late against the copied sound."""
    src = make_clip(tmp_path / "in.mpg", frames=12, size=SMALL, fps=25, codec="mpeg2video", audio_codec="mp2")
    assert times(src)[0] * 25 % 1 == Fraction(1, 2)
    out = copy_video(src, tmp_path / f"out{suffix}", codec=codec)
    before, after = times(src), times(out)
    assert np.diff(after).tolist() == np.diff(before).tolist() == [Fraction(1, 25)] * 11
    offset = float(after[0] - audio_start(out)) - float(before[0] - audio_start(src))
    assert offset == pytest.approx(0, abs=0.0011)  # Matroska's and this MP4's clocks: a millisecond


@pytest.mark.parametrize("suffix", [".avi", ".dv"])
def test_dv_keeps_its_frames_and_audio(tmp_path, suffix):
    src = tmp_path / f"tape{suffix}"
    with av.open(str(src), "w") as container:
        video = container.add_stream("dvvideo", rate=25)
        video.width, video.height, video.pix_fmt = 720, 576, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=48000, layout="stereo")
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(clip_image(i, 4, (720, 576)), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            container.mux(video.encode(frame))
            tone = (np.arange(2 * 1920) % 200 * 50).astype(np.int16)[None]
            sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="stereo")
            sound.sample_rate, sound.pts = 48000, i * 1920
            container.mux(audio.encode(sound))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    out = copy_video(src, tmp_path / f"out{suffix}", codec="dvvideo")
    assert times(out) == times(src) == [Fraction(i, 25) for i in range(4)]
    assert read_packets(out, "audio") == read_packets(src, "audio")


@pytest.mark.parametrize(("suffix", "codec", "pix_fmt"), [(".dv", "dvvideo", "yuv420p"),
                                                          (".mxf", "mpeg2video", "yuv422p")])
def test_dv_and_mxf_keep_their_timecode_without_a_false_warning(tmp_path, suffix, codec, pix_fmt,
                                                                  warnings_logged):
    """Both muxers write the timecode into the file; an MXF writer's own identity tags are not the source's."""
    src = tmp_path / f"tape{suffix}"
    with av.open(str(src), "w") as container:
        container.metadata["timecode"] = "01:02:03:04"
        video = container.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt = 720, 576, pix_fmt
        for i in range(3):
            container.mux(video.encode(av.VideoFrame.from_ndarray(clip_image(i, 3, (720, 576)), format="rgb24")))
        container.mux(video.encode(None))
    out = copy_video(src, tmp_path / f"out{suffix}", codec=codec)
    with av.open(str(out)) as written:
        assert written.metadata["timecode"] == "01:02:03:04"
    assert "left out" not in warnings_logged.text
    if suffix == ".mxf":  # into an .mp4: the MXF muxer's name is not carried as if it were the film's
        with av.open(str(copy_video(src, tmp_path / "out.mp4"))) as mp4:
            assert "company_name" not in mp4.metadata and "product_name" not in mp4.metadata


def dnxhr_master(path: Path, frames: int = 3, packet: int = 5760, audio_codec: str = "pcm_s24le") -> Path:
    """An editor's DNxHR master: `frames` frames at 25 fps (320 x 240, DNxHR's least size) and 48 kHz stereo of
    random 24-bit samples (the low 8 bits of each s32 zero) as long as them, in packets of `packet` samples."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("dnxhd", rate=25)
        video.width, video.height, video.pix_fmt, video.options = 320, 240, "yuv422p", {"profile": "dnxhr_sq"}
        audio = container.add_stream(audio_codec, rate=48000, layout="stereo")
        for i in range(frames):
            container.mux(video.encode(av.VideoFrame.from_ndarray(clip_image(i, frames, (320, 240)), format="rgb24")))
        count = frames * 48000 // 25
        samples = np.random.default_rng(0).integers(-2**31, 2**31 - 256, (1, 2 * count), dtype=np.int32) & ~255
        for at in range(0, count, packet):
            sound = av.AudioFrame.from_ndarray(samples[:, 2 * at:2 * (at + packet)], format="s32", layout="stereo")
            sound.sample_rate, sound.pts = 48000, at
            container.mux(audio.encode(sound))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def test_a_dnxhr_master_keeps_its_pcm_tracks_in_mxf(tmp_path, warnings_logged):
    """Whether .mxf holds a track was tried beside a video stream like the output's, opened without the DNxHR
    profile the dnxhd encoder needs: every audio track of a DNxHR master was 'cannot be stored' and left out."""
    src = dnxhr_master(tmp_path / "master.mov")
    out = copy_video(src, tmp_path / "out.mxf", codec="dnxhd")
    assert "left out" not in warnings_logged.text
    assert read_packets(out, "audio") != [] and b"".join(p[0] for p in read_packets(out, "audio")) == \
        b"".join(p[0] for p in read_packets(src, "audio"))


@pytest.mark.parametrize("suffix", [".mxf", ".avi"])
def test_a_stretch_of_pcm_starts_at_its_first_frames_sample_where_no_stream_starts_before_0(tmp_path, suffix):
    """With --start, the PCM packet sounding at the stretch's start was kept whole, from 448 samples before the
    first frame; .mxf and .avi store no start before 0, so it was heard from the first frame, 9.3 ms late. It is
    now cut at the stretch's first sample: where its first frame, the one on screen at 0.5 s, begins (0.48 s,
    sample 23040)."""
    src = dnxhr_master(tmp_path / "master.mov", frames=25, packet=1024)
    span = TimeSpan(0.5, 0.8)
    with VideoWriter(tmp_path / f"part{suffix}", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    assert times(writer.output)[0] == 0 and audio_start(writer.output) == 0
    heard, played = decoded_samples(src), decoded_samples(writer.output)
    assert len(played) >= 2 * 14400  # 0.3 s (MXF pads its last edit unit with silence)
    assert np.array_equal(played[:2 * 14400], heard[2 * 23040:2 * (23040 + 14400)])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_b_frames_keep_their_times(tmp_path, suffix):
    src = copy_video(reordered_clip(tmp_path / "in.mp4"), tmp_path / f"in{suffix}", codec="libx264")
    out = copy_video(src, tmp_path / f"out{suffix}")
    tick = float(probe_video(src).time_base)  # Matroska's millisecond
    assert np.allclose(np.diff([float(t) for t in times(src)]), 1 / 24, atol=tick)
    assert np.allclose([float(t) for t in times(out)], [float(t) for t in times(src)], atol=tick)


def gap_clip(path: Path, frames: int = 16, gap_after: int = 6) -> Path:
    """A 25 fps camera's clip that dropped 0.72 s after frame `gap_after` (a variable rate: its average is 12)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *SMALL, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, SMALL), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = 40 * i + (720 if i > gap_after else 0), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_variable_rate_goes_into_avi_at_its_base_rate_every_frame_at_its_time(tmp_path):
    """At the average rate (12 fps) two of the 25 fps frames fell on one AVI chunk, and the muxer stopped the run
    part-way ('Invalid argument'). At the base rate each frame keeps its time and the gap is empty chunks."""
    src = gap_clip(tmp_path / "dropped.mp4")
    assert probe_video(src).fps < 20 and probe_video(src).base_fps == 25
    out = copy_video(src, tmp_path / "out.avi")
    assert times(out) == times(src) == [Fraction(40 * i + (720 if i > 6 else 0), 1000) for i in range(16)]


def test_a_rate_mxf_cannot_hold_is_said_in_one_line(tmp_path):
    from clrface_video.errors import ClrfaceError

    with pytest.raises(ClrfaceError, match=r"only broadcast frame rates .* runs at 11.76 fps"):
        copy_video(gap_clip(tmp_path / "dropped.mp4"), tmp_path / "out.mxf")
    assert list(tmp_path.iterdir()) == [tmp_path / "dropped.mp4"]


def burst_clip(path: Path, bursts: int = 3, burst: int = 6, pause: int = 2000) -> Path:
    """A screen recording's rhythm: bursts of 25 fps frames with 2 s still between them (its base rate, 25, is more
    than 4 times its average, 3.8), with PCM audio throughout (AVI keeps its start, which an AAC's priming loses)."""
    pts = [b * (40 * burst + pause) + 40 * i for b in range(bursts) for i in range(burst)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *SMALL, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast", "threads": "1"}
        audio = out.add_stream("pcm_s16le", rate=48000, layout="mono")
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(clip_image(i, len(pts), SMALL), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = p, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        for start in range(0, 48 * (pts[-1] + 40), 1920):
            tone = (np.arange(start, start + 1920) % 200 * 50).astype(np.int16)[None]
            sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            sound.sample_rate, sound.pts = 48000, start
            out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    return path


def test_bursts_far_above_the_average_rate_go_into_avi_each_frame_at_its_time(tmp_path):
    """At the average rate (3.8 fps, taken where the base rate was over 4x it) each burst's frames were pushed on
    one number each: 1.23 s late by a burst's end, and off the audio. At the base rate they keep their times."""
    src = burst_clip(tmp_path / "bursts.mov")
    info = probe_video(src)
    assert info.base_fps == 25 and info.base_fps > 4 * info.fps
    out = copy_video(src, tmp_path / "out.avi")
    assert times(out) == times(src)
    assert_same_timing(src, out, 18)


def test_frames_closer_than_an_avis_frame_are_left_out_not_pushed_late(tmp_path, warnings_logged):
    """Where no base rate gives each frame its own number (none known here, so the average, 3.8 fps), a frame is
    pushed at most to less than one frame late, and one that would be later is left out, said in one line: the
    frames kept stay at their times (pushed on, they drifted 1.23 s by a burst's end)."""
    src = burst_clip(tmp_path / "bursts.mov")
    info = replace(probe_video(src), base_fps=None)
    sent = []  # the source time of each frame the writer kept
    with VideoWriter(tmp_path / "out.avi", src, info) as writer:
        for frame in read_frames(src):
            written = writer.frames_written
            writer.write(frame)
            if writer.frames_written > written:
                sent.append(frame.pts * frame.time_base)
    step = 1 / info.fps
    kept = times(writer.output)
    assert 6 <= len(kept) == len(sent) < 18
    assert all(-step / 2 <= t - s < step for t, s in zip(kept, sent, strict=True))
    assert f"{18 - len(kept)} frames of the variable rate are left out of out.avi: each came less than 1/3.81356 s " \
        "after the one before, and a .avi file counts frames at 3.81356 fps" in warnings_logged.text


def vfr_b_frames_clip(path: Path, last: int = 80, edit_list: bool = True) -> Path:
    """A variable-rate MP4 with B-frames (x264's "fast" preset) whose last frame is shown `last` ms: each packet
    muxed with its frame's length, so the track ends at 0.68 s, where FFmpeg reads the last frame's length as
    its packet's dts step (20 ms). Without an edit list its times start at the first frame's composition offset."""
    pts = [0, 40, 120, 140, 180, 260, 300, 380, 400, 440, 520, 600]
    lengths = dict(zip(pts, [*np.diff(pts).tolist(), last], strict=True))
    with av.open(str(path), "w", options={} if edit_list else {"use_editlist": "0"}) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *SMALL, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "fast", "threads": "1"}
        for i, p in enumerate([*pts, None]):
            frame = None
            if p is not None:
                image = clip_image(i, len(pts), SMALL)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
                frame.pts, frame.time_base = p, Fraction(1, 1000)
            for packet in stream.encode(frame):
                packet.duration = lengths[packet.pts]
                out.mux(packet)
    return path


def read_packets_of(path: Path) -> list[av.Packet]:
    """The video stream's packets as stored (decode order)."""
    with av.open(str(path)) as container:
        return [p for p in container.demux(container.streams.video[0]) if p.size]


def last_frame_end(path: Path) -> Fraction:
    last = list(read_frames(path))[-1]
    return (last.pts + last.duration) * last.time_base


def test_a_track_end_is_not_taken_from_an_mp4_without_an_edit_list(tmp_path):
    """Without an edit list FFmpeg's times start at the first frame's composition offset (0.12 s here), not at the
    0 that the track's stated length (0.68 s) is counted from: that end would cut the last frame, so none is read."""
    src = vfr_b_frames_clip(tmp_path / "no_edits.mp4", edit_list=False)
    with av.open(str(src)) as container:
        assert container.streams.video[0].start_time > 0
    assert track_end(src, 1) is None
    assert last_frame_end(src) > Fraction(68, 100)


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4"])
def test_a_vfr_matroska_sources_last_frame_keeps_its_block_duration(tmp_path, suffix):
    """Matroska stores a frame's length (BlockDuration) where it is not the track's default, and FFmpeg reads it:
    a variable-rate MKV with B-frames keeps its last frame's 80 ms, to 0.68 s, in each output without the
    stated track end that io.quicktime reads for an MP4 (measured with FFmpeg-written MKV and VP9 WebM)."""
    src = vfr_b_frames_clip(tmp_path / "phone.mkv")
    assert [(f.pts, f.duration) for f in read_frames(src)][-1] == (600, 80)
    assert last_frame_end(copy_video(src, tmp_path / f"out{suffix}")) == Fraction(68, 100)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_vfr_mp4_with_b_frames_keeps_its_last_frames_length(tmp_path, suffix):
    """FFmpeg gives the last frame of a B-frame MP4 its packet's dts step (20 ms here) and no later frame to last
    to; the track's end in the file (0.68 s) is where it stops. The output ended at 0.62 s, now at 0.68 s."""
    src = vfr_b_frames_clip(tmp_path / "phone.mp4")
    stored = [p.pts for p in read_packets_of(src)]
    assert stored != sorted(stored)  # B-frames: stored out of display order
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        assert [(f.pts, f.duration) for f in container.decode(stream)][-1] == (9600, 320)  # 1/16000 s ticks
    assert track_end(src, 1) == (Fraction(68, 100), Fraction(1, 1000))
    assert last_frame_end(src) == Fraction(68, 100)
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert times(out) == times(src)
    assert last_frame_end(out) == Fraction(68, 100)
    if suffix == ".mp4":
        assert track_end(out, 1) == track_end(src, 1)


@pytest.mark.parametrize(("suffix", "codec", "coded"), [(".mpg", "auto", "mpeg2video"), (".mkv", "mpeg2video", "mpeg2video"),
                                                    (".mp4", "mpeg4", "mpeg4")])
def test_a_variable_rate_an_encoder_counts_keeps_every_frames_time(tmp_path, suffix, codec, coded):
    """The phone clip's average rate (18.75 fps) is one MPEG-2 codes, so an .mpg gets MPEG-2, which counts frames:
    numbered at the average, each frame took the next number, so they came out evenly spaced, up to 40 ms off their
    times (140 ms at 160), and the last one 13 ms early. Numbered at the 50 fps its frames fall on, each keeps its
    time, as the Ray backend's join puts them, and FFmpeg reads them there too."""
    src = vfr_b_frames_clip(tmp_path / "phone.mp4")
    out = copy_video(src, tmp_path / f"out{suffix}", codec=codec)
    assert probe_video(out).codec == coded
    wanted = [t - times(src)[0] for t in times(src)]
    assert [t - times(out)[0] for t in times(out)] == wanted
    shown = ffmpeg_times(out)
    assert [t - shown[0] for t in shown] == wanted


def dvd_rip(path: Path, frames: int = 12) -> Path:
    """An MPEG-2 clip with MP2 audio muxed as a DVD's VOB is: with the navigation packets FFmpeg's demuxer gives as
    a codec-less data stream (stream id 0x1bf)."""
    src = make_clip(path.with_suffix(".ts"), frames=frames, size=SMALL, fps=25, codec="mpeg2video", audio_codec="mp2")
    with av.open(str(src)) as source, av.open(str(path), "w", format="dvd") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = copies[packet.stream_index]
                out.mux(packet)
    with av.open(str(path)) as ripped:
        assert [s.type for s in ripped.streams].count("data") == 1
    return path


@pytest.mark.parametrize("suffix", [".mpg", ".vob"])
def test_a_dvd_rips_navigation_packets_are_left_out_of_an_mpg_not_its_whole_output(tmp_path, suffix,
                                                                                     warnings_logged):
    """No muxer of FFmpeg's writes the navigation packets, which authoring tools rebuild: every healthy VOB warned
    of them ("data stream 0 (no codec) cannot be stored in .vob"), and a DVD user learnt to ignore warnings."""
    src = dvd_rip(tmp_path / f"VTS_01_1{suffix}")
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert len(times(out)) == 12
    assert [p[0] for p in read_packets(out, "audio")] == [p[0] for p in read_packets(src, "audio")]
    with av.open(str(out)) as restored:
        assert [s.type for s in restored.streams] == ["video", "audio"]
    assert warnings_logged.text == ""


def ntsc_label_clip(path: Path, frames: int = 30) -> Path:
    """`frames` frames at 29.97 fps stored as 2997/100 (an older FFmpeg's `-r 29.97`, as
    face_recognition_hamilton.mp4 is), on a 1/11988 clock, 400 ticks a frame, with no audio."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(2997, 100))
        stream.width, stream.height, stream.pix_fmt = *SMALL, "yuv420p"
        stream.time_base = Fraction(1, 11988)
        stream.options = {"preset": "ultrafast", "threads": "1"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, SMALL), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = 400 * i, Fraction(1, 11988)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("suffix", [".mxf", ".mpg"])
def test_29_97_fps_stored_as_2997_100_is_written_as_ntsc_mpeg2(tmp_path, suffix):
    """Regression: 2997/100 is NTSC's 30000/1001 to 3.6 ms an hour, but neither MXF nor MPEG-2's frame rate codes
    take it: an .mxf was refused ('runs at 30 fps', a rate it holds), and an .mpg got H.264, which DVD players do
    not play. Both are now MPEG-2 at 30000/1001, every frame at its source time to within a 90 kHz tick."""
    src = ntsc_label_clip(tmp_path / "in.mp4")
    assert probe_video(src).fps == Fraction(2997, 100)
    out = copy_video(src, tmp_path / f"out{suffix}")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg2video" and stream.average_rate == Fraction(30000, 1001)
    before, after = times(src), times(out)
    assert len(after) == len(before) == 30
    assert np.allclose([float(t - after[0]) for t in after], [float(t) for t in before], atol=1 / 90000)


def late_video_master(path: Path, frames: int = 12, late: int = 24000, short: int = 0) -> Path:
    """A .mov whose 48 kHz stereo PCM (random 24-bit samples, as dnxhr_master's) starts at 0 and its 24 fps
    pictures `late` samples (0.5 s) later, as a capture's sound runs before its first frame, both to one end but
    for `short` samples the sound stops before it."""
    count = late + frames * 2000 - short
    samples = np.random.default_rng(1).integers(-2**31, 2**31 - 256, (1, 2 * count), dtype=np.int32) & ~255
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = *SMALL, "yuv420p"
        video.options = {"preset": "ultrafast", "threads": "1", "bframes": "0"}
        audio = out.add_stream("pcm_s24le", rate=48000, layout="stereo")
        packets = []
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, SMALL), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i + late // 2000, Fraction(1, 24)
            packets += video.encode(frame)
        packets += video.encode(None)
        for at in range(0, count, 1000):
            sound = av.AudioFrame.from_ndarray(samples[:, 2 * at:2 * (at + 1000)], format="s32", layout="stereo")
            sound.sample_rate, sound.pts, sound.time_base = 48000, at, Fraction(1, 48000)
            packets += audio.encode(sound)
        packets += audio.encode(None)
        for packet in sorted(packets, key=lambda p: p.dts * p.time_base):
            out.mux(packet)
    return path


def test_sound_before_the_first_frame_is_cut_there_in_mxf(tmp_path):
    """Regression: MXF starts every track at 0, so a whole video whose sound began before its first frame was heard
    that much early: face_recognition_hamilton.mp4 (pictures from 0.852 s, sound from 0.008 s) 844 ms early, this
    clip 0.5 s. The sound is now cut at the first frame, as a stretch's is: the output's first sample is the
    source's at 0.5 s (sample 24000), and every frame is kept."""
    src = late_video_master(tmp_path / "in.mov")
    assert times(src)[0] == Fraction(1, 2) and audio_start(src) == 0
    out = copy_video(src, tmp_path / "out.mxf")
    heard, played = decoded_samples(src), decoded_samples(out)
    assert len(times(out)) == 12 and times(out)[0] == 0
    assert np.array_equal(played[:2 * 12000], heard[2 * 24000:2 * 36000])


def test_pictures_after_the_sound_ends_are_kept_in_mxf(tmp_path):
    """Regression: FFmpeg's MXF muxer stops the file where a track ends, so a clip whose sound stopped 0.25 s
    (6 frames) before its pictures lost those frames in a .mxf, exit 0 and unsaid (liveportrait_d14.mp4 with its
    sound cut 1 s short: 91 of 123 frames). The sound is now padded with silence to the pictures' end: all 24
    frames are kept, the sound is the source's samples, then zeros."""
    src = late_video_master(tmp_path / "in.mov", frames=24, late=0, short=12000)
    heard = decoded_samples(src)
    assert len(heard) == 2 * 36000 and len(times(src)) == 24
    out = copy_video(src, tmp_path / "out.mxf")
    played = decoded_samples(out)
    assert len(times(out)) == 24
    assert np.array_equal(played[:len(heard)], heard) and len(played) == 2 * 48000
    assert not played[len(heard):].any()
