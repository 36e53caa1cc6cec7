"""Video I/O on real generated clips: timing, copied streams, rotation, colour, depth, errors, atomic output."""
from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from clrface_video.errors import ClrfaceError, InputError
from clrface_video.io import stretch_tag
from clrface_video.io.decode import is_image_path, is_video_path, probe_video, read_frames
from clrface_video.io.deinterlace import bwdif_deint
from clrface_video.io.encode import VideoWriter, default_output_path, partial_path
from clrface_video.io.output_stream import auto_codec, choose_pix_fmt
from clrface_video.types import Frame, TimeSpan
from tests.media import (
    APPLE_KEYS,
    AUDIO_FRAME,
    AUDIO_RATE,
    BT601_FULL,
    BT709,
    BT2020_PQ,
    CHAPTERS,
    COVER,
    FONT,
    TAGS,
    add_ass_track,
    add_extras,
    add_srt_cues,
    clip_image,
    make_audio_only,
    make_clip,
    make_sequence,
    mux_all,
    read_cues,
    read_packets,
    silent_clip,
)

SMALL = (128, 96)


def copy_video(src: Path, dst: Path, **options) -> Path:
    """Decode src and encode every frame unchanged into dst."""
    info = probe_video(src)
    with VideoWriter(dst, src, info, **options) as writer:
        for frame in read_frames(src, alpha=info.alpha):
            writer.write(frame)
    return writer.output


def pts_of(path: Path) -> list[int]:
    return [frame.pts for frame in read_frames(path)]


def mean_abs_diff(a: Path, b: Path) -> float:
    diffs = [np.abs(x.image.astype(np.float64) - y.image.astype(np.float64)).mean()
             for x, y in zip(read_frames(a), read_frames(b), strict=True)]
    return float(np.mean(diffs))


# -- decode ----------------------------------------------------------------------------------------

def test_probe_reads_geometry_timing_colour_and_streams(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=12, size=SMALL, fps=24, subtitles=True)
    info = probe_video(clip)
    assert (info.width, info.height, info.frames, info.fps) == (128, 96, 12, Fraction(24))
    assert info.pix_fmt == "yuv420p" and info.bit_depth == 8 and info.rotation == 0
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (1, 1, 1, 1)
    assert info.has_audio and info.other_streams == 2
    assert info.duration_s == pytest.approx(0.5, abs=0.05)


def test_probe_mkv_has_no_stored_frame_count(tmp_path):
    info = probe_video(make_clip(tmp_path / "a.mkv", frames=6, size=SMALL, audio=False))
    assert info.frames is None and info.time_base == Fraction(1, 1000)
    assert not info.has_audio and info.other_streams == 0


def test_read_frames_streams_rgb_with_source_pts(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=8, size=SMALL, audio=False)
    frames = read_frames(clip)
    assert inspect.isgenerator(frames)
    first = next(frames)
    assert first.image.shape == (96, 128, 3) and first.image.dtype == np.uint8
    assert first.index == 0 and first.time_base == probe_video(clip).time_base
    rest = list(frames)
    assert [f.index for f in rest] == list(range(1, 8))
    with av.open(str(clip)) as container:
        expected = sorted(p.pts for p in container.demux(video=0) if p.pts is not None)
    assert [first.pts] + [f.pts for f in rest] == expected


def comb(image: np.ndarray) -> float:
    """Mean distance of each row from the mean of its neighbours: high where two fields disagree."""
    luma = image.astype(np.float64).mean(axis=2)
    return float(np.abs(luma[1:-1] - (luma[:-2] + luma[2:]) / 2).mean())


def test_interlaced_frames_are_flagged_and_deinterlaced_one_for_one(tmp_path):
    clip = make_clip(tmp_path / "capture.mp4", frames=8, size=(256, 192), interlaced=True)
    assert probe_video(clip).interlaced
    assert not probe_video(make_clip(tmp_path / "progressive.mp4", frames=2, audio=False)).interlaced
    raw, woven = list(read_frames(clip)), list(read_frames(clip, "interlaced"))
    assert [(f.index, f.pts, f.time_base) for f in woven] == [(f.index, f.pts, f.time_base) for f in raw]
    for before, after in zip(raw, woven, strict=True):
        assert comb(after.image) < comb(before.image) / 2  # the fields no longer disagree
        assert np.abs(after.image.mean((0, 1)) - before.image.mean((0, 1))).max() < 1  # same colours and range
    assert [frame.pts for frame in read_frames(clip, "all")] == [frame.pts for frame in raw]


def interlaced_capture(path: Path, parity: str, frames: int = 3, codec: str = "mpeg2video") -> Path:
    """An NTSC capture coded as fields, in `parity` order ("tff" or "bff"), its frames flagged so by FFmpeg's
    setfield (as a DVD or a broadcast recording is); in MPEG-2 by default. The stream itself states no order:
    the muxer writes what the encoder's context says, which is left unset, as some capture tools leave it."""
    size, rate = (720, 480), Fraction(30000, 1001)
    graph = av.filter.Graph()
    source = graph.add_buffer(width=size[0], height=size[1], format="yuv420p", time_base=1 / rate)
    fields, sink = graph.add("setfield", parity), graph.add("buffersink")
    source.link_to(fields)
    fields.link_to(sink)
    graph.configure()
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        for i in range(frames):
            image = clip_image(2 * i, 2 * frames, size)
            image[1::2] = clip_image(2 * i + 1, 2 * frames, size)[1::2]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, 1 / rate
            graph.push(frame)
            out.mux(stream.encode(graph.pull()))
        out.mux(stream.encode(None))
    return path


def frame_fields(path: Path) -> str:
    """Each decoded frame's fields as FFmpeg's showinfo filter names them: T (top first), B (bottom first) or
    P (progressive); PyAV gives no frame's field order."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.open(str(path)) as container, av.logging.Capture() as logs:
            graph = av.filter.Graph()
            source = graph.add_buffer(template=container.streams.video[0])
            show, sink = graph.add("showinfo"), graph.add("buffersink")
            source.link_to(show)
            show.link_to(sink)
            graph.configure()
            for frame in container.decode(video=0):
                graph.push(frame)
                graph.pull()
    finally:
        av.logging.set_level(level)
    return "".join(line.split(" i:")[1][0] for _, _, line in logs if " i:" in line)


@pytest.mark.parametrize("parity", ["tff", "bff"])
@pytest.mark.parametrize(("suffix", "codec"), [(".mpg", "auto"), (".mxf", "auto"), (".mov", "prores_ks"),
                                                (".mkv", "ffv1"), (".avi", "auto")])
def test_kept_fields_are_coded_as_fields_in_the_sources_order(tmp_path, parity, suffix, codec):
    """--deinterlace off into mpeg2video (auto for .mpg/.mxf) wrote progressive frames, and prores_ks, ffv1 and
    mpeg4 did too: fields flagged lost. These encoders take the field order from each frame's flags."""
    src = interlaced_capture(tmp_path / f"{parity}.mpg", parity)
    assert frame_fields(src) == parity[0].upper() * 3
    out = copy_video(src, tmp_path / f"out{suffix}", codec=codec)
    assert frame_fields(out) == parity[0].upper() * 3
    assert probe_video(out).interlaced


@pytest.mark.parametrize(("parity", "order"), [("tff", 2), ("bff", 3)])
def test_an_ffv1_whose_stream_states_no_field_order_keeps_its_fields(tmp_path, parity, order):
    """Matroska's FFV1 carries the field order in each frame only (FFmpeg's stream says unknown), and PyAV gives
    no frame's top-field-first flag: the fields kept were written progressive (P). The first frame's flag is now
    read through FFmpeg's filters (io.field_order)."""
    src = interlaced_capture(tmp_path / f"{parity}.mkv", parity, codec="ffv1")
    with av.open(str(src)) as container:
        assert container.streams.video[0].codec_context.field_order == 0  # the stream says nothing
    assert frame_fields(src) == parity[0].upper() * 3
    assert (probe_video(src).interlaced, probe_video(src).field_order) == (True, order)
    out = copy_video(src, tmp_path / "out.mkv")
    assert frame_fields(out) == parity[0].upper() * 3
    assert (probe_video(out).interlaced, probe_video(out).field_order) == (True, order)


def test_deinterlace_modes():
    assert bwdif_deint("auto", True) == "interlaced"
    assert bwdif_deint("auto", False) is None
    assert bwdif_deint("on", False) == "all" and bwdif_deint("on", True) == "all"
    assert bwdif_deint("off", True) is None
    with pytest.raises(ValueError, match="auto, on or off"):
        bwdif_deint("yes", True)


def test_read_frames_streams_one_frame_at_a_time(tmp_path, monkeypatch):
    """Peak memory must not grow with the video's length: the first frame comes before the rest are decoded."""
    from clrface_video.io import decode

    pulled = []

    def counting(frames, stream, deint):
        for frame in frames:
            pulled.append(frame.pts)
            yield frame

    monkeypatch.setattr(decode, "deinterlaced", counting)
    clip = make_clip(tmp_path / "a.mp4", frames=48, size=SMALL, audio=False)
    frames = read_frames(clip)
    first = next(frames)
    assert first.index == 0 and len(pulled) == 2  # one frame decoded ahead: its time ends the first's duration
    frames.close()  # closes the container
    assert len(pulled) == 2
    assert len(list(read_frames(clip))) == 48 and len(pulled) == 50


def test_a_frame_lasts_until_the_next_and_one_before_a_decoding_error_still_comes():
    """io.clock.lasting holds one frame back for its duration; the frame decoded before an error is handed on
    before it is raised, so read_frames' error names the frame that failed."""
    import errno

    from clrface_video.io.clock import lasting

    def decoded():
        for pts in (0, 10, 25):
            frame = av.VideoFrame(16, 16, "yuv420p")
            frame.pts, frame.duration = pts, 3
            yield frame
        raise av.error.InvalidDataError(errno.EINVAL, "damaged")

    handed = []
    with pytest.raises(av.error.InvalidDataError):
        for frame in lasting(decoded()):
            handed.append((frame.pts, frame.duration))
    assert handed == [(0, 10), (10, 15), (25, 3)]


def test_ten_bit_frames_are_uint16_full_scale(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=3, size=SMALL, audio=False, bit_depth=10)
    assert probe_video(clip).bit_depth == 10
    frame = next(read_frames(clip))
    assert frame.image.dtype == np.uint16 and frame.image.max() > 255 * 100


def test_rotation_is_metadata_not_pixels(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=2, size=SMALL, audio=False, rotation=90)
    assert probe_video(clip).rotation == 90
    assert next(read_frames(clip)).image.shape == (96, 128, 3)


def test_path_kinds():
    assert is_video_path("a/b.MP4") and is_video_path("x.mts") and is_video_path("x.gif") and not is_video_path("x.jpg")
    assert is_image_path("x.JPEG") and is_image_path("y.tiff") and not is_image_path("z.mkv")


# -- errors ----------------------------------------------------------------------------------------

def one_line_input_error(call, *args) -> str:
    with pytest.raises(InputError) as caught:
        result = call(*args)
        if inspect.isgenerator(result):
            list(result)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("call", [probe_video, read_frames])
def test_missing_empty_and_non_media_files(tmp_path, call):
    assert "not found" in one_line_input_error(call, tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert "empty" in one_line_input_error(call, tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    one_line_input_error(call, tmp_path / "text.mp4")


def test_a_photo_with_exif_under_a_video_name_is_sent_to_its_extension(tmp_path):
    """probe_video says a JPEG named .mp4 is one picture (restored as a video it lost its EXIF and quality);
    reading its frame is still no error (FFmpeg hands its EXIF over as side data PyAV cannot name)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "Camera"
    path = tmp_path / "holiday.mp4"
    Image.fromarray(clip_image(0, 1, SMALL)).save(path, format="JPEG", exif=exif.tobytes())
    assert "is a JPEG image, not a video file: name it .jpg" in one_line_input_error(probe_video, path)
    assert len(list(read_frames(path))) == 1


def test_no_video_stream(tmp_path):
    audio = make_audio_only(tmp_path / "tone.m4a")
    assert "no video stream" in one_line_input_error(probe_video, audio)
    assert "no video stream" in one_line_input_error(read_frames, audio)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_zero_frame_video(tmp_path, suffix):
    path = make_clip(tmp_path / f"zero{suffix}", frames=0, size=SMALL, audio=False)
    assert path.stat().st_size > 0
    one_line_input_error(probe_video, path)
    one_line_input_error(read_frames, path)


def test_truncated_mp4_is_an_input_error(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=12, size=SMALL)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    one_line_input_error(probe_video, cut)
    one_line_input_error(read_frames, cut)


def faststart_copy(src: Path, dst: Path) -> Path:
    """Remux with the index (moov) at the front, as streaming mp4s are."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream_index]
                out.mux(packet)
    return dst


@pytest.mark.parametrize("kind", ["faststart.mp4", "mkv"])
def test_truncated_stream_is_an_input_error_naming_the_frame(tmp_path, kind):
    if kind == "mkv":
        whole = make_clip(tmp_path / "a.mkv", frames=24, size=SMALL)
    else:
        whole = faststart_copy(make_clip(tmp_path / "a.mp4", frames=24, size=SMALL), tmp_path / "fs.mp4")
    assert len(list(read_frames(whole))) == 24
    cut = tmp_path / f"cut{whole.suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    message = one_line_input_error(read_frames, cut)
    assert "truncated" in message and "frames" in message


def test_corrupt_middle_never_leaks_a_raw_av_error(tmp_path):
    clip = make_clip(tmp_path / "a.mkv", frames=12, size=SMALL, audio=False)
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    data[middle: middle + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    try:
        frames = list(read_frames(bad))
    except InputError as error:
        assert "\n" not in str(error)
    else:
        assert 0 < len(frames) <= 12


def test_a_few_damaged_packets_are_passed_over_with_a_warning_not_the_whole_file_refused(tmp_path, warnings_logged):
    """Bit rot in an old file: 26 bytes flipped inside one packet made the whole video fail ('decoding failed at
    frame 14'); players show it with one frame missing. So does the pipeline now, and says which."""
    from tests.media import rotted

    clip = make_clip(tmp_path / "a.mp4", frames=24, size=SMALL, audio=False)
    rotten = rotted(clip, 14, tmp_path / "rotten.mp4")
    frames = list(read_frames(rotten))
    missing = sorted({f.pts for f in read_frames(clip)} - {f.pts for f in frames})
    assert len(frames) == 23 and [float(p * frames[0].time_base) for p in missing] == [14 / 24]  # packet 14's
    assert warnings_logged.text.count("damaged") == 1
    assert "rotten.mp4: damaged video at 0.583 s is passed over: 1 frame (0.04 s) left out" in warnings_logged.text
    assert [f.pts for f in frames] == sorted(f.pts for f in frames)


# -- encode ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
@pytest.mark.parametrize("vfr", [False, True], ids=["cfr", "vfr"])
def test_round_trip_keeps_frames_pts_and_audio_bytes(tmp_path, suffix, vfr):
    src = make_clip(tmp_path / f"in{suffix}", frames=12, size=SMALL, vfr=vfr)
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert out == tmp_path / f"out{suffix}"
    assert pts_of(out) == pts_of(src) and len(pts_of(out)) == 12
    source_audio = read_packets(src, "audio")
    assert len(source_audio) > 5 and read_packets(out, "audio") == source_audio
    assert probe_video(out).time_base == probe_video(src).time_base
    assert mean_abs_diff(src, out) < 4.0
    if not vfr:  # the H.264 stream's own timing says 24 fps, not its clock's tick (1/12800: 12800 fps)
        with av.open(str(out)) as container:
            assert container.streams.video[0].codec_context.framerate == 24


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_vfr_stretchs_last_frame_lasts_until_the_sources_next_frame(tmp_path, suffix):
    """Matroska gives each frame of a variable rate the track's default duration (1/24 s here), so a stretch's
    last frame, shown 83 ms in the source, was written 41 ms long: the output ended 21 ms before the stretch's
    end (0.25 s), where it now ends (and no later: the frame's next one comes at 271 ms)."""
    src = make_clip(tmp_path / "in.mkv", frames=12, size=SMALL, vfr=True, audio=False)
    source = pts_of(src)[:6]  # ms: 0, 42, 125, 146, 188, 271
    span = TimeSpan(0.0, 0.25)
    with VideoWriter(tmp_path / f"part{suffix}", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    with av.open(str(writer.output)) as out:
        assert out.duration == 250 * 1000  # microseconds: the stretch's end, inside the last frame's 83 ms
    if suffix == ".mkv":  # each block keeps its frame's duration (an MP4 stores steps between dts)
        assert [(f.pts, f.duration) for f in read_frames(writer.output)] == \
            [(pts, after - pts) for pts, after in pairwise(source[:5])] + [(188, 250 - 188)]


class _LacedAudio:
    """A source container whose demuxer gives only every third audio packet a time, as FFmpeg's Matroska demuxer
    does for the later frames of a laced block without a default duration (mkvmerge laces audio)."""

    def __init__(self, container: av.container.InputContainer) -> None:
        self._container = container

    def __getattr__(self, name: str):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._container.close()

    def demux(self, *args, **kwargs):
        number = 0
        for packet in self._container.demux(*args, **kwargs):
            if packet.stream.type == "audio" and packet.size:
                if number % 3:
                    packet.pts = packet.dts = None
                number += 1
            yield packet


def test_audio_packets_without_a_time_follow_the_one_before(tmp_path, monkeypatch, warnings_logged):
    """Untimed audio packets (a laced Matroska block's later frames) were left out without a word: two thirds of
    the sound gone. Each now follows its stream's last packet, as FFmpeg's stream copy places it."""
    from clrface_video.io import encode

    src = make_clip(tmp_path / "in.mkv", frames=12, size=SMALL)
    real = encode.open_input
    monkeypatch.setattr(encode, "open_input", lambda *args: _LacedAudio(real(*args)))
    out = copy_video(src, tmp_path / "out.mkv")
    assert len(read_packets(src, "audio")) > 10 and read_packets(out, "audio") == read_packets(src, "audio")
    assert not warnings_logged.records


@pytest.mark.parametrize(("audio_codec", "suffix"), [("libmp3lame", ".mkv"), ("libopus", ".mp4"), ("flac", ".mkv")])
def test_other_audio_codecs_are_copied_bit_for_bit(tmp_path, audio_codec, suffix):
    src = make_clip(tmp_path / f"in{suffix}", frames=6, size=SMALL, audio_codec=audio_codec)
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert read_packets(src, "audio") and read_packets(out, "audio") == read_packets(src, "audio")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_subtitle_packets_are_copied(tmp_path, suffix):
    src = make_clip(tmp_path / f"in{suffix}", frames=30, size=SMALL, subtitles=True)
    out = copy_video(src, tmp_path / f"out{suffix}")
    cues = read_packets(src, "subtitle")
    assert len(cues) >= 2 and read_packets(out, "subtitle") == cues
    assert read_packets(out, "audio") == read_packets(src, "audio")


@pytest.mark.parametrize(("source", "output", "codec"), [(".mp4", ".mkv", "subrip"), (".mkv", ".mp4", "mov_text"),
                                                     (".mov", ".webm", "webvtt")])
def test_text_subtitles_are_converted_for_a_container_that_cannot_hold_them(tmp_path, source, output, codec):
    src = make_clip(tmp_path / f"in{source}", frames=30, size=SMALL, subtitles=True)
    out = copy_video(src, tmp_path / f"out{output}")
    with av.open(str(out)) as container:
        assert [s.codec_context.codec.canonical_name for s in container.streams.subtitles] == [codec]
    cues = read_cues(src)
    assert len(cues) >= 2 and [c[2] for c in cues] == [f"cue {i}: hello astronaut".encode() for i in range(len(cues))]
    assert read_cues(out) == cues  # the same text at the same time, for as long


def test_ass_subtitles_keep_their_text_and_italics_in_mp4(tmp_path, warnings_logged):
    clip = make_clip(tmp_path / "in.mkv", frames=30, size=SMALL)
    src = add_ass_track(clip, tmp_path / "ass.mkv", [r"{\i1}hello{\i0} world", r"{\pos(10,10)}one\Ntwo"])
    out = copy_video(src, tmp_path / "out.mp4")
    assert [c[2] for c in read_cues(out)] == [rb"{\i1}hello{\r} world", b"one\ntwo"]  # mov_text has no positions
    assert [c[:2] for c in read_cues(out)] == [c[:2] for c in read_cues(src)]
    assert "positions and effects are not" in warnings_logged.text


def test_bitmap_or_unconvertible_subtitles_are_left_out_with_a_warning(tmp_path, warnings_logged):
    src = make_clip(tmp_path / "in.mp4", frames=12, size=SMALL, subtitles=True)
    out = copy_video(src, tmp_path / "out.avi", codec="mpeg4")
    with av.open(str(out)) as container:
        assert not container.streams.subtitles
    assert "cannot be stored in .avi" in warnings_logged.text


def test_stereo_pcm_from_matroska_goes_into_mp4(tmp_path):
    """Matroska stores no channel order; MP4 refused such a track when it closed the file, after the whole job.
    (It goes in as ALAC, which players read, not ISO PCM: tests/test_lossless_audio.py.)"""
    src = make_clip(tmp_path / "master.mkv", frames=6, size=SMALL, audio=False)
    with av.open(str(src)) as source, av.open(str(tmp_path / "pcm.mkv"), "w") as out:
        video = out.add_stream_from_template(source.streams.video[0])
        audio = out.add_stream("pcm_s16le", rate=48000, layout="stereo")
        samples = (np.arange(2 * 9600) % 2000 - 1000).astype(np.int16).reshape(1, -1)  # interleaved: s16, packed
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(audio.encode(frame) + audio.encode(None))
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    with av.open(str(tmp_path / "pcm.mkv")) as check:
        assert [c.name for c in check.streams.audio[0].codec_context.layout.channels] == ["NONE", "NONE"]
    out = copy_video(tmp_path / "pcm.mkv", tmp_path / "pcm.mp4")
    with av.open(str(out)) as container:  # every sample, bit for bit; ALAC decodes to planar s16p
        decoded = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert decoded.T.tobytes() == samples.tobytes()
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.layout.name == "stereo"


def test_telemetry_is_kept(tmp_path):
    src = add_extras(make_clip(tmp_path / "in.mp4", frames=8, size=SMALL), tmp_path / "GOPR0001.MP4", telemetry=True)
    out = copy_video(src, tmp_path / "out.mp4")
    assert read_packets(out, "data") == read_packets(src, "data") and len(read_packets(src, "data")) >= 2
    with av.open(str(out)) as container:
        assert [s.metadata.get("handler_name") for s in container.streams.data] == ["GoPro MET"]


def test_a_phones_quicktime_keys_are_kept_in_mov_and_said_to_be_left_out_of_mp4(tmp_path, warnings_logged):
    src = add_extras(make_clip(tmp_path / "in.mov", frames=8, size=SMALL), tmp_path / "IMG_0001.MOV", apple_keys=True)
    with av.open(str(copy_video(src, tmp_path / "out.mov"))) as container:
        assert {k: v for k, v in container.metadata.items() if k in APPLE_KEYS} == APPLE_KEYS
    with av.open(str(copy_video(src, tmp_path / "out.mp4"))) as container:
        assert not APPLE_KEYS.keys() & set(container.metadata)
    assert "QuickTime keys (make, model, creation date, location) are kept in .mov only" in warnings_logged.text


def test_an_attached_font_is_kept_in_mkv_and_said_to_be_left_out_of_mp4(tmp_path, warnings_logged):
    src = add_extras(make_clip(tmp_path / "in.mkv", frames=6, size=SMALL), tmp_path / "font.mkv", font=True)
    with av.open(str(copy_video(src, tmp_path / "out.mkv"))) as container:
        fonts = [s for s in container.streams if s.type == "attachment"]
        assert [(s.name, bytes(s.data)) for s in fonts] == [("DejaVuSans.ttf", FONT)]
    copy_video(src, tmp_path / "out.mp4")
    assert "attachment DejaVuSans.ttf cannot be stored in .mp4" in warnings_logged.text


def test_a_cover_picture_is_kept_in_mp4_and_mkv_and_said_to_be_left_out_of_mov(tmp_path, warnings_logged):
    src = add_extras(make_clip(tmp_path / "in.mp4", frames=6, size=SMALL), tmp_path / "song.mp4", cover=True)
    for suffix in (".mp4", ".mkv"):  # an MP4's covr atom; Matroska's cover.jpg attachment
        with av.open(str(copy_video(src, tmp_path / f"out{suffix}"))) as container:
            pictures = [s.disposition & av.stream.Disposition.attached_pic for s in container.streams.video]
            assert [bool(p) for p in pictures] == [False, True]  # the restored video, and the cover (not a track)
            cover = container.streams.video[1]
            assert [bytes(p) for p in container.demux(cover) if p.size] == [COVER]
    copy_video(src, tmp_path / "out.mov")
    assert "the cover picture cannot be stored in .mov" in warnings_logged.text


def test_chapters_of_an_mp4_bring_no_false_warning(tmp_path, warnings_logged):
    src = make_clip(tmp_path / "in.mp4", frames=12, size=SMALL, tagged=True)
    with av.open(str(src)) as container:
        assert [s.type for s in container.streams].count("data") == 1  # QuickTime's chapter text track
    with av.open(str(copy_video(src, tmp_path / "out.mp4"))) as container:
        assert len(container.chapters()) == len(CHAPTERS)
    assert "left out" not in warnings_logged.text


def audio_tagged(tmp_path: Path, key: str, value: str) -> Path:
    """A small .mp4 whose audio track is tagged `key`=`value` (its packets copied from make_clip's)."""
    src = make_clip(tmp_path / "in.mp4", frames=6, size=SMALL)
    tagged = tmp_path / f"{key}.mp4"
    with av.open(str(src)) as source, av.open(str(tagged), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in source.streams}
        copies[1].metadata[key] = value
        mux_all(source, out, copies)
    return tagged


def test_a_german_track_keeps_its_language_in_mov(tmp_path):
    tagged = audio_tagged(tmp_path, "language", "deu")
    with av.open(str(copy_video(tagged, tmp_path / "out.mov"))) as container:
        assert container.streams.audio[0].metadata.get("language") == "ger"  # QuickTime's name for German
    with av.open(str(copy_video(tagged, tmp_path / "out.mkv"))) as container:
        assert container.streams.audio[0].metadata.get("language") == "deu"


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_an_mp4_tracks_title_is_kept(tmp_path, suffix):
    """Named audio tracks ("English", "Commentary") of an MP4 came back untitled: the demuxer calls the title
    `name`, which no muxer writes."""
    named = audio_tagged(tmp_path, "title", "Commentary")
    with av.open(str(copy_video(named, tmp_path / f"out{suffix}"))) as container:
        tags = container.streams.audio[0].metadata
        assert tags.get("title" if suffix == ".mkv" else "name") == "Commentary" and len(container.streams) == 2


def test_overlapping_cues_in_mov_text_are_shown_together_not_pushed_later(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=24, size=SMALL)
    src = add_srt_cues(clip, tmp_path / "subs.mkv",  # the second overlaps both others
                       [(0, 150, b"cue 0"), (100, 600, b"cue 1"), (200, 150, b"cue 2")])
    shown = [(float(start), float(start + length), text)
             for start, length, text in read_cues(copy_video(src, tmp_path / "out.mp4"))]
    assert shown == [(0.0, 0.1, b"cue 0"), (0.1, 0.15, b"cue 0\ncue 1"), (0.15, 0.2, b"cue 1"),
                     (0.2, 0.35, b"cue 1\ncue 2"), (0.35, 0.7, b"cue 1")]  # every cue on screen for its time


def test_subtitles_that_cannot_be_converted_are_left_out_not_the_file(tmp_path, warnings_logged):
    clip = make_clip(tmp_path / "in.mkv", frames=12, size=SMALL)
    src = tmp_path / "bare_ass.mkv"
    with av.open(str(clip)) as source, av.open(str(src), "w") as out:  # an ASS track without its script header
        copies = {s.index: out.add_stream_from_template(s) for s in source.streams}
        cues = out.add_mux_stream("ass")
        cues.time_base = Fraction(1, 1000)
        packet = av.Packet(b"0,0,Default,,0,0,0,,hello")
        packet.pts = packet.dts = 0
        packet.duration, packet.time_base, packet.stream = 400, Fraction(1, 1000), cues
        out.mux(packet)
        mux_all(source, out, copies)
    out = copy_video(src, tmp_path / "out.mp4")
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    assert read_packets(out, "audio") and "subtitle stream 2 (ass) cannot be stored in .mp4" in warnings_logged.text


def test_a_stretch_keeps_the_tags_but_not_the_chapters(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=24, size=SMALL, tagged=True)
    span = TimeSpan(0.25, 0.75)
    info = probe_video(src)
    with VideoWriter(tmp_path / "part.mkv", src, info, span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    with av.open(str(src)) as whole, av.open(str(writer.output)) as part:
        assert len(whole.chapters()) == len(CHAPTERS) and part.chapters() == []  # they would point past its end
        assert part.metadata["title"] == whole.metadata["title"]


def test_the_preset_reaches_x264_and_other_encoders_warn(tmp_path, warnings_logged):
    src = make_clip(tmp_path / "in.mp4", frames=6, size=SMALL, audio=False)
    fast = copy_video(src, tmp_path / "fast.mp4", preset="ultrafast")
    plain = copy_video(src, tmp_path / "plain.mp4")
    assert b"cabac=0" in fast.read_bytes() and b"cabac=1" in plain.read_bytes()  # x264's own settings record
    copy_video(src, tmp_path / "lossless.mkv", codec="ffv1", preset="fast")
    assert "preset is for libx264 and libx265; ffv1 takes none" in warnings_logged.text


@pytest.mark.parametrize(("name", "encoder"), [("h264", "libx264"), ("hevc", "libx265")])
def test_a_formats_name_as_codec_is_its_encoder_with_crf_and_preset(tmp_path, name, encoder, warnings_logged):
    """FFmpeg encodes --codec hevc with libx265; --crf and --preset went by the lib names only, so hevc and h264
    were written at the encoder's own CRF 28 whatever was asked, and --preset was refused."""
    src = make_clip(tmp_path / "in.mp4", frames=6, size=SMALL, audio=False)
    fine = copy_video(src, tmp_path / "fine.mkv", codec=name, crf=5, preset="ultrafast")
    coarse = copy_video(src, tmp_path / "coarse.mkv", codec=name, crf=45)
    assert fine.stat().st_size > 2 * coarse.stat().st_size
    with av.open(str(fine)) as out:
        assert out.streams.video[0].codec_context.name == name
    assert "preset is for" not in warnings_logged.text


def test_a_cue_on_screen_when_a_stretch_starts_opens_it(tmp_path):
    """Cues at 0.5-0.9 s and 1.0-1.4 s; a stretch from 0.75 s (frame 18 at 24 fps) starts with the first one's
    last 0.15 s."""
    src = make_clip(tmp_path / "in.mkv", frames=48, size=SMALL, subtitles=True)
    assert shown_cues(src, tmp_path / "part.mkv", TimeSpan(0.75, 1.5)) == [(0.0, 0.15, b"cue 1: hello astronaut"),
                                                                           (0.25, 0.4, b"cue 2: hello astronaut")]


def shown_cues(src: Path, part: Path, span: TimeSpan) -> list[tuple[float, float, bytes]]:
    """The stretch `span` of `src` written to `part`: its cues (start, length in seconds, text)."""
    with VideoWriter(part, src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    return [(float(start), float(length), text) for start, length, text in read_cues(part)]


def test_a_cue_on_screen_when_a_stretch_ends_ends_there(tmp_path):
    """Cues at 0-0.4 s and 0.5-0.9 s; a stretch of 0.25-0.75 s kept the second one whole, so the .mp4's subtitle
    track, and the file, lasted 0.65 s where its video lasts 0.5 s. That cue now ends with the stretch."""
    src = make_clip(tmp_path / "in.mp4", frames=48, size=SMALL, subtitles=True)
    part = tmp_path / "part.mp4"
    assert shown_cues(src, part, TimeSpan(0.25, 0.75)) == [(0.0, 0.15, b"cue 0: hello astronaut"),
                                                           (0.25, 0.25, b"cue 1: hello astronaut")]
    with av.open(str(part)) as container:
        assert [float(s.duration * s.time_base) for s in container.streams if s.type != "audio"] == \
            pytest.approx([0.5, 0.5], abs=0.001)  # the audio's last packet, kept whole, may end 21 ms later
        assert container.duration / av.time_base < 0.5 + AUDIO_FRAME / AUDIO_RATE


def audio_spans(path: Path, track: int = 0) -> list[tuple[bytes, Fraction, Fraction]]:
    """(bytes, start, end) in seconds of every audio packet of audio stream `track`, as the demuxer times them;
    one it gives no duration (ALAC in Matroska) ends where the next one starts (the last such one where it starts)."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.audio[track]) if p.size and p.pts is not None]
    ends = [p.pts + p.duration if p.duration or after is None else after.pts
            for p, after in zip(packets, [*packets[1:], None])]
    return [(bytes(p), p.pts * p.time_base, end * p.time_base) for p, end in zip(packets, ends)]


def decoded_audio(path: Path) -> tuple[Fraction, np.ndarray]:
    """The first decoded audio sample's time less the first video frame's, and every sample decoded."""
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.audio[0]))
    video = next(read_frames(path))
    return frames[0].pts * frames[0].time_base - video.pts * video.time_base, \
        np.concatenate([frame.to_ndarray() for frame in frames], axis=1)


@pytest.mark.parametrize(("source", "suffix"), [(".mp4", ".mp4"), (".mov", ".mp4"), (".mkv", ".mkv"),
                                                (".mkv", ".mp4"), (".mp4", ".mkv")])
def test_aacs_encoder_delay_is_kept_or_said_to_be_heard(tmp_path, source, suffix, warnings_logged):
    """An AAC track's 1024 priming samples are skipped by the decoder as the source says (an MP4 edit list,
    Matroska's CodecDelay): the same samples come out of a restored file, at the same time from its first
    frame. From .mp4 into .mkv FFmpeg cannot mark them (PyAV cannot give the stream an initial padding), so the
    muxer starts every stream 21 ms later and they are heard: said in one line."""
    src = make_clip(tmp_path / f"in{source}", frames=12, size=SMALL)
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert [data for data, *_ in read_packets(out, "audio")] == [data for data, *_ in read_packets(src, "audio")]
    (start, samples), (kept_start, kept) = decoded_audio(src), decoded_audio(out)
    said = "its encoder delay (1024 samples) cannot be marked in .mkv, so those 21 ms are heard"
    if (source, suffix) == (".mp4", ".mkv"):
        assert said in warnings_logged.text and kept.shape[1] == samples.shape[1] + 1024
        assert np.array_equal(kept[:, 1024:], samples)  # after them, in sync with the frames:
        assert float(kept_start) == pytest.approx(float(start - Fraction(1024, 48000)), abs=1e-3)
    else:
        assert said not in warnings_logged.text and np.array_equal(kept, samples)
        assert float(kept_start) == pytest.approx(float(start), abs=1e-3)


def edit_list_audio(path: Path) -> tuple[list[av.Packet], np.ndarray]:
    """An MP4/QuickTime file's audio packets, and the samples a player that follows its edit list plays from
    the start: every packet decoded whole, less the samples the list skips (FFmpeg's first packet time)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.size]
        decoder = av.CodecContext.create(stream.codec_context.name, "r")
        decoder.extradata = stream.codec_context.extradata
        frames = [f for p in [*packets, None] for f in decoder.decode(None if p is None else av.Packet(bytes(p)))]
    return packets, np.concatenate([frame.to_ndarray() for frame in frames], axis=1)[:, -packets[0].pts:]


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
@pytest.mark.parametrize("start", [0, 0.5])
def test_aac_from_matroska_skips_exactly_its_priming_in_mp4(tmp_path, suffix, start):
    """Matroska times AAC to the millisecond: its 1024 priming samples (21.33 ms) read as -21 ms, so an .mp4's
    edit list skipped 1008 samples and played 16 of the priming, and its frames lasted 1008 and 1056 samples.
    Each packet is now put on its 1024-sample frame grid: the list skips the 1024 (with --start, up to the
    first frame's sample) and a player hears the source's samples from the output's first frame."""
    src = make_clip(tmp_path / "in.mkv", frames=48, size=SMALL)
    span = TimeSpan(start, None)
    with VideoWriter(tmp_path / f"out{suffix}", src, probe_video(src), span=span if start else None) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    packets, heard = edit_list_audio(writer.output)
    assert packets[0].time_base == Fraction(1, 48000) and next(read_frames(writer.output)).pts == 0
    assert {p.duration for p in packets[:-1]} == {1024}
    assert -packets[0].pts == (448 if start else 1024)  # 0.5 s is 448 samples into the frame from 23552 on
    source_start, samples = decoded_audio(src)
    assert source_start == 0
    from_first_frame = samples[:, round(start * 48000):]
    # half a second past the first frame; a stretch's first frame decodes without the one before it, and from
    # there the samples differ by < 1e-5 from the source's decoded from its start (16 samples late: up to 0.28)
    middle = slice(2048, 2048 + 24000)
    assert np.allclose(heard[:, middle], from_first_frame[:, middle], rtol=0, atol=1e-4)


@pytest.mark.parametrize("suffix", [".mov", ".mp4"])
def test_alac_from_matroska_keeps_its_last_packet_in_mov_and_mp4(tmp_path, suffix):
    """Matroska gives ALAC packets no duration; FFmpeg's MP4/QuickTime muxer then ended the track at the last
    packet's start, and the demuxer (as a plain PyAV remux shows) left that packet out."""
    src = make_clip(tmp_path / "in.mkv", frames=24, size=SMALL, audio_codec="alac")
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert [data for data, *_ in read_packets(out, "audio")] == [data for data, *_ in read_packets(src, "audio")]
    last = audio_spans(out)[-1]
    assert last[2] - last[1] == Fraction(3072, 48000)  # the clip's 47 x 1024 samples less 11 ALAC frames of 4096


@pytest.mark.parametrize(("source", "audio_codec", "suffix"),
                         [(".mp4", "aac", ".mp4"), (".mp4", "aac", ".mov"), (".mkv", "aac", ".mkv"),
                          (".mkv", "flac", ".mkv"), (".mkv", "alac", ".mkv"), (".mkv", "alac", ".mp4"),
                          (".mkv", "libopus", ".mkv")])
def test_a_stretch_keeps_the_audio_packet_that_sounds_at_its_start(tmp_path, source, audio_codec, suffix):
    """The audio packet that starts before a stretch and ends inside it was left out, so the stretch opened
    with up to a packet of silence (76 ms of FLAC). It is kept whole, before the first frame and in sync. ALAC
    in Matroska has no packet durations: the next packet's time gives one (it opened 12 ms late)."""
    src = make_clip(tmp_path / f"in{source}", frames=48, size=SMALL, audio_codec=audio_codec)
    span = TimeSpan(0.5, 1.5)
    with VideoWriter(tmp_path / f"part{suffix}", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    heard = [packet for packet in audio_spans(src) if packet[2] > Fraction(1, 2) and packet[1] < Fraction(3, 2)]
    assert heard[0][1] < Fraction(1, 2)  # the stretch starts inside a packet
    out = audio_spans(writer.output)
    assert [data for data, *_ in out] == [data for data, *_ in heard]
    video_start = next(read_frames(writer.output)).pts * probe_video(writer.output).time_base
    assert float(out[0][1] - video_start) == pytest.approx(float(heard[0][1] - Fraction(1, 2)), abs=1e-3)


def two_language_master(path: Path, frames: int = 36) -> Path:
    """An editor's .mov: ProRes at 25 fps with two 24-bit PCM tracks ("eng", "fra") of random samples, a frame's
    1920 samples of each muxed after it (the demuxer reads them as packets of 1024 and 896)."""
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as out:
        video = out.add_stream("prores_ks", rate=25)
        video.width, video.height, video.pix_fmt = *SMALL, "yuv422p10le"
        tracks = [out.add_stream("pcm_s24le", rate=48000, layout="stereo") for _ in range(2)]
        for track, language in zip(tracks, ("eng", "fra")):
            track.metadata["language"] = language
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, SMALL), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            for track in tracks:
                samples = rng.integers(-2**31, 2**31 - 256, (1, 2 * 1920), dtype=np.int32) & ~255
                sound = av.AudioFrame.from_ndarray(samples, format="s32", layout="stereo")
                sound.sample_rate, sound.pts = 48000, 1920 * i
                out.mux(track.encode(sound))
        out.mux(video.encode(None))
        for track in tracks:
            out.mux(track.encode(None))
    return path


def test_a_stretch_keeps_every_tracks_sound_to_its_end(tmp_path):
    """A stretch of 0.5 s from 0.5 s (from frame 12, 0.48 s, to 0.98 s) of a .mov with two PCM tracks: the copy
    stopped at the first packet past the end it demuxed, the first track's, and the second track's packet
    sounding at the end, stored after it, was left out: its last 20 ms were silent, and the tracks' lengths
    differed. Each keeps the packets that sound within the stretch, bit for bit."""
    src = two_language_master(tmp_path / "master.mov")
    span = TimeSpan(0.5, 1.0)
    with VideoWriter(tmp_path / "shot.mov", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    for track in (0, 1):
        heard = [data for data, start, end in audio_spans(src, track) if end > Fraction(12, 25)
                 and start < Fraction(49, 50)]
        assert [data for data, *_ in audio_spans(writer.output, track)] == heard, f"track {track}"


@pytest.mark.parametrize("suffix", [".ts", ".gif"])
def test_chapters_and_tags_a_container_cannot_hold_are_said_to_be_left_out(tmp_path, warnings_logged, suffix):
    src = make_clip(tmp_path / "in.mkv", frames=6, size=SMALL, tagged=True, audio=False)
    copy_video(src, tmp_path / f"out{suffix}")
    assert f"{len(CHAPTERS)} chapters cannot be stored in {suffix}" in warnings_logged.text
    assert f"cannot be stored in {suffix}; they are left out" in warnings_logged.text


def test_a_cue_without_duration_is_left_out_of_mov_text_not_the_file(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=48, size=SMALL)
    src = add_srt_cues(clip, tmp_path / "subs.mkv", [(0, 1500, b"A"), (500, 0, b"flash"), (1000, 1000, b"B")])
    shown = [(float(start), float(start + length), text) for start, length, text in
             read_cues(copy_video(src, tmp_path / "out.mp4"))]
    assert shown == [(0.0, 1.0, b"A"), (1.0, 1.5, b"A\nB"), (1.5, 2.0, b"B")]


def test_a_stretch_keeps_the_cover_picture(tmp_path):
    src = add_extras(make_clip(tmp_path / "in.mp4", frames=24, size=SMALL), tmp_path / "song.mp4", cover=True)
    span = TimeSpan(0.25, 0.75)
    with VideoWriter(tmp_path / "part.mp4", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    with av.open(str(writer.output)) as container:
        covers = [s for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(covers) == 1 and [bytes(p) for p in container.demux(covers[0]) if p.size] == [COVER]


def test_a_raw_h264_stream_keeps_the_rate_its_headers_give(tmp_path):
    """The raw demuxer reports 25 fps whatever the stream says; a 10 fps stream must not come out 2.5x fast."""
    clip = make_clip(tmp_path / "cam.h264", frames=10, size=SMALL, fps=10, audio=False)
    assert probe_video(clip).fps == 10
    assert len(list(read_frames(clip, span=TimeSpan(0.5, 0.8)))) == 3  # frames 5, 6 and 7


def test_stream_flags_mov_cannot_hold_are_said_to_be_left_out(tmp_path, warnings_logged):
    src = make_clip(tmp_path / "in.mkv", frames=6, size=SMALL)
    flagged = tmp_path / "commentary.mkv"
    with av.open(str(src)) as source, av.open(str(flagged), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in source.streams}
        copies[1].disposition = av.stream.Disposition.comment
        mux_all(source, out, copies)
    with av.open(str(copy_video(flagged, tmp_path / "out.mkv"))) as container:
        assert container.streams.audio[0].disposition & av.stream.Disposition.comment
    assert "cannot be stored in .mov" not in warnings_logged.text
    copy_video(flagged, tmp_path / "out.mov")
    assert "stream flags (comment) cannot be stored in .mov" in warnings_logged.text


def test_copied_packets_are_interleaved_with_video(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=24, size=SMALL)
    out = copy_video(src, tmp_path / "out.mkv")
    with av.open(str(out)) as container:
        kinds = [p.stream.type for p in container.demux() if p.dts is not None]
    first_audio = kinds.index("audio")
    last_video = len(kinds) - 1 - kinds[::-1].index("video")
    assert first_audio < last_video


def assert_archive_tags_kept(source: Path, output: Path) -> None:
    """TAGS, stream languages, dispositions, chapters and the pixel shape of a make_clip(tagged=True, sar=...) clip."""
    with av.open(str(source)) as a, av.open(str(output)) as b:
        tags = {key.lower(): value for key, value in b.metadata.items()}  # matroska spells COMMENT
        own = tags.pop(stretch_tag.TAG.lower(), None)  # the stretch it holds, where the container keeps any tag
        assert own == ("whole" if output.suffix == ".mkv" else None)
        assert tags == {key: value for key, value in tags.items() if key in {k.lower() for k in a.metadata}}
        assert tags["title"] == TAGS["title"] and tags["comment"] == TAGS["comment"]
        assert tags["creation_time"].startswith("1987-07-04")
        assert [s.metadata.get("language") for s in b.streams] == [s.metadata.get("language") for s in a.streams]
        assert [s.metadata.get("language") for s in b.streams][:2] == ["eng", "fra"]
        assert [int(s.disposition) for s in b.streams] == [int(s.disposition) for s in a.streams]
        assert [c["metadata"]["title"] for c in b.chapters()] == [c["metadata"]["title"] for c in CHAPTERS]
        assert [float(c["start"] * c["time_base"]) for c in b.chapters()] == [c["start"] / 1000 for c in CHAPTERS]
    assert probe_video(output).sample_aspect_ratio == probe_video(source).sample_aspect_ratio == Fraction(16, 15)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_tags_chapters_languages_and_pixel_shape_are_kept(tmp_path, suffix):
    clip = make_clip(tmp_path / f"tape{suffix}", frames=10, size=SMALL, sar=Fraction(16, 15), tagged=True)
    out = copy_video(clip, tmp_path / f"out{suffix}")
    assert_archive_tags_kept(clip, out)
    assert not probe_video(make_clip(tmp_path / f"square{suffix}", frames=2, audio=False)).sample_aspect_ratio


@pytest.mark.parametrize(("codec", "suffix"), [("ffv1", ".mkv"), ("libvpx-vp9", ".webm"), ("libx264", ".mkv"), ("prores_ks", ".mkv"),
                                              ("prores_ks", ".mov")])
def test_a_pixel_shape_the_output_cannot_carry_is_warned_of_exactly_where_it_is_lost(tmp_path, codec, suffix,
                                                                                    warnings_logged):
    """An anamorphic DV transfer into FFV1 in Matroska (the archival choice) played squeezed, without a word:
    Matroska and WebM get the shape from the bitstream only, which x264 carries and FFV1 does not. The warning's
    advice holds for the codec: it said '.mov or .mp4 keep it' to FFV1, which a .mov cannot hold."""
    clip = make_clip(tmp_path / "dv.mov", frames=3, size=SMALL, audio=False, sar=Fraction(16, 15))
    out = copy_video(clip, tmp_path / f"out{suffix}", codec=codec)
    kept = probe_video(out).sample_aspect_ratio == Fraction(16, 15)
    assert kept != ("pixel aspect ratio (16/15) is left out" in warnings_logged.text)
    assert kept or f"is left out: {codec} in {suffix} cannot carry it" in warnings_logged.text  # 'a matroska file'
    if not kept:  # each container the warning names keeps the shape with the same codec
        advice = warnings_logged.text.split("squeezed; ")[1].split(" keep")[0]
        for other in advice.split(" or "):
            assert probe_video(copy_video(clip, tmp_path / f"advised{other}", codec=codec)).sample_aspect_ratio \
                == Fraction(16, 15)
        if "libx264" in warnings_logged.text:  # the other way it names, under the same name: it said so for WebM
            assert probe_video(copy_video(clip, tmp_path / f"x264{suffix}", codec="libx264")).sample_aspect_ratio \
                == Fraction(16, 15)


@pytest.mark.parametrize(("codec", "suffix"), [("libx264", ".mp4"), ("libx264", ".mkv"), ("libx264", ".ts"),
                                              ("prores_ks", ".mov")])
def test_a_stated_square_pixel_shape_is_kept(tmp_path, codec, suffix, warnings_logged):
    """A source that states 1:1 pixels (face_recognition_hamilton.mp4, liveportrait_d10.mp4 do) came out with no
    shape stated from these encoders: 1:1 was read as none. A source that states none still states none."""
    clip = make_clip(tmp_path / "square.mov", frames=2, size=SMALL, audio=False, sar=Fraction(1))
    out = copy_video(clip, tmp_path / f"out{suffix}", codec=codec)
    with av.open(str(out)) as container:
        assert container.streams.video[0].sample_aspect_ratio == 1
    assert probe_video(out).sample_aspect_ratio == 1 and "pixel aspect ratio" not in warnings_logged.text
    unset = copy_video(make_clip(tmp_path / "unset.mov", frames=2, size=SMALL, audio=False), tmp_path / f"u{suffix}",
                       codec=codec)
    assert probe_video(unset).sample_aspect_ratio is None


@pytest.mark.parametrize(("sar", "warned"), [(Fraction(389, 388), False), (Fraction(10, 11), True),
                                             (Fraction(40, 33), True)])
def test_a_pixel_shape_within_a_percent_of_square_is_not_called_squeezed(tmp_path, sar, warned, warnings_logged):
    """A talk-show clip scaled to an even width (389/388, 0.26% off square) was said to play 'squeezed' into FFV1
    in .mkv, which no one can see; 4:3 and 16:9 NTSC DV's pixels (10/11, 40/33) are still warned of."""
    clip = make_clip(tmp_path / "in.mov", frames=2, size=SMALL, audio=False, sar=sar)
    assert probe_video(clip).sample_aspect_ratio == sar
    copy_video(clip, tmp_path / "out.mkv", codec="ffv1")
    assert (f"pixel aspect ratio ({sar}) is left out" in warnings_logged.text) is warned
    assert ("squeezed" in warnings_logged.text) is warned


@pytest.mark.parametrize("suffix", [".webm", ".mkv"])
def test_a_bit_depth_the_encoder_cannot_keep_is_warned_of(tmp_path, suffix, warnings_logged):
    """10-bit into WebM came out 8-bit (this libvpx has no 10-bit) without a word, while 4:2:2 to 4:2:0 warned."""
    clip = make_clip(tmp_path / "in.mkv", frames=2, size=SMALL, audio=False, bit_depth=10)
    depth = probe_video(copy_video(clip, tmp_path / f"out{suffix}")).bit_depth
    assert (depth == 10) != ("10-bit depth is written at 8 bits" in warnings_logged.text)


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_a_mirrored_rotation_the_output_cannot_carry_is_warned_of_exactly_where_it_is_lost(tmp_path, suffix,
                                                                                         warnings_logged):
    clip = make_clip(tmp_path / "selfie.mp4", frames=3, size=SMALL, audio=False, rotation=90, mirror=True)
    kept = probe_video(copy_video(clip, tmp_path / f"out{suffix}")).rotation == 90
    assert kept == (suffix == ".mkv") and kept != ("rotation is left out" in warnings_logged.text)
    # the output named as the user named it: 'a avi file' (FFmpeg's muxer name) was said, 'a image2 file' for frames
    assert kept or f"rotation is left out: {suffix} cannot store it" in warnings_logged.text


@pytest.mark.parametrize("output", ["out.avi", "out.gif", "out.ts", "frames/f_%03d.png", "out.mkv"])
def test_a_phone_clip_is_written_upright_where_the_output_cannot_keep_its_rotation(tmp_path, output,
                                                                                  warnings_logged):
    """A phone's portrait clip (stored on its side with a rotation tag) into a GIF, an AVI, a .ts or frames came out
    lying on its side, with a warning that players would show it turned: those formats keep no tag. Its frames are
    written turned upright there, as it is shown; a container that keeps the tag keeps the stored frames and it."""
    clip = make_clip(tmp_path / "phone.mp4", frames=3, size=(96, 128), audio=False, rotation=90, sideways=True)
    (tmp_path / "frames").mkdir()
    out = copy_video(clip, tmp_path / output)
    shown = [np.rot90(frame.image) for frame in read_frames(clip)]  # as players show the source
    kept = output.endswith(".mkv")
    written = [frame.image for frame in read_frames(tmp_path / "frames" / "f_%03d.png" if "%" in output else out,
                                                     fps=24 if "%" in output else None)]
    assert probe_video(out if "%" not in output else clip).rotation == 90 or not kept
    for frame, upright in zip(written, shown, strict=True):
        assert np.abs((np.rot90(frame) if kept else frame).astype(int) - upright).mean() < 8
    assert "rotation is left out" not in warnings_logged.text


@pytest.mark.parametrize("suffix", [".mov", ".mp4"])
def test_an_editors_timecode_is_kept_without_a_warning(tmp_path, suffix, warnings_logged):
    clip = make_clip(tmp_path / "take.mov", frames=5, size=SMALL, timecode="01:02:03:04")
    with av.open(str(clip)) as source:
        assert [s.type for s in source.streams] == ["video", "audio", "data"]  # the timecode track
    out = copy_video(clip, tmp_path / f"out{suffix}")
    with av.open(str(out)) as copied:
        assert copied.streams.video[0].metadata.get("timecode") == "01:02:03:04"
        assert [s.metadata.get("timecode") for s in copied.streams.data] == ["01:02:03:04"]
        # each track keeps its own name: the muxer named the timecode track it builds after the video (VideoHandler)
        assert [s.metadata.get("handler_name") for s in copied.streams if s.type != "audio"] == \
            ["VideoHandler", "TimeCodeHandler"]
    assert not [r for r in warnings_logged.records if r.levelname == "WARNING"]


def test_a_timecode_track_name_the_muxer_cannot_keep_is_warned_of(tmp_path, warnings_logged):
    """A camera's own timecode track name cannot be written beside FFmpeg's video track name (the muxer names
    the timecode track it builds after the video's, or TimeCodeHandler): one line says so."""
    clip = make_clip(tmp_path / "take.mov", frames=3, size=SMALL, audio=False, timecode="01:02:03:04")
    data = clip.read_bytes()
    assert data.count(b"TimeCodeHandler") == 1
    clip.write_bytes(data.replace(b"TimeCodeHandler", b"Tape 7 timecode"))  # the same length: still a valid hdlr
    with av.open(str(clip)) as source:
        assert source.streams.data[0].metadata["handler_name"] == "Tape 7 timecode"
    out = copy_video(clip, tmp_path / "out.mov")
    with av.open(str(out)) as copied:
        assert [s.metadata.get("handler_name") for s in copied.streams] == ["VideoHandler", "TimeCodeHandler"]
    assert {r.getMessage() for r in warnings_logged.records} == \
        {("the timecode track's name 'Tape 7 timecode' is written as 'TimeCodeHandler': FFmpeg names the timecode "
          "track it builds after the video track")}


def test_rotation_and_colour_tags_are_kept(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=4, size=SMALL, audio=False, rotation=-90)
    out = copy_video(src, tmp_path / "out.mp4")
    info = probe_video(out)
    assert info.rotation == -90
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (1, 1, 1, 1)
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.color_primaries, ctx.colorspace, ctx.color_range) == (1, 1, 1)


def test_a_prores_movs_colour_atom_is_kept_where_its_frame_headers_say_unspecified(tmp_path):
    """FFmpeg's prores_ks writes its frames' tags into each frame header, so a clip tagged only on its stream
    says BT.709 in the .mov's colr atom (what Resolve, Premiere and QuickTime read) and "unspecified" in its
    frames; the output's atom must still say BT.709."""
    src = make_clip(tmp_path / "in.mov", frames=2, size=SMALL, audio=False, codec="prores_ks", bit_depth=10)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        atom = (stream.codec_context.color_primaries, stream.codec_context.color_trc)
        header = next(container.decode(stream))
        assert atom == (1, 1) and (header.color_primaries, header.color_trc) == (2, 2)
    info = probe_video(src)
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == BT709
    out = copy_video(src, tmp_path / "out.mov")
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range) == BT709
        written = next(container.decode(video=0))
        assert (written.color_primaries, written.color_trc) == (1, 1)


def prores_tagged_on_its_stream_only(path: Path, frames: int = 2, size: tuple[int, int] = (128, 96)) -> Path:
    """A BT.709 ProRes .mov whose colr atom says so and whose frame headers leave all three tags unspecified."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("prores_ks", rate=24)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv422p10le"
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = BT709
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(index, frames, size), format="rgb24").reformat(
                format="yuv422p10le", src_colorspace=1, dst_colorspace=1, src_color_range=2, dst_color_range=1,
                threads=1)
            frame.color_primaries = frame.color_trc = frame.colorspace = 2
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_prores_frame_without_a_matrix_is_read_in_its_movs_and_written_back_in_it(tmp_path):
    """Read with swscale's default (BT.601) and written back tagged BT.709, every pixel's colour would shift."""
    src = prores_tagged_on_its_stream_only(tmp_path / "in.mov")
    decoded = next(read_frames(src)).image / 257  # 10-bit: read as 16-bit
    shift = (decoded - clip_image(0, 2, (128, 96))).mean(axis=(0, 1))
    assert np.abs(shift).max() < 1.0, shift  # read in BT.601: red and green 3 lower
    out = copy_video(src, tmp_path / "out.mov")
    with av.open(str(src)) as source, av.open(str(out)) as copy:
        for before, after in zip(source.decode(video=0), copy.decode(video=0), strict=True):
            for plane, (a, b) in enumerate(zip(before.planes, after.planes, strict=True)):
                a, b = (np.frombuffer(p, "<u2").reshape(p.height, -1)[:, :p.width].astype(np.int32) for p in (a, b))
                assert abs((b - a).mean()) < 2.0, plane  # 10-bit codes; Y 8 lower, read and written in two matrices


@pytest.mark.parametrize(("color", "depth"), [(BT709, 8), (BT601_FULL, 8), (BT2020_PQ, 10)],
                         ids=["bt709-limited", "bt601-full", "bt2020-pq-10bit"])
def test_colours_decode_and_encode_with_the_tagged_matrix_and_range(tmp_path, color, depth):
    size = (129, 97)  # odd: ffv1 stores 4:4:4, so only rounding separates pixels from the truth
    src = make_clip(tmp_path / "in.mkv", frames=2, size=size, audio=False, color=color, codec="ffv1",
                    bit_depth=depth)
    scale = 257 if depth > 8 else 1
    truth = clip_image(0, 2, size).astype(np.int32) * scale
    decoded = next(read_frames(src)).image.astype(np.int32)
    assert np.abs(decoded - truth).max() <= 3 * scale  # a wrong matrix or range is off by 10+
    out = copy_video(src, tmp_path / "out.mkv", codec="ffv1")
    info = probe_video(out)
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == color
    assert info.bit_depth == depth
    assert np.abs(next(read_frames(out)).image.astype(np.int32) - truth).max() <= 4 * scale


def yuv_planes(frame: av.VideoFrame) -> np.ndarray:
    """The 16-bit samples of a 4:4:4 high-depth frame, without the row padding."""
    return np.stack([np.frombuffer(plane, np.uint16).reshape(plane.height, -1)[:, :plane.width]
                     for plane in frame.planes])


def _check_colour_copy(folder: Path, color: tuple[int, int, int, int], depth: int) -> None:
    """make_clip + decode + ffv1 copy of a 4:4:4 clip; every frame must stay within rounding of the truth."""
    folder.mkdir()
    size, frames = (129, 97), 3
    src = make_clip(folder / "in.mkv", frames=frames, size=size, audio=False, color=color, codec="ffv1",
                    bit_depth=depth)
    scale = 257 if depth > 8 else 1
    truths = [clip_image(i, frames, size).astype(np.int32) * scale for i in range(frames)]
    for frame, truth in zip(read_frames(src), truths, strict=True):
        assert np.abs(frame.image.astype(np.int32) - truth).max() <= 3 * scale, (color, "source", frame.index)
    out = copy_video(src, folder / "out.mkv", codec="ffv1")
    for frame, truth in zip(read_frames(out), truths, strict=True):
        assert np.abs(frame.image.astype(np.int32) - truth).max() <= 4 * scale, (color, "copy", frame.index)


@pytest.mark.parametrize("order", ["bt709-first", "bt2020-first"])
def test_colour_conversion_does_not_depend_on_what_ran_before(tmp_path, order):
    """Regression: threaded swscale (FFmpeg 8) sometimes corrupted the first pixels of each slice when
    converting rgb48 to 10-bit YUV, so the BT.2020 PQ case passed or failed with the run order."""
    cases = [(BT709, 8), (BT2020_PQ, 10)]
    if order == "bt2020-first":
        cases.reverse()
    for round_ in range(2):
        for color, depth in cases:
            _check_colour_copy(tmp_path / f"{round_}-{depth}", color, depth)


def test_rgb_yuv_conversions_are_deterministic(tmp_path):
    """The same frame converts to the same YUV and back to the same RGB every time (the slice race
    showed up in roughly one conversion in five on a 2-core machine)."""
    src = make_clip(tmp_path / "in.mkv", frames=1, size=(129, 97), audio=False, color=BT2020_PQ,
                    codec="ffv1", bit_depth=10)
    info = probe_video(src)
    image = next(read_frames(src)).image
    with VideoWriter(tmp_path / "out.mkv", src, info, codec="ffv1") as writer:
        planes = [yuv_planes(writer._to_video_frame(Frame(image=image, index=0), Fraction(0))) for _ in range(40)]
        writer.write(Frame(image=image, index=0))
    assert all(np.array_equal(p, planes[0]) for p in planes)
    decoded = [next(read_frames(src)).image for _ in range(40)]
    assert all(np.array_equal(d, image) for d in decoded)


def test_full_range_bt601_tags_survive_libx264(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3, size=SMALL, audio=False, color=BT601_FULL)
    info = probe_video(copy_video(src, tmp_path / "out.mp4"))
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == BT601_FULL
    assert mean_abs_diff(src, tmp_path / "out.mp4") < 4.0


def plane_means(path: Path) -> np.ndarray:
    """Each decoded frame's mean Y, Cb and Cr in 8-bit code values (a 10-bit plane divided by 1023 / 255)."""
    means = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            bits = frame.format.components[0].bits
            dtype = np.uint8 if bits == 8 else np.dtype("<u2")
            means.append([np.frombuffer(p, dtype).reshape(p.height, -1)[:, :p.width].mean() * 255 / ((1 << bits) - 1)
                          for p in frame.planes])
    return np.array(means)


@pytest.mark.parametrize("depth", [8, 10])
def test_full_range_chroma_mean_survives_a_copy(tmp_path, depth):
    """Regression: swscale truncated full-range chroma, so a phone or webcam clip came out 0.5-0.7 code values
    low in Cb and Cr on every pixel after each restore (a green cast), and 10-bit neutral grey at 511."""
    src = make_clip(tmp_path / "in.mkv", frames=3, size=SMALL, audio=False, color=BT601_FULL, codec="ffv1",
                    bit_depth=depth)
    shift = plane_means(copy_video(src, tmp_path / "out.mkv", codec="ffv1")) - plane_means(src)
    # the fix leaves 0.1 (8 bits) and 0.06 (10 bits, in 8-bit units); truncation lost 0.5-0.6 and 0.23
    assert np.abs(shift[:, 1:]).max() < (0.25 if depth == 8 else 0.12), shift


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "yuv440p10le", "yuv411p", "yuv440p"])
def test_a_full_range_copy_keeps_mean_luma_and_chroma(tmp_path, pix_fmt):
    """Regression: a 10-bit full-range clip came back +0.3 luma codes brighter (swscale reads it x64 and writes
    rgb48 x256/255), and 4:1:1 and 4:4:0 ones, which have no 16-bit twin format, with chroma truncated (-0.5)."""
    depth = 10 if pix_fmt.endswith("10le") else 8
    src = make_clip(tmp_path / "in.mkv", frames=3, size=SMALL, audio=False, color=BT601_FULL, codec="ffv1",
                    bit_depth=depth, pix_fmt=pix_fmt)
    out = copy_video(src, tmp_path / "out.mkv", codec="ffv1")
    assert probe_video(out).pix_fmt == pix_fmt
    shift = plane_means(out) - plane_means(src)  # 8-bit code values
    assert np.abs(shift[:, 0]).max() < 0.05 and np.abs(shift[:, 1:]).max() < 0.1, shift


def test_full_range_deep_frames_are_read_to_full_scale():
    """Regression: swscale reads 9-15 bit full-range YUV and grey by x2^(16 - n): 10-bit white came out 65472.
    RGB of those depths it reads right, full-range tag or not."""
    from clrface_video.io.decode import RANGE_JPEG, frame_to_array

    for pix_fmt, samples, want in [("yuv420p10le", (1023, 512, 512), 65535), ("yuv420p10le", (512, 512, 512), 32800),
                                   ("yuv444p12le", (4095, 2048, 2048), 65535), ("gray10le", (1023,), 65535),
                                   ("gbrp10le", (512, 512, 512), 32800)]:
        frame = av.VideoFrame(16, 8, pix_fmt)
        for plane, value in zip(frame.planes, samples, strict=True):
            np.frombuffer(plane, "<u2")[:] = value
        frame.color_range = RANGE_JPEG
        assert set(np.unique(frame_to_array(frame, True)).tolist()) == {want}, pix_fmt


def test_a_full_range_ten_bit_alpha_stays_opaque(tmp_path):
    """Regression: swscale reads 10-bit alpha x64 (1023 -> 65472) and the full-range writer scaled it back by
    1023/65535, so an opaque full-range yuva444p10le clip came back 1022, no longer opaque."""
    src, size = tmp_path / "in.mkv", (64, 48)
    with av.open(str(src), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = *size, "yuva444p10le"
        stream.codec_context.color_range = 2
        frame = av.VideoFrame(*size, "yuva444p10le")
        for plane, value in zip(frame.planes, (600, 400, 700, 1023), strict=True):
            np.frombuffer(plane, "<u2")[:] = value
        np.frombuffer(frame.planes[3], "<u2").reshape(size[1], -1)[:, :10] = 512  # half transparent at the left
        frame.color_range, frame.pts = 2, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(copy_video(src, tmp_path / "out.mkv", codec="ffv1"))) as container:
        back = next(container.decode(video=0))
    def samples(picture: av.VideoFrame) -> list[list[int]]:
        return [np.frombuffer(p, "<u2").reshape(p.height, -1)[:, :p.width].tolist() for p in picture.planes]

    assert back.format.name == "yuva444p10le" and samples(back) == samples(frame)


def flat_ffv1(path: Path, pix_fmt: str, columns: list[tuple[int, ...]], color_range: int,
              size: tuple[int, int] = (96, 48), primaries_trc: int = 2) -> Path:
    """A one-frame BT.709 FFV1 clip whose planes hold `columns`: side-by-side bands of (Y, Cb, Cr[, A]) or (Y,)
    samples, each band a whole number of chroma samples wide; its primaries and transfer `primaries_trc`
    (unspecified, or 1: BT.709)."""
    dtype = np.uint8 if av.VideoFormat(pix_fmt).components[0].bits == 8 else "<u2"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = *size, pix_fmt
        ctx = stream.codec_context
        ctx.color_range, ctx.colorspace, ctx.color_primaries, ctx.color_trc = color_range, 1, primaries_trc, primaries_trc
        frame = av.VideoFrame(*size, pix_fmt)
        for index, plane in enumerate(frame.planes):
            samples = np.frombuffer(plane, dtype).reshape(plane.height, -1)[:, :plane.width]
            band = plane.width // len(columns)
            for number, values in enumerate(columns):
                samples[:, number * band:] = values[index]
        frame.color_range, frame.colorspace, frame.pts = color_range, 1, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def bt709_limited_rgb(y: int, cb: int, cr: int) -> np.ndarray:
    """The exact 16-bit RGB of 10-bit limited-range BT.709 Y, Cb, Cr (unclipped)."""
    luma, pb, pr = (y - 64) / 876, (cb - 512) / 896, (cr - 512) / 896
    red, blue = luma + 1.5748 * pr, luma + 1.8556 * pb
    return np.array([red, (luma - 0.2126 * red - 0.0722 * blue) / 0.7152, blue]) * 65535


def test_a_full_range_ten_bit_clip_keeps_its_levels_in_prores(tmp_path, warnings_logged):
    """Regression: ProRes holds video range only (FFmpeg reads every ProRes frame as limited, in .mov and .mkv),
    and a full-range yuv444p10le clip, or the 16-bit PNG sequence made of it, was written into it at full range:
    its codes (grey 512, the colour's Y 700, black and white 4 and 1019 by the PNG frames) were read back as
    limited, the levels stretched (grey 2.2% bright). Now written at video range: each level the full range's,
    within a code (white 940, grey 502.4, black 64)."""
    columns = [(1023, 512, 512), (512, 512, 512), (0, 512, 512), (700, 400, 650)]  # white, grey, black, a colour
    src = flat_ffv1(tmp_path / "in.mkv", "yuv444p10le", columns, 2)
    (tmp_path / "png").mkdir()
    sequence = copy_video(src, tmp_path / "png" / "f_%04d.png")
    with av.open(str(tmp_path / "png" / "f_0001.png")) as container:
        png = next(container.decode(video=0)).to_ndarray()
    assert [png[0, 24 * band + 12].tolist() for band in range(3)] == [[65535] * 3, [32800] * 3, [0] * 3]
    want = [(64 + y * 876 / 1023, 512 + (cb - 512) * 896 / 1023, 512 + (cr - 512) * 896 / 1023)
            for y, cb, cr in columns]  # the same levels at video range, in 10-bit codes
    line = "the source's full-range levels are written video range: prores_ks in .mov is read back as video " \
           "range only; libx264 or ffv1 in .mkv keep them"
    for made_from, warned in ((sequence, set()), (src, {line})):  # the PNG frames' RGB has no YUV range to give up
        warnings_logged.clear()
        with av.open(str(copy_video(made_from, tmp_path / "out.mov", codec="prores_ks"))) as container:
            back = next(container.decode(video=0))
        scale = 1 << (back.format.components[0].bits - 10)  # ProRes 4444 is decoded at 12 bits
        rows = [np.frombuffer(plane, "<u2")[:plane.width] / scale for plane in back.planes[:3]]  # a row of each
        got = [[row[(24 * band + 12) * len(row) // back.width] for row in rows] for band in range(4)]
        assert np.abs(np.array(got) - np.array(want)).max() <= 1, (made_from.name, got)
        assert {r.getMessage() for r in warnings_logged.records if "full-range" in r.getMessage()} == warned


FULL_RANGE_BANDS = [(235, 128, 128), (128, 128, 128), (30, 128, 128)]  # 8-bit: near white, grey, near black


@pytest.mark.parametrize(("codec", "suffix", "pix_fmt", "primaries_trc", "warned"), [
    ("mpeg4", ".avi", "yuv420p", 1, "mpeg4 in .avi"),  # AVI stores no range, MPEG-4 Part 2 none either
    ("ffv1", ".avi", "yuv420p10le", 1, "ffv1 in .avi"),
    ("huffyuv", ".avi", "yuv420p", 1, "huffyuv in .avi"),
    ("mpeg2video", ".mxf", "yuv420p", 1, "mpeg2video in .mxf"),  # FFmpeg's MPEG-2 decoder says limited for every frame
    ("cfhd", ".mov", "yuv420p10le", 1, "cfhd in .mov"),  # QuickTime's colour box holds no range
    ("prores", ".mov", "yuv422p10le", 1, "prores in .mov"),  # FFmpeg's plain-named ProRes encoder (prores_aw's)
    ("libvpx", ".webm", "yuv420p", 1, "libvpx in .webm"),  # VP8: its decoder says limited for every frame
    ("ffv1", ".mp4", "yuv420p", 2, "ffv1 in .mp4"),  # MP4's colour box written only with every colour tag known
    ("ffv1", ".mp4", "yuv420p", 1, None),
    ("libx264", ".mp4", "yuv420p", 2, None), ("libx264", ".mkv", "yuv420p", 2, None),
    ("libx264", ".mov", "yuv420p10le", 2, None), ("ffv1", ".mkv", "yuv420p10le", 2, None),
])
def test_a_full_range_clip_keeps_its_levels_in_each_output(tmp_path, warnings_logged, codec, suffix, pix_fmt,
                                                          primaries_trc, warned):
    """Regression: outputs FFmpeg reads back as limited range (an .avi of mpeg4, ffv1 or huffyuv, MPEG-2 in .mxf,
    CineForm in .mov, FFV1 in an .mp4 without colour tags) were written at a full-range source's range, so
    its levels came back stretched: grey 128 as 130, near-black 30 as 16, near-white 235 as 255. They are
    written at video range now, with one warning; .mkv, .mp4 and .mov of libx264 and .mkv of FFV1 keep full range."""
    scale = 1 if pix_fmt == "yuv420p" else 4  # 10-bit: the same levels x4
    src = flat_ffv1(tmp_path / "in.mkv", pix_fmt, [tuple(v * scale for v in band) for band in FULL_RANGE_BANDS], 2,
                    primaries_trc=primaries_trc)
    out = copy_video(src, tmp_path / f"out{suffix}", codec=codec)
    image = next(read_frames(out)).image.astype(np.float64)
    got = image[24, [16, 48, 80]] * (255 / 65535 if image.max() > 255 else 1)  # each band's RGB, 8-bit units
    want = [band[0] * scale * 255 / (255 if scale == 1 else 1023) for band in FULL_RANGE_BANDS]
    assert np.abs(got - np.array(want)[:, None]).max() <= 1.5, (got.tolist(), want)
    lines = {r.getMessage() for r in warnings_logged.records if "full-range" in r.getMessage()}
    line = f"the source's full-range levels are written video range: {warned} is read back as video range only; " \
           "libx264 or ffv1 in .mkv keep them"
    assert lines == ({line} if warned else set())
    if warned is None:
        assert probe_video(out).color_range == 2


def test_limited_deep_frames_are_read_to_full_scale():
    """Regression: swscale reads 9-16 bit limited-range YUV 255/256 of full scale: 10-bit white 940 came out
    65283, mid grey 502 32641 (exact 32767.5), so every RGB output of a 10-bit clip was 0.4% dark."""
    from clrface_video.io.decode import RANGE_MPEG, frame_to_array

    for pix_fmt, samples, color_range, want in [
            ("yuv420p10le", (940, 512, 512), RANGE_MPEG, {65535}), ("yuv420p10le", (64, 512, 512), RANGE_MPEG, {0}),
            ("yuv420p10le", (502, 512, 512), RANGE_MPEG, {32767, 32768, 32769}),
            ("yuv420p10le", (940, 512, 512), None, {65535}),  # untagged YUV is limited
            ("yuv444p12le", (3760, 2048, 2048), RANGE_MPEG, {65535}),
            ("yuv444p16le", (60160, 32768, 32768), RANGE_MPEG, {65535})]:
        frame = av.VideoFrame(16, 8, pix_fmt)
        for plane, value in zip(frame.planes, samples, strict=True):
            np.frombuffer(plane, "<u2")[:] = value
        if color_range is not None:
            frame.color_range = color_range
        assert set(np.unique(frame_to_array(frame, True)).tolist()) <= want, (pix_fmt, samples)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_limited_ten_bit_clip_gives_a_full_scale_16_bit_sequence(tmp_path, suffix):
    """Regression: a 16-bit PNG or TIFF sequence of a limited-range 10-bit clip came out 0.4% dark (white
    65283, mid grey 32641): swscale reads limited 10-bit YUV 255/256 of full scale."""
    columns = [(940, 512, 512), (502, 512, 512), (600, 400, 700)]  # white, mid grey, a colour
    src = flat_ffv1(tmp_path / "in.mkv", "yuv422p10le", columns, 1)
    pattern = tmp_path / "frames" / f"f_%04d{suffix}"
    pattern.parent.mkdir()
    copy_video(src, pattern)
    with av.open(str(pattern.parent / f"f_0001{suffix}")) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb48le").astype(np.float64)
    for number, values in enumerate(columns):
        got = image[:, number * 32 + 4:number * 32 + 28].reshape(-1, 3).mean(axis=0)
        assert np.abs(got - np.clip(bt709_limited_rgb(*values), 0, 65535)).max() < 4, (values, got)


def assert_ffv1_copy_exact(src: Path, out: Path, pix_fmt: str) -> None:
    """An FFV1 copy of `src` into `out` is in `pix_fmt` with every sample of its first frame the source's."""
    copy_video(src, out, codec="ffv1")
    with av.open(str(src)) as a, av.open(str(out)) as b:
        source, copy = next(a.decode(video=0)), next(b.decode(video=0))
    assert copy.format.name == pix_fmt
    for before, after in zip(source.planes, copy.planes, strict=True):
        assert np.array_equal(np.frombuffer(before, "<u2"), np.frombuffer(after, "<u2"))


def test_a_limited_ten_bit_copy_keeps_every_sample(tmp_path):
    """The YUV round trip of limited 10-bit video stays exact with both of swscale's 256/255 errors corrected:
    reading limited YUV to rgb48 (x255/256) and writing rgb48 to YUV (x256/255; white 65535 gave luma 943)."""
    columns = [(940, 512, 512), (502, 512, 512), (600, 400, 700), (64, 512, 512)]
    src = flat_ffv1(tmp_path / "in.mkv", "yuv422p10le", columns, 1, size=(128, 48))
    assert_ffv1_copy_exact(src, tmp_path / "out.mkv", "yuv422p10le")
    clip = make_clip(tmp_path / "clip.mkv", frames=3, size=SMALL, audio=False, color=BT709, codec="ffv1",
                     bit_depth=10)
    shift = plane_means(copy_video(clip, tmp_path / "clip_copy.mkv", codec="ffv1")) - plane_means(clip)
    assert np.abs(shift).max() < 0.05, shift  # 8-bit code values


def test_deep_alpha_is_read_to_full_scale():
    """Regression: swscale reads a 9-15 bit YUV frame's alpha by x2^(16 - n), in either range: 10-bit opaque
    1023 came out 65472, so a 16-bit RGBA output of a ProRes 4444 or yuva444p10le clip was not opaque."""
    from clrface_video.io.decode import frame_to_array

    for pix_fmt, samples, want in [("yuva444p10le", (502, 512, 512, 1023), 65535),
                                   ("yuva444p10le", (502, 512, 512, 512), 32800),
                                   ("yuva444p12le", (2008, 2048, 2048, 4095), 65535),
                                   ("yuva444p16le", (32768, 32768, 32768, 65535), 65535)]:
        for color_range in (1, 2):
            frame = av.VideoFrame(16, 8, pix_fmt)
            for plane, value in zip(frame.planes, samples, strict=True):
                np.frombuffer(plane, "<u2")[:] = value
            frame.color_range = color_range
            alpha = frame_to_array(frame, True, alpha=True)[..., 3]
            assert set(np.unique(alpha).tolist()) == {want}, (pix_fmt, samples, color_range)


@pytest.mark.parametrize("color_range", [1, 2])
def test_a_ten_bit_alpha_gives_an_opaque_16_bit_png_and_an_exact_copy(tmp_path, color_range):
    """Regression: a 16-bit PNG sequence of a yuva444p10le clip stored opaque 1023 as 65472 (and 512 as 32768,
    exact 32800); read to full scale, the alpha must still come back exact in a 10-bit copy (swscale cuts
    rgba64 alpha to 10 bits by round(v / 64), which made 32800 513)."""
    columns = [(940, 512, 512, 1023), (502, 512, 512, 512), (600, 400, 700, 1000)]
    src = flat_ffv1(tmp_path / "in.mkv", "yuva444p10le", columns, color_range)
    pattern = tmp_path / "frames" / "f_%04d.png"
    pattern.parent.mkdir()
    copy_video(src, pattern)
    with av.open(str(pattern.parent / "f_0001.png")) as container:
        stored = next(container.decode(video=0))
    assert stored.format.name == "rgba64be"
    alpha = stored.to_ndarray()[..., 3]
    assert [set(np.unique(alpha[:, n * 32:(n + 1) * 32]).tolist()) for n in range(3)] == [{65535}, {32800}, {64062}]
    assert_ffv1_copy_exact(src, tmp_path / "out.mkv", "yuva444p10le")


def test_a_prores_4444_clip_gives_an_opaque_16_bit_png(tmp_path):
    """The opaque band of a ProRes 4444 clip (decoded as yuva444p12le) is 65535 in a 16-bit PNG sequence (it was
    65520: swscale reads 12-bit alpha x16)."""
    from tests.media import make_alpha_clip

    clip, _ = make_alpha_clip(tmp_path / "keyed.mov", frames=1, size=SMALL, codec="prores_ks",
                              pix_fmt="yuva444p10le")
    pattern = tmp_path / "frames" / "f_%04d.png"
    pattern.parent.mkdir()
    copy_video(clip, pattern)
    with av.open(str(pattern.parent / "f_0001.png")) as container:
        alpha = next(container.decode(video=0)).to_ndarray()[..., 3]
    assert alpha.dtype == np.uint16 and set(np.unique(alpha[:, 40:88]).tolist()) == {65535}


@pytest.mark.parametrize(("pix_fmt", "color_range"), [("gray10le", 1), ("gray10le", 2), ("gray12le", 2),
                                                     ("gray14le", 1)])
def test_a_deep_grey_copy_keeps_every_code(tmp_path, pix_fmt, color_range):
    """Regression: a limited-range gray10le copy lost 0.66 codes on average: swscale reads grey as full range
    whatever its tag, by x64 (940 gave 60160), and the writer's cut to 10 bits took those samples as full scale
    (60160 is 939.1); swscale's own cut to 12 or 14 bits dithers, changing 3-4% of the codes by one. Every code
    goes through, in either range."""
    codes = 1 << av.VideoFormat(pix_fmt).components[0].bits
    src = flat_ffv1(tmp_path / "in.mkv", pix_fmt, [(code,) for code in range(codes)], color_range, size=(codes, 2))
    out = copy_video(src, tmp_path / "out.mkv", codec="ffv1")
    with av.open(str(src)) as a, av.open(str(out)) as b:
        source, copy = next(a.decode(video=0)), next(b.decode(video=0))
    assert copy.format.name == pix_fmt
    assert np.array_equal(np.frombuffer(source.planes[0], "<u2"), np.frombuffer(copy.planes[0], "<u2"))


@pytest.mark.parametrize(("pix_fmt", "rgb", "yuv"), [
    ("yuv420p", (139, 152, 171), (150, 140, 120)),  # BT.601 full range: 150.28, 139.69, 119.96
    ("yuv420p", (128, 128, 128), (128, 128, 128)),
    ("yuv420p", (10, 200, 30), (124, 75, 47)),  # 123.81, 75.06, 46.82
    ("yuv444p10le", (128, 128, 128), (513, 512, 512)),  # neutral chroma is 512 at 10 bits (swscale gave 511)
    ("yuv444p10le", (139, 152, 171), (603, 559, 480)),  # 602.87, 558.92 and 479.75 (swscale's luma gave 605)
    ("yuv411p", (139, 152, 171), (150, 140, 120)),  # no 16-bit 4:1:1, 4:1:0 or 4:4:0: by way of 4:4:4
    ("yuv410p", (10, 200, 30), (124, 75, 47)),
    ("yuv440p10le", (139, 152, 171), (603, 559, 480)),
])
def test_full_range_yuv_is_rounded_not_truncated(tmp_path, pix_fmt, rgb, yuv):
    depth = av.VideoFormat(pix_fmt).components[0].bits
    src = make_clip(tmp_path / "in.mkv", frames=1, size=SMALL, audio=False, color=BT601_FULL, codec="ffv1",
                    bit_depth=depth, pix_fmt=pix_fmt)
    image = np.zeros((SMALL[1], SMALL[0], 3), np.uint8) + np.array(rgb, np.uint8)
    if depth > 8:
        image = image.astype(np.uint16) * 257
    with VideoWriter(tmp_path / "out.mkv", src, probe_video(src), codec="ffv1") as writer:
        frame = writer._to_video_frame(Frame(image=image, index=0), Fraction(0))
        writer.write(Frame(image=image, index=0))
    dtype = np.uint8 if depth == 8 else np.dtype("<u2")
    got = [set(np.unique(np.frombuffer(p, dtype).reshape(p.height, -1)[:, :p.width]).tolist())
           for p in frame.planes]
    assert frame.format.name == pix_fmt and got == [{v} for v in yuv]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_mirrored_rotation_keeps_the_whole_display_matrix(tmp_path, suffix):
    src = make_clip(tmp_path / f"in{suffix}", frames=3, size=SMALL, audio=False, rotation=90, mirror=True)
    source = probe_video(src)
    assert source.rotation == 90 and source.display_matrix is not None
    out = probe_video(copy_video(src, tmp_path / f"out{suffix}"))
    assert out.display_matrix == source.display_matrix and out.rotation == 90


@pytest.mark.parametrize("codec", ["libx265", "libx264"])
def test_hdr10_mastering_metadata_is_kept(tmp_path, codec, warnings_logged):
    from tests.media import HDR10, MASTER_DISPLAY

    src = make_clip(tmp_path / "hdr.mkv", frames=3, size=SMALL, codec="libx265", bit_depth=10, color=BT2020_PQ,
                    hdr10=HDR10, audio=False)
    info = probe_video(src)
    assert info.hdr10 is not None and (info.hdr10.master_display, info.hdr10.max_cll) == (MASTER_DISPLAY, "1000,400")
    out = probe_video(copy_video(src, tmp_path / "out.mkv", codec=codec))
    assert out.hdr10 == info.hdr10 and out.bit_depth == 10 and out.color_trc == 16
    assert probe_video(copy_video(src, tmp_path / "lossless.mkv", codec="ffv1")).hdr10 is None
    assert "HDR10 mastering metadata is written by libx264 and libx265 only" in warnings_logged.text


def test_an_alpha_channel_is_read_and_written_again_by_encoders_that_store_one(tmp_path, warnings_logged):
    from PIL import Image

    from clrface_video.io.pixels import to_uint8
    from tests.media import make_alpha_clip

    src, planes = make_alpha_clip(tmp_path / "keyed.mkv", size=SMALL)
    info = probe_video(src)
    assert info.alpha and not probe_video(make_alpha_clip(tmp_path / "solid.mkv", size=SMALL, opaque=True)[0]).alpha
    read = list(read_frames(src, alpha=True))
    assert max(np.abs(f.alpha.astype(int) - p).max() for f, p in zip(read, planes, strict=True)) <= 1  # swscale's
    assert all(f.alpha is None for f in read_frames(src))
    for codec, name in [("ffv1", "out.mkv"), ("prores_ks", "out.mov")]:
        out = copy_video(src, tmp_path / name, codec=codec)
        assert probe_video(out).alpha
        back = list(read_frames(out, alpha=True))
        eight = [to_uint8(f.alpha).astype(int) for f in back]  # ProRes 4444 comes back at 10 bits
        assert max(np.abs(a - f.alpha).max() for a, f in zip(eight, read, strict=True)) <= 1, codec
        assert max(np.abs(to_uint8(f.image).astype(int) - g.image).mean() for f, g in zip(back, read)) < 4.0
    (tmp_path / "frames").mkdir()
    copy_video(src, tmp_path / "frames" / "f_%04d.png")  # a PNG sequence keeps it too, as RGBA frames
    with Image.open(tmp_path / "frames" / "f_0001.png") as first:
        assert first.mode == "RGBA" and np.abs(np.asarray(first)[..., 3].astype(int) - read[0].alpha).max() <= 1
    assert not warnings_logged.text
    assert not probe_video(copy_video(src, tmp_path / "flat.mp4")).alpha  # libx264 stores no alpha ...
    assert "alpha channel is left out: libx264" in warnings_logged.text  # ... and says so


def test_a_vp9_webm_keeps_its_alpha_channel(tmp_path, warnings_logged):
    """WebM stores VP9's alpha beside each frame, which FFmpeg's own vp9 decoder leaves out: the alpha was dropped
    without a word. libvpx's decoder reads it, with the same colours and times, and it reaches a WebM again (whose
    copied tag then reads ALPHA_MODE), ProRes 4444 or a PNG sequence."""
    from PIL import Image

    from clrface_video.io.decode import frame_to_array
    from clrface_video.io.pixels import to_uint8
    from tests.media import make_alpha_clip

    src, planes = make_alpha_clip(tmp_path / "keyed.webm", size=SMALL, codec="libvpx-vp9")
    info = probe_video(src)
    assert info.alpha and info.pix_fmt == "yuva420p"
    read = list(read_frames(src, alpha=True))
    assert max(np.abs(f.alpha.astype(int) - p).max() for f, p in zip(read, planes, strict=True)) <= 3  # lossy VP9
    with av.open(str(src)) as native:
        frames = list(native.decode(video=0))
    assert [f.pts for f in read] == [f.pts for f in frames]  # each lasting until the next (io.clock.lasting)
    assert [f.duration for f in read] == [b.pts - a.pts for a, b in pairwise(frames)] + [frames[-1].duration]
    assert all(np.array_equal(f.image, frame_to_array(g, False)) for f, g in zip(read, frames, strict=True))
    for codec, name in [("libvpx-vp9", "out.webm"), ("prores_ks", "out.mov")]:
        out = copy_video(src, tmp_path / name, codec=codec)
        assert probe_video(out).alpha, codec
        back = list(read_frames(out, alpha=True))
        assert max(np.abs(to_uint8(b.alpha).astype(int) - f.alpha).max() for b, f in zip(back, read)) <= 3, codec
    (tmp_path / "frames").mkdir()
    copy_video(src, tmp_path / "frames" / "f_%04d.png")
    with Image.open(tmp_path / "frames" / "f_0001.png") as first:
        assert first.mode == "RGBA" and np.array_equal(np.asarray(first)[..., 3], read[0].alpha)
    assert not warnings_logged.text


def test_a_webm_alpha_mode_is_left_to_the_muxer_not_copied_as_a_tag(tmp_path):
    """The source's alpha_mode was copied as a tag: an H.264 .mkv without alpha said ALPHA_MODE=1, and a WebM
    had the tag beside the AlphaMode the muxer writes from the pixel format."""
    from tests.media import make_alpha_clip

    src, _ = make_alpha_clip(tmp_path / "keyed.webm", size=SMALL, codec="libvpx-vp9")
    tags = {}
    for name in ("flat.mkv", "keyed_out.webm"):
        with av.open(str(copy_video(src, tmp_path / name))) as out:
            tags[name] = {key: value for key, value in out.streams.video[0].metadata.items() if key != "DURATION"}
    assert tags == {"flat.mkv": {}, "keyed_out.webm": {"alpha_mode": "1"}}


def test_a_vp9_webm_alpha_that_cannot_be_read_is_said_to_be_left_out(tmp_path, warnings_logged, monkeypatch):
    """An FFmpeg built without libvpx has no decoder for a WebM's alpha: one warning line, then the colours."""
    from clrface_video.io import decode
    from tests.media import make_alpha_clip

    src, _ = make_alpha_clip(tmp_path / "keyed.webm", size=SMALL, codec="libvpx-vp9")
    monkeypatch.setattr(decode, "_can_decode", lambda name: False)
    info = probe_video(src)
    assert not info.alpha and len(list(read_frames(src))) == 4
    said = {record: record.getMessage() for record in warnings_logged.records}  # caplog gets each twice (package, root)
    assert list(said.values()) == \
        ["keyed.webm: the video's alpha channel is left out: this FFmpeg has no libvpx-vp9 decoder to read it"]


def test_ten_bit_in_gives_ten_bit_out(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=4, size=SMALL, audio=False, bit_depth=10)
    out = copy_video(src, tmp_path / "out.mp4")
    assert probe_video(out).pix_fmt == "yuv420p10le"
    assert next(read_frames(out)).image.dtype == np.uint16
    assert mean_abs_diff(src, out) < 4.0 * 257


def test_odd_size_keeps_size_count_and_content(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, size=(321, 241), audio=False)
    out = copy_video(src, tmp_path / "out.mp4")
    info = probe_video(out)
    assert (info.width, info.height, info.frames) == (321, 241, 6)
    assert mean_abs_diff(src, out) < 4.0


def test_a_lossless_copy_keeps_the_brightness_of_every_pixel(tmp_path):
    """Read and written again (FFV1, lossless), every restored video's frames came out about 1 luma level darker,
    background and all: swscale's default YUV to RGB path rounds down. The luma planes now match."""
    src = make_clip(tmp_path / "in.mkv", frames=3, size=SMALL, audio=False, codec="ffv1")
    copy = copy_video(src, tmp_path / "copy.mkv", codec="ffv1")
    with av.open(str(src)) as a, av.open(str(copy)) as b:
        assert b.streams.video[0].codec_context.pix_fmt == "yuv420p"
        lumas = [(x.to_ndarray()[:SMALL[1]].astype(float), y.to_ndarray()[:SMALL[1]].astype(float))
                 for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True)]
    assert abs(np.mean([after - before for before, after in lumas])) < 0.05
    assert np.mean([np.abs(after - before).mean() for before, after in lumas]) < 0.1  # not only on average


def test_pixel_format_choice_by_codec_depth_and_parity():
    assert choose_pix_fmt("libx264", 8, 320, 240) == "yuv420p"
    assert choose_pix_fmt("libx264", 8, 321, 241) == "yuv444p"
    assert choose_pix_fmt("libx264", 10, 320, 240) == "yuv420p10le"
    assert choose_pix_fmt("prores_ks", 8, 320, 240) == "yuv422p10le"
    assert choose_pix_fmt("ffv1", 10, 320, 240, source="yuv422p10le") == "yuv422p10le"  # an archive keeps 4:2:2
    assert choose_pix_fmt("ffv1", 8, 320, 240, source="yuv444p") == "yuv444p"
    assert choose_pix_fmt("libx264", 10, 320, 240, source="yuv422p10le") == "yuv420p10le"  # delivery: 4:2:0
    with pytest.raises(ClrfaceError):
        choose_pix_fmt("libsvtav1", 8, 321, 241)


@pytest.mark.parametrize("suffix", [".mkv", ".avi"])
def test_ffv1_is_written_as_archives_write_it_every_frame_a_keyframe(tmp_path, suffix):
    """FFmpeg's FFV1 default carried the coder's state over 12 frames, so one damaged frame spoiled the next 11;
    archival practice (and now the writer) makes each frame decode alone."""
    src = make_clip(tmp_path / "in.mp4", frames=14, size=SMALL, audio=False)
    with av.open(str(copy_video(src, tmp_path / f"out{suffix}", codec="ffv1"))) as container:
        keys = [packet.is_keyframe for packet in container.demux(video=0) if packet.size]
    assert len(keys) == 14 and all(keys)


@pytest.mark.parametrize(("pix_fmt", "deep"), [("bgr0", False), ("gbrp16le", True), ("gray", False),
                                               ("gray16le", True)])
def test_ffv1_keeps_an_rgb_or_grey_sources_pixels_exactly(tmp_path, pix_fmt, deep):
    """An RGB scan into FFV1 came out 4:2:0, a 16-bit one 12-bit, a greyscale one as colour 4:2:0: an archival
    copy that was not lossless. Now FFV1 writes the source's own format, and every pixel comes back."""
    rng = np.random.default_rng(0)
    src = tmp_path / "scan.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        for i in range(3):
            pixels = rng.integers(0, 65535 if deep else 255, (48, 64, 3), dtype=np.uint16 if deep else np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb48le" if deep else "rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    copy = copy_video(src, tmp_path / "copy.mkv", codec="ffv1")
    as_rgb = "rgb48le" if deep else "rgb24"
    with av.open(str(src)) as a, av.open(str(copy)) as b:
        assert b.streams.video[0].codec_context.pix_fmt == pix_fmt
        pairs = list(zip(a.decode(video=0), b.decode(video=0), strict=True))
        assert len(pairs) == 3 and all(np.array_equal(x.to_ndarray(format=as_rgb), y.to_ndarray(format=as_rgb))
                                       for x, y in pairs)


@pytest.mark.parametrize(("codec", "suffix", "pix_fmt"), [
    ("libx265", ".mp4", "yuv420p"), ("ffv1", ".mkv", "yuv420p"), ("prores_ks", ".mov", "yuv422p10le"),
])
def test_other_codecs(tmp_path, codec, suffix, pix_fmt):
    src = make_clip(tmp_path / f"in{suffix}", frames=4, size=SMALL)
    out = copy_video(src, tmp_path / f"out{suffix}", codec=codec)
    info = probe_video(out)
    assert info.pix_fmt == pix_fmt and pts_of(out) == pts_of(src)
    assert read_packets(out, "audio") == read_packets(src, "audio")


def test_mpeg_ts_keeps_count_spacing_sync_and_audio_bytes(tmp_path):
    src = make_clip(tmp_path / "in.ts", frames=8, size=SMALL)
    out = copy_video(src, tmp_path / "out.ts")
    source_pts, output_pts = pts_of(src), pts_of(out)
    assert len(output_pts) == 8 and np.array_equal(np.diff(output_pts), np.diff(source_pts))
    source_audio, output_audio = read_packets(src, "audio"), read_packets(out, "audio")
    assert [p[0] for p in output_audio] == [p[0] for p in source_audio]  # the ts muxer may shift all times
    assert output_pts[0] - output_audio[0][1] == source_pts[0] - source_audio[0][1]  # but keeps a/v sync


def test_constant_rate_encoders_get_a_frame_rate_time_base(tmp_path):
    src = make_clip(tmp_path / "in.mpg", frames=6, size=SMALL, codec="mpeg2video", audio_codec="mp2")
    out = copy_video(src, tmp_path / "out.mpg", codec="mpeg2video")
    assert pts_of(out) == pts_of(src) and read_packets(out, "audio") == read_packets(src, "audio")


def test_a_gif_comes_back_a_gif_with_its_frames_delays_and_colours(tmp_path):
    src = make_clip(tmp_path / "in.gif", frames=6, size=SMALL, fps=10, codec="gif", audio=False)
    out = copy_video(src, tmp_path / "out.gif")  # libx264 asked for, as the CLI's default: a GIF takes gif
    info = probe_video(out)
    assert info.codec == "gif" and (info.width, info.height, info.frames) == (*SMALL, 6)
    assert pts_of(out) == pts_of(src) == [0, 10, 20, 30, 40, 50]  # centiseconds
    # A frame of at most 256 colours gets a palette of its own that holds every one of them.
    assert mean_abs_diff(src, out) == 0.0


def test_a_gifs_uneven_delays_are_kept_the_last_one_too(tmp_path):
    """Delays of 0.1, 1, 0.1 and 0.37 s: the gif muxer would give the last frame the mean delay unless told."""
    src = tmp_path / "slide.gif"
    delays = [10, 100, 10, 37]  # centiseconds
    with av.open(str(src), "w") as out:
        stream = out.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = *SMALL, "rgb8"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 100)
        for i, delay in enumerate(delays):
            frame = av.VideoFrame.from_ndarray(clip_image(i, 4, SMALL), format="rgb24").reformat(format="rgb8")
            frame.pts, frame.time_base = sum(delays[:i]), Fraction(1, 100)
            for packet in stream.encode(frame):
                packet.duration = delay
                out.mux(packet)
    assert [f.duration for f in read_frames(src)] == delays
    out = copy_video(src, tmp_path / "out.gif")
    assert [(f.pts, f.duration) for f in read_frames(out)] == [(f.pts, f.duration) for f in read_frames(src)]


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_a_video_becomes_a_gif_with_its_times_and_without_its_audio(tmp_path, bit_depth, warnings_logged):
    src = make_clip(tmp_path / "in.mkv", frames=12, size=SMALL, vfr=True, bit_depth=bit_depth, codec="ffv1")
    out = copy_video(src, tmp_path / "out.gif")
    seconds = [float(f.pts * f.time_base) for f in read_frames(src)]
    # GIF keeps time in centiseconds
    assert [float(f.pts * f.time_base) for f in read_frames(out)] == pytest.approx(seconds, abs=0.0051)
    scale = 257 if bit_depth > 8 else 1  # a GIF has 8 bits a channel
    diffs = [np.abs(a.image / scale - b.image).mean() for a, b in zip(read_frames(src), read_frames(out), strict=True)]
    assert max(diffs) < 4.0  # each frame's own 256 colours, dithered
    assert probe_video(out).other_streams == 0
    assert "cannot be stored in .gif" in warnings_logged.text


def test_a_4_2_2_master_says_when_its_chroma_is_halved(tmp_path, warnings_logged):
    src = make_clip(tmp_path / "master.mov", frames=2, size=SMALL, codec="prores_ks", audio=False)
    assert probe_video(copy_video(src, tmp_path / "archive.mkv", codec="ffv1")).pix_fmt == "yuv422p10le"
    assert not warnings_logged.text
    assert probe_video(copy_video(src, tmp_path / "web.mp4")).pix_fmt == "yuv420p10le"
    assert "4:2:2 chroma is written 4:2:0 by libx264" in warnings_logged.text


def test_auto_codec_writes_webm_and_dv_with_their_audio(tmp_path):
    """--codec auto: a .webm gets VP9 and a .dv gets DV video (neither holds H.264), and the audio of a file of
    the same kind is copied, even into DV, whose muxer takes no audio stream on its own."""
    webm = make_clip(tmp_path / "in.webm", frames=3, size=SMALL, codec="libvpx-vp9", audio_codec="libopus")
    out = copy_video(webm, tmp_path / "out.webm")
    assert probe_video(out).codec == "vp9" and read_packets(out, "audio") == read_packets(webm, "audio")
    dv = silent_clip(tmp_path / "tape.dv", "dvvideo", (720, 576), 3)
    out = copy_video(dv, tmp_path / "out.dv")
    assert probe_video(out).codec == "dvvideo" and read_packets(out, "audio") == read_packets(dv, "audio")


@pytest.mark.parametrize(("source", "output", "codec", "pix_fmt"), [
    (("prores_ks", ".mov", 8), ".mov", "prores", "yuv422p10le"),  # an editor's master comes back ProRes 422
    (("prores_ks", ".mov", 8), ".mkv", "prores", "yuv422p10le"),
    (("prores_ks", ".mov", 8), ".mp4", "h264", "yuv420p10le"),  # an .mp4 (no ProRes) is for delivery
    (("ffv1", ".mkv", 10), ".mkv", "ffv1", "yuv444p10le"),  # a lossless archive stays lossless, pixels and all
    (("ffv1", ".mkv", 8), ".avi", "ffv1", "yuv420p"),
    (("libx264", ".mp4", 8), ".mpg", "mpeg2video", "yuv420p"),  # what DVD and MPEG-PS tools take
    (("libx264", ".mp4", 8), ".vob", "mpeg2video", "yuv420p"),
    (("libx264", ".mp4", 8), ".mxf", "mpeg2video", "yuv420p"),
    (("libx264", ".mp4", 8), ".ts", "h264", "yuv420p"),  # H.264 in .ts is broadcast's too: it stays
    (("mpeg2video", ".ts", 8), ".ts", "mpeg2video", "yuv420p"),
    (("mpeg2video", ".ts", 8), ".mkv", "h264", "yuv420p"),
])
def test_codec_auto_keeps_an_intra_or_lossless_source_codec_and_what_the_container_expects(
        tmp_path, source, output, codec, pix_fmt):
    """A ProRes .mov came back as 10-bit 4:2:0 H.264 (QuickTime plays none), an FFV1 .mkv as lossy H.264, and
    .mpg, .vob and .mxf outputs as H.264, which DVD and broadcast tools refuse."""
    encoder, suffix, bit_depth = source
    src = make_clip(tmp_path / f"in{suffix}", frames=2, size=SMALL, fps=25, audio=False, codec=encoder,
                    bit_depth=bit_depth)
    out = copy_video(src, tmp_path / f"out{output}")  # --codec auto
    info = probe_video(out)
    assert (info.codec, info.pix_fmt, len(pts_of(out))) == (codec, pix_fmt, 2)


@pytest.mark.parametrize(("output", "pix_fmt"), [(".vob", "yuv420p"), (".mpg", "yuv420p"), (".mxf", "yuv422p")])
def test_mpeg2_for_players_is_4_2_0_and_keeps_4_2_2_for_broadcast(tmp_path, output, pix_fmt, warnings_logged):
    """A 4:2:2 master into .vob came out 4:2:2 MPEG-2 (422 Profile), which DVD players do not decode; program
    streams get Main Profile's 4:2:0 (warned of), XDCAM-style .mxf keeps 4:2:2."""
    src = make_clip(tmp_path / "master.mkv", frames=2, size=SMALL, fps=25, audio=False, pix_fmt="yuv422p")  # x264
    out = probe_video(copy_video(src, tmp_path / f"out{output}"))
    assert (out.codec, out.pix_fmt) == ("mpeg2video", pix_fmt)
    assert ("4:2:2 chroma is written 4:2:0 by mpeg2video" in warnings_logged.text) == (pix_fmt == "yuv420p")


def test_codec_auto_writes_a_variable_rate_into_mpg_with_libx264(tmp_path):
    """MPEG-2 codes only broadcast rates: a phone's variable-rate clip (20.9 fps on average) into .mpg made auto's
    mpeg2video refuse to open; it gets libx264 there, every frame kept."""
    src = make_clip(tmp_path / "phone.mp4", frames=12, size=SMALL, audio=False, vfr=True)
    out = copy_video(src, tmp_path / "out.mpg")
    assert (probe_video(out).codec, len(pts_of(out))) == ("h264", 12)


@pytest.mark.parametrize(("bit_depth", "pix_fmt"), [(8, "yuv422p"), (10, "yuv422p10le")])
def test_dnxhd_writes_dnxhr_at_the_source_depth(tmp_path, bit_depth, pix_fmt):
    src = make_clip(tmp_path / "in.mp4", frames=2, size=(256, 192), bit_depth=bit_depth)  # DNxHR HQ / HQX
    out = probe_video(copy_video(src, tmp_path / "out.mov", codec="dnxhd"))
    assert (out.codec, out.pix_fmt, out.frames) == ("dnxhd", pix_fmt, 2)


def test_an_avi_holds_its_frames_one_frame_apart(tmp_path):
    """AVI times frames by their count: its clock is the frame rate, so the spacing stays the source's (the last
    frame too), whatever clock the source had (mp4's 1/12288 here)."""
    src = make_clip(tmp_path / "in.mp4", frames=8, size=SMALL, fps=24, audio=False)
    times = [f.pts * f.time_base for f in read_frames(copy_video(src, tmp_path / "out.avi"))]
    assert len(times) == 8 and {b - a for a, b in pairwise(times)} == {Fraction(1, 24)}


def test_crf_changes_the_size(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, size=SMALL, audio=False)
    small = copy_video(src, tmp_path / "low.mp4", crf=40).stat().st_size
    large = copy_video(src, tmp_path / "high.mp4", crf=10).stat().st_size
    assert small < large


@pytest.mark.parametrize(("codec", "suffix"), [("mpeg2video", ".mpg"), ("mpeg4", ".avi"), ("wmv2", ".wmv")])
def test_crf_reaches_the_mpeg_encoders(tmp_path, codec, suffix):
    """MPEG-2 and MPEG-4 Part 2 wrote every frame at quantiser 2 whatever --crf said (the same bytes at 10 and
    40); the default 18 keeps that quantiser."""
    src = make_clip(tmp_path / "in.mkv", frames=4, size=SMALL, audio=False, codec="ffv1")
    sizes = {crf: copy_video(src, tmp_path / f"{crf}{suffix}", codec=codec, crf=crf).stat().st_size
             for crf in (10, 18, 40)}
    assert sizes[10] >= sizes[18] > sizes[40]
    assert mean_abs_diff(src, tmp_path / f"40{suffix}") > mean_abs_diff(src, tmp_path / f"18{suffix}")


@pytest.mark.parametrize(("codec", "name"), [("ffv1", "out.mkv"), ("utvideo", "out.avi"), ("huffyuv", "out.avi"),
                                           ("prores_ks", "out.mov"), ("auto", "out_%03d.png")])
def test_a_crf_given_to_an_encoder_that_takes_none_is_said_to_be_ignored(tmp_path, codec, name, warnings_logged):
    """--crf 28 with a lossless FFV1 (or ProRes, or a PNG sequence) was passed over in silence: the user who asked
    for a quality heard nothing of it having no effect. Said once; the default (none given) and an encoder that
    takes it say nothing."""
    src = make_clip(tmp_path / "in.mp4", frames=3, size=SMALL, audio=False)
    copy_video(src, tmp_path / f"asked_{name}", codec=codec, crf=28)
    said = {id(r): r.getMessage() for r in warnings_logged.records if r.getMessage().startswith("crf is for ")}
    (line,) = said.values()  # one record (the fixture may hold it twice)
    assert "libx264" in line and line.endswith("takes none, so it is ignored")
    assert ("(lossless) takes none" in line) == (codec != "prores_ks")
    warnings_logged.clear()
    copy_video(src, tmp_path / f"default_{name}", codec=codec)
    copy_video(src, tmp_path / "x264.mp4", crf=28)
    assert not [r for r in warnings_logged.records if "crf" in r.getMessage()]


def test_exception_inside_with_leaves_no_file(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, size=SMALL)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(out, src, probe_video(src)) as writer:
        for frame in read_frames(src):
            writer.write(frame)
            if frame.index == 2:
                assert writer.partial.exists()
                raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_unknown_codec_and_container_are_one_line_errors(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=2, size=SMALL, audio=False)
    info = probe_video(src)
    for output, codec in [(tmp_path / "o.mp4", "nosuchcodec"), (tmp_path / "o.mp4", "aac"),
                          (tmp_path / "o.mp4", "prores_ks"), (tmp_path / "o.qqq", "libx264"),
                          (tmp_path / "o.avi", "mjpeg")]:
        with pytest.raises(ClrfaceError) as caught, VideoWriter(output, src, info, codec=codec):
            pass
        assert "\n" not in str(caught.value)
        if codec == "mjpeg":  # the encoder refuses limited-range frames: not the container's fault
            assert "the mjpeg encoder would not open" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_no_frames_written_is_an_error_and_leaves_nothing(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=2, size=SMALL, audio=False)
    with pytest.raises(ClrfaceError, match="no frames"), VideoWriter(tmp_path / "out.mp4", src, probe_video(src)):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_output_paths(tmp_path):
    assert default_output_path(tmp_path / "out", tmp_path / "in.mkv") == tmp_path / "out.mkv"
    assert default_output_path(tmp_path / "o.mp4", tmp_path / "in.mkv") == tmp_path / "o.mp4"
    assert partial_path(tmp_path / "clip.mov") == tmp_path / f".clip.{os.getpid()}.partial.mov"
    assert partial_path(tmp_path / "f_%04d.png") == tmp_path / f".f_.{os.getpid()}.partial" / "f_%04d.png"


def test_a_killed_runs_temporary_output_is_removed_and_a_live_runs_kept(tmp_path):
    """Each run writes under a name with its process id (two runs at once shared one); a run killed mid-way
    (SIGKILL) leaves its file, which the next run for the same output removes: only where its process is gone,
    for a video, an image sequence and a photo. A live run's, another output's and other hidden files stay."""
    from PIL import Image

    from clrface_video.io.photo_read import read_photo
    from clrface_video.io.photo_write import write_photo

    src = make_clip(tmp_path / "in.mp4", frames=2, size=SMALL, audio=False)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    out = tmp_path / "out"
    out.mkdir()
    try:
        video, sequence, photo = out / "v.mp4", out / "f_%04d.png", out / "p.png"
        dead = [out / f".v.{ended.pid}.partial.mp4", out / f".p.{ended.pid}.partial.png",
                out / f".f_.{ended.pid}.partial" / "f_0001.png"]
        kept = [out / f".v.{alive.pid}.partial.mp4", out / f".other.{ended.pid}.partial.mp4", out / ".v.partial.mp4"]
        for leftover in dead + kept:
            leftover.parent.mkdir(exist_ok=True)
            leftover.write_bytes(b"half")
        copy_video(src, video)
        copy_video(src, sequence)
        Image.fromarray(next(read_frames(src)).image).save(tmp_path / "p.png")
        write_photo(photo, read_photo(tmp_path / "p.png").image, read_photo(tmp_path / "p.png"))
        assert not any(path.exists() for path in dead) and not dead[2].parent.exists()
        assert all(path.read_bytes() == b"half" for path in kept)
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
            ["f_0001.png", "f_0002.png", "p.png", "v.mp4"]
    finally:
        alive.kill()
        alive.wait()


def test_a_video_named_at_the_file_systems_limit_is_written(tmp_path):
    """A 255-byte output name failed with 'File name too long': its hidden partial name was 9 bytes longer."""
    src = make_clip(tmp_path / "in.mp4", frames=2, size=SMALL, audio=False)
    name = "v" * 251 + ".mp4"
    out = copy_video(src, tmp_path / name)
    assert out == tmp_path / name and len(list(read_frames(out))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.mp4", name])


def test_a_sequence_named_near_the_file_systems_limit_is_written_and_its_leftover_removed(tmp_path):
    """An image sequence's pattern near 255 bytes failed with 'File name too long': its hidden folder
    .STEM.PID.partial was not cut to fit as a video's hidden name is. It is cut the same way, and a killed
    run's folder under that cut name is still found and removed."""
    src = make_clip(tmp_path / "in.mp4", frames=2, size=SMALL, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    pattern = out / ("b" * 241 + "_%04d.png")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    leftover = partial_path(pattern, ended.pid).parent
    assert len(os.fsencode(leftover.name)) <= 255 and leftover.name.endswith(f".{ended.pid}.partial")
    leftover.mkdir()
    (leftover / "b_0001.png").write_bytes(b"half")
    assert copy_video(src, pattern) == pattern
    assert sorted(p.name for p in out.iterdir()) == ["b" * 241 + f"_{n:04d}.png" for n in (1, 2)]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_ffprobe_agrees(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, size=SMALL, rotation=90, subtitles=True)
    out = copy_video(src, tmp_path / "out.mp4")
    result = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                             "stream=codec_type,nb_read_frames,color_primaries:stream_side_data=rotation",
                             "-of", "compact", str(out)], capture_output=True, text=True, check=True)
    assert "codec_type=video" in result.stdout and "nb_read_frames=6" in result.stdout
    assert "codec_type=audio" in result.stdout and "codec_type=subtitle" in result.stdout
    assert "bt709" in result.stdout and "rotation=90" in result.stdout


# -- image sequences (film scans) ---------------------------------------------------------------------

def test_a_sequence_is_found_from_its_first_number_and_a_gap_is_an_error(tmp_path):
    from clrface_video.io.sequence import find_sequence

    pattern = make_sequence(tmp_path / "reel" / "reel_%06d.dpx", frames=4, start=86400)
    found = find_sequence(pattern)
    assert (found.first, found.count) == (86400, 4) and found.first_file.name == "reel_086400.dpx"
    info = probe_video(pattern)
    assert info.frames == 4 and info.fps == 24 and info.other_streams == 0
    assert probe_video(pattern, Fraction(25)).fps == 25
    (tmp_path / "reel" / "reel_086402.dpx").unlink()
    with pytest.raises(InputError, match="reel_086402.dpx is missing"):
        probe_video(pattern)
    with pytest.raises(InputError, match="no frames match"):
        probe_video(tmp_path / "elsewhere" / "reel_%06d.dpx")


def test_ten_bit_dpx_sequence_round_trips_bit_exact_with_its_numbers(tmp_path):
    pattern = make_sequence(tmp_path / "scan" / "r_%06d.dpx", frames=3, start=1001, bit_depth=10)
    assert probe_video(pattern).pix_fmt == "gbrp10le" and probe_video(pattern).bit_depth == 10
    out = tmp_path / "copy" / "r_%06d.dpx"
    out.parent.mkdir()
    copy_video(pattern, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["r_001001.dpx", "r_001002.dpx", "r_001003.dpx"]
    assert probe_video(out).pix_fmt == "gbrp10le"
    for a, b in zip(read_frames(pattern), read_frames(out), strict=True):
        assert a.image.dtype == np.uint16 and np.array_equal(a.image, b.image)


def test_a_black_and_white_scan_stays_one_channel_16_bit(tmp_path):
    pattern = make_sequence(tmp_path / "bw" / "f_%04d.png", frames=2, bit_depth=16, gray=True)
    assert probe_video(pattern).pix_fmt == "gray16be"
    out = tmp_path / "copy" / "f_%04d.png"
    out.parent.mkdir()
    copy_video(pattern, out)
    assert probe_video(out).pix_fmt == "gray16be"
    for a, b in zip(read_frames(pattern), read_frames(out), strict=True):
        assert np.array_equal(a.image, b.image)


def test_a_sequence_becomes_a_video_at_its_frame_rate(tmp_path):
    pattern = make_sequence(tmp_path / "png" / "f_%04d.png", frames=5)
    out = tmp_path / "film.mp4"
    with VideoWriter(out, pattern, probe_video(pattern, Fraction(25))) as writer:
        for frame in read_frames(pattern, fps=Fraction(25)):
            writer.write(frame)
    assert probe_video(out).fps == 25
    assert [frame.pts * frame.time_base for frame in read_frames(out)] == [Fraction(i, 25) for i in range(5)]


@pytest.mark.parametrize(("name", "depth", "matrix"), [("r_%06d.dpx", 10, 0), ("r_%06d.tif", 16, 2), ("r_%04d.tif", 8, 2)])
def test_an_rgb_scan_becomes_yuv_video_tagged_and_converted_with_bt709(tmp_path, name, depth, matrix):
    """A DPX scan is RGB (matrix 0), a TIFF scan untagged (2); H.264 frames are YUV, so the output says BT.709,
    which it used (an untagged TIFF's was BT.601, untagged: players take BT.709 at HD sizes)."""
    pattern = make_sequence(tmp_path / "scan" / name, frames=2, size=SMALL, bit_depth=depth)
    assert probe_video(pattern).colorspace == matrix
    out = copy_video(pattern, tmp_path / "reel.mov")
    assert probe_video(out).colorspace == 1
    scale = 257 if depth > 8 else 1
    diffs = [np.abs(a.image.astype(int) - b.image).mean() / scale for a, b in zip(read_frames(pattern), read_frames(out))]
    assert max(diffs) < 8  # in 8-bit levels, 4:2:0 chroma included; with matrix 0 on YUV planes the colours are lost


def test_a_failed_sequence_write_leaves_no_frames(tmp_path):
    pattern = make_sequence(tmp_path / "in" / "f_%04d.png", frames=3)
    out = tmp_path / "out" / "f_%04d.png"
    out.parent.mkdir()
    with pytest.raises(RuntimeError, match="stop"), VideoWriter(out, pattern, probe_video(pattern)) as writer:
        for frame in read_frames(pattern):
            writer.write(frame)
        raise RuntimeError("stop")
    assert list(out.parent.iterdir()) == []  # nor the hidden folder the frames were written into


def test_a_stretch_of_a_raw_h264_stream_without_timestamps(tmp_path):
    """A raw .h264 stream (DVRs, some cameras) has no timestamps and cannot seek: the stretch is counted in
    frames at its rate, from the start, and each frame is given its count's time."""
    clip = make_clip(tmp_path / "cam.h264", frames=15, size=SMALL, fps=25, audio=False)
    whole = list(read_frames(clip))
    assert [f.pts * f.time_base for f in whole] == [Fraction(i, 25) for i in range(15)]
    part = list(read_frames(clip, span=TimeSpan(0.1, 0.3)))  # frames 2 (on screen at 0.1 s, as in any container)
    assert [f.image.tobytes() for f in part] == [f.image.tobytes() for f in whole[2:7]]  # 0.2 s from its 0.08 s


def test_a_stretch_of_a_raw_h264_stream_comes_out_at_its_frames_times(tmp_path):
    """A raw .h264 stores no times: a --start stretch's frames were all written at 0 (one picture shown, the
    stretch's length lost), as the writer took each untimed frame's place in the stretch for its place in the file."""
    clip = make_clip(tmp_path / "cam.h264", frames=30, size=SMALL, fps=10, audio=False)
    span = TimeSpan(1.0, 2.0)
    with VideoWriter(tmp_path / "part.mp4", clip, probe_video(clip), span=span) as writer:
        for frame in read_frames(clip, span=span):
            writer.write(frame)
    with av.open(str(writer.output)) as container:
        stream = container.streams.video[0]
        times = [frame.pts * stream.time_base for frame in container.decode(stream)]
    assert times == [Fraction(i, 10) for i in range(10)]


@pytest.mark.parametrize("start, gop", [(1.1, 12), (0.1, None)])
def test_a_stretch_of_a_ts_keeps_every_frame_where_the_seek_lands_late(tmp_path, start, gop):
    """MPEG-TS seeks by guessed byte positions: to 1.1 s it landed on the keyframe at 1.5 s, and the frames from
    1.1 s went missing without a word; in a clip with one keyframe it landed at the end ('--start is past its
    end'). Every frame of the stretch comes, as a read from the first frame gives them."""
    clip = make_clip(tmp_path / "rec.ts", frames=48, size=SMALL, fps=24, audio=False, gop=gop)
    whole = list(read_frames(clip))
    part = list(read_frames(clip, span=TimeSpan(start, 1.9)))
    kept = [f for f in whole if start < (f.pts + f.duration - whole[0].pts) * f.time_base and
            (f.pts - whole[0].pts) * f.time_base < 1.9]  # from the frame on screen at the start
    assert [f.pts for f in part] == [f.pts for f in kept] and len(kept) > 15
    assert all(np.array_equal(a.image, b.image) for a, b in zip(part, kept, strict=True))


def test_a_late_stretch_of_a_ts_is_not_decoded_from_the_first_frame(tmp_path, monkeypatch):
    """Where the TS seek lands late, the seek goes back a second, then two ... before falling back to the first
    frame: a stretch from 1.6 s decoded all 47 frames up to its end (a long recording's every frame before it)."""
    from clrface_video.io import decode

    clip = make_clip(tmp_path / "rec.ts", frames=48, size=SMALL, fps=24, audio=False, gop=12)
    whole = list(read_frames(clip))
    decoded = []
    timed = decode.timed_frames
    monkeypatch.setattr(decode, "timed_frames", lambda *args: (decoded.append(f) or f for f in timed(*args)))
    part = list(read_frames(clip, span=TimeSpan(1.6, 1.9)))
    kept = [f for f in whole if 1.6 < (f.pts + f.duration - whole[0].pts) * f.time_base and
            (f.pts - whole[0].pts) * f.time_base < 1.9]  # from the frame on screen at 1.6 s, which began at 1.583 s
    assert [f.pts for f in part] == [f.pts for f in kept] and len(kept) == 8
    assert all(np.array_equal(a.image, b.image) for a, b in zip(part, kept, strict=True))
    assert len(decoded) <= 24  # none before 1 s, the keyframe the seek lands on is at 1 s or 1.5 s


def test_svt_av1_prints_no_banner_of_its_own(tmp_path):
    """libsvtav1 wrote some 20 lines of banner to stderr on every run, -q or not (x265's are silenced by option)."""
    import os
    import sys

    src = make_clip(tmp_path / "in.mp4", frames=3, size=SMALL, audio=False)
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    script = ("import sys; from pathlib import Path; from tests.test_io_video import copy_video; "
              "copy_video(Path(sys.argv[1]), Path(sys.argv[2]), codec='libsvtav1')")
    done = subprocess.run([sys.executable, "-c", script, str(src), str(tmp_path / "out.mkv")], capture_output=True,
                          text=True, env=env, cwd=Path(__file__).parents[1], check=True)
    assert "Svt[info]" not in done.stderr and probe_video(tmp_path / "out.mkv").codec in ("av1", "libdav1d")


def test_svt_av1_leaves_the_process_scheduled_as_it_was(tmp_path):
    """libsvtav1, run by root (most containers), made the thread that encodes real-time (SCHED_FIFO 99) for good:
    the model's threads then spun waiting on it, and a process that had written AV1 starved the machine. Run in a
    process of its own, so that a failure does not leave the test run real-time. As another user SVT-AV1 changes
    nothing, and neither does this test."""
    if not hasattr(os, "sched_getscheduler"):
        pytest.skip("this system has no os.sched_getscheduler")
    src = make_clip(tmp_path / "in.mp4", frames=3, size=SMALL, audio=False)
    script = ("import os, sys; from pathlib import Path; from tests.test_io_video import copy_video; "
              "before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority; "
              "copy_video(Path(sys.argv[1]), Path(sys.argv[2]), codec='libsvtav1'); "
              "print(before == (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority))")
    done = subprocess.run([sys.executable, "-c", script, str(src), str(tmp_path / "out.mkv")], capture_output=True,
                          text=True, cwd=Path(__file__).parents[1], check=True)
    assert done.stdout.strip() == "True" and probe_video(tmp_path / "out.mkv").codec in ("av1", "libdav1d")


@pytest.mark.parametrize("color, codec", [(BT2020_PQ, "hevc"), ((9, 18, 9, 1), "hevc"), ((1, 1, 1, 1), "h264")])
def test_codec_auto_writes_an_hdr_source_as_hevc_and_sdr_as_h264(tmp_path, color, codec):
    src = make_clip(tmp_path / "in.mkv", frames=3, size=SMALL, codec="libx265", bit_depth=10, color=color, audio=False)
    out = tmp_path / "out.mp4"
    copy_video(src, out)  # --codec auto
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec and stream.codec_context.color_trc == color[1]
        assert stream.codec_context.codec_tag == ("hvc1" if codec == "hevc" else "avc1")  # what Apple plays
    assert probe_video(out).bit_depth == 10
    assert auto_codec(Path("x.webm"), probe_video(src)) == "libvpx-vp9"  # a container's own codec still comes first


def test_a_stretchs_last_frame_is_shown_to_the_stretchs_end_not_past_it(tmp_path):
    """Each frame lasts until the source's next one, but a stretch that ends inside a long gap of a variable
    rate wrote its last frame on to the next frame's time: the video ran past --duration, and past the audio."""
    clip = make_clip(tmp_path / "vfr.mkv", frames=12, size=SMALL, audio=False, vfr=True)
    whole = [(f.pts, f.duration) for f in read_frames(clip)]
    assert (188, 83) in whole  # a frame shown 83 ms, its next at 271 ms
    stretch = [(f.pts, f.duration) for f in read_frames(clip, span=TimeSpan(0.15, 0.23))]
    assert stretch == [(146, 42), (188, 38)]  # 80 ms from the frame on screen at 150 ms (146), to 226 ms
    assert [(f.pts, f.duration) for f in read_frames(clip, span=TimeSpan(0.15, 0.3))] == \
        [(146, 42), (188, 83), (271, 21), (292, 4)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_stretch_starts_with_the_frame_on_screen_at_its_start(tmp_path, suffix):
    """--start 1.25 --duration 1 on a 2 fps clip: the frame shown at 1.25 s (from 1 s) opens the output, whole,
    from 0 to 0.5 s, and the stretch is 1 s from there (TimeSpan.opened_at); the audio starts at 1 s too, in sync.
    The stretch used to start at the first frame at or after 1.25 s (1.5 s), the audio with it; then with the
    frame on screen shown from 1.25 s, 0.25 s, shorter than the rest (a variable rate, as an editor reads it)."""
    src = make_clip(tmp_path / "in.mp4", frames=8, size=SMALL, fps=2)
    span = TimeSpan(1.25, 2.25)
    with VideoWriter(tmp_path / f"part{suffix}", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    whole, part = list(read_frames(src)), list(read_frames(writer.output))
    first = part[0].pts * part[0].time_base
    assert [(f.pts * f.time_base - first, f.duration * f.time_base) for f in part] == \
        [(0, Fraction(1, 2)), (Fraction(1, 2), Fraction(1, 2))]
    shown = [min(range(8), key=lambda i: np.abs(whole[i].image.astype(int) - f.image).mean()) for f in part]
    assert shown == [2, 3]  # the source's frames at 1 and 1.5 s
    heard = [packet for packet in audio_spans(src) if packet[2] > 1]
    out = audio_spans(writer.output)
    assert out[0][0] == heard[0][0] and heard[0][1] < 1  # the packet sounding at 1 s, whole
    assert float(out[0][1] - first) == pytest.approx(float(heard[0][1] - 1), abs=1e-3)  # as far from the frame


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_a_stretch_from_within_a_frame_keeps_the_rate_and_the_audio_in_sync(tmp_path, suffix):
    """--start 0.51 --duration 0.4 on a 25 fps clip: the frame on screen then (from 0.48 s) opened the output shown
    from 0.51 s, 10 ms, and every frame after it 10 ms into a 40 ms step, which an editor reads as a variable rate,
    and the last was cut to 10 ms. The stretch now opens with that frame whole and lasts 0.4 s from there: ten
    whole frames on one 40 ms grid. The audio is cut at the same 0.48 s: its first packet lies as far before the
    first frame as in the source (10.7 ms)."""
    src = make_clip(tmp_path / "in.mp4", frames=30, size=SMALL, fps=25)
    span = TimeSpan(0.51, 0.91)
    with VideoWriter(tmp_path / f"part{suffix}", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    part = list(read_frames(writer.output))
    first = part[0].pts * part[0].time_base
    assert [f.pts * f.time_base - first for f in part] == [Fraction(i, 25) for i in range(len(part))]
    assert [f.duration * f.time_base for f in part] == [Fraction(1, 25)] * 10
    heard = next(packet for packet in audio_spans(src) if packet[2] > Fraction(12, 25))  # sounding at 0.48 s
    out = audio_spans(writer.output)[0]
    assert out[0] == heard[0]
    assert float(out[1] - first) == pytest.approx(float(heard[1] - Fraction(12, 25)), abs=1e-3)  # Matroska's ms


def test_a_stretch_into_an_encoder_that_counts_frames_keeps_each_within_a_frame(tmp_path):
    """MPEG-4 Part 2 counts frames at one rate: the frame on screen at 1.25 s, at 0, and the next (due at 0.25 s
    while the first was shown from 1.25 s) rounded to one number, which the encoder refused ('Invalid argument').
    It went on the next number, less than a frame late; now the stretch opens with that frame whole, each on its
    own number."""
    src = make_clip(tmp_path / "in.mp4", frames=8, size=SMALL, fps=2, audio=False)
    span = TimeSpan(1.25, 2.25)
    with VideoWriter(tmp_path / "part.mkv", src, probe_video(src), span=span, codec="mpeg4") as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    part = list(read_frames(writer.output))
    first = part[0].pts * part[0].time_base
    assert [f.pts * f.time_base - first for f in part] == [0, Fraction(1, 2)]


def test_a_start_within_the_last_frame_starts_the_stretch_with_it(tmp_path):
    """A one-frame clip (0 to 0.04 s) with --start 0.01: the frame on screen then begins the stretch (it was
    refused, 'no frame starting at 0.01 s or later'); a --start past its end is told so."""
    clip = make_clip(tmp_path / "one.mkv", frames=1, size=SMALL, fps=25, audio=False)
    assert [f.pts for f in read_frames(clip, span=TimeSpan(0.01, None))] == [0]
    with pytest.raises(InputError, match=r"no frames from 0.5 s on: it ends at 0.04 s \(start is past its end\)$"):
        list(read_frames(clip, span=TimeSpan(0.5, None)))


def test_a_start_within_a_millisecond_of_the_end_is_told_it_is_at_the_end(tmp_path):
    """A 2 fps clip of 8 frames ends at 4 s: --start 3.99 opens with its last frame, shown 10 ms; at 3.999 that
    frame ends within SPAN_TOLERANCE of the start, as a frame boundary that close counts as on it, so the stretch
    has no frame, and the message said --start was past the end."""
    clip = make_clip(tmp_path / "c2.mp4", frames=8, size=SMALL, fps=2, audio=False)
    (last,) = read_frames(clip, span=TimeSpan(3.99, None))
    assert last.index == 0 and last.pts * last.time_base == Fraction(7, 2)
    with pytest.raises(InputError, match=r"^c2.mp4 has no frames from 3.999 s on: it ends at 4 s \(start is within "
                       r"1 ms of its end, which counts as at it\)$"):
        list(read_frames(clip, span=TimeSpan(3.999, None)))


def _two_videos(path: Path, second_default: bool = True, size: tuple[int, int] = SMALL, rate: int = 24,
                frames: int = 6, preview_gop: int | None = None) -> Path:
    """A Matroska file of two video streams: a grey 64x48 preview first (x264's B-frames, a keyframe each
    `preview_gop` frames), then the face clip (`size`) marked as the default one, as a file with a preview track
    or a second camera angle has them."""
    faces = [frame.image for frame in read_frames(make_clip(path.with_name("faces.mp4"), frames=frames, size=size,
                                                            fps=rate, audio=False))]
    with av.open(str(path), "w") as out:
        preview, main = out.add_stream("libx264", rate=rate), out.add_stream("libx264", rate=rate)
        preview.width, preview.height, preview.pix_fmt = 64, 48, "yuv420p"
        if preview_gop is not None:
            preview.options = {"g": str(preview_gop), "bf": "3", "sc_threshold": "0"}
        main.width, main.height, main.pix_fmt = *size, "yuv420p"
        preview.disposition = av.stream.Disposition(0)
        main.disposition = av.stream.Disposition.default if second_default else av.stream.Disposition(0)
        for number, image in enumerate(faces):
            grey = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * number % 256, np.uint8), format="rgb24")
            shown = av.VideoFrame.from_ndarray(image, format="rgb24")
            for stream, frame in ((preview, grey), (main, shown)):
                frame.pts, frame.time_base = number, Fraction(1, rate)
                out.mux(stream.encode(frame))
        out.mux(preview.encode(None))
        out.mux(main.encode(None))
    return path


def test_the_default_video_stream_is_restored_and_the_others_copied(tmp_path, warnings_logged):
    """Of two video streams the first was restored though the second was the default (the one players show), and
    the other was dropped with a warning. The default one is restored now, and the other copied bit for bit."""
    src = _two_videos(tmp_path / "two.mkv")
    with av.open(str(src)) as container:
        assert [bool(s.disposition & av.stream.Disposition.default) for s in container.streams.video] == [False, True]
        preview = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    info = probe_video(src)
    assert (info.width, info.height) == SMALL
    out = copy_video(src, tmp_path / "out.mkv")
    with av.open(str(out)) as container:
        restored, copied = container.streams.video
        assert (restored.width, restored.height, copied.width, copied.height) == (*SMALL, 64, 48)
        assert bool(restored.disposition & av.stream.Disposition.default)
        assert [bytes(p) for p in container.demux(copied) if p.size] == preview
    assert len(list(read_frames(out))) == 6
    in_mp4 = copy_video(src, tmp_path / "out.mp4")  # a muxer that stores each packet's dts, which Matroska gave none
    with av.open(str(in_mp4)) as container:
        assert [(s.width, s.height) for s in container.streams.video] == [SMALL, (64, 48)]
        assert len(list(container.decode(container.streams.video[1]))) == 6
    assert not [line for line in warnings_logged.messages if "left out" in line]


def test_a_stretchs_copied_video_begins_at_its_first_keyframe_shown_from_the_start(tmp_path, warnings_logged):
    """With --start at a keyframe of a copied B-frame stream, that keyframe (decoded, by its dts, before the
    start) was left out, and with it its group: 8 of 16 frames. The copy begins at the first keyframe shown at
    or after the start (later where the start falls between keyframes); with none in the stretch it is left
    out with a warning, not written empty."""
    src = _two_videos(tmp_path / "two.mkv", frames=24, preview_gop=8)  # preview keyframes at frames 0, 8 and 16
    info = probe_video(src)

    def copied(start: float, suffix: str, end: float | None = None) -> list[tuple[float, int]]:
        span = TimeSpan(start, end)
        with VideoWriter(tmp_path / f"out{suffix}", src, info, span=span) as writer:
            for frame in read_frames(src, span=span):
                writer.write(frame)
        with av.open(str(writer.output)) as container:
            videos = container.streams.video
            return [(round(f.time, 2), int(f.to_ndarray(format="rgb24")[0, 0, 0])) for s in videos[1:]
                    for f in container.decode(s)]

    for suffix in (".mkv", ".mp4"):
        frames = copied(8 / 24, suffix)  # the preview's frame n is grey 40 * n % 256
        assert len(frames) == 16 and frames[0] == (0.0, 64)
    frames = copied(10 / 24, ".mkv")
    assert len(frames) == 8 and frames[0] == (0.25, 128)  # from frame 16, 6 frames into the stretch
    assert copied(18 / 24, ".mkv") == []
    assert "video stream 0 is left out: it has no keyframe within the stretch, so none of its frames there can be " \
        "copied" in warnings_logged.messages
    warnings_logged.clear()
    assert copied(0.34, ".mkv", 0.64) == []  # its next keyframe (0.667 s) is decoded within it, shown after it
    assert "video stream 0 is left out: it has no keyframe within the stretch" in warnings_logged.text


def _shown_times(path: Path) -> list[list[float]]:
    """Each video stream's frames' times in seconds, as decoded from the file."""
    with av.open(str(path)) as container:
        count = len(container.streams.video)
    times = []
    for index in range(count):  # each from the file's start: decoding one stream reads past the others' packets
        with av.open(str(path)) as container:
            times.append([float(frame.time) for frame in container.decode(container.streams.video[index])])
    return times


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_stretchs_copied_b_frame_video_ends_with_the_frames_shown_before_its_end(tmp_path, suffix):
    """A copied video was cut at a stretch's end by its packets' dts: x264's B-frame stream, decoded ahead of
    showing, kept the frames shown up to 3 frames after the end (15 frames for a stretch of 12). It is cut by
    when its frames are shown, as the restored ones are: both streams show the same frames' times."""
    src = _two_videos(tmp_path / "two.mkv", frames=24, preview_gop=8)  # preview keyframes at frames 0, 8 and 16
    for end in (20, 21):
        span = TimeSpan(8 / 24, end / 24)
        with VideoWriter(tmp_path / f"out{suffix}", src, probe_video(src), span=span) as writer:
            for frame in read_frames(src, span=span):
                writer.write(frame)
        restored, copied = _shown_times(writer.output)
        assert len(restored) == end - 8
        assert copied == pytest.approx(restored, abs=1e-3)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_stretchs_copied_video_opens_with_the_restored_ones_first_frame(tmp_path, suffix):
    """--start 0.34 opens the restored video with the frame on screen then, whole, from 0.333 s (TimeSpan.opened_at);
    the copied preview, keyed there too, began at its next keyframe, 0.333 s later (4 frames of 12). Both show the
    same frames' times now."""
    src = _two_videos(tmp_path / "two.mkv", frames=24, preview_gop=8)  # preview keyframes at frames 0, 8 and 16
    for end in (0.84, None):
        span = TimeSpan(0.34, end)
        with VideoWriter(tmp_path / f"out{suffix}", src, probe_video(src), span=span) as writer:
            for frame in read_frames(src, span=span):
                writer.write(frame)
        restored, copied = _shown_times(writer.output)
        assert len(restored) == (12 if end else 16)
        assert copied == pytest.approx(restored, abs=1e-3)


def _late_preview(path: Path, first: int, main_first: int = 0) -> Path:
    """A Matroska file of 24 frames at 24 fps: an MPEG-4 Part 2 preview (which AVI takes as it is, a keyframe every
    8 frames) from frame `first` on, and the face clip, the default stream, from frame `main_first` on."""
    faces = [frame.image for frame in read_frames(make_clip(path.with_name("faces.mp4"), size=SMALL, audio=False))]
    with av.open(str(path), "w") as out:
        preview = out.add_stream("mpeg4", rate=24, options={"g": "8", "sc_threshold": "1000000000"})
        main = out.add_stream("libx264", rate=24)
        preview.width, preview.height, preview.pix_fmt = 64, 48, "yuv420p"
        main.width, main.height, main.pix_fmt = *SMALL, "yuv420p"
        preview.disposition, main.disposition = av.stream.Disposition(0), av.stream.Disposition.default
        for number, image in enumerate(faces):
            grey = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * number, np.uint8), format="rgb24")
            shown = av.VideoFrame.from_ndarray(image, format="rgb24")
            for stream, frame in ((preview, grey), (main, shown)):
                if number < (first if stream is preview else main_first):
                    continue
                frame.pts, frame.time_base = number, Fraction(1, 24)
                out.mux(stream.encode(frame))
        out.mux(preview.encode(None))
        out.mux(main.encode(None))
    return path


@pytest.mark.parametrize(("first", "start"), [(6, None), (0, 10)])
def test_a_copied_video_that_begins_after_an_avis_start_is_shown_from_its_time(tmp_path, first, start):
    """AVI stores no start per stream: its muxer put a copied video's first frame at 0 whatever its time (a
    preview track from 0.25 s on; a stretch from frame 10 whose copy begins at the keyframe of frame 16), and
    held it until the second. The copy is shown from its own time, as in Matroska."""
    src = _late_preview(tmp_path / "two.mkv", first)
    span = None if start is None else TimeSpan(start / 24, None)
    with VideoWriter(tmp_path / "out.avi", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    restored, copied = _shown_times(writer.output)
    assert len(restored) == 24 - (start or 0)
    assert [round(time * 24, 1) for time in copied] == list(range(6, 6 + len(copied))) and len(copied) >= 8


def test_a_restored_video_that_begins_after_a_copied_one_in_an_avi_is_shown_from_its_time(tmp_path):
    """The face clip from frame 6 on beside a preview from 0: AVI's muxer put the restored video's first frame at
    0 as it did a copied one's (held until frame 7); it is shown from frame 6, the preview from 0."""
    src = _late_preview(tmp_path / "two.mkv", 0, main_first=6)
    restored, copied = _shown_times(copy_video(src, tmp_path / "out.avi"))
    assert [round(time * 24, 1) for time in restored] == list(range(6, 24))
    assert [round(time * 24, 1) for time in copied] == list(range(24))


@pytest.mark.parametrize("suffix", [".avi", ".mxf", ".mpg", ".ts", ".webm", ".dv", ".gif", "_%04d.png"])
def test_a_second_video_stream_is_copied_where_it_plays_else_left_out_with_a_warning(tmp_path, warnings_logged,
                                                                                      suffix):
    """A second H.264 stream with B-frames failed the whole write to .avi ('encoding frame 0 into two_0.avi
    failed: Invalid data found'): the muxer took its codec but not its first packet. In .mpg it was written
    as no reader could decode (its codec unknown). The copy is kept where it reads back (.ts), else left out
    with a warning."""
    src = _two_videos(tmp_path / "two.mkv", **({"size": (720, 576), "rate": 25} if suffix == ".dv" else {}))
    out = copy_video(src, tmp_path / f"out{suffix}")
    left_out = {line for line in warnings_logged.messages if "video stream 0 (h264)" in line}
    if suffix.endswith(".png"):
        assert len(list(tmp_path.glob("out_*.png"))) == 6
        assert left_out == {"video stream 0 (h264) cannot be stored in .png; it is left out"}
        return
    with av.open(str(out)) as container:
        assert len(list(container.decode(container.streams.video[0]))) == 6
    with av.open(str(out)) as container:
        copied = [len(list(container.decode(stream))) for stream in container.streams.video[1:]]
    if suffix == ".ts":
        assert copied == [6] and not left_out
    else:
        assert copied == [] and left_out == {f"video stream 0 (h264) cannot be stored in {suffix}; it is left out"}


def test_a_folder_is_looked_through_for_leftovers_once_not_for_every_file(tmp_path, monkeypatch):
    """Each photo written listed its whole output folder for a killed run's leftovers: a folder of n photos took
    n listings of up to n names. It is listed once; a leftover found then is still removed when its output is."""
    from PIL import Image

    from clrface_video import atomic
    from clrface_video.io.photo_read import read_photo
    from clrface_video.io.photo_write import write_photo

    src = make_clip(tmp_path / "in.mp4", frames=2, size=SMALL, audio=False)
    Image.fromarray(next(read_frames(src)).image).save(tmp_path / "p.png")
    photo = read_photo(tmp_path / "p.png")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / f".p7.{ended.pid}.partial.png").write_bytes(b"half")
    listed = []
    scandir = os.scandir
    monkeypatch.setattr(atomic.os, "scandir", lambda folder: listed.append(folder) or scandir(folder))
    for number in range(8):
        write_photo(out / f"p{number}.png", photo.image, photo)
    assert listed == [out] and not (out / f".p7.{ended.pid}.partial.png").exists()
    assert sorted(p.name for p in out.iterdir()) == [f"p{n}.png" for n in range(8)]


def test_telemetry_a_vob_cannot_hold_is_still_said_to_be_left_out(tmp_path, warnings_logged):
    """Only a DVD's navigation packets are left out of a .vob unsaid (test_containers_timing): a camera's
    telemetry is lost there, which its owner must hear."""
    src = add_extras(make_clip(tmp_path / "in.mp4", frames=8, size=SMALL), tmp_path / "GOPR0001.MP4", telemetry=True)
    with av.open(str(copy_video(src, tmp_path / "out.vob"))) as container:
        assert "data" not in [s.type for s in container.streams]
    assert "data stream 2 (GoPro MET) cannot be stored in .vob; it is left out" in warnings_logged.text
