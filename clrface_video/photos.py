"""Photo-folder mode: restore a tree of photos into a mirrored tree, resumable, one bad file never stops it."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from .config import RestoreConfig
from .errors import ClrfaceError
from .pipeline import FaceRestorer, Models, is_image, load_models, resolve_paths, restore_photo_array
from .report import Progress, RestoreReport, StageTimer

log = logging.getLogger(__name__)


def find_photos(folder: Path) -> Iterator[Path]:
    """Every photo under `folder`, recursively, in a stable order; hidden files and other files are ignored."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue  # hidden files, and the .partial files of an interrupted run
        if path.is_file() and is_image(path):
            yield path


def _unreadable() -> tuple[type[BaseException], ...]:
    """What reading or decoding one bad photo can raise (reported and skipped, not fatal)."""
    from PIL import UnidentifiedImageError

    return (ClrfaceError, UnidentifiedImageError, OSError, ValueError, SyntaxError)


def restore_folder(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                   progress: Progress | None = None, models: Models | None = None) -> RestoreReport:
    """Restore every photo under INPUT into the same tree under OUTPUT (default INPUT_restored/).

    Photos whose output exists are skipped unless config.overwrite, so a rerun after a crash or
    Ctrl-C continues where it stopped (each output is written to a temporary name, then renamed).
    A photo that cannot be read is reported in one line, counted in report.failed, and skipped.
    """
    from .io.image import read_photo, write_photo

    config = config or RestoreConfig()
    start = time.perf_counter()
    source, target = resolve_paths(input, output)
    photos = list(find_photos(source))
    todo = [p for p in photos if config.overwrite or not (target / p.relative_to(source)).exists()]
    timer = StageTimer()
    models = models or (load_models(config, video=False) if todo else None)
    report = RestoreReport(input=str(source), output=str(target), kind="folder",
                           model=getattr(models.restorer, "name", config.model) if models else config.model,
                           device=str(models.device) if models else config.device,
                           skipped=len(photos) - len(todo))
    if progress is not None:
        progress.start(len(todo), "images")
    story = FaceRestorer(models, config, timer, video=False) if models else None
    for path in todo:
        relative = path.relative_to(source)
        try:
            with timer("decode"):
                photo = read_photo(path)  # 1 read
        except _unreadable() as error:
            message = " ".join(str(error).split()) or type(error).__name__
            log.warning("skipped %s: %s", relative, message)
            report.failed.append(f"{relative}: {message}")
        else:
            assert story is not None
            image = restore_photo_array(story, photo.image)  # 2 detect, 4 align, 5 restore, 6 paste
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            with timer("encode"):
                write_photo(destination, image, like=photo)  # 7 write (temporary name, then rename)
            report.images += 1
        if progress is not None:
            progress.advance()
    if story is not None:
        report.faces = story.counts.faces
        report.faces_left_alone = story.counts.left_alone
        report.tracks = len(story.counts.track_ids)
    report.stages = timer.rounded()
    report.seconds = round(time.perf_counter() - start, 4)
    return report
