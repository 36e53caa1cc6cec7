"""Read photos upright as RGB working images, with what is needed to write them back (io.photo_write)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from clrface_video.errors import InputError

ORIENTATION_TAG = 0x0112
GRAY_MODES = frozenset({"1", "L", "LA", "I;16", "I;16B", "I;16L", "I"})
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# IJG standard luminance quantisation table (compared sorted, so its order does not matter).
IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                     92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)
HEIF_SUFFIXES = frozenset({".heic", ".heif"})  # phone photos; Pillow reads and writes them through pillow-heif
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Photo:
    """A photo as an upright RGB working image plus what is needed to write it back faithfully.

    image: (H, W, 3) RGB, uint8, or uint16 (full scale) for 16-bit sources.
    alpha: (H, W) with the image's dtype, or None.
    mode / format: the source's Pillow mode ("RGB", "L", "RGBA", "CMYK", "I;16", ...) and format.
    exif: EXIF bytes with orientation reset to 1 (pixels are already upright), or None.
    icc: the embedded ICC profile, or None.
    quality / subsampling: JPEG quality guessed from the quantisation tables, and Pillow's
    subsampling code (0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0), or None.
    bit_depth: 8 or 16 bits per channel.
    """

    image: np.ndarray
    alpha: np.ndarray | None
    mode: str
    format: str
    exif: bytes | None
    icc: bytes | None
    quality: int | None = None
    subsampling: int | None = None
    bit_depth: int = 8
    dpi: tuple[float, float] | None = None
    compression: str | None = None
    xmp: bytes | None = None


@cache
def heif_support() -> bool:
    """Register pillow-heif's HEIC/HEIF opener and saver with Pillow once; False when it is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _need_heif(path: Path) -> None:
    if path.suffix.lower() in HEIF_SUFFIXES and not heif_support():
        raise InputError(f"{path.name}: HEIC/HEIF photos need pillow-heif "
                         "(pip install pillow-heif, or clrface-video[heif])")


# -- reading ---------------------------------------------------------------------------------------

def _open(path: Path) -> tuple[Image.Image, bool]:
    """The loaded image, and whether it is 16-bit RGB(A) (only visible before loading)."""
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"image is empty (0 bytes): {path}")
    _need_heif(path)
    try:
        image = Image.open(path)
        deep = _is_16bit_rgb(image)
        image.load()
    except READ_ERRORS as error:
        raise InputError(f"cannot read {path.name} as an image ({' '.join(str(error).split())})") from error
    return image, deep


def _is_16bit_rgb(image: Image.Image) -> bool:
    """Pillow decodes 16-bit RGB(A) PNG/TIFF to 8 bits; its tile rawmode still says ';16'."""
    if image.mode not in ("RGB", "RGBA") or not image.tile:
        return False
    args = image.tile[0].args
    rawmode = args[0] if isinstance(args, tuple) else args
    return isinstance(rawmode, str) and ";16" in rawmode


def guess_jpeg_quality(image: Image.Image) -> int | None:
    """IJG quality (1..100) that best explains the luminance quantisation table, or None."""
    tables = getattr(image, "quantization", None)
    if not tables or 0 not in tables:
        return None
    actual = np.sort(np.asarray(tables[0], dtype=np.int64))
    if actual.size != IJG_LUMA.size:
        return None
    errors = [np.abs(np.sort(_ijg_table(q)) - actual).sum() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


def _ijg_table(quality: int) -> np.ndarray:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((IJG_LUMA * scale + 50) // 100, 1, 255)


def _jpeg_subsampling(image: Image.Image) -> int | None:
    if image.format not in ("JPEG", "MPO"):
        return None
    from PIL import JpegImagePlugin

    sampling = JpegImagePlugin.get_sampling(image)
    return sampling if sampling >= 0 else None


def _upright_exif(image: Image.Image) -> bytes | None:
    exif = image.getexif()
    if not exif:
        return None
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    return exif.tobytes()


def orient_array(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, ...) array, as ImageOps.exif_transpose does."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1),
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}
    op = ops.get(orientation)
    return np.ascontiguousarray(op(array)) if op else array


def _read_16bit_rgb(path: Path, orientation: int) -> tuple[np.ndarray, np.ndarray | None]:
    data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None or data.dtype != np.uint16 or data.ndim != 3:
        raise InputError(f"cannot read {path.name} as a 16-bit RGB image")
    data = orient_array(data, orientation)
    rgb = np.ascontiguousarray(data[..., 2::-1])
    alpha = np.ascontiguousarray(data[..., 3]) if data.shape[2] == 4 else None
    return rgb, alpha


def _split_8bit_or_gray16(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(RGB, alpha, bit depth) of an upright Pillow image in any mode."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.asarray(image).astype(np.uint16) if mode != "I" else np.clip(np.asarray(image), 0, 65535)
        gray = gray.astype(np.uint16)
        return np.repeat(gray[..., None], 3, axis=2), None, 16
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    has_alpha = image.mode in ALPHA_MODES
    alpha = np.asarray(image.getchannel("A")).copy() if has_alpha else None
    rgb = np.asarray(image.convert("RGB")).copy()
    return rgb, alpha, 8


def read_photo(path: Path | str) -> Photo:
    """Read a photo upright (EXIF orientation applied) as an RGB working image; see Photo.

    Grayscale, palette, CMYK, alpha and 16-bit sources become RGB (uint8, or uint16 for
    16-bit); their mode, alpha, EXIF, ICC profile and JPEG settings are kept for write_photo.
    Corrupt or unsupported files raise InputError.
    """
    path = Path(path)
    source, deep = _open(path)
    orientation = int(source.getexif().get(ORIENTATION_TAG, 1) or 1)
    mode, fmt = source.mode, "JPEG" if source.format == "MPO" else (source.format or "PNG")
    try:
        if deep:
            rgb, alpha = _read_16bit_rgb(path, orientation)
            depth = 16
        else:
            rgb, alpha, depth = _split_8bit_or_gray16(ImageOps.exif_transpose(source))
    except READ_ERRORS as error:
        raise InputError(f"cannot decode {path.name} ({' '.join(str(error).split())})") from error
    dpi = source.info.get("dpi")
    return Photo(
        image=rgb, alpha=alpha, mode=mode, format=fmt, exif=_upright_exif(source),
        icc=source.info.get("icc_profile") or None, quality=guess_jpeg_quality(source),
        subsampling=_jpeg_subsampling(source), bit_depth=depth,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
        compression=source.info.get("compression") if fmt == "TIFF" else None,
        xmp=_xmp(source),
    )


def _xmp(image: Image.Image) -> bytes | None:
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode()
    return xmp or None


