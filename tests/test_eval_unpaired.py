"""Unpaired eval on real degraded faces: no-reference figures and identity kept from the input."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

pytest.importorskip("dlib", reason="eval needs dlib-bin and face-recognition-models")


def test_noise_estimate_tracks_added_noise(astronaut):
    from clrface_video.eval.unpaired import noise_sigma

    noisy = np.clip(astronaut + np.random.default_rng(0).normal(0, 10, astronaut.shape), 0, 255).astype(np.uint8)
    assert noise_sigma(astronaut) < 3.0
    assert 8.0 < noise_sigma(noisy) < 12.0


def test_unpaired_eval_on_two_real_faces():
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
