"""Bit-depth and luma conversions shared by video frames and photos."""
from __future__ import annotations

import numpy as np

from ..opencv import cv2


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
    if image.dtype == np.uint16 and image.size:
        # round(v / 257) in one pass of OpenCV's, in float32 (no v / 257 lies within its error of a half): the
        # same as the line below for every uint16 v, 4-5x faster. A 10-bit or HDR video's frame is converted
        # for the detector each frame (at 1080p about 9 ms a frame below, 2 here).
        return cv2.convertScaleAbs(np.ascontiguousarray(image), alpha=1 / 257).reshape(image.shape)
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, as Pillow's convert('L') computes it, at the input's dtype."""
    weights = np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(rgb.astype(np.float64) @ weights), 0, np.iinfo(rgb.dtype).max).astype(rgb.dtype)


def from_high_bits(array: np.ndarray, bits: int) -> np.ndarray:
    """Full-scale 16-bit values of `bits`-bit codes stored in a uint16's high bits (pillow-heif's RGB;16 of a
    10-bit HEIF: white 1023 << 6 = 65472), as photos carry deep pixels: 0 stays 0 and the top code is 65535."""
    codes = (array >> (16 - bits)).astype(np.uint32)
    return ((codes * 65535 * 2 + (1 << bits) - 1) // (2 * ((1 << bits) - 1))).astype(np.uint16)


def to_codes(array: np.ndarray, bits: int) -> np.ndarray:
    """`bits`-bit codes (uint16) of full-scale 16-bit values, rounded: from_high_bits's inverse, code for code."""
    top = (1 << bits) - 1
    return ((array.astype(np.uint32) * top * 2 + 65535) // (2 * 65535)).astype(np.uint16)
