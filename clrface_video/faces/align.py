"""Alignment to the FFHQ 5-point template: similarity estimate, warp to a square crop, crop footprint."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..opencv import cv2
from ..types import AlignedCrop

# Where the five landmarks (left eye, right eye, nose tip, left / right mouth corner, as seen in
# the image) sit in a 512x512 FFHQ-aligned crop; the same template as GFPGAN / CodeFormer use.
FFHQ_TEMPLATE_SIZE = 512
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)

# Downscaling by more than this in one warp aliases; the source is pre-shrunk with area averaging.
MAX_WARP_SHRINK = 2.0


def ffhq_template(size: int) -> np.ndarray:
    """The FFHQ landmark template (5, 2) for an S x S crop (pixel centres scale with the crop)."""
    return (FFHQ_TEMPLATE_512 + 0.5) * (size / FFHQ_TEMPLATE_SIZE) - 0.5


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst, (2, 3).

    Umeyama (1991) without reflection: closed form from the centred cross-covariance.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / max(var_s, 1e-12)
    matrix = np.empty((2, 3), np.float64)
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def estimate_similarity(landmarks: np.ndarray, size: int, pixel_aspect: float = 1.0) -> np.ndarray:
    """(2, 3) float64 affine mapping frame pixels to an S x S FFHQ crop, fitted to 5 landmarks.

    pixel_aspect: the width of a pixel over its height (anamorphic video). The similarity is fitted
    where pixels are square, so a face squeezed into narrow pixels comes out of the warp unsqueezed.
    """
    landmarks = np.asarray(landmarks, np.float64).reshape(5, 2)
    matrix = similarity_lstsq(landmarks * [pixel_aspect, 1.0], ffhq_template(size))
    matrix[:, 0] *= pixel_aspect  # frame pixels -> square pixels -> crop
    return matrix


def matrix_scale(matrix: np.ndarray) -> float:
    """Uniform scale of a similarity (crop pixels per frame pixel; the geometric mean of the two for an
    anamorphic alignment)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2]))))


def face_footprint(matrix: np.ndarray, size: int) -> float:
    """Side of the S x S crop measured in frame pixels (size / scale): how big the face is."""
    return size / max(matrix_scale(matrix), 1e-12)


def crop_corners_in_frame(matrix: np.ndarray, size: int) -> np.ndarray:
    """The four corners of the crop, (4, 2), mapped back into frame pixels."""
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]])
    return corners @ inverse[:, :2].T + inverse[:, 2]


def translate(matrix: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The affine `matrix` applied after shifting the source by (-dx, -dy): for a sub-image at (dx, dy)."""
    out = np.asarray(matrix, np.float64).copy()
    out[:, 2] += out[:, :2] @ np.array([dx, dy])
    return out


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int, border: str = "reflect") -> np.ndarray:
    """warpAffine of `image` by `matrix` into S x S, area-averaging first when shrinking a lot."""
    mode = {"reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
    if border not in mode:
        raise ValueError(f"border must be one of {sorted(mode)}, got {border!r}")
    matrix = np.asarray(matrix, np.float64)
    shrink = 1.0 / max(matrix_scale(matrix), 1e-12)
    if shrink > MAX_WARP_SHRINK:
        # Cut the region the crop covers (with a margin), shrink it with INTER_AREA, warp the rest.
        h, w = image.shape[:2]
        corners = crop_corners_in_frame(matrix, size)
        pad = 2 * shrink
        x0, y0 = (np.floor(corners.min(0) - pad)).astype(int)
        x1, y1 = (np.ceil(corners.max(0) + pad)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 > x0 and y1 > y0:
            factor = MAX_WARP_SHRINK / shrink
            region = image[y0:y1, x0:x1]
            rw, rh = max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor))
            small = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
            # small pixel (u, v) covers region pixel ((u + 0.5) * sx - 0.5, ...)
            sx, sy = (x1 - x0) / rw, (y1 - y0) / rh
            to_region = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
            composed = matrix[:, :2] @ to_region[:, :2], matrix[:, :2] @ to_region[:, 2] + matrix[:, 2]
            matrix = np.concatenate([composed[0], composed[1][:, None]], axis=1)
            image = small
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode[border],
                          borderValue=0)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, *, border: str = "reflect",
               pixel_aspect: float = 1.0) -> AlignedCrop:
    """Warp the face with these 5 landmarks onto the S x S FFHQ template; keeps the image dtype.

    pixel_aspect: see estimate_similarity (1 for square pixels)."""
    matrix = estimate_similarity(landmarks, size, pixel_aspect)
    return AlignedCrop(image=warp_to_crop(image, matrix, size, border), matrix=matrix)


def align_faces(image: np.ndarray, landmarks: Sequence[np.ndarray], size: int, *,
                border: str = "reflect") -> list[AlignedCrop]:
    """align_face for every face of one image."""
    return [align_face(image, marks, size, border=border) for marks in landmarks]


# Beyond min_face and max_upscale a face's restoration fades out over this share of the limit instead of
# stopping at it (a face hovering at a limit would otherwise pop in and out of restoration).
SIZE_FADE = 0.25


def size_weight(span: float, min_span: float, footprint: float, max_footprint: float) -> float:
    """1 for min_span <= span and footprint <= max_footprint, fading linearly to 0 at (1 - SIZE_FADE) x min_span
    and at (1 + SIZE_FADE) x max_footprint."""
    small = 1.0 if min_span <= 0 else (span / min_span - (1.0 - SIZE_FADE)) / SIZE_FADE
    large = ((1.0 + SIZE_FADE) - footprint / max_footprint) / SIZE_FADE
    return float(np.clip(min(small, large), 0.0, 1.0))


def size_limit(span: float, min_span: float, footprint: float, max_footprint: float) -> str | None:
    """Which limit of size_weight's leaves a face out (weight 0): 'too small', 'too large', or None."""
    if size_weight(span, min_span, 0.0, 1.0) == 0.0:
        return "too small"
    return "too large" if size_weight(span, 0.0, footprint, max_footprint) == 0.0 else None


def face_sizes(landmarks: np.ndarray, size: int, pixel_aspect: float = 1.0) -> tuple[float, float]:
    """A face's eye-to-mouth span and its `size` crop's side in the frame (face_footprint), in pixels: what
    --min-face and --max-upscale hold against."""
    return eye_mouth_span(landmarks), face_footprint(estimate_similarity(landmarks, size, pixel_aspect), size)


def eye_mouth_span(landmarks: np.ndarray) -> float:
    """Distance in pixels from the midpoint of the eyes to the midpoint of the mouth corners."""
    marks = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(marks[3:5].mean(0) - marks[0:2].mean(0)))
