"""Data preparation: detect the largest face of each image, align it to the template, write crops and a manifest."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ClrfaceError, one_line
from ..io import cv_files
from ..io.decode import IMAGE_EXTENSIONS, is_image_path
from ..opencv import cv2
from ..paths import check_outside, output_folder
from .manifest import MANIFEST, PreparedFace, write_manifest

log = logging.getLogger(__name__)
# LFW identities starting with these letters are reserved for independent evaluation: never read.
RESERVED_LFW_INITIALS = tuple("TUVWXYZ")


@dataclass(frozen=True)
class PrepareConfig:
    """size: side of the aligned crops; holdout_fraction: share of LFW identities kept out of training."""

    size: int = 128
    holdout_fraction: float = 0.05
    jpeg_quality: int = 95
    detector: str = "retinaface"
    threshold: float = 0.6
    border: str = "replicate"  # outside the source image; 'reflect' mirrors whole faces into tight crops
    workers: int = 1


@dataclass(frozen=True)
class SourceImage:
    """One input image and who is on it. dataset: 'lfw' (person folders) or the folder's name."""

    path: Path
    identity: str
    dataset: str


def is_reserved(path: Path) -> bool:
    """LFW identities T-Z (a person folder under a folder named lfw) are never read."""
    return path.parent.parent.name.lower() == "lfw" and path.parent.name[:1].upper() in RESERVED_LFW_INITIALS


def identity_of(path: Path, root: Path) -> SourceImage:
    """LFW-style person folders name the identity; any other image is its own identity (UTKFace)."""
    if path.parent.parent.name.lower() == "lfw":
        return SourceImage(path, f"lfw/{path.parent.name}", "lfw")
    dataset = path.parent.name if path.parent != root else root.name
    return SourceImage(path, f"{dataset}/{path.name.split('.')[0]}", dataset)


def scan_sources(root: Path) -> list[SourceImage]:
    """Every image under root, sorted, without the reserved LFW identities. Linked folders are followed, as restore
    follows them in a folder (a person's folder linked in was left out, or all of them: 'no images found'), each
    real folder once (a link back up the tree would loop)."""
    found = []
    walked: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        here = Path(dirpath)
        if os.path.realpath(here) in walked:
            dirnames.clear()
            continue
        walked.add(os.path.realpath(here))
        if here.parent.name.lower() == "lfw" and here.name[:1].upper() in RESERVED_LFW_INITIALS:
            dirnames.clear()
            continue
        for name in sorted(filenames):
            path = here / name
            if is_image_path(path) and not path.name.startswith(".") and not is_reserved(path):
                found.append(identity_of(path, root))
    return found


def split_of(source: SourceImage, holdout_fraction: float) -> str:
    """LFW identities whose name hashes into the first `holdout_fraction` of 10,000 buckets are held out."""
    if source.dataset != "lfw":
        return "train"
    bucket = int(hashlib.sha1(source.identity.encode()).hexdigest()[:8], 16) % 10_000
    return "heldout" if bucket < holdout_fraction * 10_000 else "train"


def output_name(source: SourceImage) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.identity.replace("/", "_"))
    if source.dataset == "lfw":
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"lfw_{source.path.stem}")
    return f"{stem}.jpg"


def output_names(sources: list[SourceImage]) -> list[str]:
    """output_name of each source, with _2, _3, ... added where two sources would share one (x/face.jpg and
    x/face.png, or a/x/face.jpg and b/x/face.jpg), so that no crop overwrites another; names that differ only in
    case count as one, as they are one file on macOS and Windows (x/Face.jpg and x/face.png)."""
    taken: set[str] = set()  # lower-cased
    names = []
    for source in sources:
        name = output_name(source)
        stem, n = name[:-len(".jpg")], 2
        while name.lower() in taken:
            name, n = f"{stem}_{n}.jpg", n + 1
        taken.add(name.lower())
        names.append(name)
    return names


def largest_face(faces: list) -> object | None:
    if not faces:
        return None
    return max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))


def crop_coverage(matrix: np.ndarray, size: int, shape: tuple[int, int]) -> float:
    """Share of the crop's pixels that come from inside the source image."""
    ones = np.ones((shape[0], shape[1]), np.uint8)
    inside = cv2.warpAffine(ones, np.asarray(matrix, np.float64), (size, size), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return float(inside.mean())


class _Worker:
    """Detector and aligner of one process (built lazily so the pool pickles only the config)."""

    def __init__(self, config: PrepareConfig, out_dir: Path) -> None:
        from ..faces.detect import make_detector

        self.config = config
        self.out_dir = out_dir
        self.detector = make_detector(config.detector, threshold=config.threshold)

    def __call__(self, item: tuple[SourceImage, str, str]) -> PreparedFace | str | None:
        """The prepared face, None when no face is found, or why the image could not be read."""
        from ..faces.align import align_face
        from ..io.photo_read import read_photo
        from ..io.pixels import to_uint8

        source, split, name = item
        try:
            rgb = to_uint8(read_photo(source.path).image)  # upright; a truncated file is an error, not grey rows
        except ClrfaceError as error:
            return one_line(error)
        face = largest_face(self.detector.detect(rgb))
        if face is None:
            return None
        crop = align_face(rgb, face.landmarks, self.config.size, border=self.config.border)
        rel = f"{split}/{name}"
        ok = cv_files.imwrite(self.out_dir / rel, np.ascontiguousarray(crop.image[..., ::-1]),
                              [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise OSError(f"could not write {self.out_dir / rel}")
        return PreparedFace(rel, str(source.path), source.identity, source.dataset, split, float(face.score),
                            crop_coverage(crop.matrix, self.config.size, rgb.shape[:2]))


_PROCESS_WORKER: _Worker | None = None


def _init_process(config: PrepareConfig, out_dir: Path) -> None:
    global _PROCESS_WORKER  # one detector per pool process (process-local, not shared state)
    cv2.setNumThreads(1)
    _PROCESS_WORKER = _Worker(config, out_dir)


def _run_in_process(item: tuple[SourceImage, str, str]) -> PreparedFace | str | None:
    assert _PROCESS_WORKER is not None
    return _PROCESS_WORKER(item)


def _results(items: list[tuple[SourceImage, str, str]], config: PrepareConfig,
             out_dir: Path) -> Iterator[PreparedFace | str | None]:
    if config.workers <= 1:
        worker = _Worker(config, out_dir)
        yield from map(worker, items)
        return
    workers = min(config.workers, 61) if sys.platform == "win32" else config.workers  # Windows' pools take 61 at most
    with ProcessPoolExecutor(workers, initializer=_init_process, initargs=(config, out_dir)) as pool:
        yield from pool.map(_run_in_process, items, chunksize=64)


def prepare_faces(src: Path, out_dir: Path, config: PrepareConfig = PrepareConfig(),
                  progress: Callable[[str], None] | None = None) -> list[PreparedFace]:
    """Align the largest face of every image under src into out_dir/{train,heldout}/ and write the manifest.

    Images without a detected face are skipped (counted in the progress messages); an image that cannot be read
    is skipped with a warning. Returns the rows written; ClrfaceError when there are none.
    """
    src, out_dir = Path(src), Path(out_dir)
    check_outside(out_dir, src)
    sources = scan_sources(src)
    if not sources:
        raise ClrfaceError(f"no images found under {src} ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    with output_folder(out_dir):  # a run that writes no face leaves no folder it made
        rows = _prepare(src, out_dir, sources, config, progress)
    write_manifest(out_dir / MANIFEST, rows)
    return rows


def _prepare(src: Path, out_dir: Path, sources: list[SourceImage], config: PrepareConfig,
             progress: Callable[[str], None] | None) -> list[PreparedFace]:
    for split in ("train", "heldout"):
        (out_dir / split).mkdir(exist_ok=True)
    items = [(s, split_of(s, config.holdout_fraction), name) for s, name in zip(sources, output_names(sources))]
    rows: list[PreparedFace] = []
    start, skipped, unreadable = time.monotonic(), 0, 0
    for i, ((source, _, _), row) in enumerate(zip(items, _results(items, config, out_dir)), 1):
        if isinstance(row, str):
            unreadable += 1
            log.warning("skipped %s: %s", source.path, row)
        elif row is None:
            skipped += 1
        else:
            rows.append(row)
        if progress and (i % 2000 == 0 or i == len(items)):
            progress(f"{i}/{len(items)} images, {len(rows)} faces, {skipped} without a face, "
                     f"{unreadable} unreadable, {time.monotonic() - start:.0f} s")
    if not rows:
        for split in ("train", "heldout"):
            with contextlib.suppress(OSError):  # kept when an earlier run wrote faces there
                (out_dir / split).rmdir()
        raise ClrfaceError(f"no face was found in the {len(items)} images under {src}; nothing written")
    return rows
