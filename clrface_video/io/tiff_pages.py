"""Multi-page TIFF (a scanned album): its pages read one at a time as photos, and written back page by page."""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import AppendingTiffWriter

from clrface_video.atomic import atomic
from clrface_video.errors import ClrfaceError, InputError, one_line
from clrface_video.io.photo_read import (
    READ_ERRORS,
    Photo,
    check_size,
    is_16bit_rgb,
    photo_of,
    pictures,
    pillow_unlimited,
)
from clrface_video.io.photo_write import encode_photo
from clrface_video.io.pixels import to_depth

from ..opencv import cv2

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
NEW_SUBFILE_TYPE, REDUCED = 254, 1  # bit 0 of NewSubfileType: a reduced-resolution copy of a page (a preview)
SUB_IFDS = 330  # a page's own pyramid of smaller images, which Pillow neither reads nor writes
EXIF_SUB_IFDS = (0x8769, 0x8825)  # the Exif and GPS sub-IFDs: Pillow's appending writer misplaces them after page 1
SAME_SHAPE = 0.02  # a preview whose aspect ratio is this close to its page's is that page, smaller


@dataclass(frozen=True)
class Page:
    """One page of a multi-page TIFF: as read_photo reads a single picture (upright, with its own mode, depth,
    compression, resolution, ICC profile and tags), its number from 0, and whether it is a reduced-resolution
    preview of a full page."""

    photo: Photo
    number: int
    reduced: bool


def tiff_pages(path: Path | str) -> int:
    """How many pages (full ones and previews) a .tif/.tiff file holds; 1 for any other file, or one Pillow
    cannot open (read_photo then says why)."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES or not path.is_file():
        return 1
    try:
        with pillow_unlimited(), Image.open(path) as image:
            return int(getattr(image, "n_frames", 1)) if image.format == "TIFF" else 1
    except READ_ERRORS:
        return 1


def full_pages(path: Path | str) -> int:
    """How many full pages (previews left out) a TIFF holds; 1 for a file Pillow cannot open."""
    try:
        with pillow_unlimited(), Image.open(path) as image:
            return pictures(image)
    except READ_ERRORS:
        return 1


def first_full_page(path: Path | str) -> Photo:
    """The first page that is not a reduced-resolution preview (a scanner may put its preview first)."""
    return next(page.photo for page in read_pages(path) if not page.reduced)


def read_pages(path: Path | str) -> Iterator[Page]:
    """Yield a multi-page TIFF's pages one at a time; a page that cannot be read raises InputError naming it."""
    return each_picture(Path(path), lambda image, _: bool(int(image.tag_v2.get(NEW_SUBFILE_TYPE, 0)) & REDUCED),
                        "page", " as a TIFF")  # a page's resolution: photo_read.tiff_dpi


def each_picture(path: Path, reduced: Callable[[Image.Image, int], bool], what: str, kind: str = "") -> Iterator[Page]:
    """Yield the pictures of a file of several one at a time (picture_at), each marked `reduced` (a preview) as
    the predicate says of the open image at that picture and its number; InputError naming the file (read
    `kind`: ' as a TIFF') where it cannot be opened. A HEIF's are each read from the file opened for it alone:
    pillow-heif keeps every picture it decoded while its file is open (a 20-picture burst of 1024 px held 60 MB
    more by its end)."""
    with _opened(path, kind) as image:
        for number in range(getattr(image, "n_frames", 1)):
            if image.format != "HEIF":
                yield Page(photo=picture_at(image, path, number, what), number=number, reduced=reduced(image, number))
                continue
            with _opened(path, kind) as own:
                page = Page(photo=picture_at(own, path, number, what), number=number, reduced=reduced(own, number))
            yield page


def _opened(path: Path, kind: str) -> Image.Image:
    """`path` opened by Pillow, nothing decoded; InputError naming it (read `kind`) where it cannot be."""
    try:
        with pillow_unlimited():
            return Image.open(path)
    except READ_ERRORS as error:
        raise InputError(f"cannot read {path.name}{kind} ({one_line(error)})") from error


def picture_at(image: Image.Image, path: Path, number: int, what: str = "page") -> Photo:
    """Picture `number` of an open image of several (a TIFF's page, an MPO's or a HEIF's picture), read as
    read_photo reads a photo; InputError naming it (`what`, numbered from 1) where it cannot be read."""
    try:
        with pillow_unlimited():
            if image.tell() != number:  # the picture's own resolution, ICC profile and XMP, not the one before's
                image.info.clear()
                image.seek(number)
            check_size(image, path)
            deep = is_16bit_rgb(image)
            image.load()
        return photo_of(image, path, deep, number)
    except READ_ERRORS + (EOFError, InputError) as error:
        raise InputError(f"{path.name}: {what} {number + 1} cannot be read ({one_line(error)})") from error


def preview_of(page: Page, full: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """A preview page's pixels: the full page before it (`full`: as read, as restored) scaled down to the
    preview's size when its faces changed and it has the preview's shape, else the preview as it was."""
    own = page.photo.image
    if full is None or np.array_equal(*full):
        return own
    restored = full[1]
    height, width = own.shape[:2]
    page_ratio, preview_ratio = restored.shape[1] / restored.shape[0], width / height
    if abs(page_ratio - preview_ratio) > SAME_SHAPE * page_ratio:
        return own
    smaller = cv2.resize(restored, (width, height), interpolation=cv2.INTER_AREA)
    return to_depth(smaller, page.photo.bit_depth)


class OneFileWriter:
    """What a writer of several pictures into one file (PageWriter, multi_picture.PictureWriter) shares: the output
    written under a hidden name (atomic), renamed into place on a clean exit, removed after an error; counts of
    the pictures taken, and whether any changed (else the source is copied, nothing encoded again)."""

    def __init__(self, output: Path | str, source: Path | str) -> None:
        self.output, self.source = Path(output), Path(source)
        self.pages_written = 0
        self.changed = False
        self._stack = ExitStack()
        self._partial: Path | None = None

    def _begin(self) -> Path:
        """The hidden name to write to, once the output's folder is known to be there."""
        if not self.output.parent.is_dir():
            raise ClrfaceError(f"output folder does not exist: {self.output.parent}")
        self._partial = self._stack.enter_context(atomic(self.output))
        return self._partial

    def _none_written(self) -> None:
        """A clean exit with no page written: the partial file removed, and a ClrfaceError."""
        exc = ClrfaceError(f"no pages were written to {self.output.name}")
        self._stack.__exit__(ClrfaceError, exc, None)
        raise exc


class PageWriter(OneFileWriter):
    """Write pages one at a time into a multi-page TIFF, each in its own mode, depth, compression and tags, under a
    hidden name renamed into place on a clean exit. When no page's pixels changed, the source is copied instead
    (nothing encoded again). What the pages' tags held that cannot be written is said in one warning.

        with PageWriter(out_path, src_path) as writer:
            for page in read_pages(src_path):
                writer.write(restored_pixels, page)
    """

    def __init__(self, output: Path | str, source: Path | str) -> None:
        super().__init__(output, source)
        self._left_out: dict[str, list[int]] = {}  # what was left out -> the pages (from 1) it was left out of
        self._tiff: AppendingTiffWriter | None = None
        self._file: BinaryIO | None = None

    def __enter__(self) -> Self:
        self._begin()
        try:
            self._file = open(self._partial, "w+b")  # closed in __exit__, before the rename
        except OSError as error:
            self._stack.close()
            raise ClrfaceError(f"cannot write {self.output.name} ({one_line(error)})") from error
        self._tiff = AppendingTiffWriter(self._file, new=True)
        return self

    def write(self, image: np.ndarray, page: Page) -> None:
        """Encode one page's (restored) RGB pixels as the page was: mode, depth, compression, tags."""
        if self._tiff is None:
            raise RuntimeError("PageWriter.write called outside its with block")
        self.changed = self.changed or not np.array_equal(image, page.photo.image)
        like = replace(page.photo, exif=self._page_exif(page))
        if like.mode in ("P", "PA"):  # as io.photo_write says of a palette photo
            self._left_out.setdefault("the palette (the page is written in full colour)", []).append(page.number + 1)
        try:
            encode_photo(image, like, self._tiff, f"{self.output.name} page {page.number + 1}")
            self._tiff.newFrame()
        except (KeyError, ValueError, OSError, RuntimeError) as error:  # Pillow's and libtiff's
            raise ClrfaceError(f"cannot write page {page.number + 1} of {self.output.name} ({one_line(error)})") \
                from error
        self.pages_written += 1

    def _page_exif(self, page: Page) -> bytes | None:
        """The page's tags as written: a preview marked as one; its pyramid pointer, and after the first page its
        Exif and GPS pointers (which the appending writer cannot move with the page), left out and noted."""
        exif = Image.Exif()
        if page.photo.exif:
            exif.load(page.photo.exif)
        if page.reduced:
            exif[NEW_SUBFILE_TYPE] = REDUCED
        dropped = [SUB_IFDS] + (list(EXIF_SUB_IFDS) if page.number > 0 else [])
        for tag in dropped:
            if tag in exif:
                del exif[tag]
                what = "its smaller (SubIFD) copies" if tag == SUB_IFDS else "the EXIF camera and GPS tags"
                self._left_out.setdefault(what, []).append(page.number + 1)
        return exif.tobytes() if len(exif) else None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._file is not None and self._partial is not None
        try:
            self._file.close()  # writes the last pages' bytes its buffer held: a full disk can answer only here
            if exc_type is None and not self.changed and self.pages_written:
                shutil.copyfile(self.source, self._partial)  # nothing restored: the source's own bytes
        except OSError as error:
            self._stack.__exit__(type(error), error, error.__traceback__)  # the partial file goes, whatever ended
            if exc_type is None:
                raise ClrfaceError(f"cannot write {self.output.name} ({one_line(error)})") from error
            return  # the block's own error goes on
        if exc_type is None and self.pages_written == 0:
            self._none_written()
        if exc_type is None and self.changed and self._left_out:  # a copied source left nothing out
            said = "; ".join(f"{what} (page {', '.join(map(str, pages))})" for what, pages in self._left_out.items())
            log.warning("%s: left out of the written pages: %s", self.output.name, said)
        self._stack.__exit__(exc_type, exc, tb)  # renamed into place, or removed after an error
