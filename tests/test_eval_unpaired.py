"""Unpaired eval on real degraded faces: no-reference figures and identity kept from the input."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file


def test_noise_estimate_is_zero_on_a_plane_and_finds_added_noise():
    from clrface_video.eval.unpaired import noise_sigma

    y, x = np.mgrid[0:128, 0:128]
    plane = np.repeat((20 + x + y // 2)[..., None], 3, axis=2).astype(np.float64)
    assert noise_sigma(plane.astype(np.uint8)) < 0.3  # integer steps of y // 2 only
    grey_noise = np.random.default_rng(0).normal(0, 8, (128, 128, 1))
    noisy = np.clip(plane + grey_noise, 0, 255).astype(np.uint8)
    assert abs(noise_sigma(noisy) - 8.0) < 0.5


def test_least_sharp_picks_the_blurred_faces_in_their_own_order(astronaut):
    import cv2

    from clrface_video.eval.unpaired import least_sharp

    face = cv2.resize(astronaut[20:220, 150:350], (128, 128), interpolation=cv2.INTER_AREA)
    blurred = {1: 2.5, 3: 1.0, 4: 4.0}  # index -> Gaussian sigma; 0 and 2 stay sharp
    faces = np.stack([cv2.GaussianBlur(face, (0, 0), blurred[i]) if i in blurred else face for i in range(5)])
    assert least_sharp(faces, 2).tolist() == [1, 4]
    assert least_sharp(faces, 3).tolist() == [1, 3, 4]
    assert least_sharp(faces, 9).tolist() == [0, 1, 2, 3, 4]


def test_blurriest_is_refused_without_unpaired(tmp_path):
    from click.testing import CliRunner

    from clrface_video.eval.commands import eval_command

    faces, out = tmp_path / "faces", tmp_path / "report"
    faces.mkdir()
    result = CliRunner().invoke(eval_command, [str(faces), "--blurriest", "3", "--out", str(out)])
    assert result.exit_code == 2 and "give it with --unpaired" in result.output
    assert not out.exists()


def test_unpaired_eval_on_two_real_faces():
    pytest.importorskip("dlib", reason="eval needs dlib-bin and face-recognition-models")
    from clrface_video.eval.paired import INPUT, make_restorers
    from clrface_video.eval.unpaired import evaluate_unpaired

    folder = shared_file("faces-lq-real")
    result = evaluate_unpaired(folder, make_restorers(["baseline-bicubic-sharpen"], "cpu"), size=128, limit=2)
    assert result.kind == "unpaired" and result.methods == (INPUT, "baseline-bicubic-sharpen")
    source, baseline = result.summary
    assert source.images == baseline.images == 2
    assert source.identity_judge == 1.0 and source.identity_facenet == 1.0
    assert 0.5 < baseline.identity_judge < 1.0 and 0.0 < baseline.identity_facenet < 1.0
    assert baseline.sharpness > source.sharpness  # an unsharp mask sharpens


def test_unpaired_eval_of_the_blurriest_faces_scores_only_those():
    pytest.importorskip("dlib", reason="eval needs dlib-bin and face-recognition-models")
    from clrface_video.eval.paired import INPUT, make_restorers
    from clrface_video.eval.unpaired import evaluate_unpaired

    folder = shared_file("faces-lq-real")
    restorers = make_restorers(["baseline-bicubic-sharpen"], "cpu")
    every = evaluate_unpaired(folder, restorers, size=128, limit=4)
    blurriest = evaluate_unpaired(folder, restorers, size=128, limit=4, blurriest=2)
    inputs = {r.image: r.sharpness for r in every.rows if r.method == INPUT}
    picked = [r.image for r in blurriest.rows if r.method == INPUT]
    assert len(picked) == 2 and blurriest.summary[0].images == 2
    assert max(inputs[n] for n in picked) <= min(v for n, v in inputs.items() if n not in picked)
    assert blurriest.summary[0].sharpness < every.summary[0].sharpness
