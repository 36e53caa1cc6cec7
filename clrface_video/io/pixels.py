"""Bit-depth and luma conversions shared by video frames and photos."""
from __future__ import annotations

import numpy as np


def to_depth(array: np.ndarray, bit_depth: int) -> np.ndarray:
    """8 or 16 bits a channel (16 from 8 by x257, full scale)."""
    if bit_depth == 16:
        return array if array.dtype == np.uint16 else array.astype(np.uint16) * 257
    return to_uint8(array)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8 bits a channel: uint16 and float32 (0..1) images scaled down with rounding (detection, alignment, GIFs)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.float32:
        return np.clip(image * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, as Pillow's convert('L') computes it, at the input's dtype."""
    weights = np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(rgb.astype(np.float64) @ weights), 0, np.iinfo(rgb.dtype).max).astype(rgb.dtype)
