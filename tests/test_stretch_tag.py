"""io.stretch_tag: an output says which stretch of its source it holds, so a rerun from another start redoes it even
where its frames look the same (a still shot), and a later restore of the output does not carry it on."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from click.testing import CliRunner

from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.io import stretch_tag
from clrface_video.io.stretch_start import other_start
from clrface_video.pipeline import restore_video
from clrface_video.types import TimeSpan
from tests.media import clip_image

SIZE = (128, 96)
FLAGS = ["--model", "baseline-bicubic-sharpen", "--device", "cpu", "--duration", "0.5"]


def config(**changes) -> RestoreConfig:
    return RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", track_identity=False, **changes)


def still_clip(path: Path, frames: int = 48) -> Path:
    """2 s at 24 fps of one unchanging picture: every start shows the same frames, so thumbnails cannot tell."""
    image = clip_image(0, frames, SIZE)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def restore(clip: Path, out: Path, start: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["restore", str(clip), "-o", str(out), "--start", start, *FLAGS])
    return result.exit_code, result.stderr


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_a_still_stretch_from_another_start_is_redone(tmp_path, suffix):
    """--start 0.5 --duration 0.5, then --start 1.0 --duration 0.5 to one output: a still shot's frames are the same
    at either start, so the rerun kept the half second from 0.5 s ('already there'). Its tag says where it began.
    A rerun redoes an output with a 'warning: redoing' line and a new file; it leaves one as is silently, the same
    file (inode, date, bytes)."""
    clip = still_clip(tmp_path / "still.mp4")
    out = tmp_path / f"out{suffix}"
    assert restore(clip, out, "0.5") == (0, "")
    assert other_start(clip, out, TimeSpan(1.0, 1.5), Fraction(1, 2)) is None  # the thumbnails cannot tell
    code, said = restore(clip, out, "1.0")
    assert code == 0
    assert said == f"warning: redoing out{suffix}: it holds the video from 0.5 s, not from 1 s (as its stretch tag " \
        "says)\n"
    assert stretch_tag.held_stretch(out) == stretch_tag.HeldStretch(Fraction(1), Fraction(1, 2))
    before, kept = out.stat(), out.read_bytes()
    assert restore(clip, out, "1.0") == (0, "")
    after = out.stat()
    assert (after.st_ino, after.st_mtime_ns, out.read_bytes()) == (before.st_ino, before.st_mtime_ns, kept)
    with av.open(str(out)) as container:  # the box after the moov leaves the file whole for FFmpeg
        assert len(list(container.decode(video=0))) == 12


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_whole_run_is_told_apart_and_a_later_restore_does_not_carry_the_stretch(tmp_path, suffix):
    """A whole run says `whole`; a restore of a stretch's output is a whole run of that file, not the stretch it
    came from (copy_metadata copies the source's tags, but not this one: an MPEG-TS output, which keeps no tags,
    would have warned that it leaves it out)."""
    clip = still_clip(tmp_path / "still.mp4")
    whole, part, again = (tmp_path / f"{name}{suffix}" for name in ("whole", "part", "again"))
    restore_video(clip, whole, config())
    restore_video(clip, part, config(start=0.5, duration=0.5))
    restore_video(part, again, config())
    assert stretch_tag.held_stretch(whole) == stretch_tag.HeldStretch(Fraction(0), whole=True)
    assert stretch_tag.held_stretch(part) == stretch_tag.HeldStretch(Fraction(1, 2), Fraction(1, 2))
    assert stretch_tag.held_stretch(again) == stretch_tag.HeldStretch(Fraction(0), whole=True)
    with av.open(str(again)) as container:
        assert [value for key, value in container.metadata.items() if key.upper() == stretch_tag.TAG] == \
            (["whole"] if suffix == ".mkv" else [])
    assert restore_video(part, again, config()).skipped == 1
    # nor is it one of the user's tags that a tagless container is said to leave out
    assert restore_video(part, tmp_path / "again.ts", config()).warnings == []


def test_the_tag_reads_back_and_nothing_else_is_taken_for_one(tmp_path):
    for span in (None, TimeSpan(30, 40), TimeSpan(1.25), TimeSpan(0.1, 0.35)):
        held = stretch_tag.parse(stretch_tag.describe(span))
        assert held is not None and held.other_start(span) is None
    assert stretch_tag.describe(TimeSpan(0.1, 0.35)) == "start=0.1 duration=0.25"
    assert [stretch_tag.parse(value) for value in ("", "start=", "start=1 end=2", "duration=1")] == [None] * 4
    older = tmp_path / "older.mp4"  # an output of a version that wrote no tag: the thumbnails decide
    still_clip(older, frames=4)
    assert stretch_tag.held_stretch(older) is None
