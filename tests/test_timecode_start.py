"""A stretch cut with --start carries the timecode of its own first frame: non-drop and drop-frame, in every container."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from clrface_video.io.timecode import (
    Timecode,
    frame_to_timecode,
    moved_timecode,
    parse_timecode,
    timecode_to_frame,
)
from tests.media import clip_image, make_clip
from tests.test_cli import BASELINE, run

SMALL = (128, 96)
NTSC = Fraction(30000, 1001)


# -- counting ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "fps", "number"), [
    ("00:00:00:00", 25, 0),
    ("01:00:00:00", 25, 90000),
    ("01:01:30:00", 25, 92250),  # the preview at 90 s of a clip starting at 01:00:00:00
    ("00:00:59;29", 30, 1799),
    ("00:01:00;02", 30, 1800),  # ;00 and ;01 are skipped at each minute ...
    ("00:09:59;29", 30, 17981),
    ("00:10:00;00", 30, 17982),  # ... but the tenth
    ("01:00:00;00", 30, 107892),
    ("00:01:00;04", 60, 3600),  # four skipped at 59.94
    ("00:10:00;00", 60, 35964),
    ("00:01:00:00", 30, 1800),  # non-drop at 30 skips nothing
])
def test_a_timecode_names_its_frame_number(text, fps, number):
    assert timecode_to_frame(parse_timecode(text), fps) == number
    assert str(frame_to_timecode(number, fps, parse_timecode(text).separator)) == text


@pytest.mark.parametrize(("fps", "separator"), [(25, ":"), (24, ":"), (30, ";"), (60, ";")])
def test_frame_numbers_and_timecodes_round_trip(fps, separator):
    day = 24 * 3600 * fps - (0 if separator == ":" else fps // 15 * 24 * 54)
    for number in [*range(0, 40000, 7), *range(day - 2000, day)]:
        timecode = frame_to_timecode(number, fps, separator)
        assert timecode.separator == separator and timecode.frames < fps
        assert timecode_to_frame(timecode, fps) == number
    assert str(frame_to_timecode(day, fps, separator)) == f"00:00:00{separator}00"  # a day later: midnight again


def test_a_timecode_wraps_past_midnight_as_editors_tools_do():
    assert moved_timecode("23:59:59:24", 10, Fraction(25)) == "00:00:00:09"
    assert moved_timecode("23:59:59;29", 3, NTSC) == "00:00:00;02"
    assert moved_timecode("00:00:59;28", 6, NTSC) == "00:01:00;06"  # counted past the skipped ;00 and ;01
    assert moved_timecode("10:00:00.00", 1800, NTSC) == "10:01:00.02"  # FFmpeg's '.' also drops; kept as it is


@pytest.mark.parametrize(("text", "fps"), [("1:00:00", 25), ("01:60:00:00", 25), ("01:00:00:25", 25),
                                          ("01:00:00;00", 25), ("00:01:00;01", 30)])
def test_what_is_not_a_timecode_says_so(text, fps):
    with pytest.raises(ValueError, match="timecode|drop-frame|frames a second|skips"):
        timecode_to_frame(parse_timecode(text), fps)


def test_a_one_digit_frame_count_is_a_timecode_written_back_alike():
    """FFmpeg writes a timecode of 10 fps or less with one frame digit (01:00:00:0); it was 'not a timecode'."""
    assert parse_timecode("01:00:00:0") == Timecode(1, 0, 0, 0, ":", digits=1)
    assert moved_timecode("01:00:00:0", 25, Fraction(10)) == "01:00:02:5"
    assert moved_timecode("01:00:00:00", 25, Fraction(10)) == "01:00:02:05"  # two digits stay two


def test_a_timecode_keeps_its_separator():
    assert parse_timecode("00:59:59;28") == Timecode(0, 59, 59, 28, ";") and parse_timecode("00:59:59;28").drop
    assert not parse_timecode("01:00:00:00").drop


# -- restored stretches ------------------------------------------------------------------------------

def tagged_clip(path: Path, rate: Fraction, timecode: str, frames: int = 20) -> Path:
    """A small H.264 clip (DV in a .dv) at `rate` whose timecode tag is on the video stream (.mov, .mp4, .mkv)
    or on the file (.mxf, .dv, where FFmpeg reads it)."""
    dv = path.suffix == ".dv"
    size = ((720, 480) if rate == NTSC else (720, 576)) if dv else SMALL  # NTSC or PAL DV
    with av.open(str(path), "w") as out:
        video = out.add_stream("dvvideo" if dv else "libx264", rate=rate)
        video.width, video.height, video.pix_fmt = *size, "yuv411p" if size == (720, 480) else "yuv420p"
        if path.suffix == ".mxf":
            video.codec_context.max_b_frames = 0
        (out.metadata if path.suffix in (".mxf", ".dv") else video.metadata)["timecode"] = timecode
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, size), format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def restore(src: Path, out: Path, *stretch: str) -> Path:
    result = run("restore", src, "-o", out, *stretch, *BASELINE)
    assert result.exit_code == 0, result.output
    return out


def timecode_of(path: Path) -> str:
    """The output's timecode as FFmpeg reads it back: the video stream's, else the file's (MXF, DV)."""
    with av.open(str(path)) as container:
        tags = {**container.metadata, **container.streams.video[0].metadata}
    return next(value for key, value in tags.items() if key.lower() == "timecode")


def timecode_track(path: Path) -> int:
    """The frame number a .mov/.mp4 timecode track stores (its one sample)."""
    with av.open(str(path)) as container:
        (sample,) = [bytes(p) for p in container.demux(container.streams.data[0]) if p.size]
    return int.from_bytes(sample, "big")


@pytest.mark.parametrize("suffix", [".mov", ".mp4", ".mkv", ".mxf", ".dv"])
def test_a_stretch_names_its_first_frame_by_timecode(tmp_path, suffix):
    """25 fps from 01:00:00:00: a stretch from 0.4 s opens on the source's frame 10, 01:00:00:10."""
    src = tagged_clip(tmp_path / f"in{suffix}", Fraction(25), "01:00:00:00")
    out = restore(src, tmp_path / f"out{suffix}", "--start", "0.4", "--duration", "0.2")
    assert timecode_of(out) == "01:00:00:10"
    if suffix in (".mov", ".mp4"):
        assert timecode_track(out) == 90010
    assert timecode_of(restore(src, tmp_path / f"whole{suffix}")) == "01:00:00:00"  # without --start, the source's


@pytest.mark.parametrize("suffix", [".mov", ".mkv"])
def test_a_slow_clips_one_digit_timecode_names_its_first_frame(tmp_path, suffix):
    """10 fps from 01:00:00:0, as FFmpeg writes it there: a stretch from 0.5 s opens on frame 5, 01:00:00:5
    (the timecode was kept as it was, with a warning that it was not one)."""
    src = tagged_clip(tmp_path / f"in{suffix}", Fraction(10), "01:00:00:0")
    assert timecode_of(src) == "01:00:00:0"
    out = restore(src, tmp_path / f"out{suffix}", "--start", "0.5", "--duration", "0.5")
    assert timecode_of(out) == "01:00:00:5"
    if suffix == ".mov":
        assert timecode_track(out) == 36005


@pytest.mark.parametrize(("suffix", "into"), [(".mov", ".mov"), (".mxf", ".mxf"), (".dv", ".dv")])
def test_a_drop_frame_stretch_counts_past_the_skipped_numbers(tmp_path, suffix, into):
    """29.97 fps from 00:00:59;28: frame 6 is 00:01:00;06 (;00 and ;01 do not exist at minute 1), not ;04."""
    src = tagged_clip(tmp_path / f"in{suffix}", NTSC, "00:00:59;28")
    out = restore(src, tmp_path / f"out{into}", "--start", "0.2", "--duration", "0.1")
    assert timecode_of(out) == "00:01:00;06"
    if into == ".mov":
        assert timecode_track(out) == 1804  # 1798 + 6 frames
    assert timecode_of(restore(src, tmp_path / f"whole{into}", "--duration", "0.1")) == "00:00:59;28"


def test_a_variable_rate_stretch_counts_its_time_at_the_timecodes_rate(tmp_path):
    """Frames at 0, 42, 125, 146, 188, 271, 292, 333 ms under a 24 fps timecode: from 0.3 s the first frame is
    the one on screen then, at 292 ms, 7.01 timecode frames in, so 01:00:00:07; from 0.34 s the one at 333 ms,
    7.99 frames in, so 01:00:00:08."""
    src = make_clip(tmp_path / "in.mov", frames=9, size=SMALL, vfr=True, timecode="01:00:00:00", audio=False)
    out = restore(src, tmp_path / "out.mov", "--start", "0.3")
    assert timecode_of(out) == "01:00:00:07" and timecode_track(out) == 24 * 3600 + 7
    out = restore(src, tmp_path / "later.mov", "--start", "0.34")
    assert timecode_of(out) == "01:00:00:08" and timecode_track(out) == 24 * 3600 + 8


def test_a_timecode_that_cannot_be_counted_is_kept_with_a_warning(tmp_path, warnings_logged):
    src = tagged_clip(tmp_path / "in.mkv", Fraction(25), "01:00:00;00")  # drop-frame does not exist at 25 fps
    out = restore(src, tmp_path / "out.mkv", "--start", "0.4", "--duration", "0.2")
    assert timecode_of(out) == "01:00:00;00"
    assert "timecode 01:00:00;00 is kept as it is" in warnings_logged.text
