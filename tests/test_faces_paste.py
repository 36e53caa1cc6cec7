"""Paste-back: round trip nearly unchanged inside the mask, bit-exact outside, uint8 and uint16; input detail on large
faces; black-and-white faces stay black and white."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from clrface_video.faces.align import FFHQ_TEMPLATE_512, align_face, matrix_scale
from clrface_video.faces.detect import make_detector
from clrface_video.faces.paste import (
    colour_region,
    crop_masks,
    detail_gain,
    face_mask,
    is_monochrome,
    keep_chroma,
    match_colour,
    paste_faces,
)


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    return make_detector().detect(astronaut)[0]


def test_mask_is_feathered_and_zero_at_the_border():
    mask = face_mask(128)
    assert mask.dtype == np.float32 and mask.shape == (128, 128)
    assert mask[64, 64] == 1.0
    assert mask[0].max() == 0 and mask[-1].max() == 0 and mask[:, 0].max() == 0 and mask[:, -1].max() == 0
    assert 0 < np.mean((mask > 0) & (mask < 1)) < 0.5  # a soft ramp, not a hard edge


@pytest.mark.parametrize("size", [256, 512])
def test_round_trip_uint8(astronaut, astronaut_face, size):
    crop = align_face(astronaut, astronaut_face.landmarks, size)
    out, mask = paste_faces(astronaut, [crop.image], [crop.matrix], originals=[crop.image])
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    assert mask.dtype == np.float32 and mask.shape == astronaut.shape[:2]
    assert 0.0 <= mask.min() and mask.max() <= 1.0 and mask.max() == 1.0
    diff = np.abs(out.astype(int) - astronaut)
    assert diff[mask > 0.99].mean() < 2.5
    assert np.array_equal(out[mask == 0], astronaut[mask == 0])
    x1, y1, x2, y2 = astronaut_face.box.astype(int)
    assert mask[(y1 + y2) // 2, (x1 + x2) // 2] == 1.0


def test_uint16_frame_with_uint8_crop(astronaut, astronaut_face):
    frame = astronaut.astype(np.uint16) * 257 + 100  # values that are not multiples of 257
    crop = align_face(astronaut, astronaut_face.landmarks, 512)
    out, mask = paste_faces(frame, [crop.image], [crop.matrix])  # originals re-warped from the frame
    assert out.dtype == np.uint16
    assert np.array_equal(out[mask == 0], frame[mask == 0])
    diff = np.abs(out.astype(np.int64) - frame)
    assert diff[mask > 0.99].mean() / 257 < 2.5


def test_colour_cast_is_removed(astronaut, astronaut_face):
    crop = align_face(astronaut, astronaut_face.landmarks, 256)
    tinted = np.clip(crop.image.astype(int) + [40, -20, 10], 0, 255).astype(np.uint8)
    out, mask = paste_faces(astronaut, [tinted], [crop.matrix], originals=[crop.image])
    inside = mask > 0.99
    shift = (out[inside].astype(float) - astronaut[inside]).mean(0)
    assert np.abs(shift).max() < 4  # without matching it would be (40, -20, 10)
    restored = np.full((64, 64, 3), 200, np.float32)
    original = np.full((64, 64, 3), 100, np.float32)
    assert np.allclose(match_colour(restored, original, np.ones((64, 64), np.float32)), 100)


def grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def chroma(image: np.ndarray) -> np.ndarray:
    return image.max(axis=2).astype(int) - image.min(axis=2)


def test_crop_masks_are_made_once_per_size_and_cannot_be_changed():
    masks = crop_masks(96)
    assert crop_masks(96) is masks
    assert np.array_equal(masks.paste, face_mask(96))
    assert np.array_equal(masks.colour, colour_region(96) * face_mask(96))
    with pytest.raises(ValueError, match="read-only"):
        masks.colour[48, 48] = 0.0


def plain_match_colour(restored: np.ndarray, original: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """match_colour as first written: numpy's weighted sums over the whole (S, S, 3) crop."""
    sigma = max(0.5, restored.shape[0] / 64)
    low_r, low_o = (cv2.GaussianBlur(image, (0, 0), sigma) for image in (restored, original))
    w = weights[..., None] / max(float(weights.sum()), 1e-6)
    mean_r, mean_o = (low_r * w).sum((0, 1)), (low_o * w).sum((0, 1))
    std_r = np.sqrt(((low_r - mean_r) ** 2 * w).sum((0, 1)))
    std_o = np.sqrt(((low_o - mean_o) ** 2 * w).sum((0, 1)))
    gain = np.clip(std_o / np.maximum(std_r, 1e-6), 0.75, 1.33)
    return ((restored - mean_r) * gain + mean_o).astype(np.float32)


@pytest.mark.parametrize("scale", [1, 257])  # a uint8 frame's scale, and a uint16 frame's
def test_colour_matching_gives_the_plain_sums_bit_for_bit(astronaut, astronaut_face, scale):
    crop = align_face(astronaut, astronaut_face.landmarks, 128).image.astype(np.float32) * scale
    painted = np.ascontiguousarray(crop[::-1]) * np.float32(0.8) + 20 * scale  # another face, darker
    rng = np.random.default_rng(2)
    sparse = crop_masks(128).colour * (rng.random((128, 128)) < 0.5)
    for weights in (crop_masks(128).colour, sparse, np.ones((128, 128), np.float32), np.zeros((128, 128), np.float32)):
        assert np.array_equal(match_colour(painted, crop, weights), plain_match_colour(painted, crop, weights))


def test_a_black_and_white_face_stays_black_and_white(astronaut, astronaut_face):
    frame = grey(astronaut)
    crop = align_face(frame, astronaut_face.landmarks, 128)
    # a restorer that paints colour in, and a different face, so the paste visibly changes the frame
    painted = np.ascontiguousarray(align_face(astronaut, astronaut_face.landmarks, 128).image[:, ::-1])
    out, mask = paste_faces(frame, [painted], [crop.matrix], originals=[crop.image])
    assert chroma(out).max() == 0  # every pixel grey, inside the face too
    pasted = align_face(out, astronaut_face.landmarks, 128).image[..., 0].astype(float)
    inner = colour_region(128) > 0
    assert np.corrcoef(pasted[inner], grey(painted)[..., 0][inner])[0, 1] > 0.95  # the painted face's luma
    assert np.corrcoef(pasted[inner], crop.image[..., 0][inner].astype(float))[0, 1] < 0.9  # not the frame's
    # a colour face is not made grey: the restored colour (matched to the original's) is pasted
    crop = align_face(astronaut, astronaut_face.landmarks, 128)
    out, mask = paste_faces(astronaut, [crop.image], [crop.matrix], originals=[crop.image])
    assert np.percentile(chroma(out)[mask > 0.99], 50) > 20


def test_a_nearly_grey_face_keeps_its_own_faint_chroma(astronaut, astronaut_face):
    rng = np.random.default_rng(0)
    frame = np.clip(grey(astronaut).astype(int) + rng.integers(-2, 3, astronaut.shape), 0, 255).astype(np.uint8)
    crop = align_face(frame, astronaut_face.landmarks, 128)
    weights = colour_region(128) * face_mask(128)
    assert is_monochrome(crop.image.astype(np.float32), weights, 255.0)
    assert not is_monochrome(align_face(astronaut, astronaut_face.landmarks, 128).image.astype(np.float32), weights, 255.0)
    coloured = align_face(astronaut, astronaut_face.landmarks, 128).image.astype(np.float32)
    kept = keep_chroma(coloured, crop.image.astype(np.float32))
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    assert np.allclose(kept @ luma, coloured @ luma, atol=1e-3)  # the restored brightness
    assert np.allclose(kept - (kept @ luma)[..., None], crop.image - (crop.image @ luma)[..., None], atol=1e-3)
    out, mask = paste_faces(frame, [coloured.astype(np.uint8)], [crop.matrix], originals=[crop.image])
    assert chroma(out)[mask > 0.99].max() <= 5  # the frame's +-2 noise, not the astronaut's colours (up to 200)


def test_a_weight_pastes_that_share_of_the_restored_face(astronaut, astronaut_face):
    crop = align_face(astronaut, astronaut_face.landmarks, 128)
    white = np.full_like(crop.image, 255)
    full, mask = paste_faces(astronaut, [white], [crop.matrix], originals=[white])
    half, half_mask = paste_faces(astronaut, [white], [crop.matrix], originals=[white], weights=[0.5])
    none, no_mask = paste_faces(astronaut, [white], [crop.matrix], originals=[white], weights=[0.0])
    inside = mask > 0.99
    change = full[inside].astype(float) - astronaut[inside]
    assert np.abs(half[inside] - (astronaut[inside] + 0.5 * change)).max() <= 1  # rounding
    assert np.allclose(half_mask, 0.5 * mask) and np.array_equal(none, astronaut) and no_mask.max() == 0
    with pytest.raises(ValueError, match="same length"):
        paste_faces(astronaut, [white], [crop.matrix], weights=[1.0, 1.0])


def test_several_faces_partly_outside_the_frame():
    frame = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    marks = [FFHQ_TEMPLATE_512 * 0.3 - 40, FFHQ_TEMPLATE_512 * 0.25 + [250, 100]]  # first one hangs off the top-left
    crops = [align_face(frame, m, 128) for m in marks]
    white = [np.full_like(c.image, 255) for c in crops]
    out, mask = paste_faces(frame, white, [c.matrix for c in crops], originals=white)
    assert np.array_equal(out[mask == 0], frame[mask == 0])
    assert (mask[:60, :60] > 0.99).any() and (mask[150:, 250:] > 0.99).any()
    assert np.all(out[mask > 0.999] >= 254)


def test_no_faces_and_face_outside_frame():
    frame = np.zeros((50, 60, 3), np.uint8)
    out, mask = paste_faces(frame, [], [])
    assert np.array_equal(out, frame) and mask.max() == 0 and out is not frame
    far = np.array([[1.0, 0.0, 5000.0], [0.0, 1.0, 5000.0]])  # crop maps to x, y < -4800
    out, mask = paste_faces(frame, [np.full((64, 64, 3), 255, np.uint8)], [far])
    assert np.array_equal(out, frame) and mask.max() == 0


def high_pass(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float32).mean(-1)
    return grey - cv2.GaussianBlur(grey, (0, 0), 2.0)


def test_large_face_keeps_the_detail_finer_than_the_crop(astronaut, astronaut_face):
    crop = align_face(astronaut, astronaut_face.landmarks, 64)  # the face shrinks about 2.6x into the crop
    assert detail_gain(crop.matrix, 1.0) == 1.0
    out, mask = paste_faces(astronaut, [crop.image], [crop.matrix], originals=[crop.image], detail=1.0)
    assert np.array_equal(out, astronaut)  # a restorer that changes nothing changes nothing, finest detail included
    blurred, _ = paste_faces(astronaut, [crop.image], [crop.matrix], originals=[crop.image], detail=0.0)
    inside = mask > 0.99
    assert np.abs(blurred.astype(int) - astronaut)[inside].mean() > 5  # the 64 px crop alone loses it
    # A restorer that redraws the face (here: mirrored) supplies the coarse face; the fine detail is the frame's.
    mirrored = np.ascontiguousarray(crop.image[:, ::-1])
    kept, _ = paste_faces(astronaut, [mirrored], [crop.matrix], originals=[crop.image], detail=1.0)
    lost, _ = paste_faces(astronaut, [mirrored], [crop.matrix], originals=[crop.image], detail=0.0)
    source = high_pass(astronaut)[inside]
    assert np.corrcoef(high_pass(kept)[inside], source)[0, 1] > 0.75
    assert np.corrcoef(high_pass(lost)[inside], source)[0, 1] < 0.5
    assert np.abs(kept.astype(int) - lost)[inside].mean() > 3  # and the coarse face is still the restorer's
    assert np.abs(kept.astype(int) - astronaut)[inside].mean() > 10


def test_detail_ramps_in_with_the_face_size_and_leaves_small_faces_alone(astronaut, astronaut_face):
    crop = align_face(astronaut, astronaut_face.landmarks, 256)  # the crop enlarges this face
    assert matrix_scale(crop.matrix) > 1 and detail_gain(crop.matrix, 1.0) == 0.0
    mirrored = np.ascontiguousarray(crop.image[:, ::-1])
    with_detail, _ = paste_faces(astronaut, [mirrored], [crop.matrix], originals=[crop.image], detail=1.0)
    without, _ = paste_faces(astronaut, [mirrored], [crop.matrix], originals=[crop.image], detail=0.0)
    assert np.array_equal(with_detail, without)
    scales = [np.array([[1 / s, 0, 0], [0, 1 / s, 0]]) for s in (0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0)]
    gains = [detail_gain(m, 0.8) for m in scales]
    assert gains == pytest.approx([0, 0, 0.2, 0.4, 0.6, 0.8, 0.8])  # continuous: no pop as a face grows
