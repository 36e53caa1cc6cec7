"""An identity judge the restorer never trains against: dlib's ResNet face descriptor (128-d)."""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError

MISSING = ('the identity judge needs the eval extra (dlib and its face models): pip install -c constraints.txt '
           '-e ".[eval]"')


def check_installed() -> None:
    """Refuse before any work where dlib or its models are missing: the set-up command installs neither, and
    eval used to degrade and restore every face first, then stop in an unexpected ModuleNotFoundError."""
    if importlib.util.find_spec("dlib") is None:
        raise ModelError(MISSING)
    _models_dir()


def _models_dir() -> Path:
    # face_recognition_models' __init__ imports pkg_resources, which new setuptools dropped:
    # find its data folder without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(MISSING)
    return Path(spec.submodule_search_locations[0]) / "models"


@lru_cache(maxsize=1)
def _load() -> tuple[object, object]:
    check_installed()
    import dlib

    models = _models_dir()
    shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    return shape, net


def judge_embeddings(faces: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB aligned faces -> (N, 128) float32 L2-normalised dlib descriptors.

    The whole crop is taken as the face rectangle; dlib's 5-point model re-aligns it to its own chip.
    """
    shape_model, net = _load()  # first: it names the extra where dlib is missing
    import dlib

    out = np.empty((len(faces), 128), np.float32)
    for i, face in enumerate(faces):
        face = np.ascontiguousarray(face)
        h, w = face.shape[:2]
        # FFHQ-style crops are loose: the face box is roughly the central 60%
        rect = dlib.rectangle(int(0.2 * w), int(0.2 * h), int(0.8 * w), int(0.85 * h))
        shape = shape_model(face, rect)
        d = np.asarray(net.compute_face_descriptor(face, shape), np.float32)
        out[i] = d / max(float(np.linalg.norm(d)), 1e-8)
    return out


def identity_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity per pair between two (N, S, S, 3) uint8 face batches, judged by dlib."""
    return np.sum(judge_embeddings(a) * judge_embeddings(b), axis=1)
