"""Quality figures on cases with known answers."""
from __future__ import annotations

import numpy as np

from clrface_video.eval import metrics


def test_identical_images_give_infinite_psnr_and_unit_ssim(astronaut):
    assert metrics.psnr(astronaut, astronaut) == float("inf")
    assert metrics.ssim(astronaut, astronaut) == 1.0


def test_psnr_of_a_known_error():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + 10  # mse = 100 -> 10*log10(255^2/100)
    assert abs(metrics.psnr(a, b) - 10 * np.log10(255.0**2 / 100)) < 1e-9


def test_blur_lowers_sharpness_and_ssim(astronaut):
    import cv2

    blurred = cv2.GaussianBlur(astronaut, (0, 0), 3)
    assert metrics.sharpness(blurred) < 0.2 * metrics.sharpness(astronaut)
    assert metrics.ssim(astronaut, blurred) < 0.9


def test_warping_error_of_a_known_shift(astronaut):
    shifted = np.roll(astronaut, 3, axis=1)  # content moves 3 px right
    flow = metrics.optical_flow(astronaut, shifted)
    inner = np.zeros(astronaut.shape[:2], bool)
    inner[40:-40, 40:-40] = True
    assert abs(float(np.median(flow[inner][:, 0])) + 3.0) < 0.5  # next pixel x comes from x - 3
    stable = metrics.warping_error(astronaut, shifted, flow, inner)
    flicker = metrics.warping_error(astronaut, np.clip(shifted.astype(int) + 20, 0, 255).astype(np.uint8), flow, inner)
    unwarped = float(np.abs(astronaut.astype(float) - shifted.astype(float)).mean(axis=-1)[inner].mean())
    assert stable < 0.3 * unwarped
    assert flicker > stable + 15
