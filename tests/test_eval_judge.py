"""The dlib identity judge ranks the same person above different people on real faces."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA, shared_file
from PIL import Image

pytest.importorskip("dlib", reason="the identity judge needs dlib-bin and face-recognition-models")


def _load(name: str) -> np.ndarray:
    path = shared_file(f"faces-hq/{name}")
    return np.asarray(Image.open(path).convert("RGB").resize((128, 128), Image.BICUBIC))


def test_same_person_scores_above_different_people():
    from clrface_video.eval.judge import identity_similarity

    shared_file("faces-hq")
    ids = ["celebrefhq_00005", "celebrefhq_00022", "celebrefhq_00075"]
    photos = {i: sorted(p.name for p in (SHARED_DATA / "faces-hq").glob(f"{i}_*"))[:2] for i in ids}
    a = np.stack([_load(photos[i][0]) for i in ids])
    b = np.stack([_load(photos[i][1]) for i in ids])
    same = identity_similarity(a, b)
    different = identity_similarity(a, np.roll(b, 1, axis=0))
    assert same.min() > 0.93
    assert different.max() < same.min() - 0.05


def test_judge_embeddings_are_unit_vectors(astronaut):
    from clrface_video.eval.judge import judge_embeddings

    face = np.asarray(Image.fromarray(astronaut[25:205, 135:315]).resize((128, 128)))
    e = judge_embeddings(face[None])
    assert e.shape == (1, 128)
    assert abs(float(np.linalg.norm(e[0])) - 1.0) < 1e-5
    flipped = judge_embeddings(face[None, :, ::-1].copy())
    assert float(e[0] @ flipped[0]) > 0.9
