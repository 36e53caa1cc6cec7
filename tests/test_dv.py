"""DV tapes (raw .dv, DV in .avi and .mov; PAL 4:2:0 and NTSC 4:1:1 with PCM audio and a timecode) restored into
every container at their system's rate, each frame at its time and the audio sample for sample."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clrface_video.io.decode import probe_video
from tests.media import clip_image
from tests.test_cli import BASELINE, assert_one_line_error, files_in, run
from tests.test_containers_timing import times
from tests.test_io_video import copy_video, frame_fields

FRAMES = 10


@dataclass(frozen=True)
class Tape:
    """A DV system as a camcorder records it: frame size, rate, chroma, audio samples per frame (48 kHz, the
    NTSC frames' 8008 samples in five) and a start timecode (drop-frame on NTSC)."""

    size: tuple[int, int]
    rate: Fraction
    pix_fmt: str
    samples: tuple[int, ...]
    timecode: str


PAL = Tape((720, 576), Fraction(25), "yuv420p", (1920,), "01:00:00:00")
NTSC = Tape((720, 480), Fraction(30000, 1001), "yuv411p", (1600, 1602, 1602, 1602, 1602), "00:00:59;28")
TAPES = {"pal": PAL, "ntsc": NTSC}


def make_tape(path: Path, tape: Tape, frames: int = FRAMES, heard: int | None = None) -> Path:
    """DV video and stereo PCM (a ramp, a different sample each, the right channel the left's negative) in the
    container of `path`'s suffix, the sound with the first `heard` frames only (None: all); the timecode on the
    file (.dv, .avi) or the video (.mov)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("dvvideo", rate=tape.rate)
        video.width, video.height, video.pix_fmt = *tape.size, tape.pix_fmt
        (video.metadata if path.suffix == ".mov" else out.metadata)["timecode"] = tape.timecode
        audio = out.add_stream("pcm_s16le", rate=48000, layout="stereo")
        start = 0
        for i in range(frames):
            image = av.VideoFrame.from_ndarray(clip_image(i, frames, tape.size), format="rgb24")
            frame = image.reformat(format=tape.pix_fmt)
            frame.pts, frame.time_base = i, 1 / tape.rate
            out.mux(video.encode(frame))
            if heard is not None and i >= heard:
                continue
            count = tape.samples[i % len(tape.samples)]
            left = (np.arange(start, start + count) % 1000 * 31 - 15000).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(np.stack([left, -left], axis=1).reshape(1, -1), format="s16",
                                               layout="stereo")
            sound.sample_rate, sound.pts = 48000, start
            out.mux(audio.encode(sound))
            start += count
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def pcm(path: Path) -> tuple[np.ndarray, Fraction]:
    """The decoded audio, interleaved 16-bit samples, and the time of its first sample (an .mp4's ALAC decodes to
    planar s16p, one row a channel)."""
    with av.open(str(path)) as container:
        assert container.streams.audio, f"{path.name} has no audio"
        frames = list(container.decode(audio=0))
    assert frames and frames[0].format.name in ("s16", "s16p")
    return np.concatenate([(f.to_ndarray().T if f.format.is_planar else f.to_ndarray()).reshape(-1)
                           for f in frames]), frames[0].pts * frames[0].time_base


def restore(src: Path, out: Path | None) -> Path:
    result = run("restore", src, *(["-o", out] if out else []), *BASELINE)
    assert result.exit_code == 0, result.output
    return out or src.with_name(f"{src.stem}_restored{src.suffix}")


def assert_kept(src: Path, out: Path, tape: Tape) -> None:
    """The output plays at the DV system's rate, with every frame at the source's time (to the output's clock
    tick) and the source's audio, sample for sample, from the same time."""
    info = probe_video(out)
    assert info.fps == tape.rate
    before, after = times(src), times(out)
    assert len(after) == len(before) == FRAMES
    assert all(abs(a - b) <= info.time_base for a, b in zip(after, before)), (after, before)
    samples, start = pcm(out)
    source_samples, source_start = pcm(src)
    assert len(source_samples) == 2 * FRAMES * sum(tape.samples) // len(tape.samples)
    assert np.array_equal(samples, source_samples)
    assert start - after[0] == source_start - before[0] == 0


@pytest.mark.parametrize("name", TAPES)
def test_a_raw_dv_file_plays_at_its_systems_rate(tmp_path, name):
    """FFmpeg's DV demuxer gives 60000 (its clock's tick) as the average rate; the tape's is 25 or 29.97."""
    tape = TAPES[name]
    info = probe_video(make_tape(tmp_path / "tape.dv", tape))
    assert info.fps == tape.rate and info.duration_s == pytest.approx(float(FRAMES / tape.rate))
    assert times(tmp_path / "tape.dv") == [i / tape.rate for i in range(FRAMES)]


@pytest.mark.parametrize("suffix", [".dv", ".mov", ".mp4", ".mkv", ".avi", None])
@pytest.mark.parametrize("name", TAPES)
def test_a_raw_dv_tape_is_restored_into_every_container(tmp_path, name, suffix):
    """None: the default output, tape_restored.dv. A .dv output keeps the tape's chroma (NTSC's 4:1:1, which the
    DV encoder needs at 720x480) and its timecode."""
    tape = TAPES[name]
    src = make_tape(tmp_path / "tape.dv", tape)
    out = restore(src, tmp_path / f"out{suffix}" if suffix else None)
    assert_kept(src, out, tape)
    if out.suffix == ".dv":
        assert probe_video(out).pix_fmt == tape.pix_fmt
        with av.open(str(out)) as written:
            assert written.metadata["timecode"] == tape.timecode


@pytest.mark.parametrize("container", [".avi", ".mov"])
@pytest.mark.parametrize("name", TAPES)
def test_dv_in_avi_and_mov_goes_onto_a_dv_file_with_its_audio(tmp_path, name, container):
    """The DV muxer takes no audio without video: the copy's trial file needs a video beside it (the PCM track
    was left out)."""
    tape = TAPES[name]
    src = make_tape(tmp_path / f"tape{container}", tape)
    out = restore(src, tmp_path / "out.dv")
    assert_kept(src, out, tape)
    assert probe_video(out).pix_fmt == tape.pix_fmt


@pytest.mark.parametrize(("size", "rate", "words"), [((640, 480), 25, ("720x576", "not 640x480")),
                                                     ((720, 576), 24, ("at 25 fps", "source's 24 fps"))])
def test_dv_refuses_a_size_or_rate_it_cannot_play_before_writing(tmp_path, size, rate, words):
    """A 640x480 frame fits no DV system; 24 fps frames would be played at PAL's 25 (the old code wrote them so)."""
    src = tmp_path / "in.mov"
    with av.open(str(src), "w") as out:
        video = out.add_stream("mjpeg", rate=rate)
        video.width, video.height, video.pix_fmt = *size, "yuvj420p"
        for i in range(2):
            image = av.VideoFrame.from_ndarray(clip_image(i, 2, size), format="rgb24")
            out.mux(video.encode(image.reformat(format="yuvj420p")))
        out.mux(video.encode(None))
    before = files_in(tmp_path)
    assert_one_line_error(run("restore", src, "-o", tmp_path / "out.dv", *BASELINE), *words)
    assert files_in(tmp_path) == before


def test_a_dv_tapes_pcm_goes_into_mxf_too(tmp_path):
    """MXF's muxer also takes no audio without video (the PCM track was left out)."""
    src = make_tape(tmp_path / "tape.mov", PAL)
    assert_kept(src, restore(src, tmp_path / "out.mxf"), PAL)


@pytest.mark.parametrize("suffix", [".dv", ".mxf"])
def test_a_tape_whose_sound_stops_early_keeps_every_frame(tmp_path, suffix):
    """Regression: FFmpeg's DV and MXF muxers stop the file where a track ends: a tape whose sound stopped after 5
    of its 10 frames failed ('writing out.dv failed: Invalid argument') into .dv, and lost its last 5 frames in a
    .mxf, exit 0. The sound is now padded with silence to the pictures' end: every frame is kept, the source's
    samples then zeros, as long as the pictures."""
    src = make_tape(tmp_path / "tape.mov", PAL, heard=5)
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert len(times(out)) == FRAMES
    samples, _ = pcm(out)
    heard, _ = pcm(src)
    assert len(heard) == 2 * 5 * 1920 and len(samples) == 2 * FRAMES * 1920
    assert np.array_equal(samples[:len(heard)], heard) and not samples[len(heard):].any()


@pytest.mark.parametrize(("codec", "suffix", "pix_fmt"), [(None, ".mp4", "yuv420p"), ("ffv1", ".mkv", "yuv411p"),
                                                          ("prores_ks", ".mov", "yuv422p10le")])
def test_ntsc_dvs_4_1_1_chroma_is_kept_or_its_halving_is_warned_of(tmp_path, codec, suffix, pix_fmt,
                                                                   warnings_logged):
    """4:1:1 (full height, a quarter of the width) written 4:2:0 loses half its height without a word, while a
    4:2:2 source was warned of; ffv1 keeps it exactly and prores_ks holds it in 4:2:2, with no warning."""
    from tests.test_io_video import copy_video

    src = make_tape(tmp_path / "tape.dv", NTSC, frames=2)
    out = copy_video(src, tmp_path / f"out{suffix}", **({"codec": codec} if codec else {}))
    assert probe_video(out).pix_fmt == pix_fmt
    warned = "the source's 4:1:1 chroma is written 4:2:0 by libx264 (as players expect); codec ffv1 keeps it " \
             "(prores_ks as 4:2:2)"
    assert (warned in warnings_logged.text) == (pix_fmt == "yuv420p")


@pytest.mark.parametrize(("suffix", "codec"), [(".avi", "auto"), (".mov", "prores_ks"), (".mkv", "ffv1"),
                                                (".mp4", "auto")])
def test_a_dv_tapes_fields_kept_are_written_bottom_field_first(tmp_path, suffix, codec):
    """FFmpeg gives a DV stream no field order, and the fields --deinterlace off keeps were written as progressive
    frames into any encoder but dvvideo: an editor then treats the combed frames as progressive."""
    tape = make_tape(tmp_path / "tape.avi", PAL, frames=3)
    assert frame_fields(tape) == "BBB"
    out = copy_video(tape, tmp_path / f"out{suffix}", codec=codec)
    assert frame_fields(out) == "BBB"
    assert probe_video(out).interlaced
