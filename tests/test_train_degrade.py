"""Degradations: seeded, shape- and dtype-preserving, and they really change the image."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from clrface_video.train.degrade import DegradeConfig, degrade, degrade_batch, degrade_sequence, jpeg, x264


@pytest.fixture(scope="module")
def face(astronaut: np.ndarray) -> np.ndarray:
    return cv2.resize(astronaut[0:220, 140:360], (128, 128), interpolation=cv2.INTER_AREA)


def test_same_seed_same_output(face: np.ndarray) -> None:
    for seed in range(8):
        a = degrade(face, np.random.default_rng(seed))
        b = degrade(face, np.random.default_rng(seed))
        assert np.array_equal(a, b)


def test_different_seeds_differ_and_change_the_image(face: np.ndarray) -> None:
    outs = [degrade(face, np.random.default_rng(seed)) for seed in range(8)]
    for out in outs:
        assert out.shape == face.shape and out.dtype == np.uint8
    assert sum(not np.array_equal(out, face) for out in outs) >= 7
    assert len({out.tobytes() for out in outs}) == len(outs)


def test_every_step_alone_degrades(face: np.ndarray) -> None:
    off = {"blur_prob": 0.0, "downsample_prob": 0.0, "noise_prob": 0.0, "compress_prob": 0.0}
    steps = [{"blur_prob": 1.0, "gaussian_sigma": (2.0, 2.0)}, {"blur_prob": 1.0, "motion_blur_prob": 1.0}, {"downsample_prob": 1.0, "scale": (4.0, 4.0)},
             {"noise_prob": 1.0, "gaussian_noise": (5.0, 5.0), "poisson_prob": 1.0}, {"compress_prob": 1.0, "codec_prob": 0.0},
             {"compress_prob": 1.0, "codec_prob": 1.0}]
    for step in steps:
        out = degrade(face, np.random.default_rng(0), DegradeConfig(**{**off, **step}))
        assert out.shape == face.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - face).mean() > 0.3, step
    same = degrade(face, np.random.default_rng(0), DegradeConfig(**off))
    assert np.array_equal(same, face)


def test_codec_round_trip_odd_sizes_and_sequences(face: np.ndarray) -> None:
    small = cv2.resize(face, (37, 29))
    (out,) = x264([small], crf=45)
    assert out.shape == small.shape
    clip = [np.roll(face, i, axis=1) for i in range(4)]
    outs = degrade_sequence(clip, np.random.default_rng(1))
    assert len(outs) == 4 and all(o.shape == face.shape for o in outs)
    assert np.abs(jpeg(face, 20).astype(int) - face).mean() > 1


def test_batch_is_per_sample_seeded(face: np.ndarray) -> None:
    batch = np.stack([face, face[:, ::-1].copy(), face])
    out = degrade_batch(batch, [3, 4, 3])
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert np.array_equal(out[0], out[2]) and not np.array_equal(out[0], out[1])
    assert np.array_equal(out[1], degrade(batch[1], np.random.default_rng(4)))
    with pytest.raises(ValueError):
        degrade_batch(batch, [1])
