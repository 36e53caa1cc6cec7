"""Reruns after a --start/--duration try: an output holding another stretch than the one asked now is redone."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.errors import ClrfaceError
from clrface_video.io.decode import read_frames
from clrface_video.photos import restore_folder
from clrface_video.pipeline import restore_video
from tests.media import clip_image, make_clip
from tests.test_containers_timing import gap_clip

SIZE = (128, 96)
WHOLE = "redoing out{suffix}: it holds 0.5 s of the video, not the 2 s asked (all of it)"
PART = "redoing out{suffix}: it holds 2 s of the video, not the 0.5 s asked (0.5-1 s)"


def config(**changes) -> RestoreConfig:
    return RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", track_identity=False, **changes)


def frame_times(path: Path) -> list[Fraction]:
    return [frame.pts * frame.time_base for frame in read_frames(path)]


def video_late(source: Path, target: Path, late: Fraction) -> Path:
    """The clip remuxed with its video starting `late` seconds after its audio (as a camera or an edit leaves it)."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        streams = {stream.index: out.add_stream_from_template(stream) for stream in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "video":
                shift = int(late / packet.time_base)
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return target


def live_matroska(source: Path, target: Path) -> Path:
    """The clip remuxed as Matroska written live (as a recorder streams it): no duration on the file, the
    streams or in a DURATION tag, so only its packets' times tell how long it is."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"live": "1"}) as out:
        streams = {stream.index: out.add_stream_from_template(stream) for stream in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    with av.open(str(target)) as container:
        assert container.duration is None
        assert all(s.duration is None and "DURATION" not in s.metadata for s in container.streams)
    return target


def animated_webp(path: Path) -> Path:
    """48 frames of 1/24 s (41 or 42 ms, 2 s in all), as make_clip's clip."""
    images = [Image.fromarray(clip_image(i, 48, SIZE)) for i in range(48)]
    durations = [round(1000 * (i + 1) / 24) - round(1000 * i / 24) for i in range(48)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, lossless=True)
    return path


@pytest.fixture
def clip(tmp_path) -> Path:
    """2 s at 24 fps with audio: frames 12-23 are the stretch --start 0.5 --duration 0.5."""
    return make_clip(tmp_path / "clip.mp4", frames=48, size=SIZE)


def test_a_whole_run_redoes_a_stretch_left_under_its_name(clip, tmp_path):
    """A try of 0.5 s, then the whole clip to the same name: the whole was 'already there; left as is', and the
    user kept half a second of a two-second clip."""
    out = tmp_path / "out.mp4"
    assert restore_video(clip, out, config(start=0.5, duration=0.5)).frames == 12
    report = restore_video(clip, out, config())
    assert (report.frames, report.skipped) == (48, 0)
    assert report.warnings == [WHOLE.format(suffix=".mp4")]
    assert frame_times(out) == frame_times(clip)
    with av.open(str(out)) as container:
        assert float(container.streams.video[0].duration * container.streams.video[0].time_base) == 2.0
    assert out.stat().st_mtime_ns == clip.stat().st_mtime_ns  # the original's date, as every output's


def test_a_stretch_redoes_a_whole_output_under_its_name(clip, tmp_path):
    out = tmp_path / "out.mp4"
    restore_video(clip, out, config())
    report = restore_video(clip, out, config(start=0.5, duration=0.5))
    assert (report.frames, report.skipped) == (12, 0)
    assert report.warnings == [PART.format(suffix=".mp4")]
    assert frame_times(out) == [Fraction(i, 24) for i in range(12)]


def test_the_same_stretch_again_is_left_as_is(clip, tmp_path):
    """Not encoded again: the file is the one written first (same inode, same date, same bytes)."""
    out = tmp_path / "out.mp4"
    restore_video(clip, out, config(start=0.5, duration=0.5))
    before = out.stat()
    again = restore_video(clip, out, config(start=0.5, duration=0.5))
    assert (again.frames, again.skipped, again.warnings) == (0, 1, [])
    after = out.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    tail = restore_video(clip, tmp_path / "tail.mp4", config(start=1.5))  # to the end: 0.5 s
    assert restore_video(clip, tmp_path / "tail.mp4", config(start=1.5)).skipped == 1 and tail.frames == 12
    # a stretch past the end is the rest of the clip: a whole run finds it whole
    assert restore_video(clip, tmp_path / "all.mp4", config(duration=60)).frames == 48
    assert restore_video(clip, tmp_path / "all.mp4", config()).skipped == 1


def test_a_stretch_from_within_a_long_frame_is_left_as_is_when_asked_again(tmp_path):
    """A 25 fps camera's clip that dropped 0.72 s after 0.24 s: --start 0.5 --duration 0.5 opens with the frame on
    screen then, whole (from 0.24 s), and lasts 0.5 s from there, so the same stretch asked again is done. Opened
    so but ended at the end asked, it held 0.76 s, and every rerun redid it ('it holds 0.76 s of the video, not
    the 0.5 s asked')."""
    clip, out = gap_clip(tmp_path / "gap.mp4"), tmp_path / "out.mp4"
    assert restore_video(clip, out, config(start=0.5, duration=0.5)).frames == 1
    assert frame_times(out) == [0]
    again = restore_video(clip, out, config(start=0.5, duration=0.5))
    assert (again.frames, again.skipped, again.warnings) == (0, 1, [])


@pytest.mark.parametrize("suffix", [".avi", ".gif", "_%03d.png"])
@pytest.mark.parametrize("fps", [25, 12, 5])
def test_a_tagless_stretch_opened_before_its_start_is_done_once(tmp_path, fps, suffix):
    """--start 0.51 --duration 0.5 opens with the frame on screen at 0.51 s whole (TimeSpan.opened_at), so an
    output that keeps no stretch tag is told by frames up to a frame before the asked times: at 5 fps (0.4 s, beyond
    io.stretch_start.NEAR) every rerun of the same stretch was redone ('they differ by 13 levels'). Another start is
    still redone."""
    clip = make_clip(tmp_path / "clip.mp4", frames=2 * fps, fps=fps, size=SIZE)
    out = tmp_path / f"out{suffix}"
    assert restore_video(clip, out, config(start=0.51, duration=0.5)).frames > 0
    again = restore_video(clip, out, config(start=0.51, duration=0.5))
    assert (again.frames, again.skipped, again.warnings) == (0, 1, [])
    other = restore_video(clip, out, config(start=1.25, duration=0.5))
    assert other.frames > 0 and other.warnings[0].startswith(f"redoing {out.name}: its frames are not the video's")


@pytest.mark.parametrize("suffix", [".avi", ".gif"])
def test_a_phone_clips_stretch_is_told_as_shown(tmp_path, suffix):
    """A phone clip's try into an .avi is written upright (its container keeps no rotation tag), and its frames were
    then unlike the source's stored ones: every rerun of the same try was redone ('they differ by 80 levels').
    (An .mp4's or .mkv's stretch is told by its stretch tag, io.stretch_tag; these two keep none.)"""
    clip = make_clip(tmp_path / "phone.mp4", frames=48, size=(96, 128), rotation=90, sideways=True)
    out = tmp_path / f"out{suffix}"
    assert restore_video(clip, out, config(start=0.5, duration=0.5)).frames == 12
    again = restore_video(clip, out, config(start=0.5, duration=0.5))
    assert (again.frames, again.skipped, again.warnings) == (0, 1, [])
    later = restore_video(clip, out, config(start=1.25, duration=0.5))  # another start is still told apart
    assert later.frames == 12 and later.warnings[0].startswith(f"redoing out{suffix}: its frames are not the video's")


def test_a_read_only_stretch_is_not_redone_and_says_why_it_would_be(clip, tmp_path):
    out = tmp_path / "out.mp4"
    restore_video(clip, out, config(start=0.5, duration=0.5))
    os.chmod(out, 0o444)
    kept = out.read_bytes()
    with pytest.raises(ClrfaceError, match=r"^out.mp4 is read-only; make it writable to redo it \(it holds 0.5 s "
                                           r"of the video, not the 2 s asked \(all of it\)\)$"):
        restore_video(clip, out, config())
    assert out.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]


def test_a_start_past_the_end_is_said_as_on_a_first_run(clip, tmp_path, caplog):
    """--start 5 on a 2 s clip whose output is there: the rerun said 'redoing out.mp4: it holds 0.5 s of the video,
    not the -3 s asked' before the first run's error, and a read-only output was refused with 'make it writable to
    redo it', which would only have led to that error. Now the first run's error, alone; the output untouched."""
    from clrface_video.errors import InputError

    out = tmp_path / "out.mp4"
    past = r"^clip.mp4 has no frames from 5 s on: it ends at 2 s \(start is past its end\)$"
    with pytest.raises(InputError, match=past):
        restore_video(clip, tmp_path / "first.mp4", config(start=5))
    restore_video(clip, out, config(start=0.5, duration=0.5))
    kept = out.read_bytes()
    for mode in (0o644, 0o444):
        os.chmod(out, mode)
        with pytest.raises(InputError, match=past):
            restore_video(clip, out, config(start=5))
        assert "redoing" not in caplog.text
        assert out.read_bytes() == kept


@pytest.mark.parametrize("damage", ["cut short", "written over"])
def test_an_output_that_cannot_be_read_is_redone(clip, tmp_path, damage):
    """An output cut short by a copy (an .mp4's index is at its end) or written over since, given back its date:
    'already restored, left as is' each rerun, exit 0, with a file no player opens. Now redone, with why; the
    folder run too."""
    out = tmp_path / "out.mp4"
    restore_video(clip, out, config())
    whole = frame_times(out)
    # written over: bytes no demuxer takes for a video (random ones may probe as a raw stream of some length)
    out.write_bytes(out.read_bytes()[:4000] if damage == "cut short" else b"not a video any more\n" * 200)
    os.utime(out, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns))
    report = restore_video(clip, out, config())
    assert (report.frames, report.skipped) == (48, 0)
    assert report.warnings == ["redoing out.mp4: it cannot be read as a video"]
    assert frame_times(out) == whole
    assert restore_video(clip, out, config()).skipped == 1

    album = tmp_path / "album"
    album.mkdir()
    os.replace(clip, album / "clip.mp4")
    done = tmp_path / "done"
    restore_folder(album, done, config())
    (done / "clip.mp4").write_bytes(b"\0" * 4000)
    os.utime(done / "clip.mp4", ns=((album / "clip.mp4").stat().st_atime_ns, (album / "clip.mp4").stat().st_mtime_ns))
    again = restore_folder(album, done, config())
    assert (again.frames, again.skipped) == (48, 0) and frame_times(done / "clip.mp4") == whole


@pytest.mark.parametrize("suffix", [".mkv", ".gif", ".apng"])
def test_other_containers_tell_a_stretch_from_the_whole(tmp_path, suffix):
    """Matroska keeps a track's length in a tag (to the millisecond), a GIF in its delays, an animated PNG in its
    frame controls (which FFmpeg does not add up)."""
    clip = make_clip(tmp_path / "clip.mp4", frames=48, size=SIZE, audio=False)
    out = tmp_path / f"out{suffix}"
    restore_video(clip, out, config(start=0.5, duration=0.5))
    redone = restore_video(clip, out, config())
    assert (redone.frames, redone.warnings) == (48, [WHOLE.format(suffix=suffix)])
    assert restore_video(clip, out, config()).skipped == 1
    assert len(list(read_frames(out))) == 48


def test_an_animated_webp_tells_a_stretch_from_the_whole(tmp_path):
    source = animated_webp(tmp_path / "loop.webp")
    out = tmp_path / "out.webp"
    restore_video(source, out, config(start=0.5, duration=0.5))
    redone = restore_video(source, out, config())
    assert (redone.frames, redone.warnings) == (48, [WHOLE.format(suffix=".webp")])
    assert restore_video(source, out, config()).skipped == 1
    with Image.open(out) as image:
        assert image.n_frames == 48


def test_the_cli_says_why_it_redoes_a_try(clip, tmp_path):
    out = tmp_path / "out.mp4"
    flags = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]
    runner = CliRunner()
    assert runner.invoke(cli, ["restore", str(clip), "-o", str(out), "--start", "0.5", "--duration", "0.5",
                               *flags]).exit_code == 0
    result = runner.invoke(cli, ["restore", str(clip), "-o", str(out), *flags])
    assert result.exit_code == 0, result.output
    assert f"warning: {WHOLE.format(suffix='.mp4')}\n" in result.stderr
    assert frame_times(out) == frame_times(clip)


@pytest.mark.parametrize(("option", "line"), [
    (("--codec", "nope"), "unknown video encoder 'nope' (try libx264, libx265, libsvtav1, ffv1, prores_ks)"),
    (("--device", "tpu"), ("--device must be auto, cpu, cuda or cuda:N (only NVIDIA GPUs, through CUDA, and the "
                           "CPU are supported), got 'tpu'"))])
def test_a_wrong_option_is_refused_before_a_try_is_said_to_be_redone(clip, tmp_path, option, line):
    """A wrong --codec or --device was refused only after 'redoing out.mp4: it holds 0.5 s ...', as if the work
    had begun. In a folder an unknown --codec failed each video ('skipped clip.mp4: unknown video encoder',
    exit 3): one line, exit 2, before anything is said or written."""
    out = tmp_path / "out.mp4"
    flags = ["--model", "baseline-bicubic-sharpen", "--device", "cpu", *option]
    runner = CliRunner()
    restore_video(clip, out, config(start=0.5, duration=0.5))
    kept = out.read_bytes()
    result = runner.invoke(cli, ["restore", str(clip), "-o", str(out), *flags])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {line}\n"
    assert out.read_bytes() == kept
    folder = tmp_path / "clips"
    folder.mkdir()
    clip.rename(folder / clip.name)
    result = runner.invoke(cli, ["restore", str(folder), "-o", str(tmp_path / "restored"), *flags])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {line}\n" and not (tmp_path / "restored").exists()


def test_lengths_are_compared_by_the_same_figure():
    """A source that gives its length only for all its streams together (audio running on 1 s past its video) is
    compared by the output's whole file too, which carries the same audio: not taken for a longer video each run."""
    from clrface_video.io.extent import Extent

    frame = Fraction(1, 24)
    source = Extent(None, Fraction(3), frame)
    assert Extent(Fraction(2), Fraction(3), frame).like(source) == (3, 3)
    assert Extent(Fraction(2), Fraction(3), frame).like(Extent(Fraction(2), Fraction(3), frame)) == (2, 2)
    assert Extent(None, Fraction(5, 2), frame).like(Extent(Fraction(2), Fraction(3), frame)) == (Fraction(5, 2), 3)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_video_that_starts_after_its_audio_is_done_once(clip, tmp_path, suffix):
    """Matroska's DURATION tag is where a track ends: a video starting 0.85 s after its audio (the research clip
    face_recognition_hamilton.mp4) read 0.85 s too long into .mkv, and each rerun redid it."""
    late = video_late(clip, tmp_path / "late.mp4", Fraction(1, 2))
    with av.open(str(late)) as container:
        assert container.streams.video[0].start_time * container.streams.video[0].time_base == Fraction(1, 2)
    out = tmp_path / f"out{suffix}"
    assert restore_video(late, out, config()).frames == 48
    before = out.stat()
    again = restore_video(late, out, config())
    assert (again.skipped, again.warnings) == (1, [])
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_video_whose_file_gives_no_length_tells_a_stretch_from_the_whole(clip, tmp_path, suffix):
    """A live-written Matroska states no length anywhere: nothing was compared, and a 0.5 s try kept under the
    whole run's name was 'already restored, left as is'. Its packets' times give 2 s (B-frames out of order)."""
    live = live_matroska(clip, tmp_path / "live.mkv")
    out = tmp_path / f"out{suffix}"
    assert restore_video(live, out, config(start=0.5, duration=0.5)).frames == 12
    redone = restore_video(live, out, config())
    assert (redone.frames, redone.skipped, redone.warnings) == (48, 0, [WHOLE.format(suffix=suffix)])
    assert frame_times(out) == frame_times(live)
    assert restore_video(live, out, config()).skipped == 1
    part = restore_video(live, out, config(start=0.5, duration=0.5))
    assert (part.frames, part.warnings) == (12, [PART.format(suffix=suffix)])
    # a source too large to read through has no known length: its output is judged by the stretch it says it holds
    # (io.stretch_tag: 0.5 s from 0.5 s, not the whole asked), and the whole one, left as is
    from clrface_video.io import extent

    assert float(extent.extent(live).seconds) == pytest.approx(2, abs=0.001)  # Matroska counts milliseconds
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(extent, "MAX_SCANNED_BYTES", live.stat().st_size - 1)
        assert extent.extent(live).seconds is None
        assert restore_video(live, out, config()).warnings == [
            f"redoing out{suffix}: it holds a 0.5 s stretch of the video (as its stretch tag says), not all of it"]
        assert restore_video(live, out, config()).skipped == 1


def over_2_gib(path: Path) -> Path:
    """`path` made longer than extent.MAX_SCANNED_BYTES by a hole at its end (a sparse file: nothing written), its
    date kept, so a rerun takes it for the same original; skipped where the file system fills the hole."""
    from clrface_video.io.extent import MAX_SCANNED_BYTES

    before = path.stat()
    with path.open("r+b") as file:
        file.truncate(MAX_SCANNED_BYTES + 4096)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    if path.stat().st_blocks * 512 > 1 << 20:
        path.unlink()
        pytest.skip("this file system writes a sparse file's hole out")
    return path


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_source_over_2_gib_that_states_no_length_tells_a_stretch_from_the_whole(clip, tmp_path, suffix):
    """A live Matroska over 2 GiB states no length and is too large to read through for one: nothing was compared,
    so a 0.5 s try from 0 kept under the whole run's name, and the whole video under the try's, were both 'already
    restored, left as is'. The output's own length against the stretch asked, and its stretch tag, tell them."""
    from clrface_video.io.extent import extent
    from clrface_video.reruns import stale
    from clrface_video.types import TimeSpan

    live = live_matroska(clip, tmp_path / "live.mkv")
    whole, part, past = (tmp_path / f"{name}{suffix}" for name in ("whole", "part", "past"))
    restore_video(live, whole, config())
    restore_video(live, part, config(duration=0.5))
    restore_video(live, past, config(duration=10))  # asked past the source's end: all of it
    over_2_gib(live)
    assert extent(live).seconds is None
    assert stale(live, part, None) == "it holds a 0.5 s stretch of the video (as its stretch tag says), not all of it"
    assert stale(live, part, TimeSpan(0, 1)) == ("it holds a 0.5 s stretch of the video (as its stretch tag says), "
                                                 "not the 1 s asked (0-1 s)")
    assert stale(live, whole, TimeSpan(0, 0.5)) == "it holds 2 s of the video, not the 0.5 s asked (0-0.5 s)"
    assert [stale(live, whole, None), stale(live, part, TimeSpan(0, 0.5)), stale(live, past, None)] == [None] * 3
    redone = restore_video(live, whole, config(duration=0.5))
    assert (redone.frames, redone.skipped) == (12, 0)
    assert redone.warnings == [f"redoing whole{suffix}: it holds 2 s of the video, not the 0.5 s asked (0-0.5 s)"]
    assert len(frame_times(whole)) == 12
    assert restore_video(live, whole, config(duration=0.5)).skipped == 1


def test_a_raw_h264_dump_tells_a_stretch_from_the_whole(tmp_path):
    """A raw .h264 stream (a DVR's, a camera's dump) has no times at all: its length is its frames' durations
    added up. A whole output under the name a stretch asks for was kept as that stretch."""
    dump = make_clip(tmp_path / "cam.h264", frames=48, size=SIZE, audio=False)
    out = tmp_path / "out.mkv"
    assert restore_video(dump, out, config()).frames == 48
    assert restore_video(dump, out, config()).skipped == 1
    redone = restore_video(dump, out, config(start=0.5, duration=0.5))
    assert (redone.frames, redone.warnings) == (12, [PART.format(suffix=".mkv")])


@pytest.mark.parametrize(("suffix", "said"), [
    (".mp4", "it holds the video from {held} s, not from {asked} s (as its stretch tag says)"),
    (".gif", "its frames are not the video's from {asked} s (they differ by ")])
def test_a_stretch_from_another_start_is_redone(tmp_path, suffix, said):
    """--start 0.5 --duration 0.5, then --start 1.25 --duration 0.5 to the same name: as long as asked, so 'already
    there; left as is', holding the wrong half second. An .mp4 says which stretch it holds (io.stretch_tag); a GIF,
    which keeps no tags, is told by its frames, set beside the source's from 1.25 s (io.stretch_start)."""
    clip = make_clip(tmp_path / "clip.mp4", frames=48, size=SIZE, audio=False)
    out = tmp_path / f"out{suffix}"
    restore_video(clip, out, config(start=0.5, duration=0.5))
    report = restore_video(clip, out, config(start=1.25, duration=0.5))
    assert (report.frames, report.skipped) == (12, 0)
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith(f"redoing out{suffix}: " + said.format(held=0.5, asked=1.25))
    first = next(read_frames(out)).image.astype(float)
    assert np.abs(first - clip_image(30, 48, SIZE)).mean() < np.abs(first - clip_image(12, 48, SIZE)).mean() / 2
    before = out.stat()
    again = restore_video(clip, out, config(start=1.25, duration=0.5))
    assert (again.frames, again.skipped, again.warnings) == (0, 1, [])
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    back = restore_video(clip, out, config(duration=0.5))  # from 0 this time: as long again, from another start
    assert back.frames == 12 and back.warnings[0].startswith(f"redoing out{suffix}: "
                                                             + said.format(held=1.25, asked=0))


def test_the_cli_redoes_a_try_from_another_start(clip, tmp_path):
    out = tmp_path / "out.mp4"
    flags = ["--model", "baseline-bicubic-sharpen", "--device", "cpu", "--duration", "0.5"]
    runner = CliRunner()
    assert runner.invoke(cli, ["restore", str(clip), "-o", str(out), "--start", "0.5", *flags]).exit_code == 0
    result = runner.invoke(cli, ["restore", str(clip), "-o", str(out), "--start", "1.25", *flags])
    assert result.exit_code == 0, result.output
    assert "warning: redoing out.mp4: it holds the video from 0.5 s, not from 1.25 s (as its stretch tag says)\n" \
        in result.stderr
    before = out.stat()
    result = runner.invoke(cli, ["restore", str(clip), "-o", str(out), "--start", "1.25", *flags])
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
