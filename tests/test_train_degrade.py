"""Degradations: seeded, shape- and dtype-preserving, and they really change the image."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from clrface_video.train.degrade import (
    DegradeConfig,
    degrade,
    degrade_batch,
    degrade_sequence,
    jpeg,
    paint_flat_region,
    x264,
)


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


def test_flat_region_is_the_same_flat_patch_in_both_faces_entering_from_a_side(face: np.ndarray) -> None:
    lq = degrade(face, np.random.default_rng(0))
    sides = set()
    for seed in range(16):
        hq2, lq2 = paint_flat_region(face, lq, np.random.default_rng(seed))
        assert hq2.shape == face.shape and hq2.dtype == lq2.dtype == np.uint8
        again = paint_flat_region(face, lq, np.random.default_rng(seed))
        assert np.array_equal(again[0], hq2) and np.array_equal(again[1], lq2)
        inside = (hq2 != face).any(-1) & (lq2 != lq).any(-1)
        # fully painted pixels hold one colour in both faces; the rest of each face is untouched
        colour = np.median(hq2[inside], axis=0)
        solid = np.all(hq2 == colour, -1) & np.all(lq2 == colour, -1) & inside
        assert solid.sum() > 0.8 * inside.sum() > 0
        outside = ~((hq2 != face).any(-1) | (lq2 != lq).any(-1))
        assert outside.mean() > 0.6  # at most 30% of the side deep, plus a pixel of ramp
        # the region touches one side of the crop, and only one
        touched = [solid[0].any(), solid[-1].any(), solid[:, 0].any(), solid[:, -1].any()]
        sides.add(int(np.argmax([solid[0].sum(), solid[-1].sum(), solid[:, 0].sum(), solid[:, -1].sum()])))
        assert any(touched)
    assert sides == {0, 1, 2, 3}
