"""XMP sidecars: the edit files photo managers keep beside a photo, copied beside its restored output."""
from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..atomic import atomic, keep_date_and_mode, write_whole
from ..errors import ClrfaceError, reason
from .photo_read import ORIENTATION_TAG, pillow_unlimited, upright_xmp
from .photo_write import sized_xmp

log = logging.getLogger(__name__)
SIDECAR_SUFFIXES = (".xmp", ".XMP")  # in either case (a file system that tells them apart finds each)


@dataclass(frozen=True)
class Sidecar:
    """One XMP sidecar of a photo: `path`, beside it, named after the photo's whole name (`whole_name`:
    IMG_0001.jpg.xmp, darktable's and digiKam's) or after its name without the extension (IMG_0001.xmp,
    Lightroom's and other Adobe tools'). Its ratings, keywords, face tags and edits describe the photo."""

    path: Path
    whole_name: bool

    def beside(self, output: Path) -> Path:
        """Its name beside `output`, in its own scheme: x.jpg.xmp -> out.png.xmp, x.xmp -> out.xmp."""
        return output.with_name((output.name if self.whole_name else output.stem) + self.path.suffix)


def sidecars(photo: Path) -> list[Sidecar]:
    """The XMP sidecars beside `photo`, each file once (on a file system that ignores case x.xmp is x.XMP)."""
    found: list[Sidecar] = []
    for whole_name in (True, False):
        for suffix in SIDECAR_SUFFIXES:
            path = photo.with_name((photo.name if whole_name else photo.stem) + suffix)
            if _is_file(path) and not any(_same_file(path, other.path) for other in found):
                found.append(Sidecar(path, whole_name))
    return found


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # no such name can be: a photo's own, of 252-255 bytes, with .xmp added passes the limit
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # one is not there
        return False


def copy_sidecars(photo: Path, output: Path, *, stale: Callable[[Path, Path], bool] | None = None) -> int:
    """Copy each XMP sidecar of `photo` beside its restored `output` (Sidecar.beside), whatever format the output
    is in: the sidecar describes the photo. Each is written whole or not at all (a temporary name, renamed), with
    its own date and mode (plus its owner's write bit, as every output), and the original is never touched (one
    `output` shares, x.jpg -o x.png beside it, is left as it is). A copy the user made read-only is kept, with a
    warning. The restored photo keeps its size, so a sidecar's bytes are its original's, but for a photo the
    reader turned upright: there its copies of the orientation, the size and the face regions are changed as
    the photo's own XMP is (photo_read.upright_xmp, photo_write.sized_xmp). `stale(sidecar, copy)` picks the
    copies to write (a rerun's photo left as it is: only those missing or older than their sidecar), every one
    without it. The number written; ClrfaceError where one cannot be written."""
    written = 0
    for sidecar in sidecars(photo):
        target = sidecar.beside(output)
        if _same_file(target, sidecar.path) or (stale is not None and not stale(sidecar.path, target)):
            continue
        if target.exists() and not stat.S_IMODE(target.stat().st_mode) & 0o222:
            log.warning("%s: its sidecar %s is read-only, kept as it is", output.name, target.name)
            continue
        try:
            _write_copy(sidecar.path, target, _turned(photo, output, sidecar.path.read_bytes()))
        except OSError as error:
            raise ClrfaceError(f"cannot write {target.name}, the sidecar of {output.name} ({reason(error)})") \
                from error
        written += 1
    return written


def _turned(photo: Path, output: Path, xmp: bytes) -> bytes:
    """A sidecar's XMP for the restored photo: its bytes, or where the photo was written upright from a turned
    one (its EXIF orientation 2-8, the output's 1; one with no face restored is copied as it was, still
    turned), its orientation 1, its face regions turned and its size tags the written size."""
    orientation, _ = _orientation_and_size(photo)
    written, (width, height) = _orientation_and_size(output)
    if orientation not in range(2, 9) or written == orientation:
        return xmp
    return sized_xmp(upright_xmp(xmp, orientation), width, height)


def _orientation_and_size(path: Path) -> tuple[int, tuple[int, int]]:
    """Its EXIF orientation and stored size, from its header. Past Pillow's decompression-bomb limit too (179 MP: a
    film scan or a panorama), as the photo itself was read (photo_read.pillow_unlimited)."""
    with pillow_unlimited(), Image.open(path) as image:
        return int(image.getexif().get(ORIENTATION_TAG, 1) or 1), image.size


def _write_copy(source: Path, target: Path, data: bytes) -> None:
    """`data` at `target`, whole or not at all, with `source`'s date and mode."""
    with atomic(target) as temp:
        write_whole(temp, data)
    keep_date_and_mode(source, target)
