"""Bit-depth conversions: uint16 to uint8 rounds v / 257 exactly, whatever the array's shape or layout."""
from __future__ import annotations

import numpy as np
import pytest

from clrface_video.io.pixels import to_uint8


def rounded(image: np.ndarray) -> np.ndarray:
    """round(v / 257) by its integer definition: uint16 full scale onto uint8 full scale."""
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)


def test_every_uint16_value_rounds_to_its_nearest_8_bit_code():
    values = np.arange(65536, dtype=np.uint16)
    for shape in ((65536,), (256, 256), (65536, 1), (16384, 1, 4), (4096, 16, 1)):
        image = values.reshape(shape)
        out = to_uint8(image)
        assert out.dtype == np.uint8 and out.shape == shape
        assert np.array_equal(out, rounded(image))
    assert np.array_equal(to_uint8(values)[[0, 128, 129, 385, 386, 65535]], [0, 0, 1, 1, 2, 255])


@pytest.mark.parametrize("view", ["frame", "strided", "one channel", "empty"])
def test_frames_and_views_of_them(view):
    frame = np.random.default_rng(3).integers(0, 65536, (37, 53, 3), dtype=np.uint16)
    image = {"frame": frame, "strided": frame[::2, ::-3], "one channel": frame[..., 1], "empty": frame[:0]}[view]
    out = to_uint8(image)
    assert out.shape == image.shape and np.array_equal(out, rounded(image))


def test_float_and_uint8_frames_are_unchanged_in_meaning():
    image = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    assert to_uint8(image).tolist() == [[[0, 128, 255]]]
    eight = np.full((2, 2, 3), 7, np.uint8)
    assert to_uint8(eight) is eight
