"""Read photos upright as RGB working images, with what is needed to write them back (io.photo_write)."""
from __future__ import annotations

import logging
import re
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, wraps
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, TiffTags, UnidentifiedImageError

from clrface_video.errors import InputError, one_line
from clrface_video.io.bigtiff_exif import with_ifd8_pointers
from clrface_video.io.motion_photo import motion_video_of
from clrface_video.io.orientation import QUARTER_TURNS, orient_array
from clrface_video.io.pixels import from_high_bits
from clrface_video.io.ultra_hdr import ExtraPicture, GainMap, gain_map_of
from clrface_video.io.vendor_segments import vendor_segments_of
from clrface_video.io.webp_anim import LOSSLESS, frame_kinds
from clrface_video.io.xmp_extension import xmp_extension_of

from ..opencv import cv2

ORIENTATION_TAG = 0x0112
XMP_TAG = 700  # a TIFF's XMP packet, among its tags
RESOLUTION_UNIT, X_RESOLUTION, Y_RESOLUTION = 296, 282, 283  # a TIFF's resolution tags
INCH, CENTIMETRE = 2, 3  # their units, as ResolutionUnit gives them
XMP_ORIENTATION = re.compile(rb'(tiff:Orientation\s*=\s*["\']|<tiff:Orientation>\s*)[1-8](["\']|\s*</tiff:Orientation>)')
# XMP face regions: an MWG region's area (mwg-rs:Area: stArea:x and y, its centre, w and h, normalized) and a
# Microsoft Photo region's rectangle (MPReg:Rectangle "x, y, w, h": top-left corner and size, normalized), as
# attributes or elements. Both are on the stored pixels (MWG guidelines 2.0, 5.9: a rotation applied by the EXIF
# orientation "must be applied to the regions as well"), so they are turned with the pixels.
MWG_AREA = re.compile(rb'<mwg-rs:Area\b[^>]*?(?:/>|>.*?</mwg-rs:Area>)', re.DOTALL)
AREA_VALUE = re.compile(rb'(stArea:([xywh])(?:\s*=\s*["\']|>)\s*)([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)')
AREA_UNIT = re.compile(rb'stArea:unit(?:\s*=\s*["\']|>)\s*([A-Za-z]+)')
MP_RECTANGLE = re.compile(rb'(MPReg:Rectangle(?:\s*=\s*["\']|>)\s*)([-+0-9.eE\s]+(?:,[-+0-9.eE\s]+){3})')
# TIFF tags that describe how the file's own pixels are laid out (sizes, strips, tiles, compression, samples,
# colour map, the ICC profile written separately): they are not carried over to the written file.
TIFF_LAYOUT_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317,
                              320, 322, 323, 324, 325, 338, 339, 530, 531, 532, 34675})
PNG_SIGNATURE, PNG_GREY_ALPHA = b"\x89PNG\r\n\x1a\n", 4  # a PNG's first bytes; its IHDR's colour type of grey + alpha
BIGTIFF_HEADERS = (b"II+\x00", b"MM\x00+")  # a BigTIFF's byte order and version 43
GRAY_MODES = frozenset({"1", "L", "LA", "I;16", "I;16B", "I;16L", "I"})
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# IJG standard luminance quantisation table (compared sorted, so its order does not matter).
IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                     92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
# what Pillow raises on a file it cannot read; its TIFF plugin raises TypeError ("Missing dimensions") or
# KeyError on a page whose tags are missing or broken
READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError, KeyError,
               Image.DecompressionBombError)
# A HEIF's colour description (nclx, ITU-T H.273 code points), which pillow-heif reads into info["nclx_profile"]
NCLX_FIELDS = ("color_primaries", "transfer_characteristics", "matrix_coefficients", "full_range_flag")
UNSPECIFIED, MPEG_RANGE = 2, 1  # H.273's unspecified colour code point; FFmpeg's limited (video) range
CHROMA_CODES = {(64, 64): 0, (32, 64): 1, (32, 32): 2}  # a 64 x 64 picture's chroma size: 4:4:4, 4:2:2, 4:2:0
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})  # phones, cameras; Pillow reads and writes them through pillow-heif
# The largest photo restored. Its working copies (decoded, RGB, restored, encoded) took about 18 bytes of memory
# a pixel at 8 bits and 30 at 16 (peaks of 3.8 GB for a 200 MP JPEG and 3.3 GB for a 100 MP 16-bit TIFF with the
# baseline restorer, 0.3 GB of them the process before the photo); the detector's pass is bounded (at most 4096
# px a side, a panorama's tile by tile). So 400 MP needs about 7.5 GB at 8 bits and 12.5 GB at 16: a 4x5-inch
# film scan at 4000 dpi (320 MP) or a stitched panorama fits, where Pillow's own limit stopped at 179 MP.
MAX_PIXELS = 400_000_000
_UNLIMITED = threading.local()  # .depth: how many pillow_unlimited blocks this thread is in
_WRAPPING = threading.RLock()  # Pillow's check is wrapped once (or, without it, its limit lifted by one reader)
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
    subsampling code (0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0) of a JPEG's or an AVIF's chroma, or None.
    bit_depth: 8 or 16 bits per channel.
    lossless: a lossless WebP (VP8L). progressive: a progressive JPEG.
    comment / iptc: a JPEG's COM text and its APP13 (Photoshop IPTC: caption, keywords, credit) payload.
    text: a PNG's text chunks (key, value), XMP among them.
    cmyk: a CMYK source's upright ink values (H, W, 4) uint8, so that what no face changed is written back as
    it was (Pillow's RGB -> CMYK would set every pixel's black to 0), or None.
    gamma / chromaticity / srgb: a PNG's gAMA (file gamma), cHRM (white point and primaries, x and y) and sRGB
    (rendering intent) chunks as Pillow reads them, or None: without an ICC profile they are what a
    colour-managed viewer renders by (a linear PNG, gAMA 1.0, looks dark once its gAMA is gone).
    bigtiff: a BigTIFF (64-bit offsets, which scanners and stitchers write for pictures past 4 GB), written back
    as one, so the restored copy still opens where the source did and can grow as large.
    nclx: a HEIF's or AVIF's colour description (NCLX_FIELDS: primaries, transfer, matrix, full range), or None:
    an HDR camera's or phone's (BT.2020, PQ or HLG) pixels are coded for it, and shown as sRGB they look washed out.
    coded_bits: the bits per channel the file codes its pixels in, more than bit_depth where the reader gave
    fewer (an AVIF with alpha, or one FFmpeg cannot read as Pillow does): what writing it back loses. A 10- or
    12-bit HEIF, colour or grey, is read at 16 (_read_deep_heif) and written back in its own 10 or 12; a 10- or
    12-bit AVIF, colour or grey, is read at 16 through FFmpeg (io.deep_avif) and written in 10.
    gain_map: an Ultra HDR JPEG's gain map (io.ultra_hdr), joined back after the restored picture so that it stays
    HDR, or None.
    extras: a phone JPEG's other pictures after its primary that are no views (a depth map, io.ultra_hdr), joined
    back after the restored picture as they were.
    previews: the numbers of a phone JPEG's previews after its primary (MP type Large Thumbnail, io.ultra_hdr; 1:
    the first picture after it), left out of a restored photo in any format, said in one info line.
    xmp_extension: a JPEG's extended-XMP segments' payloads (io.xmp_extension), written back as they came.
    motion_video: a motion photo's video (io.motion_photo), the MP4 after its JPEG, appended again after the restored
    one, or None.
    vendor_segments: a JPEG's other APPn segments, (marker, payload) in file order (io.vendor_segments: a camera
    maker's own, Samsung's APP5-APP8), written back as they came but for a thumbnail's.
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
    lossless: bool = False
    progressive: bool = False
    comment: bytes | None = None
    iptc: bytes | None = None
    text: tuple[tuple[str, str], ...] = ()
    cmyk: np.ndarray | None = None
    gamma: float | None = None
    chromaticity: tuple[float, ...] | None = None
    srgb: int | None = None
    bigtiff: bool = False
    nclx: tuple[int, int, int, int] | None = None
    coded_bits: int = 8
    gain_map: GainMap | None = None
    extras: tuple[ExtraPicture, ...] = ()
    previews: tuple[int, ...] = ()
    xmp_extension: tuple[bytes, ...] = ()
    motion_video: bytes | None = None
    vendor_segments: tuple[tuple[str, bytes], ...] = ()


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

def _check_file(path: Path) -> None:
    """InputError unless `path` is a non-empty file (a HEIC/HEIF one with pillow-heif there to read it). Where
    pillow-heif is installed its opener is registered whatever the name: a HEIC named .jpg (a phone's share, a
    renaming tool) was read only where a .heic had been before it in the process, so a folder restored it or
    listed it as unreadable by the order of its names."""
    if path.is_dir():
        raise InputError(f"{path} is a folder: restore_path (or the CLI) restores a folder, restore_image one photo")
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name} is empty (0 bytes)")  # by its name, as a folder's line names its path
    _need_heif(path)
    heif_support()


def _check_unless_unlimited(check: Callable[..., None]) -> Callable[..., None]:
    """Pillow's decompression-bomb check, `check`, skipped in a thread inside pillow_unlimited."""
    @wraps(check)
    def checked(*args: Any, **kwargs: Any) -> None:
        if not getattr(_UNLIMITED, "depth", 0):
            check(*args, **kwargs)

    checked.unless_unlimited = True  # type: ignore[attr-defined]
    return checked


@contextmanager
def pillow_unlimited() -> Iterator[None]:
    """Pillow's decompression-bomb limit (a warning past 89 MP, an error past 179 MP, with its own multi-line
    message) lifted in this thread while a photo is opened and decoded: a large scan or panorama is the user's
    own photo, and check_size holds it to MAX_PIXELS instead. Image.MAX_IMAGE_PIXELS is left alone: it is the
    whole process's, and set to None it let every other thread's Image.open (ComfyUI's own loaders, a server's)
    through unchecked meanwhile. Pillow's check (Image._decompression_bomb_check, which Image.open and its
    plugins call) is wrapped once instead, to be skipped only in a thread inside this block. A Pillow without
    that function has its global limit lifted for the block, one reader at a time, as before."""
    check = getattr(Image, "_decompression_bomb_check", None)
    if check is None:
        with _WRAPPING:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                yield
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        return
    if not getattr(check, "unless_unlimited", False):
        with _WRAPPING:
            if not getattr(Image._decompression_bomb_check, "unless_unlimited", False):
                Image._decompression_bomb_check = _check_unless_unlimited(Image._decompression_bomb_check)
    _UNLIMITED.depth = getattr(_UNLIMITED, "depth", 0) + 1
    try:
        yield
    finally:
        _UNLIMITED.depth -= 1


@contextmanager
def pillow_warnings(path: Path, *, say: bool = True) -> Iterator[None]:
    """Pillow's warnings (UserWarning) while it opens and decodes `path` (Corrupt EXIF data: a camera's or an
    editor's damaged block, read as far as it goes) logged as one warning line each that names the photo, as
    restore's own are;
    say=False drops them, for a look that read_photo says again. Python printed them as two lines naming Pillow's
    source file, outside -q and the report."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", UserWarning)
        yield
    for warning in said:  # another kind (a library's deprecation) passed on as Python would have shown it
        if not issubclass(warning.category, UserWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    said = [warning for warning in said if issubclass(warning.category, UserWarning)]
    for text in dict.fromkeys(one_line(warning.message) for warning in said) if say else ():
        log.warning("%s: %s", path.name, text)


def check_size(image: Image.Image, path: Path) -> None:
    """InputError naming the size of a picture past MAX_PIXELS, checked before it is decoded."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InputError(f"{path.name} is {width} x {height} pixels ({width * height:,}), more than the "
                         f"{MAX_PIXELS:,} restore takes (18-30 bytes of memory a pixel); scale it down "
                         "or cut it into parts")


def _open(path: Path) -> tuple[Image.Image, bool]:
    """The loaded image, and whether it is 16-bit RGB(A) (only visible before loading)."""
    _check_file(path)
    try:
        with pillow_unlimited():
            image = Image.open(path)
            check_size(image, path)
            count = pictures(image)
            deep = is_16bit_rgb(image)
            image.load()
    except READ_ERRORS as error:
        raise InputError(f"cannot read {path.name} as an image ({one_line(error)})") from error
    if count > 1 and image.format == "AVIF":  # written back, it would keep the first frame only
        raise InputError(f"{path.name} holds {count} frames (an animated AVIF), which restore cannot write back: "
                         "save it as a GIF, an animated PNG or WebP, or a video, which restore takes")
    if count > 1:
        what = "pages (a multi-page scan)" if image.format == "TIFF" else "frames (an animation)"
        raise InputError(f"{path.name} holds {count} {what}, and this reads single pictures: "
                         "`clrface-video restore` restores every one of them")
    return image, deep


def pictures(image: Image.Image) -> int:
    """How many full pictures an animated PNG, WebP or AVIF, or a TIFF, holds (a TIFF's reduced-resolution pages,
    previews, do not count; a phone's MPO JPEG is one photo and its preview)."""
    return len(_full_pictures(image)) if image.format != "GIF" else 1  # a GIF is restored as a video


def gif_frames(path: Path) -> int | None:
    """How many frames a GIF holds, counted by Pillow, or None for a file Pillow cannot read as a GIF. FFmpeg's
    GIF reader is not asked: it takes frames stored without a graphic control block (a GIF87a's) for one."""
    try:
        with pillow_unlimited(), Image.open(path) as image:
            return int(getattr(image, "n_frames", 1)) if image.format == "GIF" else None
    except READ_ERRORS + (EOFError,):
        return None


def is_still_gif(path: Path) -> bool:
    """Whether a file is a GIF of one picture, which can be written as a photo (still.gif -o still.png); False
    for an animation or a file Pillow cannot read as a GIF (the video job then says why)."""
    return gif_frames(path) == 1


def _full_pictures(image: Image.Image) -> list[int]:
    """The frame numbers of an image's full pictures: every frame of an animated GIF, PNG, WebP or AVIF, the
    pages of a TIFF that are not reduced-resolution previews, frame 0 of anything else."""
    count = getattr(image, "n_frames", 1)
    if count <= 1 or image.format not in ("GIF", "PNG", "WEBP", "TIFF", "AVIF"):
        return [0]
    if image.format != "TIFF":
        return list(range(count))
    full = []
    for page in range(count):
        image.seek(page)
        if not int(image.tag_v2.get(254, 0)) & 1:  # NewSubfileType bit 0: a reduced-resolution copy
            full.append(page)
    image.seek(0)
    return full


def first_picture(path: Path | str) -> tuple[Photo, int]:
    """The first full picture of an image file (an animation's first frame, a multi-page TIFF's first page that is
    not a preview), read as read_photo reads a photo, and how many full pictures the file holds: for `detect`,
    which only looks at one."""
    path = Path(path)
    _check_file(path)
    try:
        with pillow_unlimited(), pillow_warnings(path), Image.open(path) as image:
            numbers = _full_pictures(image)
            image.seek(numbers[0])
            check_size(image, path)
            deep = is_16bit_rgb(image)
            image.load()
            return photo_of(image, path, deep, numbers[0]), len(numbers)
    except READ_ERRORS as error:
        raise InputError(f"cannot read {path.name} as an image ({one_line(error)})") from error


def is_16bit_rgb(image: Image.Image) -> bool:
    """Pillow decodes 16-bit RGB(A) PNG/TIFF to 8 bits; its tile rawmode still says ';16'. pillow-heif decodes a 10-
    or 12-bit HEIF's RGB(A) to 8 bits too, and says its depth in info["bit_depth"]: read deep (_read_deep_heif); so is
    a grey one, which pillow-heif 1.9 gives Pillow as I;16 with its codes in the high bits, not at full scale (white
    1023 << 6 = 65472 at 10 bits), and whose depth its docs say it converts to 8 bits as a colour one's."""
    if image.format == "HEIF":
        return int(image.info.get("bit_depth") or 8) > 8
    if image.mode not in ("RGB", "RGBA"):
        return False
    if not image.tile:
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


def _upright_exif(image: Image.Image, name: str, orientation: int) -> bytes | None:
    """The photo's EXIF with orientation 1 (its pixels are read upright; `orientation` is the one read before
    turning them, which turning a TIFF removes from its tags), or None. A JPEG's, PNG's or WebP's EXIF keeps
    every byte but that number (_upright_raw_exif); otherwise it is written again from its tags, text kept as
    the bytes it was (keep_text). A TIFF's first IFD holds its strip
    layout too, which is the source's, not the output's: only the descriptive tags are kept, and its XMP
    (tag 700) gets orientation 1 as well. EXIF that cannot be written again (a damaged tag), or of which Pillow
    reads no tag at all (a damaged first IFD), is kept as it came when nothing needs changing, else left out."""
    raw = image.info.get("exif")
    if image.format != "TIFF" and isinstance(raw, bytes) and raw:
        patched = _upright_raw_exif(raw)
        if patched is not None:
            return patched
    exif = keep_text(image.getexif())
    if image.format == "TIFF":
        exif.bigtiff = False  # EXIF is classic TIFF everywhere; Pillow cannot load the BigTIFF bytes it writes
        for tag in TIFF_LAYOUT_TAGS & set(exif):
            del exif[tag]
        if isinstance(exif.get(XMP_TAG), bytes):
            exif[XMP_TAG] = upright_xmp(exif[XMP_TAG], orientation)
    turned = orientation != 1
    if not exif:  # none, or a block so damaged that Pillow reads no tag of it: kept as it came, nothing to change
        return raw if raw and not turned and image.format != "TIFF" else None
    if ORIENTATION_TAG in exif or turned:
        exif[ORIENTATION_TAG] = 1
    try:
        return exif.tobytes()
    except (struct.error, ValueError, TypeError, AttributeError, KeyError) as error:
        raw = image.info.get("exif")
        if raw and not turned and image.format != "TIFF":
            return raw
        log.warning("%s: its EXIF cannot be written again (%s); it is left out", name, one_line(error))
        return None


EXIF_HEADER = b"Exif\x00\x00"  # what a JPEG's APP1 holds before the EXIF's TIFF header (a WebP's EXIF lacks it)


def tiff_start(exif: bytes) -> tuple[int, str] | None:
    """Where EXIF bytes' TIFF header starts (after EXIF_HEADER, if there) and its byte order for struct ('<' or
    '>'), or None where it is not a TIFF header: what every walk of the raw EXIF bytes begins with."""
    start = len(EXIF_HEADER) if exif.startswith(EXIF_HEADER) else 0
    order = {b"II": "<", b"MM": ">"}.get(exif[start:start + 2])
    return None if order is None else (start, order)


def _upright_raw_exif(raw: bytes) -> bytes | None:
    """EXIF bytes as they came, every byte kept (maker notes, text in any encoding), but the first IFD's
    orientation set to 1, and where it was another, the link to the thumbnail's IFD cut and the thumbnail
    blanked (_blank_thumbnail: it is stored turned as the photo was); None when that IFD cannot be read or its
    orientation is not one number."""
    header = tiff_start(raw)
    if header is None:
        return None
    start, order = header
    try:
        ifd = start + struct.unpack_from(order + "I", raw, start + 4)[0]
        entries = struct.unpack_from(order + "H", raw, ifd)[0]
        for entry in range(ifd + 2, ifd + 2 + 12 * entries, 12):
            tag, kind, count = struct.unpack_from(order + "HHI", raw, entry)
            if tag == ORIENTATION_TAG:
                if count != 1 or kind not in (3, 4):  # SHORT, or LONG as some writers have it
                    return None
                number = order + ("H" if kind == 3 else "I")
                if struct.unpack_from(number, raw, entry + 8)[0] == 1:
                    return raw
                out = bytearray(raw)
                struct.pack_into(number, out, entry + 8, 1)
                _blank_thumbnail(out, order, start, ifd + 2 + 12 * entries)
                struct.pack_into(order + "I", out, ifd + 2 + 12 * entries, 0)  # no next IFD: no sideways thumbnail
                return bytes(out)
    except struct.error:
        return None
    return raw  # no orientation tag: nothing to change


def _blank_thumbnail(out: bytearray, order: str, start: int, link: int) -> None:
    """Zero the JPEG thumbnail of the IFD that `link` (a first IFD's next-IFD offset) points to, in place: once
    unlinked it would still lie in the file, stored sideways, for tools that look for JPEGs in the bytes. It is
    not turned and kept: it shows the faces before restoring, and a new one would not fit the old one's bytes;
    viewers make their own from the pixels when there is none. Offsets, and so every other tag, stay put."""
    thumbnail = start + struct.unpack_from(order + "I", out, link)[0]
    if thumbnail == start:
        return
    entries = struct.unpack_from(order + "H", out, thumbnail)[0]
    tags = dict(struct.unpack_from(order + "HxxxxxxI", out, entry)
                for entry in range(thumbnail + 2, thumbnail + 2 + 12 * entries, 12))
    offset, length = start + tags.get(0x0201, 0), tags.get(0x0202, 0)  # JPEGInterchangeFormat(Length)
    if start < offset and offset + length <= len(out):
        out[offset:offset + length] = bytes(length)


def keep_text(exif: Image.Exif) -> Image.Exif:
    """`exif` with its text tags (first IFD, Exif, GPS and interoperability IFDs) as the bytes they were read
    from, so that writing it again keeps them: Pillow reads EXIF text as Latin-1 and writes it back as ASCII,
    '?' for every other character (the UTF-8 of © 2009 José became ?? 2009 Jos??)."""
    camera = exif.get_ifd(ExifTags.IFD.Exif) if ExifTags.IFD.Exif in exif else {}
    ifds: list[tuple[Any, int | None]] = [(exif, None), (camera, ExifTags.IFD.Exif)]
    if ExifTags.IFD.GPSInfo in exif:
        ifds.append((exif.get_ifd(ExifTags.IFD.GPSInfo), ExifTags.IFD.GPSInfo))
    if ExifTags.IFD.Interop in camera:
        ifds.append((exif.get_ifd(ExifTags.IFD.Interop), ExifTags.IFD.Interop))
    for tags, group in ifds:
        for tag, value in list(tags.items()):
            if isinstance(value, str) and TiffTags.lookup(tag, group).type == TiffTags.ASCII:
                tags[tag] = value.encode("latin-1", "replace")
    return exif


def _read_deep_heif(path: Path, orientation: int, picture: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A 10- or 12-bit HEIF's picture number `picture` (of a burst; its primary one alone), at full-scale 16 bits:
    pillow-heif gives its codes in the high bits only where Pillow is not asked to decode it (RGB;16, and a grey
    one's I;16, in all three channels as a grey photo is read)."""
    import pillow_heif

    with pillow_unlimited():
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False)[picture]
        data = np.asarray(heif)
        bits = int(heif.info.get("bit_depth") or 16)
    if data.dtype != np.uint16 or data.ndim not in (2, 3):
        raise InputError(f"cannot read {path.name} as a {bits}-bit HEIF")
    data = orient_array(from_high_bits(data, bits), orientation)
    if data.ndim == 2:
        data = data[..., None]
    alpha = np.ascontiguousarray(data[..., -1]) if data.shape[2] in (2, 4) else None
    colour = data[..., :3] if data.shape[2] >= 3 else np.repeat(data[..., :1], 3, axis=2)
    return np.ascontiguousarray(colour), alpha


def _read_16bit_rgb(path: Path, orientation: int, page: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """A 16-bit RGB(A) picture (page `page` of a multi-page TIFF) through OpenCV, which keeps its 16 bits."""
    if page:
        read, pages = cv2.imreadmulti(str(path), page, 1, flags=cv2.IMREAD_UNCHANGED)
        data = pages[0] if read and pages else None
    else:
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
    with pillow_warnings(path):
        source, deep = _open(path)
        return photo_of(source, path, deep)


def photo_of(source: Image.Image, path: Path, deep: bool, page: int = 0) -> Photo:
    """The Photo of a loaded Pillow image (of `path`, at page `page` of a multi-page TIFF); deep: it is 16-bit
    RGB(A), which Pillow decodes to 8 bits (see is_16bit_rgb)."""
    mode, fmt = source.mode, "JPEG" if source.format == "MPO" else (source.format or "PNG")
    bigtiff = fmt == "TIFF" and _is_bigtiff(path)
    exif = source.getexif()  # Pillow keeps it: _upright_exif gets this one, its IFD8 sub-IFDs given
    if bigtiff:
        with_ifd8_pointers(exif, path, source.tag_v2.offset)
    orientation = int(exif.get(ORIENTATION_TAG, 1) or 1)
    cmyk = None
    try:
        if deep:
            read = _read_deep_heif if fmt == "HEIF" else _read_16bit_rgb
            rgb, alpha = read(path, orientation, source.tell() if fmt == "HEIF" else page)  # a HEIF's primary
            depth = 16
        else:
            upright = ImageOps.exif_transpose(source)
            rgb, alpha, depth = _split_8bit_or_gray16(upright)
            cmyk = np.asarray(upright).copy() if upright.mode == "CMYK" else None
    except READ_ERRORS as error:
        raise InputError(f"cannot decode {path.name} ({one_line(error)})") from error
    if fmt == "HEIF" and _grey_with_alpha(source, rgb, alpha) or fmt == "PNG" and deep and _png_grey_alpha(path):
        mode = "LA"  # written back grey (io.photo_write), as pillow-heif writes LA: one channel and its alpha
    dpi = tiff_dpi(source) if fmt == "TIFF" else source.info.get("dpi")
    coding = _coding(source, path, fmt)
    coded_bits, nclx = coding.bits, coding.nclx
    if fmt == "AVIF" and coded_bits > depth and mode in ("RGB", "L") and orientation == 1:  # Pillow's gives 8 bits
        # imported here: io.decode, which deep_avif reads with, imports this module
        from clrface_video.io.deep_avif import read_deep_avif

        if (deep_rgb := read_deep_avif(path, rgb)) is not None:
            rgb, depth = deep_rgb, 16
            mode = "I;16" if mode == "L" else mode  # a grey one's, as a deep grey HEIF's (pillow-heif's mode)
    xmp = _xmp(source, orientation)
    gain_map, extras, previews = gain_map_of(path, xmp, source.size, orientation, "mp" in source.info) \
        if fmt == "JPEG" and not page else (None, (), ())
    return Photo(
        image=rgb, alpha=alpha, mode=mode, format=fmt, exif=_upright_exif(source, path.name, orientation),
        icc=source.info.get("icc_profile") or None, quality=guess_jpeg_quality(source),
        subsampling=_jpeg_subsampling(source) if fmt != "AVIF" else coding.subsampling, bit_depth=depth,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
        compression=source.info.get("compression") if fmt == "TIFF" else None,
        xmp=xmp,
        lossless=fmt == "WEBP" and frame_kinds(path) == {LOSSLESS},
        progressive=bool(source.info.get("progressive")),
        comment=source.info.get("comment") if fmt == "JPEG" else None,
        iptc=next((data for marker, data in getattr(source, "applist", []) if marker == "APP13"), None),
        text=tuple((key, str(value)) for key, value in getattr(source, "text", {}).items()) if fmt == "PNG" else (),
        cmyk=cmyk,
        gamma=source.info.get("gamma") if fmt == "PNG" else None,
        chromaticity=source.info.get("chromaticity") if fmt == "PNG" else None,
        srgb=source.info.get("srgb") if fmt == "PNG" else None,
        bigtiff=bigtiff,
        nclx=nclx, coded_bits=coded_bits if fmt in ("HEIF", "AVIF") else max(depth, coded_bits),  # 10 or 12 bits
        gain_map=gain_map, extras=extras, previews=previews,
        xmp_extension=xmp_extension_of(source, orientation, path.name) if fmt == "JPEG" else (),
        motion_video=motion_video_of(path, xmp, path.name) if fmt == "JPEG" and not page else None,
        vendor_segments=vendor_segments_of(source) if fmt == "JPEG" else (),
    )


def _grey_with_alpha(source: Image.Image, rgb: np.ndarray, alpha: np.ndarray | None) -> bool:
    """Whether a HEIF picture with alpha is coded grey (HEVC 4:0:0, as pillow-heif writes an LA image and a
    monochrome scanner or an editor's grey cutout may): pillow-heif gives it to Pillow as RGBA (or RGBA;16), which
    came back in colour, three channels and alpha; a grey one without alpha it gives as L or I;16. pillow-heif names
    a colour picture's chroma (info["chroma"]: 420, 422 or 444) and none of a grey one's; its three channels, the
    one grey channel converted, are equal in every pixel."""
    if alpha is None or "chroma" in source.info:
        return False
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


@dataclass(frozen=True)
class Coding:
    """How a HEIF or an AVIF codes its pixels, which its reader does not give: bits per channel, colour description
    (Photo.nclx), and an AVIF's chroma subsampling (Photo.subsampling's code, None for grey)."""

    bits: int = 8
    nclx: tuple[int, int, int, int] | None = None
    subsampling: int | None = None


def _png_grey_alpha(path: Path) -> bool:
    """Whether a PNG's header says grey with alpha (colour type 4): Pillow opens a 16-bit one as RGBA (rawmode
    LA;16B, gone once it is loaded), so it came back in colour, RGBA at 16 bits."""
    with path.open("rb") as file:
        head = file.read(26)
    return head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR" and head[25] == PNG_GREY_ALPHA


def _coding(source: Image.Image, path: Path, fmt: str) -> Coding:
    """A HEIF's or an AVIF's Coding: both readers give 8 bits, and only pillow-heif says the rest; Pillow's AVIF
    reader says none of it, FFmpeg's demuxer reads it from the file's headers (nothing decoded). Coding() for
    other formats."""
    if fmt == "HEIF":
        return Coding(int(source.info.get("bit_depth") or 8), _nclx(source))
    if fmt != "AVIF":
        return Coding()
    import av

    try:
        with av.open(str(path)) as container:
            context = container.streams.video[0].codec_context
            pixels = av.VideoFormat(context.pix_fmt)
            bits = max(component.bits for component in pixels.components)
            primaries, transfer, matrix, full = (context.color_primaries, context.color_trc, context.colorspace,
                                                 context.color_range != MPEG_RANGE)
    except (av.FFmpegError, IndexError, ValueError, TypeError):  # a file FFmpeg does not read: Pillow's word rules
        return Coding()
    described = not source.info.get("icc_profile") and (primaries, transfer) != (UNSPECIFIED, UNSPECIFIED)
    return Coding(bits, (primaries, transfer, matrix, int(full)) if described else None, _chroma_code(pixels))


def _chroma_code(pixels: Any) -> int | None:
    """Pillow's subsampling code (Photo.subsampling) of a YUV pixel format (av.VideoFormat), None for grey or
    another sampling: Pillow's AVIF writer, like SVT-AV1, writes 4:2:0 unless told, so a 4:4:4 AVIF came back
    4:2:0 unsaid."""
    if len(pixels.components) < 3 or pixels.is_rgb:
        return None
    return CHROMA_CODES.get((pixels.chroma_width(64), pixels.chroma_height(64)))


def _nclx(source: Image.Image) -> tuple[int, int, int, int] | None:
    """A HEIF's nclx colour description (Photo.nclx), or None where it has an ICC profile or nothing instead."""
    profile = source.info.get("nclx_profile")
    return tuple(int(profile[field]) for field in NCLX_FIELDS) if profile else None


def _is_bigtiff(path: Path) -> bool:
    """Whether a TIFF file's header says BigTIFF (version 43, not 42)."""
    with path.open("rb") as file:
        return file.read(4) in BIGTIFF_HEADERS


def tiff_dpi(image: Image.Image) -> tuple[float, float] | None:
    """A TIFF page's resolution in dots per inch, when its tags give one in inches or centimetres; None when it
    has none (Pillow's info then says 1 dpi, which written back made a layout program read a scan as over a
    thousand inches wide)."""
    unit = image.tag_v2.get(RESOLUTION_UNIT, INCH)
    x, y = image.tag_v2.get(X_RESOLUTION), image.tag_v2.get(Y_RESOLUTION)
    if not x or not y or unit not in (INCH, CENTIMETRE):
        return None
    scale = 2.54 if unit == CENTIMETRE else 1.0
    return float(x) * scale, float(y) * scale


def _xmp(image: Image.Image, orientation: int) -> bytes | None:
    """The XMP packet, its copy of the orientation set to 1 as the EXIF one is (the pixels are read upright), its
    face regions turned as the pixels were (`orientation`)."""
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode()
    return upright_xmp(xmp, orientation) if xmp else None


def upright_xmp(xmp: bytes, orientation: int) -> bytes:
    """An XMP packet whose copy of the orientation says 1, as the EXIF one does once the pixels are upright, and
    whose face regions (MWG_AREA, MP_RECTANGLE), on the stored pixels, are where the upright pixels have the faces."""
    xmp = XMP_ORIENTATION.sub(rb"\g<1>1\g<2>", xmp)
    if orientation not in range(2, 9):
        return xmp
    xmp = MWG_AREA.sub(lambda area: _upright_area(area.group(0), orientation), xmp)
    return MP_RECTANGLE.sub(lambda found: found.group(1) + _upright_rectangle(found.group(2), orientation), xmp)


def _upright_point(x: float, y: float, orientation: int) -> tuple[float, float]:
    """Where a point of the stored picture (normalized x, y) lies in the picture turned upright by orient_array."""
    return {2: (1 - x, y), 3: (1 - x, 1 - y), 4: (x, 1 - y), 5: (y, x), 6: (1 - y, x), 7: (1 - y, 1 - x),
            8: (y, 1 - x)}.get(orientation, (x, y))


def _number(value: float) -> bytes:
    """A normalized coordinate as XMP text (six decimals, as exiftool and digiKam write them)."""
    return (f"{value:.6f}".rstrip("0").rstrip(".") or "0").encode()


def _upright_area(area: bytes, orientation: int) -> bytes:
    """An MWG area (centre x, y and size w, h) turned as the pixels were; one in another unit than MWG's
    normalized one is left as it is."""
    unit = AREA_UNIT.search(area)
    if unit is not None and unit.group(1) != b"normalized":
        return area
    values = {key.decode(): float(value) for _, key, value in AREA_VALUE.findall(area)}
    turned = dict(values)
    if "x" in values and "y" in values:
        turned["x"], turned["y"] = _upright_point(values["x"], values["y"], orientation)
    if orientation in QUARTER_TURNS:  # width and height trade places
        turned.update({key: values[other] for key, other in (("w", "h"), ("h", "w")) if other in values})
    return AREA_VALUE.sub(lambda found: found.group(1) + _number(turned.get(found.group(2).decode(), 0.0)), area)


def _upright_rectangle(rectangle: bytes, orientation: int) -> bytes:
    """A Microsoft region's "x, y, w, h" (top-left corner and size) turned as the pixels were."""
    try:
        x, y, w, h = (float(value) for value in rectangle.split(b","))
    except ValueError:
        return rectangle
    corners = [_upright_point(x, y, orientation), _upright_point(x + w, y + h, orientation)]
    left, top = min(c[0] for c in corners), min(c[1] for c in corners)
    width, height = max(c[0] for c in corners) - left, max(c[1] for c in corners) - top
    return b", ".join(_number(value) for value in (left, top, width, height))


