"""Write restored photos back in their own (or the asked) format, mode and metadata, atomically."""
from __future__ import annotations

import io
import logging
import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from clrface_video.atomic import discard, partial_name, remove_leftovers, write_whole
from clrface_video.errors import ClrfaceError, reason
from clrface_video.io.deep_avif import AVIF_DEEP, AVIF_DEEP_WHY, av1_encoder, avif_bytes
from clrface_video.io.jpeg_segments import app_segment
from clrface_video.io.photo_read import (
    EXIF_HEADER,
    GRAY_MODES,
    HEIF_SUFFIXES,
    NCLX_FIELDS,
    PNG_GREY_ALPHA,
    PNG_SIGNATURE,
    XMP_TAG,
    Photo,
    _need_heif,
    keep_text,
    tiff_start,
)
from clrface_video.io.pixels import luma, to_codes, to_depth
from clrface_video.io.ultra_hdr import (
    extras_named,
    fitted,
    fitted_extras,
    gain_map_xmp,
    say_previews,
    with_gain_map,
    without_gain_map_xmp,
)
from clrface_video.io.vendor_segments import kept, segments_named, vendor_segment_bytes
from clrface_video.io.xmp_extension import xmp_extension_segments

from ..opencv import cv2

# why a deep AVIF's chroma is 4:2:0: what SVT-AV1, the AV1 encoder FFmpeg has here, codes; keeping more takes 8 bits
DEEP_AVIF_CHROMA_WHY = "SVT-AV1 codes 4:2:0 alone; Pillow's AVIF writer, which keeps it, takes 8 bits"
LOSSY_QUALITY = {"WEBP": 95, "HEIF": 90, "AVIF": 90}  # quality of the formats without a quality to copy
DEEP_FORMATS = frozenset({"PNG", "TIFF"})  # the formats written at 16 bits per channel
# Pillow's AVIF writer's subsampling of a photo's subsampling code (Photo.subsampling: a JPEG's or an AVIF's)
AVIF_SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
HEIF_DEEP = (10, 12)  # the depths a deep RGB(A) picture is written in as a HEIF: HEVC's Main 10 and Main 12
XMP_PNG_KEY = "XML:com.adobe.xmp"
PNG_UP, PNG_IDAT = 2, 1 << 20  # a PNG row's Up filter; the most bytes one IDAT chunk is given
# descriptive text of a TIFF's first IFD that tifffile takes as extra tags: document name, make, model, date,
# artist, host computer, copyright (it writes the description, 270, and software, 305, itself)
TIFF_TEXT_TAGS = frozenset({269, 271, 272, 306, 315, 316, 33432})
EXIF_SUB_IFDS = frozenset({0x8769, 0x8825})  # pointers to the Exif and GPS IFDs
RESOLUTION_TAGS = frozenset({282, 283, 296})  # a TIFF's XResolution, YResolution and ResolutionUnit
EXIF_IFD = 0x8769
JPEG_MARKER_BYTES = 65533  # the most a JPEG marker segment (the EXIF's APP1) holds: its length field's 65535, less 2
MAKER_NOTE = 0x927C  # the Exif IFD's tag for the camera maker's own block
# the EXIF tags that say how large the picture is, (width's, height's): the first IFD's ImageWidth and
# ImageLength, the Exif IFD's PixelXDimension and PixelYDimension
SIZE_TAGS = {None: (0x0100, 0x0101), EXIF_IFD: (0xA002, 0xA003)}
# XMP's copies of them (tiff:ImageWidth, exif:PixelXDimension, ...), as an attribute or as an element
XMP_SIZE = re.compile(rb'((tiff:ImageWidth|tiff:ImageLength|exif:PixelXDimension|exif:PixelYDimension)'
                      rb'(?:\s*=\s*["\']|>\s*))\d+')
XMP_WIDTH = (b"tiff:ImageWidth", b"exif:PixelXDimension")
# the size an XMP's MWG face regions apply to (mwg-rs:AppliedToDimensions: stDim:w and h, in pixels)
REGIONS_SIZE = re.compile(rb'<mwg-rs:AppliedToDimensions\b[^>]*?(?:/>|>.*?</mwg-rs:AppliedToDimensions>)', re.DOTALL)
REGIONS_SIDE = re.compile(rb'(stDim:([wh])(?:\s*=\s*["\']|>)\s*)[0-9.]+')
log = logging.getLogger(__name__)


def format_for(path: Path | str) -> str | None:
    """The Pillow format a file name asks for (out.jpg: JPEG, out.heic: HEIF), or None for one Pillow does not write.
    An .mpo name asks for a JPEG: Pillow's MPO writer, given one picture, writes it without the JPEG writer's
    settings (quality 75, the XMP left out); several pictures go into one MPO by multi_picture."""
    path = Path(path)
    if path.suffix.lower() in HEIF_SUFFIXES:
        _need_heif(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    return "JPEG" if fmt == "MPO" else fmt if fmt in Image.SAVE else None


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
    16 bits to 8 (outside PNG, TIFF, HEIF and an AVIF without alpha; to 12 in a HEIF, 10 in an AVIF), transparency flattened onto white, CMYK or grey modes to RGB or L. A palette photo (a GIF, a PNG) goes
    to full colour, RGB or RGBA, unwarned: every colour of it is kept."""
    changes: list[str] = []
    image, alpha, mode, depth = photo.image, photo.alpha, photo.mode, photo.bit_depth
    if mode in ("P", "PA"):
        mode = "RGBA" if alpha is not None else "RGB"
    gray = mode in GRAY_MODES
    deepest = HEIF_DEEP[-1] if fmt == "HEIF" else AVIF_DEEP if _deep_avif(fmt, alpha) else None
    if depth == 16 and fmt not in DEEP_FORMATS and deepest is None:
        image, depth = to_depth(image, 8), 8
        alpha = None if alpha is None else to_depth(alpha, 8)
        mode = "L" if gray else "RGB"
        changes.append(f"{photo.coded_bits} bits per channel to 8")  # a deep HEIF's or AVIF's own 10 or 12, else 16
    elif depth == 16 and deepest is not None and photo.coded_bits > deepest:
        changes.append(_cut_to(photo.coded_bits, deepest, fmt))
    if depth == 16 and gray and alpha is not None and fmt not in ("HEIF", "PNG"):  # a deep grey cutout as a TIFF
        mode = "RGBA"
        changes.append("mode LA to RGBA at 16 bits (a 16-bit grey TIFF with alpha Pillow cannot open and OpenCV "
                       "misreads; a PNG keeps it)")
    if alpha is not None and not can_write("LA" if gray else "RGBA", fmt):
        share = alpha.astype(np.float32)[..., None] / np.iinfo(alpha.dtype).max
        image = np.rint(image * share + np.iinfo(image.dtype).max * (1.0 - share)).astype(image.dtype)
        alpha, mode = None, "L" if gray else "RGB"
        changes.append("transparency flattened onto white")
    written = _written_mode(mode, alpha is not None, depth)
    if depth == 8 and not can_write(written, fmt):
        mode = "L" if gray and can_write("L", fmt) else "RGB"
        changes.append(f"mode {written} to {mode}")
    exif = photo.exif
    if fmt == "JPEG" and exif and len(_with_exif_header(exif)) > JPEG_MARKER_BYTES:
        exif = _without_maker_note(exif)
        changes.append(f"its EXIF ({len(photo.exif) // 1024} KB) " + (
            "without the camera's maker note" if exif else "left out") + ", which a JPEG holds 64 KB of")
    if fmt != "PNG" and photo.icc is None and not _srgb_like(photo):
        changes.append("its PNG gamma and primaries (gAMA, cHRM) left out, which it has no place for: "
                       "colour-managed viewers will show it as sRGB")
    changes += unkept(photo, fmt)
    if changes:
        log.warning("%s: written as %s with %s", name or "photo", fmt, ", ".join(changes))
    return replace(photo, image=image, alpha=alpha, mode=mode, bit_depth=depth, format=fmt, exif=exif,
                   coded_bits=photo.coded_bits if depth == 16 else depth,  # a 10-bit AVIF's 10 in a HEIF
                   nclx=photo.nclx if _keeps_nclx(fmt, depth) else None,  # what is lost said once, here
                   gain_map=photo.gain_map if fmt == "JPEG" else None, extras=photo.extras if fmt == "JPEG" else (),
                   xmp_extension=photo.xmp_extension if fmt == "JPEG" else (),
                   vendor_segments=photo.vendor_segments if fmt == "JPEG" else (),
                   motion_video=photo.motion_video if fmt == "JPEG" else None)


def unkept(photo: Photo, fmt: str) -> list[str]:
    """What the source file codes that a photo written as `fmt` loses: a 10- or 12-bit HEIF's or AVIF's depth (read
    at 8 bits; a 12-bit AVIF's written in 10), an Ultra HDR JPEG's gain map (outside a JPEG), and a colour
    description (nclx) anywhere but in a HEIF or a deep AVIF (Pillow's AVIF writer takes none: an HDR AVIF comes
    back tagged sRGB over pixels coded for PQ). Said by fit_format where the format changes, else by write_photo (a
    photo copied as it was, nothing restored in it, loses nothing)."""
    lost = [f"{photo.coded_bits} bits per channel to {photo.bit_depth}"] if photo.coded_bits > photo.bit_depth else []
    if fmt == photo.format == "AVIF" and photo.bit_depth == 16 and photo.coded_bits > AVIF_DEEP:  # a 12-bit AVIF's
        lost.append(_cut_to(photo.coded_bits, AVIF_DEEP, fmt))
    if photo.bit_depth == 16 and _deep_avif(fmt, photo.alpha):
        lost += _deep_avif_chroma(photo)
    if fmt != "JPEG" and photo.gain_map is not None:
        lost.append("its Ultra HDR gain map left out, which a JPEG output keeps: it comes back SDR")
    if fmt != "JPEG" and photo.extras:
        lost.append(f"{extras_named(photo.extras)} left out, which a JPEG output keeps")
    if fmt != "JPEG" and photo.motion_video:
        lost.append(f"its motion photo's video ({len(photo.motion_video)} bytes) left out, which a JPEG output keeps")
    if fmt != "JPEG" and photo.xmp_extension:
        lost.append(f"its extended XMP ({sum(map(len, photo.xmp_extension))} bytes) left out, which a JPEG output "
                    "keeps")
    if fmt != "JPEG" and (vendor := kept(photo.vendor_segments)):
        lost.append(f"its camera maker's JPEG segments ({segments_named(vendor)}) left out, which a JPEG output keeps")
    if not _keeps_nclx(fmt, photo.bit_depth) and photo.nclx and not _srgb_nclx(photo.nclx):
        why = "which Pillow's AVIF writer does not write" if fmt == "AVIF" else "which it has no place for"
        lost.append(f"its {photo.format} colour description (primaries {photo.nclx[0]}, transfer {photo.nclx[1]}) "
                    f"left out, {why}: viewers will show it as sRGB")
    return lost


def _cut_to(bits: int, deepest: int, fmt: str) -> str:
    """The words for a deep photo's `bits` written in `deepest`, the most `fmt` is written in here: an AVIF's with
    why (AVIF_DEEP_WHY), where a 12-bit AVIF's loss was said with no reason a user could act on."""
    return f"{bits} bits per channel to {deepest}" + (f" ({AVIF_DEEP_WHY})" if fmt == "AVIF" else "")


def _deep_avif_chroma(photo: Photo) -> list[str]:
    """What a deep photo written as a 10-bit AVIF (io.deep_avif) loses of its chroma: SVT-AV1 codes 4:2:0 alone, so a
    4:4:4 or 4:2:2 source's chroma is halved (Pillow's AVIF writer keeps it, at 8 bits), and a grey one is coded as
    colour, its chroma neutral (SVT-AV1 codes no 4:0:0; Pillow's writes grey at 8 bits)."""
    if photo.mode in GRAY_MODES:
        return [f"grey coded as 4:2:0 colour of neutral chroma ({DEEP_AVIF_CHROMA_WHY})"]
    if photo.subsampling in (0, 1):
        return [f"{AVIF_SUBSAMPLING[photo.subsampling]} chroma to 4:2:0 ({DEEP_AVIF_CHROMA_WHY})"]
    return []


def _deep_avif(fmt: str, alpha: np.ndarray | None) -> bool:
    """Whether a 16-bit photo, colour or grey, written as `fmt` is an AVIF written in 10 bits (io.deep_avif): one
    without alpha, where FFmpeg has an AV1 encoder (Pillow's AVIF writer holds 8 bits)."""
    return fmt == "AVIF" and alpha is None and av1_encoder() is not None


def _keeps_nclx(fmt: str, depth: int) -> bool:
    """Whether a photo written as `fmt` at `depth` bits keeps its colour description (nclx): a HEIF, and a deep
    AVIF, which FFmpeg writes with its nclx (Pillow's AVIF writer writes none)."""
    return fmt == "HEIF" or fmt == "AVIF" and depth == 16


def _without_maker_note(exif: bytes) -> bytes | None:
    """EXIF bytes without the Exif IFD's MakerNote (a camera's own block, often tens of KB), its text kept as it
    was, where that fits a JPEG's APP1 marker; None where even that does not (Pillow refused the whole photo)."""
    try:
        tags = keep_text(_exif_of(exif))
        tags.get_ifd(EXIF_IFD).pop(MAKER_NOTE, None)
        smaller = _with_exif_header(tags.tobytes())
    except (ValueError, KeyError, struct.error):
        return None
    return smaller if len(smaller) <= JPEG_MARKER_BYTES else None


SRGB_GAMMA = 1 / 2.2  # a PNG's gAMA for sRGB (0.45455)
SRGB_CHROMATICITY = (0.3127, 0.3290, 0.64, 0.33, 0.30, 0.60, 0.15, 0.06)  # white point, red, green, blue (x, y)
# H.273 code points an nclx shares with sRGB: primaries BT.709 or unspecified; transfer BT.709, unspecified,
# BT.601 or sRGB (the first and third the same curve, close to sRGB's)
SRGB_NCLX = (frozenset({1, 2}), frozenset({1, 2, 6, 13}))


def _srgb_nclx(nclx: tuple[int, int, int, int]) -> bool:
    """Whether a HEIF's nclx says what a viewer assumes anyway without it: sRGB (SRGB_NCLX)."""
    return nclx[0] in SRGB_NCLX[0] and nclx[1] in SRGB_NCLX[1]


def _srgb_like(photo: Photo) -> bool:
    """Whether a PNG's gAMA and cHRM (if any) say what a viewer assumes anyway without them: sRGB."""
    gamma_ok = photo.gamma is None or abs(photo.gamma - SRGB_GAMMA) < 0.005
    primaries_ok = photo.chromaticity is None or \
        all(abs(a - b) < 0.005 for a, b in zip(photo.chromaticity, SRGB_CHROMATICITY, strict=False))
    return gamma_ok and primaries_ok


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
    return Image.fromarray(to_cmyk(rgb, like), "CMYK") if like.mode == "CMYK" else image


def to_cmyk(rgb: np.ndarray, like: Photo) -> np.ndarray:
    """(H, W, 4) ink values of an 8-bit RGB image for a CMYK source: the source's own where the pixel is
    unchanged, elsewhere its black kept as far as the new colour allows (no lighter than 255 - K can show)
    and C, M, Y solved so that Pillow's CMYK -> RGB reads the new colour back. Pillow's RGB -> CMYK, used
    where the source's inks are unknown, sets K to 0: a print file's black would move into C, M and Y."""
    if like.cmyk is None or like.cmyk.shape[:2] != rgb.shape[:2] or like.image.shape != rgb.shape:
        return np.asarray(Image.fromarray(rgb).convert("CMYK"))
    inks = like.cmyk.copy()
    changed = np.any(rgb != like.image, axis=-1)
    colour, source = rgb[changed].astype(np.float32), like.cmyk[changed]
    black = np.minimum(source[:, 3].astype(np.float32), 255.0 - colour.max(axis=1))
    light = 255.0 - black  # Pillow: channel = (255 - K) * (255 - ink) / 255
    cmy = 255.0 - 255.0 * colour / np.maximum(light, 1.0)[:, None]
    cmy[light < 1.0] = source[light < 1.0, :3]  # full black shows no other ink: the source's stays
    inks[changed] = np.rint(np.clip(np.column_stack([cmy, black]), 0, 255)).astype(np.uint8)
    return inks


def save_options(like: Photo, name: str) -> dict[str, Any]:
    """Pillow's save keywords for a photo in `like`'s format, settings and metadata (`name`: for warnings)."""
    options: dict[str, Any] = {"format": like.format}
    if like.exif:  # a TIFF's writer reads the bytes back into tags: given them with their text kept
        options["exif"] = _with_exif_header(like.exif) if like.format != "TIFF" else keep_text(_exif_of(like.exif))
    if like.icc:
        options["icc_profile"] = like.icc
    if like.dpi:
        options["dpi"] = like.dpi
    if like.xmp and like.format in ("JPEG", "WEBP", "HEIF", "AVIF"):
        options["xmp"] = like.xmp
    elif like.xmp and like.format == "TIFF" and XMP_TAG not in options.setdefault("exif", Image.Exif()):
        # Pillow's TIFF writer takes no xmp keyword: the packet is tag 700 among the tags it writes from `exif`,
        # where a TIFF's own already is (photo_read's upright copy). A JPEG's or PNG's XMP (face regions, ratings;
        # an Ultra HDR photo's, rid of its gain map) was lost in a .tif
        options["exif"][XMP_TAG] = like.xmp
    if like.format == "JPEG":
        options["quality"] = min(100, max(95, like.quality or 95))
        if like.subsampling is not None:
            options["subsampling"] = like.subsampling
        options["progressive"] = like.progressive
        if like.comment:
            options["comment"] = like.comment
        # extended XMP's APP1s, APP13 and a maker's own APPn, which Pillow's writer puts after its EXIF, before its XMP
        # and ICC
        extra = xmp_extension_segments(like.xmp_extension)
        if like.iptc:
            extra += app_segment(13, like.iptc)
        extra += vendor_segment_bytes(like.vendor_segments, name)  # a camera maker's own, byte for byte
        if extra:
            options["extra"] = extra
    elif like.format == "WEBP" and like.lossless:
        options["lossless"] = True
    elif like.format in LOSSY_QUALITY:
        options["quality"] = LOSSY_QUALITY[like.format]
        if like.format == "AVIF" and like.subsampling in AVIF_SUBSAMPLING:  # else Pillow's 4:2:0
            options["subsampling"] = AVIF_SUBSAMPLING[like.subsampling]
    elif like.format == "PNG" and (info := _png_info(like, name)).chunks:
        options["pnginfo"] = info
    elif like.format == "TIFF" and like.compression:
        options["compression"] = like.compression
    if like.format == "TIFF" and like.bigtiff:
        options["big_tiff"] = True
    if like.format == "HEIF" and like.nclx:  # else pillow-heif tags it sRGB
        options["nclx_profile"] = dict(zip(NCLX_FIELDS, like.nclx, strict=True))
    return options


def _with_exif_header(exif: bytes) -> bytes:
    """EXIF bytes that begin with the APP1 header (Exif and two zero bytes): Pillow's JPEG writer puts the bytes in
    APP1 as they are, and a WebP's EXIF chunk comes without it, so a JPEG made from one had EXIF no
    reader found. Pillow's PNG, WebP, HEIF and AVIF writers take the bytes either way."""
    return exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif


def _png_texts(like: Photo) -> list[tuple[str, str]]:
    """The PNG's text chunks (key, value), with the XMP packet under its registered key when it came from
    another format."""
    xmp = like.xmp.decode("utf-8", "replace") if like.xmp else None
    texts = [(key, xmp if key == XMP_PNG_KEY and xmp else value) for key, value in like.text]
    if xmp and XMP_PNG_KEY not in {key for key, _ in like.text}:
        texts.append((XMP_PNG_KEY, xmp))
    return texts


def _png_colour(like: Photo, name: str) -> list[tuple[bytes, bytes]]:
    """The source PNG's gAMA, cHRM and sRGB chunks (kind, data), written back as it had them: without them a
    colour-managed viewer renders the photo otherwise (a linear PNG, gAMA 1.0, would look dark). None is made
    up; an sRGB chunk beside the ICC profile is left out, warned, as the PNG spec asks (the profile rules)."""
    chunks = []
    if like.gamma is not None:
        chunks.append((b"gAMA", struct.pack(">I", round(like.gamma * 100000))))
    if like.chromaticity is not None:
        chunks.append((b"cHRM", struct.pack(">8I", *(round(value * 100000) for value in like.chromaticity))))
    if like.srgb is not None and like.icc:
        log.warning("%s: its sRGB chunk is left out: the PNG spec forbids it beside an ICC profile, which is kept",
                    name)
    elif like.srgb is not None:
        chunks.append((b"sRGB", bytes([like.srgb])))
    return chunks


def _png_info(like: Photo, name: str) -> PngInfo:
    """The PNG's colour chunks (_png_colour) and text chunks as Pillow writes them (UTF-8 iTXt)."""
    info = PngInfo()
    for kind, data in _png_colour(like, name):
        info.add(kind, data)
    for key, value in _png_texts(like):
        info.add_itxt(key, value)
    return info


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with_metadata(png: bytes, like: Photo, name: str) -> bytes:
    """Insert the colour chunks (gAMA, cHRM, sRGB), iCCP, pHYs (the resolution in pixels per metre, rounded as
    Pillow's writer rounds it), eXIf and the text chunks (UTF-8 iTXt, XMP among them) right after IHDR (OpenCV
    writes none)."""
    extra = b"".join(_png_chunk(kind, data) for kind, data in _png_colour(like, name))
    if like.icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(like.icc))
    if like.dpi:
        extra += _png_chunk(b"pHYs", struct.pack(">IIB", *(int(dpi / 0.0254 + 0.5) for dpi in like.dpi), 1))
    if like.exif:
        exif = like.exif.removeprefix(EXIF_HEADER)
        extra += _png_chunk(b"eXIf", exif)
    for key, value in _png_texts(like):  # keyword, uncompressed, no language or translated keyword, the text
        extra += _png_chunk(b"iTXt", key.encode("latin-1", "replace") + b"\x00\x00\x00\x00\x00" + value.encode("utf-8"))
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + extra + png[end_of_ihdr:]


def _tiff_tags(like: Photo, name: str) -> dict[str, Any]:
    """tifffile keywords for a 16-bit TIFF: the EXIF's descriptive first-IFD text (maker, model, date, artist,
    copyright, description, software) and the XMP packet. Its Exif and GPS sub-IFDs cannot go along (warned)."""
    tags: list[tuple[int, str, int, Any, bool]] = []
    text: dict[int, str] = {}
    if like.exif:
        exif = _exif_of(like.exif)
        text = {tag: value for tag, value in exif.items() if isinstance(value, str) and value.strip("\x00 ")}
        tags += [(tag, "s", 0, text[tag], True) for tag in sorted(TIFF_TEXT_TAGS & set(text))]
        if EXIF_SUB_IFDS & set(exif):
            log.warning("%s: its EXIF camera and GPS tags are left out (a 16-bit TIFF is written by tifffile, "
                        "which writes no EXIF sub-IFDs)", name)
    if like.xmp:
        tags.append((700, "B", len(like.xmp), like.xmp, True))
    return {"extratags": tags, "description": text.get(270), "software": text.get(305, False)}


def _tiff_16bit(rgb: np.ndarray, alpha: np.ndarray | None, like: Photo, name: str) -> bytes | None:
    """16-bit RGB(A) TIFF bytes with the ICC profile, text tags and XMP, via tifffile (scikit-image's
    dependency) if present."""
    try:
        import tifffile
    except ImportError:
        return None
    pixels = rgb if alpha is None else np.dstack([rgb, alpha])
    buffer = io.BytesIO()
    # lossless with what tifffile writes alone: LZW and PackBits need imagecodecs, which is not a dependency
    compression = "zlib" if like.compression not in (None, "raw") else None
    tifffile.imwrite(buffer, pixels, photometric="rgb", bigtiff=like.bigtiff, iccprofile=like.icc,
                     compression=compression, extrasamples=("unassalpha",) if alpha is not None else None,
                     resolution=like.dpi, resolutionunit="INCH" if like.dpi else None, metadata=None,
                     **_tiff_tags(like, name))
    if like.dpi is None:  # tifffile writes 1 x 1 of no unit where it is given none: the source had none
        with buffer.getbuffer() as tiff:
            _drop_first_ifd_tags(tiff, RESOLUTION_TAGS)
    return buffer.getvalue()


def _drop_first_ifd_tags(tiff: memoryview, tags: frozenset[int]) -> None:
    """Remove `tags` from the first IFD of TIFF (or BigTIFF) bytes, in place: the entries after them move up and
    the count and the next IFD's offset follow; the values the removed entries pointed to stay, unread."""
    order = "<" if tiff[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", tiff, 2)[0] == 43
    count, entry_size, offset = ("Q", 20, "Q") if big else ("H", 12, "I")
    ifd = struct.unpack_from(order + offset, tiff, 8 if big else 4)[0]
    entries = struct.unpack_from(order + count, tiff, ifd)[0]
    first = ifd + struct.calcsize(count)
    end = first + entry_size * entries
    kept = [bytes(tiff[at:at + entry_size]) for at in range(first, end, entry_size)
            if struct.unpack_from(order + "H", tiff, at)[0] not in tags]
    block = struct.pack(order + count, len(kept)) + b"".join(kept) + bytes(tiff[end:end + struct.calcsize(offset)])
    tiff[ifd:ifd + len(block)] = block


def heif_bytes(pictures: Iterable[tuple[np.ndarray, Photo]], primary: int = 0) -> bytes:
    """HEIF bytes of one or more pictures ((restored) RGB, and its Photo: a burst's, taken one at a time, each
    copied into pillow-heif's HeifFile before the next), the `primary` one shown
    first, each in its own mode and metadata (EXIF, XMP, ICC profile or nclx) and depth: a 16-bit one, colour or
    grey, in its source's 10 or 12 bits (HEIF_DEEP), which pillow-heif writes from its codes (Pillow's own images
    hold 8 in colour, and pillow-heif writes a grey I;16 one in 10 whatever its source's)."""
    import pillow_heif

    heif = pillow_heif.HeifFile()
    for rgb, like in pictures:
        height, width = rgb.shape[:2]
        if like.bit_depth == 16:
            bits = HEIF_DEEP[0] if like.coded_bits <= HEIF_DEEP[0] else HEIF_DEEP[-1]
            gray, alpha = like.mode in GRAY_MODES, _alpha_for(like, (height, width))
            pixels = luma(rgb) if gray else rgb
            pixels = pixels if alpha is None else np.dstack([pixels, alpha])
            added = heif.add_frombytes(f"{'L' if gray else 'RGB'}{'A' * (alpha is not None)};{bits}", (width, height),
                                       to_codes(np.ascontiguousarray(pixels), bits).tobytes())
        else:
            added = heif.add_from_pillow(_pil_image(to_depth(rgb, 8), replace(like, bit_depth=8)))
        options = save_options(like, "")
        added.info.update({key: options[key] for key in ("exif", "xmp", "icc_profile", "nclx_profile")
                           if key in options})
    buffer = io.BytesIO()
    heif.save(buffer, quality=LOSSY_QUALITY["HEIF"], primary_index=primary)
    return buffer.getvalue()


def _encode_16bit_rgb(rgb: np.ndarray, like: Photo, name: str) -> bytes:
    """16-bit RGB(A) PNG or TIFF bytes (Pillow cannot write 16-bit RGB): OpenCV, or tifffile for TIFF; a HEIF's in
    10 or 12 bits (heif_bytes), an AVIF's in 10 (io.deep_avif)."""
    if like.format == "HEIF":
        return heif_bytes([(rgb, like)])
    if like.format == "AVIF":  # a grey one's neutral, its three channels its luma
        pixels = np.repeat(luma(rgb)[..., None], 3, axis=2) if like.mode in GRAY_MODES else rgb
        return avif_bytes(pixels, like.nclx, like.exif, like.xmp, like.icc)
    alpha = _alpha_for(like, rgb.shape[:2])
    if like.format == "PNG" and like.mode in GRAY_MODES and alpha is not None:
        return _png_with_metadata(_png_grey_alpha_16(luma(rgb), alpha), like, name)
    if like.format == "TIFF":
        tiff = _tiff_16bit(rgb, alpha, like, name)
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
    return _png_with_metadata(data, like, name) if like.format == "PNG" else data


def _png_grey_alpha_16(grey: np.ndarray, alpha: np.ndarray) -> bytes:
    """16-bit grey-with-alpha PNG bytes (colour type 4), written here: OpenCV writes 1, 3 or 4 channels and Pillow
    holds grey with alpha in 8 bits, so a deep grey cutout went to RGBA. Each row is filtered Up (its bytes less the
    row above's), as PNG encoders do for smooth pictures, and deflated."""
    height, width = grey.shape
    rows = np.dstack([grey, alpha]).astype(">u2").reshape(height, -1).view(np.uint8)
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]  # wraps modulo 256, as the Up filter is defined
    data = zlib.compress(np.hstack([np.full((height, 1), PNG_UP, np.uint8), filtered]).tobytes(), 6)
    header = struct.pack(">IIBBBBB", width, height, 16, PNG_GREY_ALPHA, 0, 0, 0)
    idat = b"".join(_png_chunk(b"IDAT", data[at:at + PNG_IDAT]) for at in range(0, len(data), PNG_IDAT))
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + idat + _png_chunk(b"IEND", b"")


def _exif_of(data: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.load(data)
    return exif


def _has_sub_ifds(exif: bytes | None) -> bool:
    """Whether EXIF bytes point to an Exif or GPS sub-IFD (camera settings, DateTimeOriginal, location)."""
    return bool(exif) and bool(EXIF_SUB_IFDS & set(_exif_of(exif)))


def _sized_exif(exif: bytes, width: int, height: int) -> bytes:
    """EXIF bytes whose size tags (SIZE_TAGS, where there) say `width` x `height`, every other byte as it came: a
    photo turned upright, or restored at another size, is no longer the size the camera wrote. Bytes that cannot
    be read as EXIF are returned as they are."""
    header = tiff_start(exif)
    if header is None:
        return exif
    start, order = header
    out = bytearray(exif)
    try:
        camera = _size_ifd(out, order, start, struct.unpack_from(order + "I", exif, start + 4)[0], None,
                           width, height)
        if camera:
            _size_ifd(out, order, start, camera, EXIF_IFD, width, height)
    except struct.error:
        return exif
    return bytes(out)


def _size_ifd(out: bytearray, order: str, start: int, ifd: int, group: int | None, width: int, height: int) -> int:
    """Set the size tags of the IFD at `ifd` (from the TIFF header at `start`) in place; the Exif IFD's offset
    where this IFD points to one, else 0."""
    camera = 0
    entries = struct.unpack_from(order + "H", out, start + ifd)[0]
    for entry in range(start + ifd + 2, start + ifd + 2 + 12 * entries, 12):
        tag, kind, count = struct.unpack_from(order + "HHI", out, entry)
        if group is None and tag == EXIF_IFD and kind in (4, 13):
            camera = struct.unpack_from(order + "I", out, entry + 8)[0]
        elif tag in SIZE_TAGS[group] and count == 1 and kind in (3, 4):
            size = width if tag == SIZE_TAGS[group][0] else height
            kind = 3 if kind == 3 and size < 1 << 16 else 4  # a SHORT grown past 65535 becomes a LONG
            struct.pack_into(order + "H", out, entry + 2, kind)
            struct.pack_into(order + ("H" if kind == 3 else "I"), out, entry + 8, size)
    return camera


def sized_xmp(xmp: bytes, width: int, height: int) -> bytes:
    """An XMP packet whose copies of the picture's size (XMP_SIZE, and the size its face regions apply to,
    REGIONS_SIZE, where in pixels) say `width` x `height`, as _sized_exif: the regions, normalized, are turned
    with the pixels (photo_read.upright_xmp), and the size they name must be the picture's they lie on."""
    xmp = XMP_SIZE.sub(lambda m: m.group(1) + str(width if m.group(2) in XMP_WIDTH else height).encode(), xmp)
    return REGIONS_SIZE.sub(lambda block: _pixel_sides(block.group(0), width, height), xmp)


def _pixel_sides(block: bytes, width: int, height: int) -> bytes:
    """An AppliedToDimensions block saying `width` x `height`; one in another unit than pixels is left alone."""
    if re.search(rb'stDim:unit(?:\s*=\s*["\']|>)\s*pixel\b', block) is None and b"stDim:unit" in block:
        return block
    return REGIONS_SIDE.sub(lambda m: m.group(1) + str(width if m.group(2) == b"w" else height).encode(), block)


def sized(like: Photo, rgb: np.ndarray) -> Photo:
    """`like` with EXIF and XMP that give `rgb`'s size, the size written (_sized_exif, sized_xmp)."""
    height, width = rgb.shape[:2]
    return replace(like, exif=like.exif and _sized_exif(like.exif, width, height),
                   xmp=like.xmp and sized_xmp(like.xmp, width, height))


def encode_photo(image: np.ndarray, like: Photo, target: Path | BinaryIO, name: str) -> None:
    """Encode an RGB image in `like`'s format, mode and metadata into a file, or an open file object (a page
    of io.tiff_pages' multi-page writer); `name` is the photo's name for warnings. A file is encoded in memory
    and written whole (atomic.write_whole): given a file, Pillow's C encoders write to its descriptor and let
    pass a write that took only part of the photo, as a nearly full disk does, and libtiff's 'encoder error'
    hid that the disk was full."""
    if not isinstance(target, Path):
        _encode_into(image, like, target, name)
        return
    encoded = io.BytesIO()
    _encode_into(image, like, encoded, name)
    write_whole(target, encoded.getbuffer())


def _encode_into(image: np.ndarray, like: Photo, target: BinaryIO, name: str) -> None:
    """encode_photo's encoding into an open file object."""
    rgb = to_depth(image, like.bit_depth)
    like = sized(like, rgb)
    jpeg, size = like.format == "JPEG", (rgb.shape[1], rgb.shape[0])
    gain_map = fitted(like.gain_map, size, name) if jpeg and like.gain_map is not None else None  # Ultra HDR's
    appended = fitted_extras(like.extras, size, name) if jpeg else []  # a depth map
    say_previews(like.previews, name)  # a phone's previews, never joined back: they show the faces unrestored
    if gain_map is not None:
        like = replace(like, xmp=gain_map_xmp(like.xmp, len(gain_map)))
        appended.append((like.gain_map.number, 0, gain_map))
    else:  # its XMP must not name a gain map the file does not hold
        like = replace(like, xmp=without_gain_map_xmp(like.xmp, alone=not appended and not like.motion_video))
    if like.bit_depth == 16 and (like.mode not in GRAY_MODES or like.alpha is not None
                                 or like.format in ("HEIF", "AVIF")):
        target.write(_encode_16bit_rgb(rgb, like, name))
        return
    options = save_options(like, name)
    if options.get("compression") not in (None, "raw") and _has_sub_ifds(like.exif):
        # libtiff (Pillow's writer of compressed TIFF) cannot place EXIF sub-IFDs; keep the metadata whole
        log.warning("%s: written as an uncompressed TIFF to keep its EXIF (compressed, its camera and date "
                    "tags would be lost)", name)
        options["compression"] = None
    if not appended:
        _pil_image(rgb, like).save(target, **options)
    else:
        primary = io.BytesIO()  # an Ultra HDR JPEG, a depth map's: those pictures joined after the restored one
        _pil_image(rgb, like).save(primary, **options)
        segments = like.gain_map.segments if gain_map is not None else b""
        target.write(with_gain_map(primary.getvalue(), appended, segments, name))
    if jpeg and like.motion_video:  # last, where its XMP says it lies
        target.write(like.motion_video)


def _partial(path: Path) -> Path:
    """The hidden name a photo is written under before it is renamed into place, this process's own
    (atomic.partial_name); a killed run's for the same photo is removed first."""
    remove_leftovers(path.parent, lambda pid: partial_name(path, pid).name)
    return partial_name(path)


def copy_photo(source: Path | str, path: Path | str) -> Path:
    """`source`'s bytes at `path` (a photo with nothing restored: no re-encoding), atomically as write_photo; a
    file system's refusal (a full disk) is write_photo's one line, not an OSError naming the temporary file."""
    path = Path(path)
    partial = _partial(path)
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, path)
    except OSError as error:
        discard(partial)
        raise ClrfaceError(f"cannot write {path.name} ({reason(error)})") from error
    except BaseException:
        discard(partial)
        raise
    return path


def _palette_said(like: Photo) -> str:
    """What becomes of a palette photo's colours, as written: full colour, where its format holds it (a PNG);
    a GIF's 256 again, Pillow's GIF writer making a new palette for the restored picture (a still GIF restored
    into a GIF was said to come back in full colour)."""
    if like.format == "GIF":
        return ("a GIF, written in 256 colours again (all a GIF holds), from a palette made for the restored "
                "picture: name the output .png to keep the restored face's every shade")
    return f"a palette image, written in full colour ({'RGBA' if like.alpha is not None else 'RGB'}) so that the " \
        "restored face keeps its shades"


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
    if like.mode in ("P", "PA"):
        log.warning("%s: %s", path.name, _palette_said(like))
    if lost := unkept(like, like.format):  # written in its own format (fit_format said a conversion's)
        log.warning("%s: written as %s with %s", path.name, like.format, ", ".join(lost))
    partial = _partial(path)
    try:
        encode_photo(image, like, partial, path.name)
        os.replace(partial, path)
    except (KeyError, ValueError, OSError, RuntimeError, struct.error) as error:  # Pillow's and libtiff's
        discard(partial)
        raise ClrfaceError(f"cannot write {path.name} as {like.format} ({reason(error)})") from error
    except BaseException:
        discard(partial)
        raise
    return path
