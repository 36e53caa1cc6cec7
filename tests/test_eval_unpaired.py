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
