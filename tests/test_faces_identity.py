"""Identity encoder: the torch conversion matches OpenCV's run of the graph; real faces separate."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from clrface_video.faces import identity
from clrface_video.faces.align import align_face
from clrface_video.faces.detect import make_detector
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clrface-cache")


@pytest.fixture(scope="module")
def encoder(cache) -> identity.IdentityEncoder:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLRFACE_CACHE", str(cache))
        return identity.IdentityEncoder()


@pytest.fixture(scope="module")
def detector():
    return make_detector()


def aligned(detector, image: np.ndarray, size: int = 256) -> np.ndarray:
    face = detector.detect(image)[0]
    return align_face(image, face.landmarks, size).image


def test_converted_weights_are_cached_as_safetensors(encoder, cache):
    from safetensors import safe_open

    path = cache / identity.CACHE_NAME
    assert path.is_file()
    with safe_open(str(path), "pt") as f:
        names = set(f.keys())
        assert "bottleneck.weight" in names and "sha256" in f.metadata()
    again = identity.IdentityEncoder(identity.load_facenet_state(path))
    assert torch.equal(again.net.bottleneck.weight, encoder.net.bottleneck.weight)


def test_matches_opencv_on_the_same_input(encoder, detector, astronaut):
    net = cv2.dnn.readNetFromTensorflow(str(identity.facenet_graph_path()))
    crop = torch.from_numpy(aligned(detector, astronaut)).permute(2, 0, 1)[None].float() / 255
    inputs = [encoder.facenet_input(crop), torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 3, 160, 160)))]
    for x in inputs:
        x = x.float()
        net.setInput(x.numpy())
        expected = net.forward()
        with torch.no_grad():
            got = encoder.net(x).numpy()
        assert np.abs(got - expected).max() < 1e-4


def test_forward_is_differentiable_at_any_size(encoder, detector, astronaut):
    crops = {size: torch.from_numpy(aligned(detector, astronaut, size)).permute(2, 0, 1)[None].float() / 255
             for size in (128, 512)}
    crop = crops[128].requires_grad_(True)
    emb = encoder(crop)
    assert emb.shape == (1, identity.FACENET_DIM)
    assert torch.allclose(emb.norm(dim=1), torch.ones(1), atol=1e-5)
    (1 - emb[0] @ emb.detach()[0].roll(1)).backward()
    assert crop.grad is not None and crop.grad.abs().sum() > 0
    with torch.no_grad():  # the same face at another crop size embeds alike
        assert float(encoder(crops[512])[0] @ emb.detach()[0]) > 0.9
    assert not any(p.requires_grad for p in encoder.parameters())


def test_same_face_flipped_is_close(encoder, detector, astronaut):
    crop = aligned(detector, astronaut)
    flipped = aligned(detector, np.ascontiguousarray(astronaut[:, ::-1]))
    noisy = np.clip(crop + np.random.default_rng(0).normal(0, 8, crop.shape), 0, 255).astype(np.uint8)
    emb = encoder.embed(np.stack([crop, flipped, noisy]), batch_size=2)
    assert emb.shape == (3, 512) and emb.dtype == np.float32
    assert emb[0] @ emb[1] > 0.85 and emb[0] @ emb[2] > 0.85


def test_an_unlit_face_is_not_informative_since_unlit_faces_look_alike(encoder, detector, astronaut):
    """Two different people darkened to 7% (an audience in the dark, mean luma about 9) are more alike to FaceNet
    (above 0.9) than the tracker's re-identification threshold, whoever they are: such embeddings are not
    informative, so they never re-identify a track (FaceTracker.sample's `good`); lit, the same faces are."""
    from clrface_video.faces.track import TrackerParams
    from tests.media import grace_hopper

    crops = np.stack([aligned(detector, astronaut), aligned(detector, grace_hopper())])
    lit, unlit = encoder.embed(crops), encoder.embed((crops * 0.07).astype(np.uint8))
    assert lit[0] @ lit[1] < 0.3 and all(encoder.informative(e) for e in lit)
    assert unlit[0] @ unlit[1] > TrackerParams().rejoin_similarity
    assert not any(encoder.informative(e) for e in unlit)


def lfw_person(name: str) -> list[np.ndarray]:
    folder = SHARED_DATA / "faces-train" / "lfw" / name
    if not folder.is_dir():
        pytest.skip(f"research data not found: {folder} (set CLRFACE_SHARED_DATA to the shared/data folder)")
    files = sorted(folder.glob("*.jpg"))[:2]
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]


def central_crop(detector, image: np.ndarray) -> np.ndarray:
    centre = np.array(image.shape[1::-1]) / 2
    face = min(detector.detect(image), key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre))
    return align_face(image, face.landmarks, 256).image


def test_real_people_same_vs_different(encoder, detector, astronaut):
    people = ["George_W_Bush", "Colin_Powell", "Serena_Williams"]
    crops = [central_crop(detector, im) for name in people for im in lfw_person(name)]
    crops.append(aligned(detector, astronaut))
    emb = encoder.embed(np.stack(crops))
    labels = np.array([0, 0, 1, 1, 2, 2, 3])
    sim = emb @ emb.T
    same = (labels[:, None] == labels[None]) & ~np.eye(len(labels), dtype=bool)
    different = labels[:, None] != labels[None]
    assert sim[same].min() > sim[different].max() - 0.05
    assert sim[same].mean() > 0.6 and sim[different].mean() < 0.35


def test_cuda_and_cuda_n_of_the_current_gpu_share_one_encoder(monkeypatch):
    """'cuda' and 'cuda:0' were two cache keys, so a job that named the GPU both ways held FaceNet twice. No GPU
    here: torch is told GPU 0 is current and a stand-in encoder records where it is moved."""
    moved: list[str] = []

    class Encoder:
        def to(self, device):
            moved.append(str(device))
            return self

    monkeypatch.setattr(identity, "IdentityEncoder", Encoder)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    identity._shared_encoder.cache_clear()
    try:
        first, second, other = (identity.load_identity_encoder(d) for d in ("cuda", "cuda:0", "cuda:1"))
    finally:
        identity._shared_encoder.cache_clear()  # the stand-ins out of the shared cache
    assert first is second and other is not first and moved == ["cuda:0", "cuda:1"]
