"""Flat padding in aligned crops: found only where a flat region meets the picture at a sharp edge, hidden, put back."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from clrface_video.restore.padding import flat_padding, hide_padding, restore_padding
from clrface_video.train.degrade import gaussian_blur, paint_flat_region


@pytest.fixture(scope="module")
def face(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's face, aligned as the pipeline does (128 px)."""
    from clrface_video.faces.align import align_face
    from clrface_video.faces.detect import make_detector

    found = make_detector("retinaface").detect(astronaut)
    return align_face(astronaut, found[0].landmarks, 128).image


def tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def painted(face: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A flat region painted into the face, and the mask of its solid (not edge) pixels."""
    out, _ = paint_flat_region(face, face, np.random.default_rng(seed))
    solid = cv2.erode((out != face).any(-1).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return out, solid


def test_padding_is_found_where_a_flat_region_meets_the_face_at_a_sharp_edge(face: np.ndarray) -> None:
    faces, solids = zip(*(painted(face, seed) for seed in range(12)))
    masks = flat_padding(tensor(np.stack(faces)))[:, 0].numpy() > 0.5
    assert not flat_padding(tensor(face[None])).any()  # the face alone has none
    for mask, solid in zip(masks, solids):
        if solid.mean() < 0.02:  # too thin a sliver to be worth hiding
            continue
        assert mask[solid].mean() > 0.95
        # beyond the window's reach of the region, only the picture's own flat areas joined to it (the suit's
        # clipped white), which are as flat as the padding
        near = cv2.dilate(solid.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        grey = face.astype(np.float32)
        std = np.sqrt(np.maximum(cv2.blur(grey * grey, (5, 5)) - cv2.blur(grey, (5, 5)) ** 2, 0)).max(-1)
        own_flat = cv2.dilate((std < 0.7).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert not (mask & ~near & ~own_flat).any()


def test_a_blurred_plain_background_and_a_flat_patch_inside_the_crop_are_not_padding(face: np.ndarray) -> None:
    walled = face.copy()
    walled[:, :32] = (40, 90, 160)  # a plain wall beside the face, sharp
    patch = face.copy()
    patch[48:80, 48:80] = 200  # flat, sharp-edged, but not reaching the border
    found = flat_padding(tensor(np.stack([walled, gaussian_blur(walled, 3.0), patch])))
    assert found[0].mean() > 0.2  # the sharp one is padding
    assert not found[1].any() and not found[2].any()


def test_hiding_blurs_only_around_the_padding_and_putting_back_restores_its_pixels(face: np.ndarray) -> None:
    faces = np.stack([face, painted(face, 3)[0]])
    x = tensor(faces)
    padding = flat_padding(x)
    hidden = hide_padding(x, padding)
    assert torch.equal(hidden[0], x[0])  # a face without padding is untouched
    changed = (hidden[1] - x[1]).abs().amax(0) > 1e-6
    assert changed.any()
    reach = cv2.dilate(padding[1, 0].numpy().astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    assert not (changed.numpy() & ~reach).any()
    assert torch.equal(hide_padding(x[:1], padding[:1]), x[:1])
    restored = torch.zeros_like(x)
    back = restore_padding(restored, x, padding)
    inside = padding[1, 0] > 0.5
    assert torch.allclose(back[1][:, inside], x[1][:, inside]) and torch.equal(back[0], restored[0])


@pytest.mark.slow
def test_the_shipped_restorer_restores_a_blurred_face_beside_padding_as_it_does_alone(face: np.ndarray) -> None:
    """With the padding hidden, the face region of a blurred face beside a painted region comes out about as
    well as without the region, and the padding comes back as it went in."""
    from clrface_video.eval.metrics import psnr
    from clrface_video.restore import restorer as restorer_mod
    from clrface_video.restore.base import RestoreBatch
    from clrface_video.restore.model import CLRFaceModel

    if not restorer_mod.SHIPPED_WEIGHTS.is_file():
        pytest.skip(f"shipped weights absent: {restorer_mod.SHIPPED_WEIGHTS}")
    model = CLRFaceModel.load(restorer_mod.SHIPPED_WEIGHTS)
    pairs = [paint_flat_region(face, gaussian_blur(face, 3.0), np.random.default_rng((5, i))) for i in range(4)]
    clean, blurred = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    keep = ~cv2.dilate((clean != face).any(-1).any(0).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    scores = {}
    for hide in (False, True):
        restorer = restorer_mod.CLRFaceRestorer(model, "cpu", identity_net=None, hide_padding=hide)
        out = restorer.restore(RestoreBatch(blurred, seeds=np.zeros(4, np.int64), gate=False, guidance=False))
        scores[hide] = np.mean([psnr(o[keep], c[keep]) for o, c in zip(out, clean)])
        if hide:  # each face's padding comes back as it went in
            for o, c, b in zip(out, clean, blurred):
                # the painted pixels the flatness window sees whole (a sliver under 3 px deep is left alone)
                solid = cv2.erode((c != face).any(-1).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
                assert solid.any() and np.abs(o[solid].astype(int) - b[solid]).max() <= 1
    alone = restorer_mod.CLRFaceRestorer(model, "cpu", identity_net=None).restore(
        RestoreBatch(gaussian_blur(face, 3.0)[None], seeds=np.zeros(1, np.int64), gate=False, guidance=False))[0]
    assert scores[True] > scores[False] + 0.5
    assert scores[True] > psnr(alone[keep], face[keep]) - 1.0
    assert scores[True] > psnr(gaussian_blur(face, 3.0)[keep], face[keep]) + 1.0


def reached_step_by_step(flat: np.ndarray, steps: int) -> np.ndarray:
    """(R, R) bool: the flat pixels a path from the border through flat pixels reaches in `steps` moves to one of
    the 8 neighbours, grown one move at a time."""
    region = np.zeros_like(flat)
    region[[0, -1], :] = region[:, [0, -1]] = True
    region &= flat
    for _ in range(steps):
        grown = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                           borderValue=0).astype(bool) & flat
        if np.array_equal(grown, region):
            break
        region = grown
    return region


def test_the_flood_fill_reaches_what_step_by_step_growth_does_in_a_few_passes(monkeypatch) -> None:
    """flat_padding grew its border region one 3 x 3 max pool over the whole batch per step, up to R steps: up to
    0.3 s for 16 crops of the research clips where a plain background reaches the border, more than its other
    work. Now the fill is one geodesic dilation, the same pixels (random masks near the percolation threshold wind
    the longest; 3 and 20 steps stop it short), and flat_padding runs two max pools whatever the crops hold."""
    from clrface_video.restore import padding

    rng = np.random.default_rng(0)
    pools = []
    real_max_pool = padding.F.max_pool2d
    monkeypatch.setattr(padding.F, "max_pool2d", lambda *a, **k: pools.append(a[1]) or real_max_pool(*a, **k))
    background = np.full((1, 64, 64, 3), 128, np.uint8)
    background[:, 40:, :] = rng.integers(0, 256, (1, 24, 64, 3))  # a flat wall over a busy picture
    padding.flat_padding(tensor(background))
    assert len(pools) == 2
    flat = rng.random((12, 64, 64)) < np.repeat([0.45, 0.55, 0.6, 0.65, 0.7, 0.9], 2)[:, None, None]
    for steps in (3, 20, 64):
        reached = padding._reached_from_border(torch.from_numpy(flat[:, None]).float(), steps)
        expected = np.stack([reached_step_by_step(one, steps) for one in flat])
        assert reached.dtype == torch.float32 and reached.shape == (12, 1, 64, 64)
        assert np.array_equal(reached[:, 0].numpy().astype(bool), expected)
