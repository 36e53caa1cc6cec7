"""Read photos upright as RGB working images and write them back in their own format, mode and metadata."""
from __future__ import annotations

import io
import logging
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from clrface_video.errors import ClrfaceError, InputError

ORIENTATION_TAG = 0x0112
GRAY_MODES = frozenset({"1", "L", "LA", "I;16", "I;16B", "I;16L", "I"})
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# IJG standard luminance quantisation table (compared sorted, so its order does not matter).
IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                     92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)
HEIF_SUFFIXES = frozenset({".heic", ".heif"})  # phone photos; Pillow reads and writes them through pillow-heif
LOSSY_QUALITY = {"WEBP": 95, "HEIF": 90, "AVIF": 90}  # quality of the formats without a quality to copy
DEEP_FORMATS = frozenset({"PNG", "TIFF"})  # the formats written at 16 bits per channel
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
        image, depth = _to_depth(image, 8), 8
        alpha = None if alpha is None else _to_depth(alpha, 8)
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


# -- writing ---------------------------------------------------------------------------------------

def _to_depth(array: np.ndarray, bit_depth: int) -> np.ndarray:
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


def _alpha_for(like: Photo, shape: tuple[int, int]) -> np.ndarray | None:
    if like.alpha is None:
        return None
    alpha = _to_depth(like.alpha, like.bit_depth)
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
    rgb = _to_depth(image, like.bit_depth)
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
