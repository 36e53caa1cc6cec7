"""Reruns into an image sequence: redone where a frame the run writes is missing or from another start, left as
is (every file untouched) where all are there, with a warning for frames an earlier, longer run left."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.io.sequence import frame_numbers
from clrface_video.pipeline import restore_video
from tests.media import clip_image, make_clip

SIZE = (128, 96)
MISSING = "redoing {pattern}: {count} of its {of} frames are missing ({first} first)"
STRAYS = ("{pattern} also holds {count} frames this run does not write ({first} to {last}), left by an earlier run; "
          "delete them if they are not wanted")


def config(**changes) -> RestoreConfig:
    return RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", track_identity=False, **changes)


def stats(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's inode and modification time: what a run that leaves its output as is must not change."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture
def clip(tmp_path) -> Path:
    """2 s at 24 fps, no audio (a sequence holds none)."""
    return make_clip(tmp_path / "clip.mp4", frames=48, size=SIZE, audio=False)


@pytest.fixture
def frames(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    return folder / "out_%05d.png"


@pytest.mark.parametrize("lost", [range(30, 49), range(20, 21), range(1, 3)],
                         ids=["a run stopped as it moved its frames", "a frame deleted", "the first ones deleted"])
def test_missing_frames_are_redone(clip, frames, lost):
    """A run killed while it moved its frames into place (or frames deleted since): 'already exists; left as is',
    as any frame was there, and the sequence stayed short for good."""
    restore_video(clip, frames, config())
    for number in lost:
        os.remove(frames.with_name(f"out_{number:05d}.png"))
    report = restore_video(clip, frames, config())
    assert (report.frames, report.skipped) == (48, 0)
    assert report.warnings == [MISSING.format(pattern="out_%05d.png", count=len(lost), of=48,
                                              first=f"out_{lost[0]:05d}.png")]
    assert frame_numbers(frames) == list(range(1, 49))
    before = stats(frames.parent)
    again = restore_video(clip, frames, config())
    assert (again.frames, again.skipped, again.warnings) == (0, 1, [])
    assert stats(frames.parent) == before


def test_frames_older_than_their_original_are_redone(clip, frames):
    """The sequence's frames were never dated against their original: a clip edited since was 'left as is'."""
    restore_video(clip, frames, config())
    later = frames.with_name("out_00001.png").stat().st_mtime_ns + 60 * 10**9
    os.utime(clip, ns=(later, later))
    report = restore_video(clip, frames, config())
    changed = "redoing out_%05d.png: the original changed since it was restored"
    assert (report.frames, report.warnings) == (48, [changed])


def test_a_stretch_from_another_start_is_redone(clip, frames):
    """A video's stretch is numbered from 1 whatever its start: the same count of frames from 0.5 s was kept for
    a run from 1.25 s."""
    restore_video(clip, frames, config(start=0.5, duration=0.5))
    report = restore_video(clip, frames, config(start=1.25, duration=0.5))
    assert (report.frames, report.skipped) == (12, 0)
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("redoing out_%05d.png: its frames are not the video's from 1.25 s")
    first = np.asarray(Image.open(frames.with_name("out_00001.png")), dtype=np.float64)
    assert np.abs(first - clip_image(30, 48, SIZE)).mean() < np.abs(first - clip_image(12, 48, SIZE)).mean()
    before = stats(frames.parent)
    assert restore_video(clip, frames, config(start=1.25, duration=0.5)).skipped == 1
    assert stats(frames.parent) == before


def test_frames_a_longer_run_left_are_warned_of_and_kept(clip, frames):
    """The whole clip, then its first second to the same frames: those are there, from the start asked, and left
    as is; the 24 after them are said, not silently left beside the shorter output (nor deleted: a scan restored
    in parts keeps each part's numbers)."""
    restore_video(clip, frames, config())
    before = stats(frames.parent)
    report = restore_video(clip, frames, config(duration=1))
    assert (report.frames, report.skipped) == (0, 1)
    assert report.warnings == [STRAYS.format(pattern="out_%05d.png", count=24, first="out_00025.png",
                                             last="out_00048.png")]
    assert stats(frames.parent) == before


def test_a_scan_keeps_its_numbers_and_is_completed(tmp_path):
    """A numbered scan's stretch keeps the scan's numbers: the frames a rerun expects are those, from 1001 + 12."""
    scan = tmp_path / "scan"
    scan.mkdir()
    for i in range(48):
        Image.fromarray(clip_image(i, 48, SIZE)).save(scan / f"scan_{1001 + i:04d}.png")
    source = scan / "scan_%04d.png"
    out = tmp_path / "out"
    out.mkdir()
    target = out / "out_%04d.png"
    assert restore_video(source, target, config(start=0.5, duration=0.5)).frames == 12
    assert frame_numbers(target) == list(range(1013, 1025))
    os.remove(out / "out_1024.png")
    report = restore_video(source, target, config(start=0.5, duration=0.5))
    assert report.warnings == [MISSING.format(pattern="out_%04d.png", count=1, of=12, first="out_1024.png")]
    before = stats(out)
    assert restore_video(source, target, config(start=0.5, duration=0.5)).skipped == 1
    assert stats(out) == before
    later = restore_video(source, target, config(start=1, duration=0.5))  # the next part, beside the first
    assert later.frames == 12 and frame_numbers(target) == list(range(1013, 1037))
    assert later.warnings == [  # none of its own frames there yet; the earlier part said, and kept
        STRAYS.format(pattern="out_%04d.png", count=12, first="out_1013.png", last="out_1024.png"),
        MISSING.format(pattern="out_%04d.png", count=12, of=12, first="out_1025.png")]


def test_the_cli_says_why_it_redoes_a_sequence(clip, frames):
    flags = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]
    runner = CliRunner()
    assert runner.invoke(cli, ["restore", str(clip), "-o", str(frames), *flags]).exit_code == 0
    os.remove(frames.with_name("out_00048.png"))
    result = runner.invoke(cli, ["restore", str(clip), "-o", str(frames), *flags])
    assert result.exit_code == 0, result.output
    missing = MISSING.format(pattern="out_%05d.png", count=1, of=48, first="out_00048.png")
    assert result.stderr == f"warning: {missing}\n"
    assert frame_numbers(frames) == list(range(1, 49))


def test_a_scan_restored_to_a_video_is_judged_as_a_video(tmp_path):
    """A scan into one video file was never judged at all: a 0.5 s try was kept as the whole scan, and a
    rescanned frame changed nothing. Its length is its frames at --fps; its date its newest frame's."""
    scan = tmp_path / "scan"
    scan.mkdir()
    for i in range(60):
        Image.fromarray(clip_image(i, 60, SIZE)).save(scan / f"scan_{i:04d}.png")
    source, out = scan / "scan_%04d.png", tmp_path / "out.mp4"
    assert restore_video(source, out, config(fps=30, start=0.5, duration=0.5)).frames == 15
    whole = restore_video(source, out, config(fps=30))
    short = "redoing out.mp4: it holds 0.5 s of the video, not the 2 s asked (all of it)"
    assert (whole.frames, whole.warnings) == (60, [short])
    before = out.stat()
    assert restore_video(source, out, config(fps=30)).skipped == 1
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert restore_video(source, out, config(fps=30, start=0.5, duration=0.5)).frames == 15
    other = restore_video(source, out, config(fps=30, start=1, duration=0.5))
    moved = "redoing out.mp4: it holds the video from 0.5 s, not from 1 s (as its stretch tag says)"
    assert (other.frames, other.warnings) == (15, [moved])
    assert restore_video(source, out, config(fps=30, start=1, duration=0.5)).skipped == 1
    rescanned = scan / "scan_0042.png"
    later = out.stat().st_mtime_ns + 60 * 10**9
    os.utime(rescanned, ns=(later, later))
    again = restore_video(source, out, config(fps=30))
    assert (again.frames, again.warnings) == (60, ["redoing out.mp4: the original changed since it was restored"])
