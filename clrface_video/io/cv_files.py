"""cv2.imread and cv2.imwrite through Python's own file calls. OpenCV's Windows builds open a path in the ANSI code
page, so a path with any other character (a user folder such as C:/Users/Zoë, a folder named 张伟) reads as
missing and cannot be written; Python opens every path."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..opencv import cv2


def imread(path: Path | str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """cv2.imread(path, flags): the BGR(A) pixels, or None when the file is missing, empty or not an image."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, flags) if data.size else None


def imwrite(path: Path | str, image: np.ndarray, params: Sequence[int] = ()) -> bool:
    """cv2.imwrite(path, image, params): the format from the path's extension (cv2.error for one OpenCV does not
    write); False when the image cannot be encoded or the file cannot be written."""
    ok, encoded = cv2.imencode(Path(path).suffix, image, list(params))
    if not ok:
        return False
    try:
        Path(path).write_bytes(encoded.tobytes())
    except OSError:
        return False
    return True
