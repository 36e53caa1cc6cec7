"""The command line: options, one-line errors with exit 2 and no output for bad inputs, models, detect."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.errors import ClrfaceError
from tests.media import grace_hopper, make_audio_only, make_clip

BASELINE = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "talk.mp4", frames=6, size=(192, 160))


# -- bad inputs: exit 2, one line, nothing written -------------------------------------------------

def _text_as_mp4(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    return path


def _zero_length(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def _truncated(folder: Path) -> Path:
    full = make_clip(folder / "full.mp4", frames=12, size=(128, 96))
    data = full.read_bytes()
    full.unlink()
    path = folder / "truncated.mp4"
    path.write_bytes(data[: len(data) // 3])
    return path


def _audio_only(folder: Path) -> Path:
    return make_audio_only(folder / "song.m4a")


def _not_an_image(folder: Path) -> Path:
    path = folder / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    return path


@pytest.mark.parametrize("make, words", [
    (lambda folder: folder / "missing.mp4", ["not found", "missing.mp4"]),
    (_text_as_mp4, ["notes.mp4"]),
    (_zero_length, ["empty"]),
    (_truncated, ["truncated.mp4"]),
    (_audio_only, ["no video stream"]),
    (_not_an_image, ["photo.jpg"]),
], ids=["missing", "text-as-mp4", "zero-length", "truncated", "audio-only", "broken-jpeg"])
def test_bad_input_gives_one_line_error_exit_2_and_no_output(tmp_path, make, words):
    source = make(tmp_path)
    before = files_in(tmp_path)
    original = source.read_bytes() if source.exists() else None
    result = run("restore", source, *BASELINE)
    assert_one_line_error(result, *words)
    assert files_in(tmp_path) == before  # no output, no partial file
    if original is not None:
        assert source.read_bytes() == original


def test_output_equal_to_input_is_refused(small_clip):
    original = small_clip.read_bytes()
    result = run("restore", small_clip, "-o", small_clip, *BASELINE)
    assert_one_line_error(result, "is the input; choose another -o OUTPUT")
    same_via_dots = small_clip.parent / ".." / small_clip.parent.name / small_clip.name
    assert_one_line_error(run("restore", small_clip, "-o", same_via_dots, *BASELINE), "is the input")
    assert small_clip.read_bytes() == original


def test_the_librarys_messages_name_the_flags_on_the_command_line(tmp_path, small_clip):
    """The library words a message for the front end that runs it (errors.option_name): the command line's flags
    here, a script's keywords from Python (test_api), and the keywords again once a command is over."""
    from clrface_video import api

    result = run("restore", small_clip, "-o", tmp_path / "out.mkv", "--codec", "ffv1", "--preset", "fast", *BASELINE)
    assert result.exit_code == 0, result.output
    assert "warning: --preset is for libx264 and libx265; ffv1 takes none, so it is ignored" in result.stderr
    assert_one_line_error(run("restore", small_clip, "-o", tmp_path / "late.mp4", "--start", "9", *BASELINE),
                          "(--start is past its end)")
    with pytest.raises(ClrfaceError, match=r"choose another output \(the input is never changed\)$"):
        api.restore_video(small_clip, small_clip, model="baseline-bicubic-sharpen", device="cpu")


def test_side_files_never_replace_an_input_or_the_output(tmp_path, small_clip):
    """--report, detect --draw and eval --compare name files too: none may land on what the job reads or writes."""
    from shutil import copyfile

    clip = Path(copyfile(small_clip, tmp_path / "talk.mp4"))
    photo = tmp_path / "face.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photo)
    (tmp_path / "link.png").symlink_to(photo)
    originals = {p: p.read_bytes() for p in (clip, photo)}
    before = files_in(tmp_path)
    for args, words in [
        (["restore", clip, "--report", clip], ["--report", "is the input"]),
        (["restore", clip, "-o", tmp_path / "out.mp4", "--report", tmp_path / "out.mp4"], ["is the output"]),
        (["restore", clip, "--report", tmp_path / "talk_restored.mp4"], ["is the output"]),  # the default name
        (["restore", photo, "--report", tmp_path / "link.png"], ["is the input"]),
        (["detect", photo, "--draw", photo], ["--draw", "is the input"]),
        (["detect", photo, "--draw", tmp_path / "link.png"], ["is the input"]),
        (["detect", photo, "--draw", tmp_path / "faces.xyz"], ["--draw", ".png"]),
        (["eval", clip, "--degrade-video", "--out", tmp_path / "ev", "--compare", clip], ["--compare", "is the input"]),
    ]:
        assert_one_line_error(run(*args, *(BASELINE if args[0] == "restore" else [])), *words)
    assert files_in(tmp_path) == before
    assert all(p.read_bytes() == data for p, data in originals.items())


def test_an_output_under_a_file_or_a_folder_given_to_detect_are_one_line_errors(tmp_path, small_clip):
    assert_one_line_error(run("restore", small_clip, "-o", small_clip / "x.mp4", *BASELINE), "is a file, not a folder")
    assert_one_line_error(run("detect", tmp_path), "is a folder")


def test_a_file_name_with_an_escaped_space_is_a_file_not_a_sequence(tmp_path, small_clip):
    from shutil import copyfile

    clip = Path(copyfile(small_clip, tmp_path / "party%20dance.mp4"))
    result = run("restore", clip, *BASELINE)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "party%20dance_restored.mp4").is_file()


def test_a_folder_with_nothing_to_restore_says_so(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no pictures here")
    assert_one_line_error(run("restore", tmp_path / "notes", *BASELINE), "no photos or videos in")
    assert not (tmp_path / "notes_restored").exists()


def test_output_folder_inside_input_folder_is_refused(tmp_path):
    (tmp_path / "album").mkdir()
    result = run("restore", tmp_path / "album", "-o", tmp_path / "album" / "out", *BASELINE)
    assert_one_line_error(result, "inside the input folder")
    assert not (tmp_path / "album" / "out").exists()


def test_an_output_folder_holding_the_input_is_refused_where_the_copy_would_land_on_the_inputs(tmp_path):
    """Photos/Photos, as photo exports nest them: Photos restored into its parent would write Photos/Photos/a.jpg's
    copy over Photos/a.jpg (with --overwrite) or take that input for its finished output (without)."""
    from PIL import Image

    album = tmp_path / "Photos"
    (album / "Photos").mkdir(parents=True)
    Image.new("RGB", (32, 32), (200, 10, 10)).save(album / "a.png")
    Image.new("RGB", (32, 32), (10, 10, 200)).save(album / "Photos" / "a.png")
    before = {p: p.read_bytes() for p in album.rglob("*.png")}
    for extra in ((), ("--overwrite",)):
        assert_one_line_error(run("restore", album, "-o", tmp_path, *extra, *BASELINE),
                              f"output folder {tmp_path} holds the input folder {album}")
    assert {p: p.read_bytes() for p in album.rglob("*.png")} == before
    inner = run("restore", album / "Photos", "-o", album.parent / "elsewhere", *BASELINE)
    assert inner.exit_code == 0 and (album.parent / "elsewhere" / "a.png").is_file()
    beside = run("restore", album / "Photos", "-o", album / "Photos_restored", *BASELINE)  # inside the parent, apart
    assert beside.exit_code == 0 and (album / "Photos_restored" / "a.png").is_file()


def test_an_output_folder_holding_the_input_never_replaces_a_photo_already_there(tmp_path):
    """`restore pics/2009 -o pics` wrote 2009/x.jpg's restored copy over pics/x.jpg, another photo of the library:
    being older than 2009/x.jpg it was taken for a stale copy ('warning: redoing x.jpg'). Refused, nothing written;
    and so is a folder with no photo of the same name there, so that its rerun is not refused where it was not."""
    import os

    from PIL import Image

    library = tmp_path / "pics"
    (library / "2009").mkdir(parents=True)
    (library / "2010").mkdir()
    Image.fromarray(grace_hopper()).save(library / "x.jpg")
    os.utime(library / "x.jpg", (1_500_000_000, 1_500_000_000))  # taken years before the 2009 scan was made
    Image.new("RGB", (64, 64), (10, 10, 200)).save(library / "2009" / "x.jpg")
    Image.new("RGB", (64, 64), (10, 200, 10)).save(library / "2010" / "y.jpg")
    before = {p: p.read_bytes() for p in library.rglob("*.jpg")}
    for year, extra in (("2009", ()), ("2009", ("--overwrite",)), ("2010", ())):
        assert_one_line_error(run("restore", library / year, "-o", library, *extra, *BASELINE),
                              f"output folder {library} holds the input folder {library / year}:",
                              "such as " + str(library / f"{year}_restored"))
    assert {p: p.read_bytes() for p in library.rglob("*.jpg")} == before
    assert sorted(p.name for p in library.iterdir()) == ["2009", "2010", "x.jpg"]


def test_an_output_folder_inside_the_input_spelled_in_another_case_is_refused(tmp_path, monkeypatch):
    """On macOS's (and Windows') file systems Album and album are one folder: -o album/restored for the input Album
    was not seen to be inside it (the names were compared), so a rerun read the restored photos as inputs. Linux
    folders are case-sensitive: os.path.samefile is made to compare as macOS does."""
    import os

    from PIL import Image

    def samefile_as_on_macos(a, b):
        return str(Path(a).resolve()).lower() == str(Path(b).resolve()).lower()

    (tmp_path / "Album").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "Album" / "a.png")
    monkeypatch.setattr(os.path, "samefile", samefile_as_on_macos)
    result = run("restore", tmp_path / "Album", "-o", tmp_path / "album" / "restored", *BASELINE)
    assert_one_line_error(result, "inside the input folder")
    assert not (tmp_path / "album").exists()
    assert run("restore", tmp_path / "Album", "-o", tmp_path / "Album_restored", *BASELINE).exit_code == 0


@pytest.fixture
def no_file_ids(monkeypatch):
    """Some Windows file systems have no file ids (sshfs-win, some network and cloud drives): every file's and
    folder's st_ino is 0 there, and os.path.samefile calls any two on the drive one. os.stat is made to answer so."""
    import os

    real_stat = os.stat

    def without_file_ids(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        rest = {name: getattr(st, name) for name in dir(st) if name.endswith("_ns") or name == "st_blocks"}
        return os.stat_result((st.st_mode, 0, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
                               st.st_atime, st.st_mtime, st.st_ctime), rest)

    monkeypatch.setattr(os, "stat", without_file_ids)


def test_an_output_folder_beside_the_input_on_a_drive_without_file_ids_is_not_refused(tmp_path, no_file_ids):
    """Comparing the output's folders with the input by samefile refused every output on such a drive."""
    from PIL import Image

    (tmp_path / "Album").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "Album" / "a.png")
    assert run("restore", tmp_path / "Album", "-o", tmp_path / "Album_restored", *BASELINE).exit_code == 0
    assert (tmp_path / "Album_restored" / "a.png").is_file()
    result = run("restore", tmp_path / "Album", "-o", tmp_path / "Album" / "restored", *BASELINE)
    assert_one_line_error(result, "inside the input folder")  # the names still tell that one


def test_an_existing_output_file_on_a_drive_without_file_ids_is_not_called_the_input(tmp_path, no_file_ids):
    """The same for files: -o b.png --overwrite beside a.png was refused as 'the input' there."""
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "b.png")
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "b.png", "--overwrite", *BASELINE).exit_code == 0
    assert np.asarray(Image.open(tmp_path / "b.png"))[0, 0].tolist() == [200, 30, 30]  # a.png's, restored
    result = run("restore", tmp_path / "a.png", "-o", tmp_path / "a.png", "--overwrite", *BASELINE)
    assert_one_line_error(result, "is the input")  # the names still tell that one


@pytest.mark.parametrize("option, words", [
    (["--fidelity", "1.5"], ["--fidelity"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--detector", "mtcnn"], ["--detector"]),
    (["--model", "no-such-model"], ["no-such-model"]),
    (["--device", "tpu"], ["tpu"]),
    (["--device", "mps"], ["mps", "cuda:N"]),
    (["--keep-detail", "-0.1"], ["--keep-detail"]),
    (["--deinterlace", "yes"], ["--deinterlace"]),
    (["--max-upscale", "0"], ["--max-upscale"]),
    (["--duration", "0"], ["--duration"]),
    (["--start", "-1"], ["--start"]),
    (["--start", "1", "--backend", "ray"], ["--backend local"]),
    (["--min-face", "-1"], ["--min-face"]),
    (["--detection-threshold", "1"], ["--detection-threshold"]),
    (["--strength", "0"], ["--strength"]),
    (["--strength", "half"], ["--strength", "half"]),
    (["--report", "/dev/null/r.json"], ["--report", "r.json in /dev/null", "is a file, not a folder"]),
    (["-o", "/tmp/x.jpg"], ["one picture", "x_%06d.png"]),
    (["--crf", "60"], ["--crf 60", "libx264", "0-51"]),
    (["-o", "/tmp/x.webp"], ["one picture", "x_%06d.png"]),
])
def test_bad_options_give_one_line_error(small_clip, option, words):
    before = files_in(small_clip.parent)
    assert_one_line_error(run("restore", small_clip, *option), *words)
    assert files_in(small_clip.parent) == before


def test_face_size_limits_reach_the_job(tmp_path, astronaut):
    from PIL import Image

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    assert_one_line_error(run("restore", photo, "--duration", "2", *BASELINE),
                          "error: --duration picks a stretch of a video; a photo is restored whole")
    for option, value in (("--max-upscale", "0.3"), ("--min-face", "400")):
        out, report = tmp_path / f"out{option}.png", tmp_path / f"r{option}.json"
        assert run("restore", photo, "-o", out, option, value, "--report", report, *BASELINE).exit_code == 0
        assert json.loads(report.read_text())["faces_left_alone"] == 1
        assert np.array_equal(np.asarray(Image.open(out)), astronaut)


def test_detection_threshold_leaves_low_scoring_detections_alone(tmp_path):
    """The shipped sample photo's spacesuit scores 0.61 as a face; the photo default (0.7) leaves it untouched,
    as does --detection-threshold 0.7 in video; 0.56 restores it."""
    from PIL import Image

    sample = Path(__file__).parents[1] / "samples" / "astronaut.jpg"
    original = np.asarray(Image.open(sample).convert("RGB")).astype(int)
    suit, face = (slice(300, 500), slice(100, 400)), (slice(80, 160), slice(190, 265))
    found = run("detect", sample, "--detection-threshold", "0.7")
    assert found.exit_code == 0 and found.output.startswith("1 face in"), found.output
    assert run("detect", sample).output.startswith("1 face in")
    for threshold, faces, suit_changed in (("0.56", 2, True), ("0.7", 1, False), (None, 1, False)):  # suit 0.61
        out, report = tmp_path / f"out-{threshold}.png", tmp_path / f"r-{threshold}.json"
        option = ["--detection-threshold", threshold] if threshold else []
        assert run("restore", sample, "-o", out, "--report", report, *option, *BASELINE).exit_code == 0
        assert json.loads(report.read_text())["faces"] == faces
        restored = np.asarray(Image.open(out)).astype(int)
        assert np.abs(restored[face] - original[face]).mean() > 1.0
        assert bool(np.abs(restored[suit] - original[suit]).mean() > 0.5) == suit_changed


def test_image_sequence_mistakes_are_one_line_errors(tmp_path, small_clip):
    from tests.media import make_sequence

    pattern = make_sequence(tmp_path / "scan" / "s_%04d.png", frames=3)
    (tmp_path / "scan" / "s_0002.png").unlink()
    assert_one_line_error(run("restore", pattern, *BASELINE), "s_0002.png is missing")
    assert_one_line_error(run("restore", tmp_path / "none" / "s_%04d.png", *BASELINE), "no frames match")
    assert_one_line_error(run("restore", small_clip, "-o", tmp_path / "one.png", *BASELINE), "counter")
    assert_one_line_error(run("restore", small_clip, "-o", tmp_path / "f_%04d.jpg", *BASELINE), ".dpx, .png")
    assert_one_line_error(run("restore", pattern, "--fps", "0", *BASELINE), "--fps")
    assert not (tmp_path / "scan_restored").exists() and not (tmp_path / "one.png").exists()


def test_insightface_without_model_folder_names_the_folder(small_clip, tmp_path):
    missing = tmp_path / "buffalo_l"
    result = run("restore", small_clip, "--detector", "insightface", "--insightface-root", missing, *BASELINE)
    assert_one_line_error(result, str(missing))
    assert_one_line_error(run("restore", small_clip, "--detector", "insightface", *BASELINE),
                          "error: --insightface-root is needed by the insightface detector")


# -- commands --------------------------------------------------------------------------------------

def test_no_arguments_print_the_help():
    result = run()
    assert result.exit_code == 0 and result.output.startswith("Usage:")
    assert "restore" in result.output and len(result.output.splitlines()) > 10


def test_models_lists_the_baseline_and_marks_the_default():
    result = run("models")
    assert result.exit_code == 0
    assert "baseline-bicubic-sharpen" in result.output
    assert sum("(default" in line for line in result.output.splitlines()) == 1


def test_help_names_every_restore_option():
    result = run("restore", "--help")
    assert result.exit_code == 0
    for option in ("--output", "--model", "--fidelity", "--device", "--batch-size", "--detector",
                   "--insightface-root", "--codec", "--crf", "--overwrite", "--no-track-identity", "--keep-detail",
                   "--deinterlace", "--min-face", "--max-upscale", "--start", "--duration", "--fps",
                   "--report", "--quiet", "--strength", "--detection-threshold",
                   "--no-identity-guidance"):
        assert option in result.output, option


def test_the_codec_help_says_what_auto_does_as_the_readme_does():
    """It said 'auto: libx264, or what the output's format takes', leaving out a kept intra or lossless source
    codec, MPEG-2 for .mpg/.vob/.mxf, MPEG-4 for .avi and libx265 for HDR (io.output_stream.auto_codec)."""
    from clrface_video.cli import restore

    (codec,) = [param for param in restore.params if param.name == "codec"]
    for words in ("the source's own where it is an intra or lossless codec", ".mpg/.vob/.mxf: mpeg2video",
                  ".avi: mpeg4", "libx265 for an HDR source", "else libx264", "README"):
        assert words in codec.help, words
    shown = CliRunner().invoke(cli, ["restore", "--help"], env={"COLUMNS": "80"}).output  # --preset's was 81
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert "speed preset (ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow)" in \
        " ".join(shown.split())


def test_detect_prints_the_astronaut_and_draws(tmp_path, astronaut):
    from PIL import Image

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    drawn = tmp_path / "drawn.png"
    result = run("detect", photo, "--draw", drawn)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1 face in")
    assert "landmarks" in result.output and drawn.is_file()


def test_detect_draws_into_a_folder_opencv_cannot_name_on_windows(tmp_path, astronaut, opencv_as_on_windows):
    """detect --draw wrote with cv2.imwrite, which on Windows cannot open a path outside the ANSI code page
    (C:/Users/Zoë/...): 'cannot write'. The fixture makes OpenCV behave so here."""
    from PIL import Image

    folder = tmp_path / "Zoë"
    folder.mkdir()
    photo, drawn = folder / "astronaut.png", folder / "drawn.png"
    Image.fromarray(astronaut).save(photo)
    result = run("detect", photo, "--draw", drawn)
    assert result.exit_code == 0, result.output
    assert Image.open(drawn).size == (512, 512)


def _detected_boxes(output: str) -> list[list[float]]:
    """The boxes `detect` printed, one per face."""
    return [[float(v) for v in line.split("box [")[1].split("]")[0].split(", ")]
            for line in output.splitlines() if "box [" in line]


@pytest.mark.parametrize(("suffix", "what"), [("avif", "frames"), ("gif", "frames"), ("webp", "frames"),
                                              ("png", "frames"), ("tif", "pages")])
def test_detect_reads_the_first_picture_of_an_animation_or_a_scan_and_says_so(tmp_path, suffix, what,
                                                                               warnings_logged):
    """detect only looks: an animated AVIF (which restore refuses), GIF, WebP or PNG, or a multi-page TIFF, is read
    on its first frame or page, with one warning line; the frames after it hold no face."""
    from PIL import Image, features

    face = Image.fromarray(np.ascontiguousarray(grace_hopper()))
    still, moving = tmp_path / "still.png", tmp_path / f"moving.{suffix}"
    face.save(still)
    blanks = [Image.new("RGB", face.size, (shade,) * 3) for shade in (100, 150)]  # unequal: a GIF merges equal ones
    try:
        face.save(moving, save_all=True, append_images=blanks, duration=100)
    except (KeyError, OSError, ValueError) as error:  # a Pillow built without an AVIF encoder
        pytest.skip(f"this Pillow cannot write an animated {suffix} ({error}; features.check: "
                    f"{features.check(suffix) if suffix == 'avif' else 'n/a'})")
    expected = _detected_boxes(run("detect", still).output)
    warnings_logged.clear()
    result = run("detect", moving)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"1 face in {moving}")
    (box,) = _detected_boxes(result.stdout)
    assert np.allclose(box, expected[0], atol=3.0), (box, expected)  # the face of frame 1, through a lossy codec
    assert [r.getMessage() for r in warnings_logged.records] == \
        [f"moving.{suffix}: only the first of its 3 {what} was read (detect looks at one picture)"]
    if suffix == "avif":  # restore cannot write an animated AVIF back: still one line, nothing written
        refused = run("restore", moving, *BASELINE)
        assert_one_line_error(refused, "3 frames (an animated AVIF)", "cannot write back")
        assert files_in(tmp_path) == {"still.png", "moving.avif"}


def test_restore_video_prints_output_and_writes_report(small_clip, tmp_path):
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    result = run("restore", small_clip, "-o", out, "--report", report, *BASELINE)
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout.strip().splitlines()[-1]
    data = json.loads(report.read_text())
    for key in ("input", "output", "model", "device", "frames", "images", "faces", "tracks", "seconds", "stages"):
        assert key in data, key
    assert data["model"] == "baseline-bicubic-sharpen" and data["device"] == "cpu"
    assert data["frames"] == 6 and data["faces"] == 6 and data["tracks"] == 1
    assert set(data["stages"]) >= {"decode", "detect", "track", "align", "restore", "paste", "encode"}
    # not a TTY: no progress bar on stderr
    assert "it/s" not in result.stderr and "frame/s" not in result.stderr


def test_a_value_the_library_refuses_is_named_as_the_commands_option(tmp_path):
    """click's ranges let nan through to the library, whose errors named its keyword ('fidelity must be a number',
    'det_threshold must be between 0 and 1'): the command names its own option."""
    photo = Path(__file__).parents[1] / "samples" / "astronaut.jpg"
    result = run("restore", photo, "-o", tmp_path / "out.jpg", "--fidelity", "nan", *BASELINE)
    assert_one_line_error(result)
    assert result.stderr == "error: --fidelity must be a number, got nan\n" and not (tmp_path / "out.jpg").exists()
    result = run("detect", photo, "--threshold", "nan")
    assert_one_line_error(result)
    assert result.stderr == "error: --detection-threshold must be between 0 and 1, got nan\n"


def test_the_report_names_the_settings_that_took_effect_and_every_warning_even_when_quiet(tmp_path):
    """An archive tells from --report what was done to a file: the encoder 'auto' chose, the threshold used,
    identity guidance as it ran (the baseline has none), and the warnings, which -q only keeps off the terminal."""
    from clrface_video import __version__

    clip = make_clip(tmp_path / "studio.mov", frames=3, size=(192, 160), codec="prores_ks", audio=False)  # 4:2:2
    report = tmp_path / "r.json"
    result = run("restore", clip, "-o", tmp_path / "out.mp4", "--report", report, "--fidelity", "0.8", "-q",
                 *BASELINE)
    assert result.exit_code == 0 and "warning" not in result.stderr, result.output
    data = json.loads(report.read_text())
    assert [line for line in data["warnings"] if "chroma" in line] == \
        ["the source's 4:2:2 chroma is written 4:2:0 by libx264 (as players expect); --codec prores_ks or ffv1 keeps it"]
    settings = data["settings"]
    assert settings["codec"] == "libx264" and settings["crf"] == 18 and settings["preset"] is None
    assert settings["fidelity"] == 0.8 and settings["strength"] is None and settings["detection_threshold"] == 0.6
    assert settings["device"] == "cpu" and settings["model"] == "baseline-bicubic-sharpen"
    assert settings["identity_guidance"] is False and settings["snap_to_codebook"] is False
    assert settings["version"] == __version__ and settings["deinterlace"] == "auto" and data["video_settings"] is None


def test_the_report_of_a_photo_lists_the_warning_said_before_its_job(tmp_path, astronaut):
    """--codec on a photo is warned of before the photo's job starts; the report still lists it, and says that
    no encoder ran and which threshold photos got."""
    from PIL import Image

    photo, report = tmp_path / "face.png", tmp_path / "r.json"
    Image.fromarray(astronaut).save(photo)
    result = run("restore", photo, "--codec", "ffv1", "--report", report, *BASELINE)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    line = "face.png: --codec is for video; a photo is written in its own format, or the one -o OUTPUT names"
    assert data["warnings"] == [line] and f"warning: {line}" in result.stderr
    settings = data["settings"]
    assert settings["codec"] is None and settings["crf"] is None and settings["detection_threshold"] == 0.7
    assert settings["snap_to_codebook"] is True and settings["fidelity"] == 0.5


def test_a_preview_stretch_is_named_as_one_and_does_not_stand_in_for_the_whole_video(small_clip, tmp_path):
    """Without -o, --start/--duration write movie_restored_<start>-<end>s.mp4: the whole video's run after it
    restores the whole video instead of finding movie_restored.mp4 there and leaving it."""
    from clrface_video.io.decode import read_frames

    clip = tmp_path / "movie.mp4"
    clip.write_bytes(small_clip.read_bytes())
    preview = run("restore", clip, "--start", "0.1", "--duration", "0.1", *BASELINE)
    assert preview.exit_code == 0, preview.output
    assert (tmp_path / "movie_restored_0.1-0.2s.mp4").is_file() and not (tmp_path / "movie_restored.mp4").exists()
    whole = run("restore", clip, *BASELINE)
    assert whole.exit_code == 0 and "already" not in whole.stdout
    assert len(list(read_frames(tmp_path / "movie_restored.mp4"))) == len(list(read_frames(clip)))
    assert run("restore", clip, "--start", "0.1", *BASELINE).exit_code == 0
    assert (tmp_path / "movie_restored_from_0.1s.mp4").is_file()


def test_a_sequence_preview_is_named_as_one_and_a_folder_takes_no_stretch(tmp_path):
    from tests.media import make_sequence

    make_sequence(tmp_path / "scan" / "f_%04d.png", frames=6)
    pattern = tmp_path / "scan" / "f_%04d.png"
    preview = run("restore", pattern, "--start", "0.0833", "--duration", "0.0833", "--fps", "12", *BASELINE)
    assert preview.exit_code == 0, preview.output
    assert sorted(p.parent.name for p in tmp_path.glob("scan_restored*/*.png")) == ["scan_restored_0.0833-0.1666s"]
    assert run("restore", pattern, "--fps", "12", *BASELINE).exit_code == 0
    assert len(list((tmp_path / "scan_restored").glob("*.png"))) == 6  # the whole run, not skipped
    folder = run("restore", tmp_path / "scan", "--start", "1", *BASELINE)
    assert folder.exit_code == 2
    assert "error: --start picks a stretch of one video; a folder is restored whole" in folder.output


def test_a_finished_output_still_checks_the_settings_and_names_what_would_run(small_clip, tmp_path):
    out = tmp_path / "out.mp4"
    assert run("restore", small_clip, "-o", out, *BASELINE).exit_code == 0
    wrong = run("restore", small_clip, "-o", out, "--model", "baseline-bicubic-sharpen", "--device", "mps")
    assert wrong.exit_code == 2 and "error: --device must be auto, cpu, cuda or cuda:N" in wrong.output
    again = run("restore", small_clip, "-o", out, "--report", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert again.exit_code == 0 and report["skipped"] == 1
    assert report["model"] in ("clrface", "baseline-bicubic-sharpen") and report["device"] == "cpu"


@pytest.mark.parametrize("model, said", [
    ("clrfase", "--model must be one of: baseline-bicubic-sharpen, clrface, "),  # (other test files add models)
    ("mine.safetensors", "--model names {folder}/mine.safetensors, which does not exist"),
])
def test_a_finished_output_still_refuses_a_mistyped_model(small_clip, tmp_path, model, said):
    """A rerun with a mistyped --model said 'already restored, left as is' (exit 0), and a folder's summary line
    named the typo as the model it had restored with; a first run refuses it, so the rerun does too."""
    album = tmp_path / "album"
    album.mkdir()
    (album / "talk.mp4").write_bytes(small_clip.read_bytes())
    model = str(tmp_path / model) if model.endswith(".safetensors") else model
    for source, out in ((small_clip, tmp_path / "out.mp4"), (album, tmp_path / "album_out")):
        assert run("restore", source, "-o", out, *BASELINE).exit_code == 0
        again = run("restore", source, "-o", out, "--model", model, "--device", "cpu")
        assert_one_line_error(again, "error: " + said.format(folder=tmp_path))


def test_the_current_folder_is_restored_beside_itself(tmp_path, monkeypatch):
    """`restore .` from inside a photo folder writes ../<folder>_restored (it failed on '.' having no name)."""
    from PIL import Image

    from tests.media import astronaut

    album = tmp_path / "album"
    (album / "sub").mkdir(parents=True)
    Image.fromarray(astronaut()).save(album / "a.jpg")
    monkeypatch.chdir(album)
    result = run("restore", ".", *BASELINE)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "album_restored" / "a.jpg").is_file()
    monkeypatch.chdir(album / "sub")
    again = run("restore", "..", *BASELINE)
    assert again.exit_code == 0 and "already" in again.stdout


def test_existing_output_is_kept_unless_overwrite(small_clip, tmp_path):
    out = tmp_path / "out.mp4"
    fast = [*BASELINE, "--no-track-identity"]
    assert run("restore", small_clip, "-o", out, *fast).exit_code == 0
    file = out.stat().st_ino  # written again, it is a new file renamed into place (its date is the source's)
    again = run("restore", small_clip, "-o", out, *fast)
    assert again.exit_code == 0 and "already restored" in again.stdout
    assert out.stat().st_ino == file
    redo = run("restore", small_clip, "-o", out, "--overwrite", *fast)
    assert redo.exit_code == 0 and out.stat().st_ino != file


@pytest.mark.parametrize("name, locked", [("out.mp4", "out.mp4"), ("f_%04d.png", "f_0002.png"),
                                          ("out.png", "out.png")])
def test_overwrite_refuses_an_output_made_read_only(small_clip, tmp_path, name, locked):
    """A finished master protected with chmod 444 (a video, a frame of an image sequence, a photo) was renamed
    over by --overwrite, which the folder's permission allows; cp refuses. Now: one line, exit 2, nothing
    written, the output's bytes, file and mode as they were."""
    import os

    from PIL import Image

    source = small_clip
    if name == "out.png":
        source = tmp_path / "in" / "photo.png"
        source.parent.mkdir()
        Image.fromarray(grace_hopper()[::4, ::4]).save(source)
    out = tmp_path / "out" / name
    assert run("restore", source, "-o", out, *BASELINE).exit_code == 0
    protected = out.parent / locked
    os.chmod(protected, 0o444)
    before = {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mode) for p in out.parent.iterdir()}
    result = run("restore", source, "-o", out, "--overwrite", *BASELINE)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {locked} is read-only; make it writable to redo it\n"
    assert {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mode) for p in out.parent.iterdir()} == before
    os.chmod(protected, 0o644)  # made writable, it is redone
    assert run("restore", source, "-o", out, "--overwrite", *BASELINE).exit_code == 0
    assert protected.stat().st_ino != before[locked][1]


def test_a_stale_output_made_read_only_is_one_error_line(tmp_path):
    """A photo's original changed since it was restored, and its output was made read-only: the job said
    "warning: redoing out.png" and then "error: out.png is read-only", one line taking back the other. Now one
    error line, saying both, and nothing written."""
    import os

    from PIL import Image

    source = tmp_path / "photo.png"
    Image.fromarray(grace_hopper()[::4, ::4]).save(source)
    out = tmp_path / "out.png"
    assert run("restore", source, "-o", out, *BASELINE).exit_code == 0
    os.chmod(out, 0o444)
    later = source.stat().st_mtime + 60
    os.utime(source, (later, later))
    kept = out.read_bytes()
    result = run("restore", source, "-o", out, *BASELINE)
    assert result.exit_code == 2
    assert result.stderr == ("error: out.png is read-only; make it writable to redo it (the original changed since "
                             "it was restored)\n")
    assert out.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "photo.png"]


def test_a_photos_default_name_over_the_users_own_picture_is_refused(tmp_path):
    """`restore a.jpg` writes a_restored.jpg. A picture of the user's own already under that name, older than a.jpg,
    was taken for a restored copy whose original changed since, and written over ('warning: redoing a_restored.jpg:
    the original changed since it was restored'): the picture was lost. Now refused in one line naming -o and
    --overwrite, the file as it was and nothing else written; --overwrite replaces it, and the run's own output is
    still redone when its original is retouched (lighter, at half the contrast: the same picture)."""
    import os

    from PIL import Image

    from tests.media import astronaut

    photo, theirs = tmp_path / "a.jpg", tmp_path / "a_restored.jpg"
    Image.fromarray(astronaut()).save(photo, quality=92)
    Image.fromarray(grace_hopper()).save(theirs, quality=92)
    os.utime(theirs, (1_500_000_000, 1_500_000_000))  # made years before a.jpg was copied here
    kept = theirs.read_bytes()
    assert_one_line_error(run("restore", photo, *BASELINE),
                          "a_restored.jpg is older than its original and shows another picture, no restored copy of "
                          "it: left as it is; choose another -o OUTPUT, or --overwrite replaces it")
    assert theirs.read_bytes() == kept and theirs.stat().st_mtime == 1_500_000_000
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.jpg", "a_restored.jpg"]
    assert run("restore", photo, "--overwrite", *BASELINE).exit_code == 0
    ours = theirs.read_bytes()
    assert ours != kept and theirs.stat().st_mtime_ns == photo.stat().st_mtime_ns
    Image.fromarray((astronaut() // 2 + 100).astype(np.uint8)).save(photo, quality=92)
    later = theirs.stat().st_mtime + 60
    os.utime(photo, (later, later))
    redone = run("restore", photo, *BASELINE)
    assert redone.exit_code == 0, redone.output
    assert redone.stderr == "warning: redoing a_restored.jpg: the original changed since it was restored\n"
    assert theirs.read_bytes() != ours and theirs.stat().st_mtime == later


def test_a_users_own_heic_under_the_default_name_is_refused(tmp_path):
    """Regression: the likeness of an output to its original was read by Pillow alone, which reads no HEIC without
    pillow-heif's opener: a phone photo's a_restored.heic of the user's own, older than a.heic, was written over
    ('warning: redoing a_restored.heic'). It is read as photos are, and refused as a JPEG is."""
    import os

    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC photos need pillow-heif")
    from tests.media import astronaut

    photo, theirs = tmp_path / "a.heic", tmp_path / "a_restored.heic"
    for path, picture in ((photo, astronaut()), (theirs, grace_hopper())):
        pillow_heif.from_bytes(mode="RGB", size=picture.shape[1::-1], data=picture.tobytes()).save(path, quality=90)
    os.utime(theirs, (1_500_000_000, 1_500_000_000))
    kept = theirs.read_bytes()
    # a fresh process, as a user's run is: in this one pillow-heif's opener may be registered already
    done = subprocess.run([sys.executable, "-m", "clrface_video", "restore", str(photo), *BASELINE],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("error: a_restored.heic is older than its original and shows another picture, no restored "
                           "copy of it: left as it is; choose another -o OUTPUT, or --overwrite replaces it\n")
    assert theirs.read_bytes() == kept


@pytest.mark.parametrize("turned", ["pixels", "exif"])
def test_a_photo_turned_a_quarter_since_it_was_restored_is_redone(tmp_path, turned):
    """Regression: a photo turned a quarter after it was restored (its pixels, or only its EXIF orientation, as a
    photo library's rotate button does) was taken for another picture than its own older restored copy, refused
    ('shows another picture, no restored copy of it'). A thumbnail that stands where the other lies is compared
    turned too: the copy is redone, upright as the photo now is."""
    import os

    from PIL import Image, ImageOps

    photo, ours = tmp_path / "a.jpg", tmp_path / "a_restored.jpg"
    Image.fromarray(grace_hopper()[:400]).save(photo, quality=92)  # landscape
    assert run("restore", photo, *BASELINE).exit_code == 0
    upright = Image.open(photo)
    if turned == "pixels":
        upright.rotate(90, expand=True).save(photo, quality=92)
    else:
        orientation = Image.Exif()
        orientation[0x0112] = 6  # shown turned a quarter clockwise
        upright.save(photo, quality=92, exif=orientation)
    later = ours.stat().st_mtime + 60
    os.utime(photo, (later, later))
    redone = run("restore", photo, *BASELINE)
    assert redone.exit_code == 0, redone.output
    assert redone.stderr == "warning: redoing a_restored.jpg: the original changed since it was restored\n"
    with Image.open(ours) as copy:
        shown = ImageOps.exif_transpose(copy)
        assert shown.height > shown.width


def test_default_output_is_beside_the_input(tmp_path):
    clip = make_clip(tmp_path / "movie.mp4", frames=3, size=(128, 96), face=False, audio=False)
    result = run("restore", clip, *BASELINE, "--quiet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "movie_restored.mp4").is_file()
    assert str(tmp_path / "movie_restored.mp4") in result.stdout


def test_progress_bar_on_a_terminal_only(tmp_path, astronaut):
    """A real console-script run with stderr on a pseudo-terminal shows images, rate and ETA; --quiet does not."""
    import fcntl
    import os
    import pty
    import shutil
    import struct
    import subprocess
    import termios

    from PIL import Image

    album = tmp_path / "album"
    album.mkdir()
    for i in range(2):
        Image.fromarray(astronaut[::2, ::2]).save(album / f"{i}.png")
    script = shutil.which("clrface-video")
    assert script, "the clrface-video console script is not installed (pip install -e .)"

    def stderr_on_tty(*extra: str) -> str:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a 100-column terminal
        done = subprocess.run([script, "restore", str(album), "--overwrite", *BASELINE, *extra],
                              stdout=subprocess.PIPE, stderr=slave, timeout=300, check=False)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        assert done.returncode == 0
        return b"".join(chunks).decode(errors="replace")

    shown = stderr_on_tty()
    assert "2/2" in shown and "image/s" in shown and "<" in shown  # count, rate, ETA
    assert stderr_on_tty("--quiet") == ""


def test_an_output_ending_in_a_slash_is_a_new_folder(small_clip, tmp_path):
    result = run("restore", small_clip, "-o", f"{tmp_path / 'new'}/", *BASELINE)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / small_clip.name).is_file() and not (tmp_path / "new.mp4").exists()


@pytest.mark.parametrize(("flags", "expected"), [
    (["--fidelity", "0.8", "--strength", "1", "--batch-size", "7", "--device", "cpu", "--model", "clrface"],
     {"fidelity": 0.8, "strength": 1.0, "batch_size": 7, "device": "cpu", "model": "clrface"}),
    (["--codec", "libx265", "--crf", "23", "--overwrite", "--start", "1.5", "--duration", "2", "--deinterlace", "off",
      "--preset", "veryfast"],
     {"codec": "libx265", "crf": 23, "overwrite": True, "start": 1.5, "duration": 2.0, "deinterlace": "off",
      "preset": "veryfast"}),
    (["--no-identity-guidance", "--no-track-identity", "--temporal-smoothing", "0.3", "--keep-detail", "0",
      "--snap-to-codebook"],
     {"identity_guidance": False, "track_identity": False, "temporal_smoothing": 0.3, "keep_detail": 0.0,
      "snap_to_codebook": True}),
    (["--min-face", "40", "--max-upscale", "3", "--detection-threshold", "0.7", "--compile", "-q"],
     {"min_face": 40, "max_upscale": 3.0, "det_threshold": 0.7, "compile": True, "quiet": True}),
])
def test_every_restore_option_reaches_the_job(small_clip, monkeypatch, flags, expected):
    from clrface_video import api
    from clrface_video.report import RestoreReport

    seen = []

    def restore_video(input, output, *, progress=None, config=None):
        seen.append(config)
        return RestoreReport(input=str(input), output=str(output), kind="video", model=config.model,
                             device=config.device)

    monkeypatch.setattr(api, "restore_video", restore_video)
    result = run("restore", small_clip, *flags)
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert {name: getattr(config, name) for name in expected} == expected
    defaults = RestoreConfig()
    assert all(getattr(config, name) == getattr(defaults, name) for name in vars(defaults) if name not in expected)


def test_an_end_of_data_error_is_not_said_as_an_interrupt(small_clip, monkeypatch):
    """click's main takes every EOFError for Ctrl-D at a prompt: PyAV's end-of-data error out of a damaged file
    (av.EOFError is an EOFError) ended the command as "interrupted", exit 130. It is the file's error line now."""
    import av

    from clrface_video import api

    def restore_video(input, output, *, progress=None, config=None):
        raise av.error.EOFError(541478725, "End of file")

    monkeypatch.setattr(api, "restore_video", restore_video)
    result = run("restore", small_clip, *BASELINE)
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "End of file" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "interrupted" not in result.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, a folder nobody can write in")
def test_an_output_folder_nobody_can_write_in_is_refused_before_any_work(small_clip):
    result = run("restore", small_clip, "-o", "/proc/clrface_out.mp4", *BASELINE)
    assert_one_line_error(result, "cannot write in /proc")


def test_a_name_the_console_code_page_cannot_spell_does_not_fail_the_command(tmp_path):
    """Windows writes a redirected stdout (> log.txt, a pipe from a script) in its ANSI code page, cp1252 here, and
    Python's stdout is strict there: the summary line naming 张.png stopped the command with exit 1 after the work
    was done. PYTHONIOENCODING=cp1252 gives this Linux run the same stdout."""
    import os
    import subprocess
    import sys

    from PIL import Image

    for name in ("张.png", "张_restored.png"):  # already restored: the summary line without the restoring
        Image.new("RGB", (32, 32)).save(tmp_path / name)
    done = subprocess.run([sys.executable, "-m", "clrface_video", "restore", str(tmp_path / "张.png"), *BASELINE],
                          capture_output=True, env={**os.environ, "PYTHONIOENCODING": "cp1252"}, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr.decode("cp1252")
    assert done.stdout.decode("cp1252").startswith("already restored") and b"\\u5f20_restored.png" in done.stdout


def test_a_drive_root_without_an_output_asks_for_one():
    """restore E:\\ (a memory card's root on Windows; / elsewhere) has no folder beside it for E:\\_restored: the
    default output name failed as 'unexpected ValueError: ... has an empty name', exit 1."""
    root = Path(Path.cwd().anchor)
    assert_one_line_error(run("restore", root, *BASELINE), "root of its drive", "-o OUTPUT")


def test_a_linux_file_name_that_is_not_utf8_is_printed_as_its_own_bytes(tmp_path):
    """Where Python writes stdout with surrogateescape (its UTF-8 mode, a C or POSIX locale), a file name that is not
    UTF-8 came out as its own bytes, as other tools expect of a path; stdout's backslashreplace, meant for a strict
    code page, turned it into the text \\udce9. It is only set where stdout is strict."""
    import os
    import subprocess
    import sys

    from PIL import Image

    for name in (b"\xe9.png", b"\xe9_restored.png"):  # Latin-1 'é', not UTF-8; already restored
        Image.new("RGB", (32, 32)).save(tmp_path / os.fsdecode(name))
    done = subprocess.run([sys.executable, "-m", "clrface_video", "restore", tmp_path / os.fsdecode(b"\xe9.png"),
                           *BASELINE], capture_output=True, env={**os.environ, "PYTHONUTF8": "1"}, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert b"/\xe9_restored.png" in done.stdout and b"\\udce9" not in done.stdout, done.stdout


def test_training_options_out_of_range_are_usage_errors_before_any_work(tmp_path):
    """--max-minutes 0 used to run no step and blame --steps; a reversed range reached export as a traceback-class
    'unexpected ValueError'."""
    (tmp_path / "run").mkdir()
    assert_one_line_error(run("train", tmp_path, "--config", "tiny", "--run-dir", tmp_path / "new", "--max-minutes", "0"),
                          "--max-minutes")
    assert not (tmp_path / "new").exists()
    for option, values in (("--anchor-range", ("2", "1")), ("--t-star-range", ("0.9", "0.1"))):
        result = run("export", tmp_path / "run", tmp_path / "x.safetensors", option, *values)
        assert_one_line_error(result, option, "give LO first")
    assert not (tmp_path / "x.safetensors").exists()


def test_a_file_whose_name_looks_like_a_frame_counter_is_that_file(tmp_path, small_clip):
    """'50%done.mp4' was read as an image sequence's pattern ('no frames match'), and so was a photo named so."""
    import shutil

    from PIL import Image

    video = shutil.copy(small_clip, tmp_path / "50%done.mp4")
    result = run("restore", video, "-o", tmp_path / "save 50%done.mp4", *BASELINE)
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "save 50%done.mp4")) as out:
        assert sum(1 for _ in out.decode(video=0)) == 6
    photo = tmp_path / "shot_%03d.jpg"
    Image.fromarray(grace_hopper()).save(photo)
    assert run("restore", photo, *BASELINE).exit_code == 0
    assert Image.open(tmp_path / "shot_%03d_restored.jpg").size == Image.open(photo).size


def test_a_container_that_cannot_hold_the_codec_suggests_another_container(tmp_path, small_clip):
    result = run("restore", small_clip, "--codec", "ffv1", "-o", tmp_path / "archive.mov", *BASELINE)
    assert_one_line_error(result, "use .mkv,")  # not ".mkv or .mov": .mov is the one that failed
    assert files_in(tmp_path) == set()


@pytest.mark.parametrize(("codec", "output", "advice"), [("dnxhd", "master.mp4", "use .mov,"),
                                                        ("dnxhd", "master.mkv", "use .mov,"),
                                                        ("huffyuv", "capture.mp4", "use .avi,")])
def test_the_container_suggested_for_a_codec_takes_it(tmp_path, codec, output, advice):
    """'use .mkv or .mov' was said for DNxHD, which .mkv refuses too, and for HuffYUV, which only .avi takes."""
    clip = make_clip(tmp_path / "talk.mp4", frames=2, size=(320, 240), audio=False)  # DNxHR's least size
    result = run("restore", clip, "--codec", codec, "-o", tmp_path / output, *BASELINE)
    assert_one_line_error(result, advice)
    assert files_in(tmp_path) == {"talk.mp4"}
    suggested = tmp_path / Path(output).with_suffix(advice.split()[1].rstrip(",")).name
    assert run("restore", clip, "--codec", codec, "-o", suggested, *BASELINE).exit_code == 0
    with av.open(str(suggested)) as written:
        assert written.streams.video[0].codec_context.name == codec
        assert sum(1 for _ in written.decode(video=0)) == 2


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_a_one_or_two_frame_clip_is_written_by_libx265(tmp_path, suffix):
    """x265 stamps the packets of a clip shorter than its B-frame delay with a dts from memory it never set:
    `restore clip.mp4 --codec libx265` of 1 or 2 frames failed as the file closed ('Invalid argument', 'Not yet
    implemented'), as that memory held: every CLI run measured, under pytest most."""
    for frames in (1, 2):
        clip = make_clip(tmp_path / f"in{frames}{suffix}", frames=frames, size=(128, 96), audio=frames == 2)
        output = tmp_path / f"out{frames}{suffix}"
        result = run("restore", clip, "--codec", "libx265", "-o", output, *BASELINE)
        assert result.exit_code == 0, result.output
        with av.open(str(output)) as written:
            times = [frame.time for frame in written.decode(video=0)]
        assert times == pytest.approx([n / 24 for n in range(frames)], abs=1e-3)


@pytest.mark.parametrize("codec", ["libx265", "mpeg4"])
def test_a_codec_mxf_refuses_is_not_called_an_unwritable_folder(tmp_path, codec):
    """FFmpeg's MXF muxer refuses HEVC and MPEG-4 Part 2 with a bare -1, which reads as EPERM: the run said
    'cannot write <folder>: Operation not permitted' of a folder it could write."""
    clip = make_clip(tmp_path / "talk.mp4", frames=2, size=(192, 160), audio=False)
    result = run("restore", clip, "--codec", codec, "-o", tmp_path / "master.mxf", *BASELINE)
    assert_one_line_error(result, f"a .mxf file cannot hold {codec} video; use .mkv or .mov, or another --codec")
    assert files_in(tmp_path) == {"talk.mp4"}


@pytest.mark.parametrize(("codec", "output"), [("ffv1", "tape.mpg"), ("prores_ks", "tape.ts"),
                                               ("libsvtav1", "tape.vob")])
def test_a_codec_an_mpeg_stream_would_hide_is_refused(tmp_path, codec, output):
    """An archivist's `restore dvd.mpg --codec ffv1` wrote dvd_restored.mpg with exit 0, but FFmpeg read its FFV1
    back as MP3 audio (ProRes, AV1 in a .ts: as a data stream): a file with no video. It is refused instead, before
    anything is written, and the advice's container holds the codec as video."""
    clip = make_clip(tmp_path / "talk.mp4", frames=2, size=(192, 160), audio=False)
    result = run("restore", clip, "--codec", codec, "-o", tmp_path / output, *BASELINE)
    assert_one_line_error(result, f"a {Path(output).suffix} file cannot hold {codec} video", "use .mkv")
    assert files_in(tmp_path) == {"talk.mp4"}
    advised = tmp_path / Path(output).with_suffix(".mkv").name
    assert run("restore", clip, "--codec", codec, "-o", advised, *BASELINE).exit_code == 0
    with av.open(str(advised)) as written:
        assert sum(1 for _ in written.decode(video=0)) == 2


def test_a_full_disk_stops_a_folder_at_the_first_file_it_cannot_write(tmp_path, astronaut, monkeypatch):
    """With the disk full (ENOSPC) a folder went on failing every file left, each a warning; it stops at the first,
    in one line with exit 2, keeping the photos finished before it and writing --report with what was done."""
    import errno

    from PIL import Image

    from clrface_video.io import photo_write

    album = tmp_path / "album"
    album.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        Image.fromarray(astronaut).save(album / name)
    encode, calls = photo_write.encode_photo, []

    def full_from_the_second(*args, **kwargs):
        calls.append(args[2])
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return encode(*args, **kwargs)

    monkeypatch.setattr(photo_write, "encode_photo", full_from_the_second)
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = run("restore", album, "-o", out, "--report", report, *BASELINE)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "error: no space left on device writing b.jpg; the folder is stopped there (1 restored file kept): "
        "free some space and run it again to go on")
    assert len(calls) == 2 and sorted(p.name for p in out.iterdir()) == ["a.jpg"]
    done = json.loads(report.read_text())
    assert done["images"] == 1 and done["failed"] == ["b.jpg: cannot write it as JPEG (No space left on device)"]


def _disk_with_room(monkeypatch, room: int) -> None:
    """A disk with `room` bytes left, as os.write meets it: a write past it takes what fits and says so by its
    count (a short write), the next one fails with ENOSPC. Only writes to regular files are counted."""
    import errno
    import os
    import stat

    real, left = os.write, [room]

    def write(fd: int, data) -> int:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return real(fd, data)
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = real(fd, memoryview(data).cast("B")[:left[0]])
        left[0] -= written
        return written

    monkeypatch.setattr(os, "write", write)


def _deep(image: np.ndarray) -> np.ndarray:
    return image.astype(np.uint16) * 257


@pytest.mark.parametrize(("name", "fmt", "deep"), [("one.jpg", "JPEG", False), ("one.png", "PNG", False),
                                                   ("one.webp", "WEBP", False), ("one.tif", "TIFF", False),
                                                   ("one.gif", "GIF", False), ("deep.png", "PNG", True),
                                                   ("deep.tif", "TIFF", True)])
def test_a_photo_the_disk_has_room_for_part_of_is_an_error_not_a_cut_short_file(tmp_path, astronaut, monkeypatch,
                                                                                 name, fmt, deep):
    """A disk with room for part of a photo took part of it in one write and said so by its count; Pillow's
    encoders took that write for done and the cut-short photo was renamed into place, 'restored 1 face', exit 0,
    and a rerun left it as is. Every photo format, 16-bit ones (OpenCV, tifffile) too, now ends in the disk's
    one-line error, exit 2, with nothing in the output folder."""
    import cv2
    import tifffile
    from PIL import Image

    source, out = tmp_path / f"source{'.png' if fmt == 'GIF' else Path(name).suffix}", tmp_path / "out"
    out.mkdir()  # a GIF from a GIF is the video job's: from a PNG it is a photo's
    if deep and fmt == "PNG":
        cv2.imwrite(str(source), _deep(astronaut)[..., ::-1])
    elif deep:
        tifffile.imwrite(source, _deep(astronaut), photometric="rgb")
    else:
        Image.fromarray(astronaut).save(source)
    _disk_with_room(monkeypatch, 5000)
    result = run("restore", source, "-o", out / name, *BASELINE)
    monkeypatch.undo()
    assert_one_line_error(result)
    assert result.stderr == f"error: cannot write {name} as {fmt} (No space left on device)\n"
    assert list(out.iterdir()) == []


def test_a_folder_stops_at_the_photo_the_disk_has_room_for_part_of(tmp_path, astronaut, monkeypatch):
    """In a folder the cut-short photo was kept among the restored files and the folder went on; it now stops
    there, as at any full disk, keeping the photo written whole before it and leaving no temporary file."""
    from PIL import Image

    album, out, alone = tmp_path / "album", tmp_path / "out", tmp_path / "alone.jpg"
    album.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.fromarray(astronaut).save(album / name)
    assert run("restore", album / "a.jpg", "-o", alone, *BASELINE).exit_code == 0  # the size each one is written at
    _disk_with_room(monkeypatch, alone.stat().st_size * 3 // 2)
    result = run("restore", album, "-o", out, *BASELINE)
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    assert result.stderr == ("error: no space left on device writing b.jpg; the folder is stopped there (1 restored "
                             "file kept): free some space and run it again to go on\n")
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg"] and (out / "a.jpg").read_bytes() == alone.read_bytes()


@pytest.fixture()
def small_disk(tmp_path):
    """A 2 MiB tmpfs, for a real disk's full answers (root only: skipped where mount is not permitted)."""
    import os

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or \
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True,
                           check=False).returncode != 0:
        pytest.skip("a small tmpfs cannot be mounted here (needs root and mount)")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def _fill_leaving(disk: Path, room: int) -> None:
    """Fill `disk` but for about `room` bytes (its file system counts in blocks)."""
    import os

    stats = os.statvfs(disk)
    (disk / "fill").write_bytes(bytes(max(0, stats.f_bavail * stats.f_frsize - room)))


@pytest.mark.parametrize("name", ["one.jpg", "wall.jpg", "talk.mp4", "talk.gif"])
def test_a_real_nearly_full_disk_leaves_no_output_and_says_so(tmp_path, astronaut, small_clip, small_disk, name):
    """On a real nearly full disk (a tmpfs) a JPEG was cut short and kept, exit 0; a video ended in one line that
    named its hidden temporary file, and a photo with no face (copied as it is) in an OSError naming both. Each
    ends in one line, exit 2, with nothing left on the disk but what filled it, and a rerun there restores it."""
    from PIL import Image

    source = small_clip
    if name.endswith(".jpg"):
        source = tmp_path / name  # small: Pillow wrote a JPEG of under 64 KB to the disk in one write
        Image.fromarray(astronaut[::2, ::2] if name == "one.jpg" else np.full((300, 300, 3), 90, np.uint8)).save(source)
    whole = tmp_path / f"whole_{name}"
    assert run("restore", source, "-o", whole, *BASELINE).exit_code == 0  # the size it is written at
    _fill_leaving(small_disk, whole.stat().st_size // 2)
    result = run("restore", source, "-o", small_disk / name, *BASELINE)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    last = result.stderr.splitlines()[-1]  # after a GIF's warning that the clip's audio is left out
    assert last == {"one.jpg": "error: cannot write one.jpg as JPEG (No space left on device)",
                    "wall.jpg": "error: cannot write wall.jpg (No space left on device)"}.get(
        name, f"error: writing {name} failed: No space left on device"), result.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["fill"]
    (small_disk / "fill").unlink()
    assert run("restore", source, "-o", small_disk / name, *BASELINE).exit_code == 0
    assert (small_disk / name).read_bytes() == whole.read_bytes()


def test_a_full_disk_while_frames_are_muxed_names_the_output_not_its_temporary_file(small_clip, tmp_path,
                                                                                     monkeypatch):
    """FFmpeg's error for a full disk met while frames are muxed (an FFV1 .mkv on a nearly full disk) names the
    file it writes, the output's hidden temporary one: the line said "... failed: No space left on device:
    '/.../.v.18561.partial.mkv'". It names the output only, and nothing is left."""
    import errno

    from clrface_video.io.encode import VideoWriter

    def full(self, frame):
        raise av.error.FFmpegError(errno.ENOSPC, "No space left on device", str(self.partial))

    monkeypatch.setattr(VideoWriter, "_encode", full)
    out = tmp_path / "out" / "v.mkv"
    result = run("restore", small_clip, "-o", out, *BASELINE)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "error: encoding frame 0 into v.mkv failed: No space left on device"
    assert not out.parent.exists() or not any(out.parent.iterdir())


def _no_room_for_json(monkeypatch) -> None:
    """A disk full for the report: writing a .json file fails with ENOSPC (what the job writes goes on)."""
    import errno
    import os

    write_text = Path.write_text

    def full(path: Path, *args, **kwargs):
        if path.suffix == ".json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)


def test_a_report_into_a_folder_not_there_yet_is_written_as_the_output_is(tmp_path, astronaut):
    """-o nodir/sub/out.jpg makes its folders, but --report nodir2/sub/r.json was refused ('folder nodir2/sub does
    not exist'), after the user had been told nothing of it by -o. The report's folders are made too; a file
    where one of them would be is refused before any work."""
    from PIL import Image

    source = tmp_path / "a.jpg"
    Image.fromarray(astronaut[::2, ::2]).save(source)
    out, report = tmp_path / "nodir" / "sub" / "out.jpg", tmp_path / "nodir2" / "sub" / "r.json"
    result = run("restore", source, "-o", out, "--report", report, *BASELINE)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (256, 256) and json.loads(report.read_text())["images"] == 1
    (tmp_path / "taken").write_text("a file")
    result = run("restore", source, "-o", tmp_path / "out2.jpg", "--report", tmp_path / "taken" / "sub" / "r.json",
                 *BASELINE)
    assert_one_line_error(result, f"--report file r.json in {tmp_path / 'taken' / 'sub'}: {tmp_path / 'taken'} is "
                                  "a file, not a folder")
    assert not (tmp_path / "out2.jpg").exists()


def test_a_crf_given_for_a_lossless_codec_is_said_once_and_the_default_says_nothing(tmp_path, small_clip):
    """--codec ffv1 --crf 18 was silent, as if the quality had been used; the warning tells a --crf given (even at
    the default's value) from none given, which must not warn: --codec ffv1 alone is the archivist's usual run."""
    given = run("restore", small_clip, "-o", tmp_path / "given.mkv", "--codec", "ffv1", "--crf", "18", *BASELINE)
    assert given.exit_code == 0, given.output
    assert given.stderr.count("warning: --crf is for ") == 1 and "; ffv1 (lossless) takes none, so it is ignored" \
        in given.stderr
    plain = run("restore", small_clip, "-o", tmp_path / "plain.mkv", "--codec", "ffv1", *BASELINE)
    assert plain.exit_code == 0 and "--crf" not in plain.stderr, plain.stderr
    with av.open(str(tmp_path / "given.mkv")) as a, av.open(str(tmp_path / "plain.mkv")) as b:  # no effect, truly
        pairs = list(zip(a.decode(video=0), b.decode(video=0), strict=True))
        assert len(pairs) == 6 and all(np.array_equal(x.to_ndarray(), y.to_ndarray()) for x, y in pairs)


def test_a_drawing_and_a_comparison_into_folders_not_there_yet_are_written_as_the_report_is(tmp_path, astronaut):
    """detect --draw nodir/x.png and eval --compare nodir/side.mp4 were refused ('folder nodir does not exist')
    where -o and --report make theirs; they make theirs too, and a file where one would be is still refused
    before any work."""
    from PIL import Image

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    drawn = tmp_path / "nodir" / "sub" / "drawn.png"
    result = run("detect", photo, "--draw", drawn)
    assert result.exit_code == 0, result.output
    assert Image.open(drawn).size == (512, 512)
    clip = make_clip(tmp_path / "clip.mp4", frames=3, size=(128, 96), audio=False)
    side = tmp_path / "nodir2" / "sub" / "side.mp4"
    result = run("eval", clip, "--degrade-video", "--models", "baseline-bicubic-sharpen", "--device", "cpu",
                 "--max-frames", "2", "--out", tmp_path / "ev", "--compare", side)
    assert result.exit_code == 0, result.output
    with av.open(str(side)) as video:
        assert [frame.width for frame in video.decode(video=0)] == [256, 256]
    (tmp_path / "taken").write_text("a file")
    assert_one_line_error(run("detect", photo, "--draw", tmp_path / "taken" / "x.png"),
                          f"--draw file x.png in {tmp_path / 'taken'}: {tmp_path / 'taken'} is a file, not a folder")


def test_a_report_the_disk_has_no_room_for_is_named_and_the_output_is_said_to_be_written(tmp_path, astronaut,
                                                                                         monkeypatch):
    """With the report's disk full the command ended on a bare 'error: No space left on device', after the photo
    had been written, and said neither which file could not be written nor that the photo was done. The summary
    line comes first, then the error names the report and says a rerun skips what was written."""
    from PIL import Image

    source, out, report = tmp_path / "a.jpg", tmp_path / "out.jpg", tmp_path / "reports" / "r.json"
    Image.fromarray(astronaut[::2, ::2]).save(source)
    report.parent.mkdir()
    _no_room_for_json(monkeypatch)
    result = run("restore", source, "-o", out, "--report", report, *BASELINE)
    assert result.exit_code == 2 and result.stdout.startswith("restored 1 face in 1 image "), result.output
    assert result.stderr == (f"error: cannot write the report {report} (No space left on device); what was restored "
                             "is written (a rerun skips it)\n")
    assert Image.open(out).size == (256, 256) and list(report.parent.iterdir()) == []
    monkeypatch.undo()
    assert run("restore", source, "-o", out, *BASELINE).stdout.startswith("already restored, left as is")


@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["", "quiet"])
def test_a_stopped_folders_report_the_disk_has_no_room_for_is_a_warning_before_the_stops_line(tmp_path, astronaut,
                                                                                              monkeypatch, quiet):
    """A folder stopped by a full disk writes --report; with no room for it either, the report's bare OSError
    replaced the stop's line. The report's failure is now one warning naming it, and the stop's line ends it;
    -q, which hides warnings, showed none (the user never learnt the report was not written): it shows it."""
    import errno

    from PIL import Image

    from clrface_video.io import photo_write

    album, out, report = tmp_path / "album", tmp_path / "out", tmp_path / "r.json"
    album.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(astronaut[::2, ::2]).save(album / name)
    encode = photo_write.encode_photo

    def full_at_b(image, like, target, name):
        if name == "b.jpg":
            raise OSError(errno.ENOSPC, "No space left on device")
        return encode(image, like, target, name)

    monkeypatch.setattr(photo_write, "encode_photo", full_at_b)
    _no_room_for_json(monkeypatch)
    result = run("restore", album, "-o", out, "--report", report, *BASELINE, *quiet)
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        f"warning: cannot write the report {report} (No space left on device)",
        ("error: no space left on device writing b.jpg; the folder is stopped there (1 restored file kept): "
         "free some space and run it again to go on")], result.output
    assert not report.exists() and sorted(p.name for p in out.iterdir()) == ["a.jpg"]


@pytest.mark.parametrize(("sent", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "terminated")], ids=["ctrl-c", "kill"])
def test_a_folder_stopped_by_a_signal_writes_its_report_of_the_files_finished(tmp_path, astronaut, sent, code, word):
    """Ctrl-C or SIGTERM mid-folder wrote no --report at all, though the photos finished before it are kept (a
    full disk's stop writes one). It now says what was done, marked interrupted, and the command still ends
    with the signal's status and one line. Its faces are the finished photos' (the faces of the photo it was on
    were counted too), and it lists the files left to do."""
    from PIL import Image

    album, out, report = tmp_path / "album", tmp_path / "out", tmp_path / "report.json"
    album.mkdir()
    for n in range(80):
        Image.fromarray(astronaut).save(album / f"p{n:02d}.jpg")
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C's default, as from a terminal
    try:
        process = subprocess.Popen([sys.executable, "-m", "clrface_video", "restore", str(album), "-o", str(out),
                                    "--report", str(report), "-q", *BASELINE, "--no-identity-guidance"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, ignored)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("p*.jpg"))) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)  # wait for the first photo finished: the folder is mid-way
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    kept = sorted(p.name for p in out.iterdir())
    done = json.loads(report.read_text())
    assert done["interrupted"] is True and done["kind"] == "folder"
    assert 1 <= done["images"] == len(kept) < 80 and kept == [f"p{n:02d}.jpg" for n in range(len(kept))]
    assert done["faces"] == done["images"] and done["settings"]["model"] == "baseline-bicubic-sharpen"  # one face
    assert done["unfinished"] == [f"p{n:02d}.jpg" for n in range(len(kept), 80)]  # the photo it was on, and after
    assert stderr == (  # one line: click's main had put an empty line before it
        f"{word}; {len(kept)} file{'' if len(kept) == 1 else 's'} finished and kept, no partial output was left: "
        "run it again to go on from there\n")


@pytest.mark.parametrize(("sent", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "terminated")], ids=["ctrl-c", "kill"])
def test_a_stop_once_a_videos_output_is_in_place_says_that_it_is_kept(tmp_path, small_clip, monkeypatch, sent, code,
                                                                      word):
    """Ctrl-C or SIGTERM after the restored video was renamed into place (its date being set) ended on
    'interrupted; no partial output was left' beside a whole output: the command still ends with the signal's
    status, and now says that the output was finished and is kept; --report is written, with its frames."""
    from clrface_video import cli as cli_module
    from clrface_video import pipeline
    from clrface_video.io.decode import read_frames

    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    keep = pipeline.keep_date_and_mode

    def stop_once_kept(source: Path, target: Path) -> None:
        keep(source, target)
        signal.raise_signal(sent)  # the signal itself, raised by its handler at the next line

    monkeypatch.setattr(pipeline, "keep_date_and_mode", stop_once_kept)
    monkeypatch.setattr(cli_module, "_SIGTERM_SEEN", [])
    handlers = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: cli_module._raise_terminated}
    before = signal.signal(sent, handlers[sent])  # Ctrl-C's default as from a terminal, or cli.main's SIGTERM's
    try:
        result = run("restore", small_clip, "-o", out, "--report", report, *BASELINE)
    finally:
        signal.signal(sent, before)
    assert result.exit_code == code, result.output
    assert result.stderr == f"{word} once its output was finished: {out} is whole and kept\n"
    assert len(list(read_frames(out))) == 6 and json.loads(report.read_text())["frames"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "report.json"]  # no temporary file


def test_a_folders_ctrl_c_line_says_how_many_files_were_finished(tmp_path, astronaut, monkeypatch):
    """A folder's Ctrl-C ended on 'interrupted; no partial output was left', which said nothing of the files
    restored before it, kept, nor that a rerun goes on from there: it now says both, and a rerun does the rest."""
    from PIL import Image

    from clrface_video import photos

    album, out = tmp_path / "album", tmp_path / "out"
    album.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.fromarray(astronaut[::2, ::2]).save(album / name)
    save = photos.save_photo

    def ctrl_c_at_the_third(source, target, *args, **kwargs):
        if source.name == "c.jpg":
            raise KeyboardInterrupt
        return save(source, target, *args, **kwargs)

    monkeypatch.setattr(photos, "save_photo", ctrl_c_at_the_third)
    result = run("restore", album, "-o", out, *BASELINE)
    assert result.exit_code == 130 and sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg"]
    assert result.stderr == (  # one line: click's main had put an empty line before it
        "interrupted; 2 files finished and kept, no partial output was left: run it again to go on from there\n")
    monkeypatch.undo()
    again = run("restore", album, "-o", out, *BASELINE)
    assert again.exit_code == 0 and again.stdout.startswith("restored 1 face in 1 image") and \
        ", 2 already done" in again.stdout


@pytest.mark.parametrize("options, said", [
    (["--model", "nope"], "error: --model must be one of: "),
    (["--device", "mps"], "error: --device must be auto, cpu, cuda or cuda:N"),
    (["--device", "cuda"], "error: --device is 'cuda', but torch sees no CUDA GPU; use cpu"),
    (["--detector", "insightface"], "error: --insightface-root is needed by the insightface detector"),
])
def test_model_and_device_errors_name_the_flags(small_clip, tmp_path, monkeypatch, options, said):
    """The library words these errors with the keyword (model=, device=, insightface_root=); the command line
    names its flags, as for every other option, and writes nothing."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out.mp4"
    assert_one_line_error(run("restore", small_clip, "-o", out, *BASELINE, *options), said)
    assert not out.exists()


def test_opencvs_own_log_lines_stay_off_the_console(tmp_path):
    """A 16-bit TIFF whose tags are out of order (tifffile's with a description) is read fine, but OpenCV printed
    '[ WARN:0@2.7] global grfmt_tiff.cpp:123 TIFF_Warning ...' on stderr: no file named, not a `warning:` line."""
    import os
    import subprocess
    import sys

    import tifffile

    rgb16 = np.random.default_rng(0).integers(0, 65535, (64, 64, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", rgb16, photometric="rgb", description="scan")
    env = {name: value for name, value in os.environ.items() if name != "OPENCV_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "clrface_video", "restore", str(tmp_path / "a.tif"), *BASELINE],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0 and (tmp_path / "a_restored.tif").exists(), done.stderr
    assert done.stderr == "", done.stderr


def test_a_heic_without_pillow_heif_is_named_itself_not_its_output(tmp_path, monkeypatch):
    """Restoring a .heic where pillow-heif is not installed (the set-up command leaves it out) named the output
    (`ph_restored.heic: HEIC/HEIF photos need pillow-heif`), a file the user never made, not the photo at fault."""
    from clrface_video.io import multi_picture, photo_read

    monkeypatch.setattr(photo_read, "heif_support", lambda: False)
    monkeypatch.setattr(multi_picture, "heif_support", lambda: False)
    photo = tmp_path / "ph.heic"
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    result = run("restore", photo, *BASELINE)
    assert_one_line_error(result, "ph.heic: HEIC/HEIF photos need pillow-heif")
    assert "ph_restored" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ph.heic"]
