"""Paste restored crops back into the frame: inverse warp, feathered mask, colour matching (black-and-white
faces stay black and white), the input's finer detail over large faces, any bit depth."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..opencv import cv2
from ..types import Change
from .align import crop_corners_in_frame, matrix_scale, translate, warp_to_crop

# Shape of the paste mask in crop space, as fractions of the crop side S: a rounded square
# (superellipse) that keeps the face, hair line and chin, then eroded and blurred.
MASK_CENTRE = (0.5, 0.5)
MASK_RADII = (0.47, 0.47)
MASK_EXPONENT = 4.0  # 2 = ellipse, larger = squarer
MASK_FEATHER = 1 / 16  # erosion and blur width
# Colour matching: statistics of low-pass copies in the inner face region, gain clipped.
COLOUR_LOWPASS_SIGMA = 1 / 64
COLOUR_REGION_RADII = (0.30, 0.36)
COLOUR_GAIN_RANGE = (0.75, 1.33)
# A face whose chroma (brightest minus darkest channel of a pixel) stays under this share of full scale
# at the 90th percentile of its inner region is black and white: it keeps its own chroma, not the model's.
MONOCHROME_CHROMA = 6 / 255
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601


@dataclass(frozen=True)
class Window:
    """A rectangle of the frame, x0 <= x < x1, y0 <= y < y1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def superellipse(size: int, centre: tuple[float, float], radii: tuple[float, float], exponent: float) -> np.ndarray:
    """(S, S) float32 indicator of |dx/rx|^p + |dy/ry|^p <= 1, with centre and radii as fractions of S."""
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    dx = np.abs(grid[None, :] - centre[0]) / radii[0]
    dy = np.abs(grid[:, None] - centre[1]) / radii[1]
    return ((dx**exponent + dy**exponent) <= 1.0).astype(np.float32)


def face_mask(size: int) -> np.ndarray:
    """Feathered (eroded + blurred) paste mask in crop space, (S, S) float32 in 0..1, exactly 0 at the border."""
    hard = superellipse(size, MASK_CENTRE, MASK_RADII, MASK_EXPONENT)
    width = max(1, round(size * MASK_FEATHER))
    hard = cv2.erode(hard, np.ones((2 * width + 1, 2 * width + 1), np.uint8))  # shrinks by `width`
    kernel = 2 * width + 1  # finite support smaller than the erosion + margin: zeros stay zeros
    soft = cv2.GaussianBlur(hard, (kernel, kernel), sigmaX=width / 2, borderType=cv2.BORDER_CONSTANT)
    soft[soft < 1e-3] = 0.0
    soft[soft > 1.0 - 1e-3] = 1.0
    return np.clip(soft, 0.0, 1.0)


def colour_region(size: int) -> np.ndarray:
    """(S, S) float32 weights of the inner face (cheeks, eyes, nose, mouth) for colour statistics."""
    return superellipse(size, (0.5, 0.55), COLOUR_REGION_RADII, 2.0)


@dataclass(frozen=True)
class CropMasks:
    """The masks every paste of an S x S crop uses, made once per size (read-only (S, S) float32 arrays)."""

    paste: np.ndarray  # face_mask: how much of the restored face covers each crop pixel
    colour: np.ndarray  # colour_region x paste: the weights of the colour statistics


@lru_cache(maxsize=8)
def crop_masks(size: int) -> CropMasks:
    """face_mask and the colour weights of an S x S crop, computed on the first paste of that size."""
    paste = face_mask(size)
    colour = colour_region(size) * paste
    for array in (paste, colour):
        array.flags.writeable = False
    return CropMasks(paste, colour)


def match_colour(restored: np.ndarray, original: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-channel gain and offset so the low-pass colour mean/std of `restored` matches `original`.

    Both are float32 (S, S, 3) on the same scale; statistics are taken on blurred copies
    (low frequencies only, so restored detail does not count as contrast) inside `weights`.
    """
    size = restored.shape[0]
    sigma = max(0.5, size * COLOUR_LOWPASS_SIGMA)
    low_r = cv2.GaussianBlur(restored, (0, 0), sigma)
    low_o = cv2.GaussianBlur(original, (0, 0), sigma)
    w = weights.reshape(-1) / max(float(weights.sum()), 1e-6)
    inside = np.flatnonzero(w)  # a pixel of weight 0 adds exactly 0 to every sum: left out
    w = w[inside]
    (mean_r, std_r), (mean_o, std_o) = (_weighted_mean_std(_planes(low, inside), w) for low in (low_r, low_o))
    gain = np.clip(std_o / np.maximum(std_r, 1e-6), *COLOUR_GAIN_RANGE)
    rows = restored.reshape(size, -1)  # (S, S * 3): see along_row
    matched = rows - along_row(mean_r, size)
    matched *= along_row(gain, size)
    matched += along_row(mean_o, size)
    return matched.astype(np.float32, copy=False).reshape(restored.shape)


def along_row(values: np.ndarray, width: int) -> np.ndarray:
    """Per-channel `values` (C,) repeated for each pixel of a row `width` pixels long, (width * C,): an (H, W, C)
    image seen as (H, W * C) rows meets them in numpy's long inner loop, where against (C,) itself numpy loops over
    C values at a time, about 10x slower for the same float operations (so the same result bit for bit)."""
    return np.tile(values, width)


def spread(plane: np.ndarray, channels: int = 3) -> np.ndarray:
    """An (H, W) plane repeated into (H, W, C), for an operation with an (H, W, C) image: numpy runs `plane[..., None]`
    against it C values at a time (as along_row says), slower than this copy and an operation between equal shapes
    (on a 473 x 388 window: np.copyto's `where` 9.3 ms against 4.1, a product 1.2 against 1.0)."""
    return np.repeat(plane[..., None], channels, axis=2)


def _planes(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(C, N) contiguous channel planes of these pixels (flat indices) of an (S, S, C) image."""
    return np.ascontiguousarray(image.reshape(-1, image.shape[-1])[pixels].T)


def _ordered_sum(planes: np.ndarray) -> np.ndarray:
    """Each plane's sum, added first pixel to last: numpy's order for an (S, S, C) image's .sum((0, 1)), so the
    result is bit for bit the same, without numpy's slow loop over C values a pixel."""
    if planes.shape[1] == 0:
        return np.zeros(len(planes), planes.dtype)
    return np.add.accumulate(planes, axis=1)[:, -1]


def _weighted_mean_std(planes: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of (C, N) planes under weights `w` (N,) that sum to 1."""
    mean = _ordered_sum(planes * w)
    return mean, np.sqrt(_ordered_sum((planes - mean[:, None]) ** 2 * w))


def is_monochrome(original: np.ndarray, weights: np.ndarray, top: float) -> bool:
    """Whether the face in `original` (float32 (S, S, 3) on a 0..top scale) is black and white (or nearly:
    film grain, a faint tint or a codec's chroma noise) inside `weights` > 0.5."""
    inside = np.flatnonzero(weights > 0.5)
    if not inside.size:
        return False
    red, green, blue = _planes(original, inside)
    chroma = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    return float(np.percentile(chroma, 90)) <= MONOCHROME_CHROMA * top


def keep_chroma(restored: np.ndarray, original: np.ndarray) -> np.ndarray:
    """The restored face's luma with the original's chroma (each channel minus the luma), float32 (S, S, 3).

    An exactly grey original gives an exactly grey face: the model's colour, which it learnt on colour
    faces, does not leak into a black-and-white film or photo.
    """
    return spread(restored @ LUMA_WEIGHTS) + (original - spread(original @ LUMA_WEIGHTS))


def dtype_max(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def to_frame_scale(image: np.ndarray, frame_dtype: np.dtype) -> np.ndarray:
    """float32 copy of `image` on the frame's scale (uint8 crops x257 for uint16 frames)."""
    return image.astype(np.float32) * (dtype_max(frame_dtype) / dtype_max(image.dtype))


def paste_window(matrix: np.ndarray, size: int, height: int, width: int) -> Window:
    """The frame rectangle that the warped crop can touch (one pixel of margin for interpolation)."""
    corners = crop_corners_in_frame(matrix, size)
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    return Window(max(int(x0), 0), max(int(y0), 0), min(int(x1), width), min(int(y1), height))


def detail_gain(matrix: np.ndarray, detail: float) -> float:
    """How much of the frame's finer-than-the-crop detail goes back over a face: `detail` times a ramp
    from 0 (the crop has a pixel per frame pixel or more) to 1 (the crop shrinks the face 2x or more)."""
    shrink = 1.0 / max(matrix_scale(matrix), 1e-12)
    return float(detail * np.clip(shrink - 1.0, 0.0, 1.0))


def paste_one(canvas: np.ndarray, frame_mask: np.ndarray, crop: np.ndarray, matrix: np.ndarray,
              original: np.ndarray | None, frame_dtype: np.dtype, detail: float = 0.0, weight: float = 1.0) -> None:
    """Blend one restored crop into the float canvas window (in place) and record its mask.

    weight (0..1) scales the mask: the share of the restored face laid over the frame.
    `canvas` and `frame_mask` are the caller's working copies; only the window is touched.
    """
    size = crop.shape[0]
    height, width = canvas.shape[:2]
    window = paste_window(matrix, size, height, width)
    if window.empty:
        return
    restored = to_frame_scale(crop, frame_dtype)
    if original is None:
        original = warp_to_crop(canvas, matrix, size, border="reflect")
    else:
        original = to_frame_scale(original, frame_dtype)
    masks = crop_masks(size)
    mask, weights = masks.paste, masks.colour
    restored = match_colour(restored, original, weights)
    if is_monochrome(original, weights, dtype_max(frame_dtype)):
        restored = keep_chroma(restored, original)
    # Crop -> window pixels: inverse of (frame -> crop) after shifting the frame to the window.
    inverse = cv2.invertAffineTransform(translate(matrix, window.x0, window.y0))
    dsize = (window.x1 - window.x0, window.y1 - window.y0)
    warped = cv2.warpAffine(restored, inverse, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, inverse, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    alpha = np.clip(alpha, 0.0, 1.0) * weight
    region = canvas[window.y0:window.y1, window.x0:window.x1]
    gain = detail_gain(matrix, detail)
    if gain > 0:
        # The frame minus its own crop warped back is the detail finer than the crop's pixels,
        # which a restorer working at S x S cannot have drawn: keep it over the restored face.
        low = cv2.warpAffine(original, inverse, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        detail = np.subtract(region, low, out=low)  # warped += gain * (region - low), in place
        detail *= gain
        warped += detail
    # region += alpha * (warped - region), in place (the same float operations; window-sized temporaries cost
    # more than the arithmetic); alpha == 0 leaves the value bit for bit
    warped -= region
    warped *= spread(alpha, region.shape[2])
    region += warped
    seen = frame_mask[window.y0:window.y1, window.x0:window.x1]
    np.maximum(seen, alpha, out=seen)


def paste_faces(frame: np.ndarray, crops: Sequence[np.ndarray], matrices: Sequence[np.ndarray], *,
                originals: Sequence[np.ndarray] | None = None, detail: float = 0.0,
                weights: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paste restored S x S crops back into `frame` (uint8, uint16, or float32 0..1 RGB); returns (new frame, mask).

    matrices: the AlignedCrop matrices (frame -> crop). originals: the aligned crops before
    restoration (the colour reference); when None they are re-warped from the frame. detail (0..1): share
    of the frame's detail finer than a crop's pixels laid back over that face (see detail_gain). weights:
    per face, the share of the restored face laid over the frame (1 when None).
    The mask is (H, W) float32 in 0..1; pixels where it is 0 are returned exactly unchanged.
    """
    if len(crops) != len(matrices) or any(extra is not None and len(extra) != len(crops)
                                          for extra in (originals, weights)):
        raise ValueError("paste_faces: crops, matrices (and originals, weights) must have the same length")
    if frame.dtype not in (np.uint8, np.uint16, np.float32) or frame.ndim != 3:
        raise ValueError(f"paste_faces expects an (H, W, C) uint8, uint16 or float32 frame, got {frame.shape} {frame.dtype}")
    height, width = frame.shape[:2]
    mask = np.zeros((height, width), np.float32)
    out = frame.copy()
    top = dtype_max(frame.dtype)
    for i, (crop, matrix) in enumerate(zip(crops, matrices)):
        window = paste_window(np.asarray(matrix, np.float64), crop.shape[0], height, width)
        if window.empty:
            continue
        # Work in float on a window of the current output (earlier faces included), write back.
        canvas = out[window.y0:window.y1, window.x0:window.x1].astype(np.float32)
        local_mask = np.zeros(canvas.shape[:2], np.float32)
        local_matrix = translate(np.asarray(matrix, np.float64), window.x0, window.y0)
        original = None if originals is None else originals[i]
        paste_one(canvas, local_mask, crop, local_matrix, original, frame.dtype, detail,
                  1.0 if weights is None else float(weights[i]))
        if frame.dtype != np.float32:
            np.rint(canvas, out=canvas)
        np.clip(canvas, 0, top, out=canvas)
        target = out[window.y0:window.y1, window.x0:window.x1]
        np.copyto(target, canvas, casting="unsafe", where=spread(local_mask > 0, canvas.shape[2]))  # as astype(frame.dtype)
        mask_window = mask[window.y0:window.y1, window.x0:window.x1]
        np.maximum(mask_window, local_mask, out=mask_window)
    return out, mask


def changed_boxes(mask: np.ndarray, crops: Sequence[np.ndarray], matrices: Sequence[np.ndarray]) -> tuple[Change, ...]:
    """Per face pasted (paste_faces's `crops` and `matrices`), the box round the pixels of its window where paste_faces's
    `mask` is above 0 (none where it is 0 throughout), with those pixels: elsewhere the frame is as it was, so a
    writer can keep the source's own samples there (io.source_planes)."""
    changes = []
    for crop, matrix in zip(crops, matrices):
        window = paste_window(np.asarray(matrix, np.float64), crop.shape[0], *mask.shape)
        inside = mask[window.y0:window.y1, window.x0:window.x1] > 0
        rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
        if rows.size:
            changes.append(Change((window.x0 + int(cols[0]), window.y0 + int(rows[0]),
                                   window.x0 + int(cols[-1]) + 1, window.y0 + int(rows[-1]) + 1),
                                  inside[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()))
    return tuple(changes)
