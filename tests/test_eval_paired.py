"""Paired image eval: FaceNet ranks identities, landmark distance, and the eval command on a few faces."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DATA, shared_file
from PIL import Image

pytest.importorskip("dlib", reason="eval needs dlib-bin and face-recognition-models")


def _face(path, size: int = 128) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC))


def _astronaut_face(astronaut: np.ndarray, size: int = 128) -> np.ndarray:
    return np.asarray(Image.fromarray(astronaut[20:240, 105:325]).resize((size, size), Image.BICUBIC))


def test_facenet_ranks_the_same_person_above_a_different_one():
    from clrface_video.eval.paired import cosine_rows, facenet_embeddings

    shared_file("faces-hq")
    ids = ["celebrefhq_00005", "celebrefhq_00022", "celebrefhq_00075"]
    photos = {i: sorted((SHARED_DATA / "faces-hq").glob(f"{i}_*"))[:2] for i in ids}
    a = facenet_embeddings(np.stack([_face(photos[i][0]) for i in ids]))
    b = facenet_embeddings(np.stack([_face(photos[i][1]) for i in ids]))
    same = cosine_rows(a, b)
    different = cosine_rows(a, np.roll(b, 1, axis=0))
    assert different.max() < same.min() - 0.2, (same, different)


def test_landmark_distance_is_zero_for_identical_faces_and_grows_with_a_shift(astronaut):
    from clrface_video.eval.paired import landmark_nme, landmarks68

    face = _astronaut_face(astronaut)
    shifted = np.roll(face, 4, axis=1)
    marks = landmarks68(np.stack([face, face, shifted]))
    assert marks.shape == (3, 68, 2)
    nme = landmark_nme(marks, marks[[0, 0, 0]])
    assert nme[0] == 0.0 and nme[1] == 0.0
    assert nme[2] > 0.02  # 4 px of a ~45 px inter-ocular distance, less what the fixed face box absorbs


def test_existing_pair_of_identical_folders_scores_the_input_perfectly(tmp_path, astronaut):
    from clrface_video.eval.paired import INPUT, evaluate_existing_pairs, make_restorers

    clean, degraded = tmp_path / "clean", tmp_path / "degraded"
    clean.mkdir()
    degraded.mkdir()
    face = _astronaut_face(astronaut, 256)
    Image.fromarray(face).save(clean / "a.png")
    Image.fromarray(face).save(degraded / "a.png")
    Image.fromarray(face[:, ::-1]).save(clean / "unmatched.png")
    result = evaluate_existing_pairs(clean, degraded, make_restorers(["baseline-bicubic-sharpen"], "cpu"), size=128)
    inputs = [r for r in result.rows if r.method == INPUT]
    assert [r.image for r in inputs] == ["a"]
    for row in inputs:
        assert row.psnr == float("inf") and row.ssim == 1.0 and row.landmark_nme == 0.0
        assert row.identity_judge > 0.999 and row.identity_facenet > 0.999
    baseline = next(s for s in result.summary if s.method == "baseline-bicubic-sharpen")
    assert np.isfinite(baseline.psnr) and baseline.ssim < 1.0


def test_eval_command_on_three_faces_writes_input_and_baseline_rows(tmp_path):
    from click.testing import CliRunner

    from clrface_video.eval.commands import eval_command

    faces = shared_file("faces-hq")
    out = tmp_path / "eval"
    result = CliRunner().invoke(eval_command, [str(faces), "--limit", "3", "--models", "baseline-bicubic-sharpen",
                                               "--device", "cpu", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "result.json").read_text())
    assert data["kind"] == "paired" and data["seed"] == 3 and data["degradation"]["scale"] == [1.0, 8.0]
    assert [s["method"] for s in data["summary"]] == ["input", "baseline-bicubic-sharpen"]
    assert len(data["rows"]) == 6
    for row in data["rows"]:
        for key in ("psnr", "ssim", "identity_judge", "identity_facenet", "landmark_nme", "sharpness"):
            assert isinstance(row[key], float), (key, row)
    (delta,) = [d for d in data["deltas"] if d["metric"] == "sharpness"]
    assert delta["method"] == "baseline-bicubic-sharpen" and delta["images"] == 3 and delta["mean"] > 0
    report = (out / "report.md").read_text()
    assert "## Difference to the input" in report
    assert "![Before / after](grid.png)" in report and (out / "grid.png").is_file()


def test_eval_command_passes_fidelity_to_the_model(tmp_path):
    from click.testing import CliRunner

    from clrface_video.eval.commands import eval_command

    faces = shared_file("faces-hq")
    sharpness = {}
    for fidelity in ("0", "1"):
        out = tmp_path / f"eval-{fidelity}"
        result = CliRunner().invoke(eval_command, [str(faces), "--limit", "3", "--models", "clrface", "--device", "cpu",
                                                   "--fidelity", fidelity, "--out", str(out)])
        assert result.exit_code == 0, result.output
        data = json.loads((out / "result.json").read_text())
        (model,) = [s for s in data["summary"] if s["method"] == "clrface"]
        sharpness[fidelity] = model["sharpness"]
    # fidelity 0 starts the sampler earlier and draws more detail than fidelity 1, which stays near the IRN's smooth estimate
    assert sharpness["0"] > 1.2 * sharpness["1"], sharpness
    result = CliRunner().invoke(eval_command, [str(faces), "--fidelity", "1.5"])
    assert result.exit_code == 2 and "--fidelity" in result.output


def test_eval_command_passes_identity_guidance_to_the_model(tmp_path, astronaut):
    from click.testing import CliRunner
    from tiny_models import register_guidance_recorder

    from clrface_video.eval.commands import eval_command

    asked = register_guidance_recorder("test-eval-guidance")
    faces = tmp_path / "faces"
    faces.mkdir()
    Image.fromarray(_astronaut_face(astronaut)).save(faces / "a.png")
    for option, wanted in ((None, True), ("--no-identity-guidance", False)):
        asked.clear()
        args = [str(faces), "--models", "test-eval-guidance", "--device", "cpu", "--out", str(tmp_path / f"o{wanted}")]
        result = CliRunner().invoke(eval_command, args + ([option] if option else []))
        assert result.exit_code == 0, result.output
        assert asked == [wanted]


def test_eval_command_explains_inconsistent_options(tmp_path):
    from click.testing import CliRunner

    from clrface_video.eval.commands import eval_command

    runner = CliRunner()
    result = runner.invoke(eval_command, [str(tmp_path), "--degrade-video"])
    assert result.exit_code == 2 and "--degrade-video needs a video SOURCE" in result.output
    result = runner.invoke(eval_command, ["--clean", str(tmp_path)])
    assert result.exit_code == 2 and "give both --clean DIR and --degraded DIR" in result.output
    result = runner.invoke(eval_command, [str(tmp_path), "--models", "no-such-model"])
    assert result.exit_code == 2 and "none of --models could be built" in result.output
