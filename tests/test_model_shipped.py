"""The shipped CLR-Face checkpoint on faces it never saw: better than the degraded input, by an outside judge."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clrface_video.restore import restorer as restorer_mod
from tests.conftest import shared_file

pytestmark = pytest.mark.slow
FACES = 16


def _heldout_lfw_faces(size: int) -> np.ndarray:
    """One aligned face per held-out LFW identity (A-S only), detected and aligned as the pipeline does."""
    import cv2

    from clrface_video.faces.align import align_face
    from clrface_video.faces.detect import make_detector
    from clrface_video.train.prepare import PrepareConfig, largest_face, scan_sources, split_of

    holdout = PrepareConfig().holdout_fraction
    sources = [s for s in scan_sources(shared_file("faces-train/lfw")) if split_of(s, holdout) == "heldout"]
    detector, faces, seen = make_detector("retinaface"), [], set()
    for source in sources:
        if source.identity in seen:
            continue
        image = cv2.imread(str(source.path))[:, :, ::-1].copy()
        face = largest_face(detector.detect(image))
        if face is not None:
            seen.add(source.identity)
            faces.append(align_face(image, face.landmarks, size).image)
        if len(faces) == FACES:
            break
    assert len(faces) == FACES, f"only {len(faces)} held-out LFW identities with a face"
    return np.stack(faces)


def test_shipped_model_beats_the_degraded_input_on_held_out_identities():
    if not restorer_mod.SHIPPED_WEIGHTS.is_file():
        pytest.skip(f"shipped weights absent: {restorer_mod.SHIPPED_WEIGHTS}")
    pytest.importorskip("dlib", reason="the identity judge needs dlib-bin and face-recognition-models")
    from clrface_video.eval.judge import identity_similarity
    from clrface_video.eval.metrics import psnr
    from clrface_video.eval.paired import degrade_faces
    from clrface_video.restore.base import RestoreBatch, make_restorer

    restorer = make_restorer("auto", device=torch.device("cpu"), fidelity=0.5)
    assert restorer.name == "clrface"  # the default is the shipped model, not the baseline
    clean = _heldout_lfw_faces(restorer.resolution)
    degraded = degrade_faces(clean, seed=0)  # the documented eval recipe
    restored = np.concatenate([restorer.restore(RestoreBatch(degraded[i:i + 8], seeds=np.arange(i, i + 8)))
                               for i in range(0, FACES, 8)])
    mean_psnr = lambda faces: float(np.mean([psnr(f, c) for f, c in zip(faces, clean)]))
    assert mean_psnr(restored) > mean_psnr(degraded)
    assert identity_similarity(restored, clean).mean() > identity_similarity(degraded, clean).mean()
