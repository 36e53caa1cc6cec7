"""Alignment: the similarity fit is exact on synthetic landmarks and close on real ones."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from clrface_video.faces.align import (
    FFHQ_TEMPLATE_512,
    align_face,
    align_faces,
    estimate_similarity,
    face_footprint,
    ffhq_template,
    similarity_lstsq,
)
from clrface_video.faces.detect import make_detector


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_template_scales_with_crop_size():
    assert np.allclose(ffhq_template(512), FFHQ_TEMPLATE_512)
    t128 = ffhq_template(128)
    assert np.allclose((t128 + 0.5) * 4 - 0.5, FFHQ_TEMPLATE_512)


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale = 0.3, 1.7
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    true = np.concatenate([rot, [[12.0], [-5.0]]], axis=1)
    assert np.allclose(similarity_lstsq(src, apply(true, src)), true, atol=1e-9)


@pytest.mark.parametrize("size", [128, 512])
def test_synthetic_face_lands_on_template(size):
    # A face drawn as five dots, rotated and scaled into a frame: after alignment they sit on the template.
    angle, scale = np.deg2rad(20), 0.6
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = FFHQ_TEMPLATE_512 @ rot.T + [300.0, 150.0]
    frame = np.zeros((700, 800, 3), np.uint8)
    for x, y in landmarks:
        frame[round(y) - 3:round(y) + 4, round(x) - 3:round(x) + 4] = 255
    crop = align_face(frame, landmarks, size)
    assert crop.image.shape == (size, size, 3) and crop.image.dtype == np.uint8
    assert np.abs(apply(crop.matrix, landmarks) - ffhq_template(size)).max() < 1e-6
    # the dots are found where the template says (centroid of bright pixels near each point)
    for tx, ty in ffhq_template(size):
        r = max(4, size // 32)
        y0, x0 = int(ty) - r, int(tx) - r
        patch = crop.image[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1, 0].astype(float)
        yy, xx = np.mgrid[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1]
        cy, cx = (patch * yy).sum() / patch.sum(), (patch * xx).sum() / patch.sum()
        assert abs(cx - tx) < 2 and abs(cy - ty) < 2
    assert face_footprint(crop.matrix, size) == pytest.approx(512 * scale, rel=1e-9)


def test_real_face_aligns_close_to_template(astronaut):
    face = make_detector().detect(astronaut)[0]
    for size in (128, 512):
        crop = align_face(astronaut, face.landmarks, size)
        error = np.linalg.norm(apply(crop.matrix, face.landmarks) - ffhq_template(size), axis=1)
        assert error.mean() < 0.03 * size  # a similarity cannot fit 5 real points exactly
    crops = align_faces(astronaut, [face.landmarks, face.landmarks], 256)
    assert len(crops) == 2 and np.array_equal(crops[0].image, crops[1].image)


def test_large_face_is_shrunk_without_aliasing():
    # Fine stripes on a huge face: a plain warp aliases them into strong patterns, area averaging gives grey.
    frame = np.zeros((2000, 2000, 3), np.uint8)
    frame[:, ::2] = 255
    landmarks = FFHQ_TEMPLATE_512 * 3.5 + 100
    crop = align_face(frame, landmarks, 128)
    assert face_footprint(crop.matrix, 128) == pytest.approx(512 * 3.5)
    assert abs(crop.image.astype(float).mean() - 127.5) < 10 and crop.image.std() < 30


def test_uint16_frames_keep_their_dtype():
    frame = np.full((300, 300, 3), 40000, np.uint16)
    crop = align_face(frame, FFHQ_TEMPLATE_512 * 0.4 + 20, 64)
    assert crop.image.dtype == np.uint16 and np.all(crop.image == 40000)


def test_estimate_similarity_shape():
    assert estimate_similarity(FFHQ_TEMPLATE_512.astype(np.float32), 512).shape == (2, 3)


def test_anamorphic_face_is_aligned_unsqueezed(astronaut):
    """A 16:9 PAL DV frame stores the picture squeezed into 64/45-wide pixels: the crop must not be."""
    width = round(512 * 45 / 64)
    squeezed = cv2.resize(astronaut, (width, 512), interpolation=cv2.INTER_AREA)
    pixel_aspect = 512 / width
    detector = make_detector()
    marks = detector.detect(astronaut)[0].landmarks
    reference = align_face(astronaut, marks, 128).image.astype(float)
    stored = marks / [pixel_aspect, 1.0]  # the same landmarks in the squeezed frame's pixels
    unsqueezed = align_face(squeezed, stored, 128, pixel_aspect=pixel_aspect)
    assert np.abs(unsqueezed.image - reference).mean() < 4  # the face as displayed (resampling aside)
    assert np.abs(align_face(squeezed, stored, 128).image - reference).mean() > 20  # squeezed: another face
    assert np.abs(apply(unsqueezed.matrix, stored) - ffhq_template(128)).max() < 6  # landmarks on the template
    # with the detector's own landmarks on the squeezed frame (a few pixels off) it is still far closer
    found = detector.detect(squeezed)[0].landmarks
    near = np.abs(align_face(squeezed, found, 128, pixel_aspect=pixel_aspect).image - reference).mean()
    assert near < np.abs(align_face(squeezed, found, 128).image - reference).mean() / 2


def test_near_square_pixels_are_aligned_as_square():
    from fractions import Fraction

    from clrface_video.io.decode import VideoInfo

    def info(sar):
        return VideoInfo(path=Path("x.mp4"), width=388, height=512, frames=None, fps=None, time_base=Fraction(1, 25),
                         pix_fmt="yuv420p", bit_depth=8, rotation=0, color_primaries=1, color_trc=1, colorspace=1,
                         color_range=1, duration_s=None, has_audio=False, other_streams=0, sample_aspect_ratio=sar)

    assert info(Fraction(389, 388)).pixel_aspect == 1.0  # keep_real_1's: a rounding artefact of scaling
    assert info(None).pixel_aspect == 1.0
    assert info(Fraction(64, 45)).pixel_aspect == pytest.approx(1.4222, abs=1e-4)
    assert info(Fraction(15, 16)).pixel_aspect == 0.9375
