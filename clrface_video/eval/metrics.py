"""Image and video quality figures: PSNR, SSIM, sharpness, flow-warping error. Pure numpy/OpenCV."""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from ..opencv import cv2


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two images of one shape; inf when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(peak * peak / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two (H, W, 3) uint8 RGB images (scikit-image, channel-wise mean)."""
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def sharpness(image: np.ndarray) -> float:
    """No-reference sharpness: variance of the Laplacian of the grey image (higher is sharper)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def optical_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Dense Farneback flow (H, W, 2) mapping pixels of `nxt` back to `prev` (RGB uint8 inputs)."""
    g0 = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(nxt, cv2.COLOR_RGB2GRAY)
    return cv2.calcOpticalFlowFarneback(g1, g0, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp `image` with a flow from `optical_flow` (bilinear, border replicated)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warping_error(prev_out: np.ndarray, next_out: np.ndarray, flow: np.ndarray,
                  mask: np.ndarray | None = None) -> float:
    """Mean absolute difference (0..255 scale) between `next_out` and `prev_out` warped by `flow`.

    The flow is measured on the *input* frames, so a restorer that flickers scores worse than
    one that moves with the content. `mask` (H, W) bool restricts the figure to face regions.
    """
    diff = np.abs(warp(prev_out, flow).astype(np.float64) - next_out.astype(np.float64)).mean(axis=-1)
    if mask is not None:
        if not mask.any():
            return float("nan")
        diff = diff[mask]
    return float(diff.mean())
