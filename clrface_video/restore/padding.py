"""Flat padding in aligned crops (a pre-aligned clip's fill, a letterbox bar): found, hidden from the networks, put back.

A blurred face beside one sharp straight edge is restored much less than the same face alone: the networks judge
the blur by the sharpest edge in the crop (benchmarks/flat_region.py). The restorer therefore blurs the band where
such padding meets the picture before its networks see the crop, and puts the padding's own pixels back after.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FLAT_STD = 0.7 / 127.5  # a pixel is flat when every channel's 5 x 5 standard deviation is under 0.7 grey levels
MIN_SHARE = 0.01  # border-connected flat regions smaller than this share of the crop are left alone
WINDOW = 5  # the flatness window; its radius is how far short of the region's edge the mask stops
SHARP = 24.0  # grey levels per pixel: an edge this steep is sharp (a 3 px blur of a 180-level step is not)
MIN_SHARP = 1 / 8  # a region is padding when at least this many crop sides' worth of its edge pixels are sharp


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(mask, 2 * radius + 1, 1, radius) if radius > 0 else mask


def _reached_from_border(flat: torch.Tensor, steps: int) -> torch.Tensor:
    """The pixels of (N, 1, R, R) 0/1 `flat` that a path from the crop's border through flat pixels reaches in at
    most `steps` moves to one of the 8 neighbours, as a mask like `flat`. scipy's geodesic dilation visits only the
    pixels that change: a 3 x 3 max pool over every crop per step took up to 0.9 s for 16 crops where a plain
    background reaches the border (benchmarks/padding_speed.py)."""
    from scipy.ndimage import binary_dilation  # scikit-image's dependency, loaded with the first batch

    inside = flat[:, 0].bool().cpu().numpy()
    border = np.zeros_like(inside)
    border[:, [0, -1], :] = border[:, :, [0, -1]] = True
    reached = binary_dilation(border & inside, np.ones((1, 3, 3), bool), iterations=steps, mask=inside)
    return torch.from_numpy(reached[:, None]).to(flat.device, flat.dtype)


def flat_padding(crops: torch.Tensor) -> torch.Tensor:
    """(N, 1, R, R) float32 mask: 1 on the flat regions of (N, C, R, R) crops in [-1, 1] that reach the crop's
    border, cover at least MIN_SHARE of it and meet the picture at a sharp edge, out to that edge; 0 elsewhere.

    A blurred plain background is flat too, but it fades into the face; only a sharp edge misleads the networks.
    """
    x = crops.float()
    mean = F.avg_pool2d(x, WINDOW, 1, WINDOW // 2, count_include_pad=False)
    var = F.avg_pool2d(x * x, WINDOW, 1, WINDOW // 2, count_include_pad=False) - mean * mean
    flat = (var.amax(1, keepdim=True) < FLAT_STD ** 2).float()
    region = _reached_from_border(flat, crops.shape[-1])
    large = region.mean(dim=(1, 2, 3), keepdim=True) >= MIN_SHARE
    # its edge: the pixels just outside the region, which the window kept out of it
    edge = _dilate(region, WINDOW // 2 + 1) - region
    grey = x * 127.5
    gx = F.pad(grey[..., :, 2:] - grey[..., :, :-2], (1, 1, 0, 0)) / 2
    gy = F.pad(grey[..., 2:, :] - grey[..., :-2, :], (0, 0, 1, 1)) / 2
    steep = ((gx * gx + gy * gy).sqrt().amax(1, keepdim=True) > SHARP).float()
    sharp = (edge * steep).sum(dim=(1, 2, 3), keepdim=True) >= MIN_SHARP * crops.shape[-1]
    region = region * (large & sharp)
    # the window stops the mask WINDOW // 2 px short of the edge; the edge itself belongs to the padding
    return _dilate(region, WINDOW // 2)


def hide_padding(crops: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """The crops with the band where padding meets the picture blurred (about R / 20 px wide, three box passes of
    about R / 18 px); crops without padding come back unchanged."""
    if not bool(padding.any()):
        return crops
    size = crops.shape[-1]
    band = _dilate(padding, max(1, size // 20))
    width = max(3, size // 18) | 1
    x = crops.float()
    blurred, soft = x, band
    for _ in range(3):
        blurred = F.avg_pool2d(F.pad(blurred, [width // 2] * 4, mode="replicate"), width, 1)
        soft = F.avg_pool2d(F.pad(soft, [width // 2] * 4, mode="replicate"), width, 1)
    return (x + soft * (blurred - x)).to(crops.dtype)


def restore_padding(restored: torch.Tensor, crops: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """The restored crops with the padding's own pixels (and its edge) put back from the input crops."""
    return restored + padding.to(restored.dtype) * (crops.to(restored.dtype) - restored)
