"""Write restored photos back in their own (or the asked) format, mode and metadata, atomically."""
from __future__ import annotations

import io
import logging
import os
import shutil
import struct
import zlib
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from clrface_video.errors import ClrfaceError
from clrface_video.io.photo_read import GRAY_MODES, HEIF_SUFFIXES, Photo, _need_heif
from clrface_video.io.pixels import luma, to_depth

LOSSY_QUALITY = {"WEBP": 95, "HEIF": 90, "AVIF": 90}  # quality of the formats without a quality to copy
DEEP_FORMATS = frozenset({"PNG", "TIFF"})  # the formats written at 16 bits per channel
log = logging.getLogger(__name__)


def format_for(path: Path | str) -> str | None:
    """The Pillow format a file name asks for (out.jpg: JPEG, out.heic: HEIF), or None for one Pillow does not write."""
    path = Path(path)
    if path.suffix.lower() in HEIF_SUFFIXES:
        _need_heif(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    return fmt if fmt in Image.SAVE else None


@cache
def can_write(mode: str, fmt: str) -> bool:
    """Whether Pillow writes an image of `mode` as `fmt` (tried on a 1 x 1 image in memory)."""
    try:
        Image.new(mode, (1, 1)).save(io.BytesIO(), format=fmt)
    except (KeyError, ValueError, OSError):
        return False
    return True


def fit_format(photo: Photo, fmt: str, name: str = "") -> Photo:
    """`photo` to be written as `fmt`, with what that format cannot hold converted, each change warned once:
    16 bits to 8 (outside PNG and TIFF), transparency flattened onto white, CMYK or grey modes to RGB or L."""
    changes: list[str] = []
    image, alpha, mode, depth = photo.image, photo.alpha, photo.mode, photo.bit_depth
    gray = mode in GRAY_MODES
    if depth == 16 and fmt not in DEEP_FORMATS:
        image, depth = to_depth(image, 8), 8
        alpha = None if alpha is None else to_depth(alpha, 8)
        mode = "L" if gray else "RGB"
        changes.append("16 bits per channel to 8")
    if alpha is not None and not can_write("LA" if gray else "RGBA", fmt):
        share = alpha.astype(np.float32)[..., None] / np.iinfo(alpha.dtype).max
        image = np.rint(image * share + np.iinfo(image.dtype).max * (1.0 - share)).astype(image.dtype)
        alpha, mode = None, "L" if gray else "RGB"
        changes.append("transparency flattened onto white")
    written = _written_mode(mode, alpha is not None, depth)
    if depth == 8 and not can_write(written, fmt):
        mode = "L" if gray and can_write("L", fmt) else "RGB"
        changes.append(f"mode {written} to {mode}")
    if changes:
        log.warning("%s: written as %s with %s", name or "photo", fmt, ", ".join(changes))
    return replace(photo, image=image, alpha=alpha, mode=mode, bit_depth=depth, format=fmt)


def _written_mode(mode: str, alpha: bool, depth: int) -> str:
    """The Pillow mode write_photo hands to the encoder for a photo of `mode` (see _pil_image)."""
    if mode in GRAY_MODES:
        return "LA" if alpha else "I;16" if depth == 16 else "1" if mode == "1" else "L"
    return "RGBA" if alpha else "CMYK" if mode == "CMYK" else "RGB"


def _alpha_for(like: Photo, shape: tuple[int, int]) -> np.ndarray | None:
    if like.alpha is None:
        return None
    alpha = to_depth(like.alpha, like.bit_depth)
    if alpha.shape != shape:
        alpha = cv2.resize(alpha, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return alpha


def _pil_image(rgb: np.ndarray, like: Photo) -> Image.Image:
    """The 8-bit or 16-bit grayscale Pillow image in the source's mode (alpha re-attached)."""
    alpha = _alpha_for(like, rgb.shape[:2])
    if like.bit_depth == 16:  # only grayscale 16-bit goes through Pillow
        return Image.fromarray(luma(rgb))
    if like.mode in GRAY_MODES:
        gray = Image.fromarray(luma(rgb))
        if alpha is not None:
            return Image.merge("LA", (gray, Image.fromarray(alpha)))
        return gray.convert("1") if like.mode == "1" else gray
    image = Image.fromarray(rgb)
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha))
        return image
    return image.convert("CMYK") if like.mode == "CMYK" else image


def _save_options(like: Photo) -> dict[str, Any]:
    options: dict[str, Any] = {"format": like.format}
    if like.exif:
        options["exif"] = like.exif
    if like.icc:
        options["icc_profile"] = like.icc
    if like.dpi:
        options["dpi"] = like.dpi
    if like.xmp and like.format in ("JPEG", "WEBP", "HEIF", "AVIF"):
        options["xmp"] = like.xmp
    if like.format == "JPEG":
        options["quality"] = min(100, max(95, like.quality or 95))
        if like.subsampling is not None:
            options["subsampling"] = like.subsampling
    elif like.format in LOSSY_QUALITY:
        options["quality"] = LOSSY_QUALITY[like.format]
    elif like.format == "TIFF" and like.compression:
        options["compression"] = like.compression
    return options


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with_metadata(png: bytes, like: Photo) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (OpenCV writes neither)."""
    extra = b""
    if like.icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(like.icc))
    if like.exif:
        exif = like.exif[6:] if like.exif.startswith(b"Exif\x00\x00") else like.exif
        extra += _png_chunk(b"eXIf", exif)
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + extra + png[end_of_ihdr:]


def _tiff_16bit(rgb: np.ndarray, alpha: np.ndarray | None, like: Photo) -> bytes | None:
    """16-bit RGB(A) TIFF bytes with the ICC profile, via tifffile (scikit-image's dependency) if present."""
    try:
        import tifffile
    except ImportError:
        return None
    pixels = rgb if alpha is None else np.dstack([rgb, alpha])
    buffer = io.BytesIO()
    compression = "zlib" if like.compression not in (None, "raw") else None  # lossless, no extra codecs
    tifffile.imwrite(buffer, pixels, photometric="rgb", iccprofile=like.icc, compression=compression,
                     extrasamples=("unassalpha",) if alpha is not None else None)
    return buffer.getvalue()


def _encode_16bit_rgb(rgb: np.ndarray, like: Photo) -> bytes:
    """16-bit RGB(A) PNG or TIFF bytes (Pillow cannot write 16-bit RGB): OpenCV, or tifffile for TIFF."""
    alpha = _alpha_for(like, rgb.shape[:2])
    if like.format == "TIFF":
        tiff = _tiff_16bit(rgb, alpha, like)
        if tiff is not None:
            return tiff
    bgr = rgb[..., ::-1]
    if alpha is not None:
        bgr = np.dstack([bgr, alpha])
    if like.format not in DEEP_FORMATS:
        raise ValueError(f"{like.format} is not written at 16 bits per channel")
    suffix = ".png" if like.format == "PNG" else ".tif"
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(bgr))
    if not ok:
        raise ClrfaceError(f"cannot encode a 16-bit {like.format} image")
    data = encoded.tobytes()
    return _png_with_metadata(data, like) if like.format == "PNG" else data


def _encode(image: np.ndarray, like: Photo, path: Path) -> None:
    rgb = to_depth(image, like.bit_depth)
    if like.bit_depth == 16 and like.mode not in GRAY_MODES:
        path.write_bytes(_encode_16bit_rgb(rgb, like))
        return
    _pil_image(rgb, like).save(path, **_save_options(like))


def _partial(path: Path) -> Path:
    """The hidden name a photo is written under before it is renamed into place."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def copy_photo(source: Path | str, path: Path | str) -> Path:
    """`source`'s bytes at `path` (a photo with nothing restored: no re-encoding), atomically as write_photo."""
    path = Path(path)
    partial = _partial(path)
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def write_photo(path: Path | str, image: np.ndarray, like: Photo) -> Path:
    """Write an (H, W, 3) RGB image (uint8 or uint16) in the format, mode and metadata of `like`.

    EXIF (orientation 1) and the ICC profile are kept; JPEG keeps its subsampling at
    quality >= 95. The file is written under a hidden temporary name in the same folder and
    renamed into place, so a failure never leaves a half-written file.
    """
    path = Path(path)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got {image.shape}")
    if not path.parent.is_dir():
        raise ClrfaceError(f"output folder does not exist: {path.parent}")
    partial = _partial(path)
    try:
        _encode(image, like, partial)
        os.replace(partial, path)
    except (KeyError, ValueError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise ClrfaceError(f"cannot write {path.name} as {like.format} ({' '.join(str(error).split())})") \
            from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
