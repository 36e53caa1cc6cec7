"""How a stored picture is turned upright: a photo's EXIF orientation (1..8), as ImageOps.exif_transpose turns it,
on numpy arrays (the working image) and as Pillow transposes (a picture kept in its own mode: a gain map); a
video's display rotation as quarter turns (np.rot90)."""
from __future__ import annotations

import numpy as np
from PIL import Image

# the transpose that turns a picture stored in each orientation upright (1 and others: none)
TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
         5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
         8: Image.Transpose.ROTATE_90}
QUARTER_TURNS = frozenset({5, 6, 7, 8})  # the orientations whose upright picture trades width and height
_ARRAY_TURNS = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
                5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1),
                7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}


def orient_array(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, ...) array, as ImageOps.exif_transpose does: a 16-bit or
    deep picture read past Pillow is turned as Pillow turns an 8-bit one."""
    turn = _ARRAY_TURNS.get(orientation)
    return np.ascontiguousarray(turn(array)) if turn else array


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """A stored picture's (width, height) once turned upright."""
    return (size[1], size[0]) if orientation in QUARTER_TURNS else size


def quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns (0-3, np.rot90) that show stored frames upright, from a display rotation in
    degrees (a phone clip's display matrix)."""
    return round(rotation / 90) % 4
