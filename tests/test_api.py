"""The Python API on the public-domain astronaut with the baseline restorer: dtypes, untouched pixels, tracks, options."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import clrface_video
from clrface_video import api, photos, pipeline
from clrface_video.config import RestoreConfig
from clrface_video.errors import ClrfaceError, InputError, ModelError
from clrface_video.io.decode import read_frames
from clrface_video.io.photo_read import read_photo
from tests.media import make_clip, unrelated_pair

BASELINE = {"model": "baseline-bicubic-sharpen", "device": "cpu"}
FACE = (slice(60, 190), slice(150, 290))  # rows, columns around the astronaut's face
FAR = (slice(330, 512), slice(0, 512))  # the lower part of the picture, far below the face


@pytest.fixture(scope="module")
def session() -> api.Session:
    return api.load_restorer(**BASELINE)


def as_dtype(image: np.ndarray, dtype: type) -> np.ndarray:
    """uint8 -> uint16 (x257) or float32 in 0..1 with a little off-grid noise (no float pixel sits on k/255)."""
    if dtype == np.uint8:
        return image
    if dtype == np.uint16:
        return image.astype(np.uint16) * 257
    noise = np.random.default_rng(0).uniform(0.0, 1e-3, image.shape)
    return np.clip(image / 255.0 + noise, 0.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_restore_image_keeps_shape_dtype_and_background(session, astronaut, dtype):
    image = as_dtype(astronaut, dtype)
    frames = session.restore_frames([image], as_video=False)
    ((out, mask),) = list(frames.with_masks())
    assert out.shape == image.shape and out.dtype == image.dtype
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32 and 0.0 <= mask.min() <= mask.max() <= 1.0
    changed = np.any(out != image, axis=-1)
    assert changed[FACE].mean() > 0.3, "the face was not restored"
    assert not changed[mask == 0].any(), "a pixel outside the pasted faces changed"
    assert np.array_equal(out[FAR], image[FAR]) and mask[FAR].max() == 0.0
    assert frames.faces == 1 and frames.tracks == 1
    assert np.array_equal(session.restore_image(image), out)  # the same story as restore_frames(as_video=False)


def test_float_stays_float_without_uint8_round_trip(session, astronaut):
    image = as_dtype(astronaut, np.float32)
    ((out, mask),) = list(session.restore_frames([image], as_video=False).with_masks())
    outside = mask == 0
    assert out.dtype == np.float32 and np.array_equal(out[outside], image[outside])  # bit for bit
    inside = mask > 0.5
    on_grid = np.isclose(out[inside] * 255.0, np.round(out[inside] * 255.0), atol=1e-4)
    assert not on_grid.all(), "the face region was quantised to 8 bits after blending"
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_one_call_functions_and_lazy_reexports(astronaut):
    assert clrface_video.restore_image is api.restore_image and clrface_video.Session is api.Session
    out = clrface_video.restore_image(astronaut, **BASELINE)
    assert out.shape == astronaut.shape and not np.array_equal(out[FACE], astronaut[FACE])
    code = "import sys, clrface_video; assert 'torch' not in sys.modules and 'clrface_video.api' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_restore_frames_tracks_one_person_consistently(session, astronaut):
    rng = np.random.default_rng(1)
    clip = [np.clip(astronaut + rng.normal(0, 1.0, astronaut.shape), 0, 255).astype(np.uint8) for _ in range(4)]
    frames = api.restore_frames(iter(clip), **BASELINE)  # a one-shot iterator is enough
    out = list(frames)
    assert len(out) == 4 and all(o.shape == astronaut.shape and o.dtype == np.uint8 for o in out)
    assert frames.tracks == 1 and frames.faces == 4
    face = [o[FACE].astype(np.float32) for o in out]
    inputs = [c[FACE].astype(np.float32) for c in clip]
    for i in range(1, 4):  # near-identical frames give near-identical restored faces
        assert np.abs(face[i] - face[0]).mean() < np.abs(inputs[i] - inputs[0]).mean() + 1.0
        assert not np.array_equal(out[i][FACE], clip[i][FACE])


def test_session_reuses_models_and_changes_options_per_call(session, astronaut):
    detector, restorer = session.detector(session.config), session.restorer
    sharp = session.restore_image(astronaut, fidelity=0.0)
    soft = session.restore_image(astronaut, fidelity=1.0)
    assert np.abs(sharp.astype(int) - astronaut).sum() > np.abs(soft.astype(int) - astronaut).sum()
    assert session.detector(session.config) is detector and session.restorer is restorer
    assert np.array_equal(session.restore_image(astronaut, min_face=400), astronaut)  # face too small: left alone
    with pytest.raises(ClrfaceError, match="fixed when the models are loaded"):
        session.restore_image(astronaut, model="clrface")


def test_large_faces_keep_the_input_detail_finer_than_the_model(session, astronaut):
    import cv2

    big = cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # the face shrinks 5x into 128 px
    grain = np.random.default_rng(0).normal(0.0, 6.0, big.shape[:2]).astype(np.float32)  # 1-pixel film grain
    big = np.clip(big + grain[..., None], 0, 255).astype(np.uint8)
    ((kept, mask),) = list(session.restore_frames([big], as_video=False).with_masks())  # keep_detail 1, the default
    lost = session.restore_image(big, keep_detail=0.0)
    inside = mask > 0.99
    assert inside.sum() > 40_000

    def fine(image: np.ndarray) -> np.ndarray:  # the band finer than the crop's pixels, inside the pasted face
        grey = image.astype(np.float32).mean(-1) if image.ndim == 3 else image
        return (grey - cv2.GaussianBlur(grey, (0, 0), 1.0))[inside]

    assert np.corrcoef(fine(kept), fine(grain))[0, 1] > 0.6  # the grain is still there
    assert abs(np.corrcoef(fine(lost), fine(grain))[0, 1]) < 0.1  # a 128 px face cannot have drawn it
    assert np.abs(kept.astype(int) - lost)[inside].mean() > 2


@pytest.mark.parametrize("options, words", [
    ({"fidelty": 0.5}, "unknown option 'fidelty'"),
    ({"fidelity": 1.5}, "^fidelity must be between 0 and 1"),
    ({"fidelity": "high"}, "fidelity must be a number"),
    ({"batch_size": 0}, "^batch_size must be at least 1"),
    ({"batch_size": 2.5}, "batch_size must be a whole number"),
    ({"detector": "mtcnn"}, "detector must be one of retinaface, insightface"),
    ({"min_face": -1}, "min_face must be 0 or more"),
    ({"max_upscale": 0}, "max_upscale must be above 0"),
    ({"track_identity": "yes"}, "track_identity must be True or False"),
    ({"snap_to_codebook": "auto"}, "snap_to_codebook must be True, False or None"),
    ({"keep_detail": 1.5}, "^keep_detail must be between 0 and 1"),
    ({"temporal_smoothing": 2}, "^temporal_smoothing must be between 0 and 0.95"),
    ({"device": 3}, "device must be a string"),
    ({"seed": -1}, "seed must be a whole number from 0 to 2"),
    ({"seed": 2**63}, "seed must be a whole number from 0 to 2"),
])
def test_bad_options_are_one_line_errors(astronaut, options, words):
    with pytest.raises(ClrfaceError, match=words) as caught:
        api.restore_image(astronaut, **options)
    assert "\n" not in str(caught.value)


def test_a_closed_session_lets_its_models_go_and_loads_them_again_when_used(astronaut):
    """close() frees the models (ComfyUI's loader closes a device's session when another model is picked), and a
    node still holding that session gets them loaded again rather than an error."""
    import gc
    import weakref

    session = api.load_restorer(**BASELINE)
    before = session.restore_image(astronaut, fidelity=0.9)  # a second fidelity's restorer, kept beside the first
    restorers = [weakref.ref(r) for r in session._variants.values()]
    session.close()
    gc.collect()
    assert len(restorers) == 2 and all(ref() is None for ref in restorers)
    assert np.array_equal(session.restore_image(astronaut, fidelity=0.9), before)


def test_a_threshold_under_the_floor_is_its_own_floor():
    """The video floor never rises above --detection-threshold: a very low threshold finds the same faces in
    video as in photos (and a Session's one detector serves both)."""
    from clrface_video.config import RestoreConfig

    low = RestoreConfig(det_threshold=0.01)
    assert low.detection_floor(video=True) == low.detection_floor(video=False) == 0.01
    assert RestoreConfig().detection_floor(video=True) == pytest.approx(0.35)


def test_bad_model_and_bad_frames(session, astronaut):
    with pytest.raises(ModelError, match="^model must be one of: .*, got 'nope'$"):
        api.load_restorer(model="nope", device="cpu")
    with pytest.raises(InputError, match=r"restore_image takes RGB \(H, W, 3\)"):
        session.restore_image(astronaut.astype(np.float16))
    frames = session.restore_frames([astronaut, astronaut[..., :2]], as_video=False)
    with pytest.raises(InputError, match="restore_frames takes RGB"):
        list(frames)
    with pytest.raises(InputError, match="the image is empty"):
        session.restore_image(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(InputError, match=r"for a file .* use clrface_video.restore_video\(path\)"):
        clrface_video.restore_image("holiday.jpg")
    spoilt = astronaut.astype(np.float32) / 255
    spoilt[5, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        session.restore_image(spoilt)
    with pytest.raises(InputError, match="divide it by 255"):
        session.restore_image(astronaut.astype(np.float32))
    with pytest.raises(InputError, match=r"goes down to -1; a -1..1 image is \(x \+ 1\) / 2 in 0..1$"):
        session.restore_image(astronaut.astype(np.float32) / 127.5 - 1)  # -1..1: its face pasted back in 0..1
    with pytest.raises(InputError, match="pass a list of frames"):
        list(session.restore_frames(astronaut))
    for nothing in (None, "clip.mp4"):  # was a bare "'NoneType' object is not iterable"; a path read letter by letter
        with pytest.raises(InputError, match="restore_frames takes an iterable of RGB frames"):
            session.restore_frames(nothing)
    with pytest.raises(InputError, match="restore_frames takes RGB"):
        list(pipeline.restore_frames([astronaut[..., 0]], RestoreConfig(model="baseline-bicubic-sharpen", device="cpu")))


def test_a_session_restores_a_clip_a_photo_and_a_folder_with_its_own_models(tmp_path, session, monkeypatch,
                                                                            astronaut):
    (tmp_path / "album").mkdir()
    clip = make_clip(tmp_path / "album" / "in.mp4", frames=4, size=(192, 192), audio=False)
    photo = tmp_path / "album" / "photo.png"
    Image.fromarray(astronaut).save(photo)
    expected = api.restore_video(clip, tmp_path / "plain.mp4", **BASELINE)  # models loaded for the call
    monkeypatch.setattr(pipeline, "load_models", lambda *a, **k: pytest.fail("a session loaded its models again"))
    monkeypatch.setattr(photos, "load_models", pipeline.load_models)
    video = session.restore_video(clip, tmp_path / "out.mp4")
    assert video.kind == "video" and video.frames == 4 and video.tracks == expected.tracks == 1
    assert [f.image.tobytes() for f in read_frames(tmp_path / "out.mp4")] == \
        [f.image.tobytes() for f in read_frames(tmp_path / "plain.mp4")]
    image = session.restore_video(photo, tmp_path / "photo_out.png")
    assert image.kind == "image" and image.faces == 1
    assert np.array_equal(read_photo(tmp_path / "photo_out.png").image, session.restore_image(astronaut))
    folder = session.restore_video(tmp_path / "album", tmp_path / "album_out")
    assert (folder.images, folder.videos) == (1, 1)
    assert (tmp_path / "album_out" / "in.mp4").is_file() and (tmp_path / "album_out" / "photo.png").is_file()


def test_restore_video_writes_a_clip(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=(192, 192), audio=False)
    report = api.restore_video(clip, tmp_path / "out.mp4", quiet=True, **BASELINE)
    assert report.kind == "video" and report.frames == 6 and report.tracks == 1 and (tmp_path / "out.mp4").is_file()
    with pytest.raises(InputError, match="input not found"):
        api.restore_video(tmp_path / "missing.mp4", **BASELINE)


def test_a_report_lists_its_own_jobs_warnings_not_another_threads(tmp_path, session, astronaut):
    """The package's logger is the process's: a script restoring two files in two threads had one job's warning
    in the other's report. Here job B, which warns, runs in another thread while job A is running (from A's
    progress hook, so the order is fixed); each report lists its own warnings only."""
    import threading

    plain, coded = tmp_path / "plain.png", tmp_path / "coded.png"
    Image.fromarray(astronaut).save(plain)
    Image.fromarray(astronaut).save(coded)
    other: dict[str, api.RestoreReport] = {}

    def other_job() -> None:
        other["report"] = session.restore_video(coded, tmp_path / "coded_out.png", codec="libx265")

    class RunTheOtherJob:
        def start(self, total: int | None, unit: str) -> None:
            thread = threading.Thread(target=other_job)
            thread.start()
            thread.join()

        def advance(self, n: int = 1) -> None:
            pass

    mine = session.restore_video(plain, tmp_path / "plain_out.png", progress=RunTheOtherJob())
    assert mine.images == 1 and mine.warnings == []
    assert other["report"].images == 1
    said = "coded.png: codec is for video; a photo is written in its own format, or the one output names"
    assert other["report"].warnings == [said]


def test_warnings_kept_off_the_console_as_the_readme_says_are_still_in_the_report(tmp_path, session, astronaut,
                                                                                  monkeypatch, capsys):
    """README (Python API): a report's warnings come through the clrface_video logger, so a logger set above
    WARNING drops them from the report too; a NullHandler with propagate off keeps them off the console (and
    off the root logger's handlers) and in the report."""
    import logging

    photo = tmp_path / "photo.png"
    Image.fromarray(astronaut).save(photo)
    said = "photo.png: codec is for video; a photo is written in its own format, or the one output names"
    logger = logging.getLogger("clrface_video")
    seen: list[str] = []

    class Root(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = Root(logging.WARNING)
    logging.getLogger().addHandler(root)
    try:
        monkeypatch.setattr(logger, "handlers", [logging.NullHandler()])
        monkeypatch.setattr(logger, "propagate", False)
        quiet = session.restore_video(photo, tmp_path / "quiet.png", codec="libx265")
        assert quiet.warnings == [said] and seen == [] and capsys.readouterr().err == ""
        level = logger.level
        logger.setLevel(logging.ERROR)  # setLevel, which clears the loggers' cached levels
        try:
            dropped = session.restore_video(photo, tmp_path / "dropped.png", codec="libx265")
        finally:
            logger.setLevel(level)
        assert dropped.images == 1 and dropped.warnings == []
    finally:
        logging.getLogger().removeHandler(root)


@pytest.mark.parametrize("options, words", [
    ({"model": "nope"}, "model must be one of: .*, got 'nope'"),
    ({"device": "mps"}, r"device must be auto, cpu, cuda or cuda:N \(only NVIDIA GPUs"),
    ({"device": "cuda"}, "device is 'cuda', but torch sees no CUDA GPU; use cpu"),
    ({"detector": "insightface"}, "insightface_root is needed by the insightface detector"),
])
def test_model_and_device_errors_name_the_keyword_not_the_flag(astronaut, monkeypatch, options, words):
    """These said `unknown --model`, `--device ... use --device cpu`, `needs --insightface-root DIR` to a Python
    caller, who passes keywords (README: API errors name the keyword)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ClrfaceError, match=f"^{words}") as caught:
        api.restore_image(astronaut, **{**BASELINE, **options})
    assert "--" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("source, options, output, words", [
    ("studio.mkv", {"pix_fmt": "yuv422p"}, "out.mp4", "by libx264 (as players expect); codec prores_ks or ffv1 keeps it"),
    ("deep.mkv", {"bit_depth": 10}, "out.avi", "by mpeg4; codec ffv1 (.mkv) or libx265 keep it"),
    ("keyed.mkv", {"alpha": True}, "out.mp4", "stores none; codec prores_ks (.mov) or ffv1 (.mkv) keep it"),
])
def test_a_videos_warnings_name_the_keyword_not_the_flag(tmp_path, source, options, output, words):
    """A script was told '--codec prores_ks or ffv1 keeps it' of a 4:2:2 source (and alike of a deeper one's
    bits and of an alpha channel): a flag it never passed; the CLI still says --codec (test_cli)."""
    from tests.media import make_alpha_clip

    clip = make_alpha_clip(tmp_path / source, frames=3, size=(96, 80))[0] if options.get("alpha") else \
        make_clip(tmp_path / source, frames=3, size=(96, 80), audio=False, **options)
    report = api.restore_video(clip, tmp_path / output, **BASELINE)
    assert [line for line in report.warnings if words in line] and not any("--" in line for line in report.warnings)


def test_a_session_takes_its_own_device_and_model_as_load_restorer_takes_them(tmp_path, session, astronaut):
    """load_restorer(device=torch.device("cpu")) is device "cpu", but the same value per call was refused as
    another device ("device is fixed when the models are loaded"), and so was the model given as a Path."""
    import torch

    out = session.restore_image(astronaut, device=torch.device("cpu"), model=Path(BASELINE["model"]))
    assert np.array_equal(out, session.restore_image(astronaut))
    with pytest.raises(ClrfaceError, match="^device is fixed when the models are loaded"):
        session.restore_image(astronaut, device=torch.device("cuda"))


@pytest.mark.parametrize("options, words", [({"start": 1.0}, "start picks"), ({"duration": 2}, "duration picks")])
def test_a_stretch_of_a_photo_or_folder_is_refused_naming_the_keyword(tmp_path, session, astronaut, options, words):
    """From Python these said `--start and --duration pick a stretch ...`, flags a script never passed."""
    photo = tmp_path / "in" / "a.png"
    photo.parent.mkdir()
    Image.fromarray(astronaut).save(photo)
    for call in (lambda: session.restore_video(photo, tmp_path / "a.png", **options),
                 lambda: api.restore_video(photo.parent, tmp_path / "out", **BASELINE, **options)):
        with pytest.raises(ClrfaceError, match=f"^{words} a stretch of (a|one) video; a (photo|folder) is restored"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize("args, kwargs, words", [
    ((None,), {}, "restore_video: input must be a file or folder path (str or pathlib.Path), got None"),
    ((5,), {}, "restore_video: input must be a file or folder path (str or pathlib.Path), got 5"),
    (("in.mp4", 5), {}, "restore_video: output must be a file or folder path (str or pathlib.Path) or None, got 5"),
    (("in.mp4", "out.mp4"), {"config": "x"}, "restore_video: config must be a RestoreConfig or None, got str"),
    (("in.mp4", "out.mp4"), {"progress": print}, "restore_video: progress must have start(total, unit) and advance"),
])
def test_wrong_argument_types_are_one_line_errors_naming_the_argument(tmp_path, monkeypatch, session, args, kwargs,
                                                                     words):
    """These failed deep inside the job: pathlib's TypeError, an AttributeError on the config."""
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    calls = [lambda: api.restore_video(*args, **BASELINE, **kwargs)]
    if "config" not in kwargs:  # a session has its own options, no config
        calls.append(lambda: session.restore_video(*args, **kwargs))
    for call in calls:
        with pytest.raises(ClrfaceError) as caught:
            call()
        assert str(caught.value).startswith(words), str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_float64_frames_as_numpy_makes_them_are_restored_and_come_back_float64(session, astronaut):
    """`rgb / 255.0` is float64, which was refused without a hint. It is restored as the float32 copy would be
    and returned float64, as every dtype comes back in its own; pixels outside the faces bit for bit."""
    image = as_dtype(astronaut, np.float32).astype(np.float64) + 1e-12  # values float32 cannot hold exactly
    ((out, mask),) = list(session.restore_frames([image], as_video=False).with_masks())
    as32 = session.restore_image(image.astype(np.float32))
    assert out.dtype == np.float64 and out.shape == image.shape
    assert np.array_equal(out[mask == 0], image[mask == 0])  # not through float32
    assert np.array_equal(out[mask > 0], as32[mask > 0].astype(np.float64)) and (mask > 0).sum() > 10_000
    one = api.restore_image(image, **BASELINE)
    assert one.dtype == np.float64 and np.array_equal(one, out)
    with pytest.raises(InputError, match="divide it by 255"):
        session.restore_image(astronaut.astype(np.float64))


def test_using_the_api_leaves_the_process_environment_as_it_was(tmp_path):
    """A Qt program that restores through the API keeps its own Qt plugins: opencv-python, when it is the cv2
    installed, sets QT_QPA_PLATFORM_PLUGIN_PATH and more on import, for windows this package never opens."""
    code = ("import json, os, sys; before = dict(os.environ); import numpy as np; import clrface_video.api\n"
            "import clrface_video.faces.detect, clrface_video.photos; import cv2\n"
            "assert cv2.resize(np.zeros((4, 4), np.uint8), (2, 2)).shape == (2, 2)\n"
            "json.dump({k: v for k, v in os.environ.items() if before.get(k) != v}, sys.stdout)")
    env = {name: value for name, value in os.environ.items() if not name.startswith("QT_")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {}


@pytest.mark.parametrize("flag", ["no", 0, None])
def test_as_video_takes_true_or_false_only(session, astronaut, flag):
    """as_video="no" is truthy: the frames were tracked as one video where the caller asked for photos."""
    with pytest.raises(ClrfaceError, match="^restore_frames: as_video must be True or False, got "):
        session.restore_frames([astronaut], as_video=flag)


def test_messages_to_a_script_name_its_keywords_not_the_command_lines_flags(tmp_path, astronaut):
    """A script that gave restore_video its input as output was told to 'choose another -o OUTPUT', one that gave
    preset= for FFV1 that '--preset is for libx264', one whose start= was past the end of '--start': flags it has
    none of. Each now names the keyword it passed (the CLI keeps its flags: test_cli)."""
    clip = make_clip(tmp_path / "clip.mp4", frames=4, size=(96, 80), audio=False)
    with pytest.raises(ClrfaceError, match=r"is the input; choose another output \(the input is never changed\)$"):
        api.restore_video(clip, clip, **BASELINE)
    with pytest.raises(InputError, match=r"from 5 s on: it ends at [\d.]+ s \(start is past its end\)$"):
        api.restore_video(clip, tmp_path / "late.mp4", start=5, **BASELINE)
    with pytest.raises(ClrfaceError, match=r"format does not support 'libx264' codec; use .mkv or .mov, or another "
                       r"codec$"):
        api.restore_video(clip, tmp_path / "out.webm", codec="libx264", **BASELINE)
    lossless = api.restore_video(clip, tmp_path / "out.mkv", codec="ffv1", preset="fast", **BASELINE)
    assert lossless.warnings == ["preset is for libx264 and libx265; ffv1 takes none, so it is ignored"]
    photo = tmp_path / "face.png"
    Image.fromarray(astronaut).save(photo)
    still = api.restore_video(photo, tmp_path / "face_out.png", crf=20, **BASELINE)
    said = "face.png: crf is for video; a photo is written in its own format, or the one output names"
    assert still.warnings == [said]


@pytest.mark.parametrize(("image", "said"), [
    (np.full((8, 8, 3), 200.0), "restore_image: float64 images are 0..1 and this one reaches 200; divide it by 255"),
    (np.full((8, 8, 3), np.nan), "restore_image: the float64 image holds NaN or infinite values"),
    (np.zeros((8, 8, 3), np.int32),
     "restore_image takes RGB (H, W, 3) uint8, uint16, float32 or float64 (0..1) arrays, got (8, 8, 3) int32"),
])
def test_a_wrong_image_is_said_in_the_dtype_the_caller_gave(session, image, said):
    """NumPy's default float is float64 (rgb / 1.0 left on the 0..255 scale), which the API takes: it was told
    'float32 images are 0..1' and that only uint8, uint16 or float32 arrays are taken, of a float64 it never made."""
    with pytest.raises(InputError) as raised:
        session.restore_image(image)
    assert str(raised.value) == said
    with pytest.raises(InputError) as raised:
        api.restore_image(image, **BASELINE)
    assert str(raised.value) == said


def test_check_interrupt_stops_a_run_before_its_next_frame(session, astronaut):
    """A host's cancel check (ComfyUI's) is called as each frame comes in, before its faces are looked for: what it
    raises reaches the caller, and the frames after it are not read; one that is no function is refused."""
    read, calls = [], []

    def frames():
        for index in range(3):
            read.append(index)
            yield astronaut

    def check() -> None:
        calls.append(len(read))
        if len(read) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(session.restore_frames(frames(), check_interrupt=check))
    assert read == [0, 1] and calls == [1, 2]
    with pytest.raises(ClrfaceError, match="^restore_frames: check_interrupt must be a function or None, got str$"):
        session.restore_frames([astronaut], check_interrupt="stop")


def test_on_progress_counts_frames_done_up_to_their_number_exactly(session, astronaut):
    """on_progress is told how many frames are done as each comes in and as its faces are restored, before the
    frames come out a batch at a time: it never goes back and ends at the number of frames, exactly (a frame with
    no face counts whole once read); one that is no function is refused."""
    told: list[float] = []
    frames = [astronaut, np.zeros_like(astronaut), astronaut]
    run = session.restore_frames(frames, as_video=False, on_progress=told.append, batch_size=16)
    next(run)
    assert told and told[0] > 0, told  # told before the first frame came out
    list(run)
    assert told == sorted(told) and told[-1] == 3.0, told
    assert any(value % 1 for value in told), f"only whole frames were told: {told}"
    with pytest.raises(ClrfaceError, match="^restore_frames: on_progress must be a function or None, got str$"):
        session.restore_frames([astronaut], on_progress="bar")


def test_unrelated_pictures_asked_for_as_a_video_are_restored_as_photos(session, info_logged):
    """restore_frames' default is a video; given pictures each a cut from the one before (a generator of two
    unrelated photos) or one frame, it restored them at the video threshold, 0.6: the sample's spacesuit (0.61)
    as a face. Now as photos, said once; every frame comes back, in order, as as_video=False gives them."""

    pair = unrelated_pair()
    run = session.restore_frames(iter(pair))
    restored = list(run.with_masks())
    (alone, alone_mask), = session.restore_frames(pair[:1]).with_masks()
    photos = list(session.restore_frames(pair, as_video=False))
    assert (run.faces, run.tracks) == (2, 2)  # each face its own, as photos'
    assert all(np.array_equal(got, want) for (got, _), want in zip(restored, photos, strict=True))
    for mask in (restored[0][1], alone_mask):
        assert mask[FACE].max() > 0 and mask[FAR].max() == 0  # the face, not the suit
    assert np.array_equal(alone, photos[0])
    said = [r.getMessage() for r in info_logged.records if "separate images" in r.getMessage()]
    why = "restored as separate images: faces not tracked, detection threshold 0.7 as for photos"
    assert said == [f"as_video: the 2 frames are no video's (1 of 1 neighbouring pairs is a cut), {why}",
                    f"as_video: one frame, {why}"]


def test_a_clip_stays_a_video_and_a_generator_is_read_a_few_frames_ahead(session, tmp_path):
    """A video's frames, a cut among them, are a video's: told by their first frames, a generator is not read
    to its end first (it may be a whole film)."""
    clip = [frame.image for frame in read_frames(make_clip(tmp_path / "clip.mp4", frames=12))]
    with_cut = [*clip[:2], unrelated_pair()[1][:256, :256], *clip[2:]]
    read = []

    def frames(images):
        for image in images:
            read.append(image)
            yield image

    look = api.separate_pictures(frames(with_cut))
    assert not look.pictures and len(read) == 11  # 8 neighbours of one shot (of 15 at most) settle it; 2 cuts
    assert all(a is b for a, b in zip(look.frames, with_cut, strict=True))  # every frame, in order
    read.clear()
    assert not api.separate_pictures(frames(clip)).pictures and len(read) == 9
    assert not api.separate_pictures(clip).pictures and api.separate_pictures(clip[:1]).pictures
    assert not api.separate_pictures([clip[0], clip[1], with_cut[2]]).pictures  # a tie is a video


@pytest.mark.slow
def test_research_clips_are_videos_and_photo_batches_are_pictures():
    """The rule on real media (benchmarks/batch_kind.py measures it on more): every research clip's first 16
    frames are a video's; 16 LFW faces of different people, and 16 research photos, are separate pictures."""
    from tests.conftest import shared_file

    videos = sorted(shared_file("videos").glob("*.mp4"))
    for video in videos:
        frames = [frame.image for frame, _ in zip(read_frames(video), range(16))]
        assert not api.separate_pictures(frames).pictures, video.name
    people = sorted(p for p in shared_file("faces-train/lfw").iterdir() if p.is_dir())
    for files in ([min(p.iterdir()) for p in people[::len(people) // 16][:16]],
                  sorted(shared_file("photos").iterdir())[:16]):
        size = Image.open(files[0]).size
        batch = [np.asarray(Image.open(f).convert("RGB").resize(size)) for f in files]
        assert api.separate_pictures(batch).pictures, [f.name for f in files]
