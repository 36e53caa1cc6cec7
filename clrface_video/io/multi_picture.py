"""Photos of several pictures in one file (an MPO's 3D or multi-angle views, a HEIF's burst): read one at a time,
written back into one file of the same kind."""
from __future__ import annotations

import io
import logging
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clrface_video.atomic import write_whole
from clrface_video.errors import ClrfaceError, one_line
from clrface_video.io.mp_index import (
    LARGE_THUMBNAILS,
    MP_HEADER_BYTES,
    MULTI_FRAME,
    mp_entries,
    with_mp_types,
)
from clrface_video.io.photo_read import (
    HEIF_SUFFIXES,
    READ_ERRORS,
    Photo,
    heif_support,
    pillow_unlimited,
    pillow_warnings,
)
from clrface_video.io.photo_write import _pil_image, heif_bytes, save_options, sized
from clrface_video.io.pixels import to_depth
from clrface_video.io.tiff_pages import OneFileWriter, Page, each_picture

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".mpo"})
SEVERAL = frozenset({"MPO", "HEIF"})  # the formats of files that hold several pictures
HELD_LEVEL = 1  # zlib level of the pictures held until their file is written (as io.webp_frames spools frames)


def picture_count(path: Path | str) -> int:
    """How many pictures an MPO (a JPEG with more than one) or a HEIF holds; 1 for any other file, or one Pillow
    cannot open (read_photo then says why). Only .jpg, .mpo and .heic-like names are opened. An MPO counts as one
    photo unless its MP index says another picture is a view (MULTI_FRAME): a phone's second picture is an HDR
    gain map (Ultra HDR) or a depth map, 'Undefined', whose metadata Pillow's writer would replace by the first
    picture's: the photo is its first picture, a gain map and a depth map joined back after it unchanged
    (io.ultra_hdr), its previews left out."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in JPEG_SUFFIXES | HEIF_SUFFIXES or not path.is_file() or (suffix in HEIF_SUFFIXES
                                                                             and not heif_support()):
        return 1
    try:
        with pillow_unlimited(), pillow_warnings(path, say=False), Image.open(path) as image:
            count = int(getattr(image, "n_frames", 1)) if image.format in SEVERAL else 1
    except READ_ERRORS:
        return 1
    if count > 1 and suffix in JPEG_SUFFIXES and not any(kind >> 16 == MULTI_FRAME for kind in mp_types(path)[1:]):
        return 1
    return count


def own_format(path: Path | str) -> str:
    """The Pillow format a file of several pictures is written back in, by its name: JPEG (as an MPO) or HEIF."""
    return "HEIF" if Path(path).suffix.lower() in HEIF_SUFFIXES else "JPEG"


def read_pictures(path: Path | str) -> Iterator[Page]:
    """Yield an MPO's or a HEIF's pictures one at a time, each as read_photo reads a photo; an MPO's large
    thumbnails are marked reduced (previews of the first picture, made again from it). A picture that cannot be
    read raises InputError naming it."""
    path = Path(path)
    types = mp_types(path) if path.suffix.lower() in JPEG_SUFFIXES else []
    return each_picture(path, lambda _, number: number < len(types) and types[number] in LARGE_THUMBNAILS,
                        "picture")


def mp_types(path: Path) -> list[int]:
    """An MPO's MP type of each picture (CIPA DC-007: 0x030000 the primary picture, 0x020002 a 3D view, 0x010001
    a large thumbnail, ...), read from its MP index (in the first picture's header, within MP_HEADER_BYTES);
    [] for a file without one."""
    with path.open("rb") as file:
        head = file.read(MP_HEADER_BYTES)
    return [entry.kind for entry in mp_entries(head)]


def _mpo_bytes(pictures: list[tuple[np.ndarray, Photo]], types: list[int], name: str) -> bytes:
    """An MPO of the pictures, all with the first picture's JPEG settings and metadata (Pillow's writer gives
    every picture the first's), in their source's MP types."""
    images = [_pil_image(to_depth(rgb, 8), like) for rgb, like in pictures]
    options = save_options(pictures[0][1], name)
    options.pop("extra", None)  # the IPTC block: Pillow's MPO writer puts its MP index there
    buffer = io.BytesIO()
    images[0].save(buffer, **{**options, "format": "MPO"}, save_all=True, append_images=images[1:])
    return with_mp_types(buffer.getvalue(), types)


@dataclass(frozen=True)
class _Held:
    """A picture taken by PictureWriter, held until its file is written: its pixels zlib-compressed (HELD_LEVEL),
    its Photo without its source pixels, which writing it does not read (but a CMYK one's, io.photo_write.to_cmyk)."""

    pixels: bytes
    shape: tuple[int, ...]
    dtype: np.dtype
    like: Photo

    @classmethod
    def of(cls, image: np.ndarray, like: Photo) -> _Held:
        pixels = zlib.compress(memoryview(np.ascontiguousarray(image)).cast("B"), HELD_LEVEL)
        kept = like if like.cmyk is not None else replace(like, image=np.empty((0, 0, 3), like.image.dtype))
        return cls(pixels, image.shape, image.dtype, kept)

    def picture(self) -> tuple[np.ndarray, Photo]:
        return np.frombuffer(zlib.decompress(self.pixels), self.dtype).reshape(self.shape), self.like


class PictureWriter(OneFileWriter):
    """Write an MPO's or a HEIF's pictures back into one file of its kind, under a hidden name renamed into place on
    a clean exit. Their writers take them all at once (pillow-heif's HeifFile.save, Pillow's MPO writer), so the
    pictures wait until then, compressed (_Held), and are handed over one at a time: the writer holds them all
    once, uncompressed, while it encodes. When no picture's pixels changed, the source is copied instead. What
    cannot be kept is said in one warning. Used as tiff_pages.PageWriter is:

        with PictureWriter(out_path, src_path) as writer:
            for page in read_pictures(src_path):
                writer.write(restored_pixels, page)
    """

    def __init__(self, output: Path | str, source: Path | str) -> None:
        super().__init__(output, source)
        self._pictures: list[_Held] = []

    def __enter__(self) -> Self:
        self._begin()
        return self

    def write(self, image: np.ndarray, page: Page) -> None:
        """Take one picture's (restored) RGB pixels, written with the rest when the block ends."""
        self.changed = self.changed or not np.array_equal(image, page.photo.image)
        self._pictures.append(_Held.of(image, sized(replace(page.photo, format=own_format(self.output)), image)))
        self.pages_written += 1

    def _encoded(self) -> bytes:
        """The pictures as one file: a HEIF with the source's primary picture, or an MPO with its MP types."""
        with pillow_unlimited(), Image.open(self.source) as source:
            primary = source.tell()
        name = self.output.name
        pictures = self._handed_over()
        if own_format(self.output) == "HEIF":
            return heif_bytes(pictures, primary)
        if self._pictures[0].like.iptc:
            log.warning("%s: its IPTC block (caption, keywords) is left out: Pillow's MPO writer has no place for it",
                        name)
        return _mpo_bytes(list(pictures), mp_types(self.source), name)

    def _handed_over(self) -> Iterator[tuple[np.ndarray, Photo]]:
        """The pictures taken, in order, each let go of as it is handed to the file's writer."""
        while self._pictures:
            yield self._pictures.pop(0).picture()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._partial is not None
        if exc_type is None and not self.pages_written:
            self._none_written()
        if exc_type is None:
            try:
                if self.changed:
                    write_whole(self._partial, self._encoded())
                else:
                    shutil.copyfile(self.source, self._partial)  # nothing restored: the source's own bytes
            except (KeyError, ValueError, OSError, RuntimeError, struct.error) as error:  # Pillow's, libheif's
                self._stack.__exit__(type(error), error, error.__traceback__)
                raise ClrfaceError(f"cannot write {self.output.name} ({one_line(error)})") from error
        self._stack.__exit__(exc_type, exc, tb)  # renamed into place, or removed after an error
