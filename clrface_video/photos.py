"""Folders: restore a tree of photos (and the videos in it) into a mirrored tree, resumable; plus the `detect`
debugging helpers."""
from __future__ import annotations

import logging
import time
from copy import deepcopy
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from .config import RestoreConfig
from .device import pick_device
from .errors import ClrfaceError, InputError, OptionError, disk_full, failure_line, one_line
from .folder_walk import FolderContents, folder_contents
from .io.decode import VIDEO_EXTENSIONS, check_not_raw
from .io.multi_picture import picture_count
from .io.photo_read import first_picture, read_photo
from .io.pixels import to_uint8
from .io.tiff_pages import tiff_pages
from .paths import check_within, mirrored, output_folder, resolve_paths, say_renamed
from .pipeline import (
    ModelsFor,
    check_settings,
    detector_for,
    finish_report,
    job_settings,
    load_models,
    output_format,
    restore_pages,
    restore_video,
    save_photo,
    sidecars_brought_up_to_date,
    would_run,
)
from .report import Interrupted, Progress, RestoreReport, StageTimer, Stopped, reports_warnings, with_codec_of
from .reruns import left_as_is, up_to_date
from .story import Counts, FrameStory, Models, restore_photo_array
from .types import Face

log = logging.getLogger(__name__)
PILLOW_ANIMATIONS = frozenset({".gif", ".apng"})  # video extensions of files Pillow reads too (detect: frame 1)


def failed_folders(contents: FolderContents, report: RestoreReport) -> None:
    """The folder's subfolders that could not be read, each said as a file that failed (say_failed: -q does not
    hide it) and counted in `failed`, so that the command ends in status 3: part of the library was not looked
    at, which a script must learn. Both backends' (distributed.photos too)."""
    for line in contents.unread:
        report.failed.append(line)
        say_failed(line)


@reports_warnings
def restore_folder(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                   progress: Progress | None = None, models_for: ModelsFor | None = None) -> RestoreReport:
    """Restore every photo, then every video, under INPUT into the same tree under OUTPUT (default INPUT_restored/).

    Files whose output exists are skipped unless config.overwrite, so a rerun after a crash or
    Ctrl-C continues where it stopped (each output is written to a temporary name, then renamed); one whose
    original changed since it was restored is redone (reruns.left_as_is), and one made read-only is
    skipped even with --overwrite, with a warning (undone).
    A file that cannot be read is reported in one line, counted in report.failed, and skipped.
    Each video is restore_video's job, with the video models loaded once for all of them
    (`models_for(video)` gives models already loaded, a Session's).
    """
    config = config or RestoreConfig()
    if config.span() is not None:
        raise OptionError(config.span_option(), "picks a stretch of one video; a folder is restored whole (give one "
                          "of its videos to try the settings on)")
    models_for = models_for or (lambda video: load_models(config, video=video))
    start = time.perf_counter()
    source, target = resolve_paths(input, output)

    contents = folder_contents(source, target)
    photos, videos = contents.photos, contents.videos
    say_renamed(videos)
    check_settings(config, video=bool(videos))
    todo, videos_todo = undone(photos, source, target, config), undone(videos, source, target, config)
    timer = StageTimer()
    model, device = would_run(config)  # the settings checked before any work; the models load at the first photo
    report = RestoreReport(input=str(source), output=str(target), kind="folder", model=model, device=device,
                           skipped=len(photos) - len(todo) + len(videos) - len(videos_todo))
    failed_folders(contents, report)
    sidecars_of_done(photos, todo, source, target, report)
    if progress is not None:
        progress.start(len(todo) + len(videos_todo), "files" if videos_todo else "images")
    story = _PhotoStory(models_for, config, timer, report)
    tried: list[Path] = []  # the files restored (or failed) so far, in order
    try:
        _restore_photos(source, target, todo, story, report, progress, timer, start, tried)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: the photos finished before it are reported
        finish_report(report, story.story, timer, start)
        raise interrupted(report, start, _untried(todo + videos_todo, tried, source)) from stop
    finish_report(report, story.story, timer, start)
    try:
        _restore_videos(source, target, videos_todo, config, report, progress, models_for, tried)
    except KeyboardInterrupt as stop:  # the video being written is removed; those finished before it are reported
        raise interrupted(report, start, _untried(todo + videos_todo, tried, source)) from stop
    report.seconds = round(time.perf_counter() - start, 4)
    return report


def undone(paths: list[Path], source: Path, target: Path, config: RestoreConfig) -> list[Path]:
    """The files of the folder `source` still to restore into `target`: those whose output is not there yet or
    stale (its original changed since: reruns.left_as_is, said in a warning), and with --overwrite those whose
    output is there too, but for one the user made read-only (a finished master), which is skipped with a
    warning and counted with the files already done."""
    todo = []
    for path in paths:
        relative = path.relative_to(source)
        try:
            if not left_as_is(path, mirrored(path, source, target), config, str(relative)):
                todo.append(path)
        except ClrfaceError as protected:  # left_as_is's one refusal: an output the user made read-only
            log.warning("skipped %s", failure_line(relative, protected))
    return todo


def sidecars_of_done(photos: list[Path], todo: list[Path], source: Path, target: Path, report: RestoreReport) -> None:
    """The XMP sidecar copies of the folder's photos left as they are (those not in `todo`) brought up to date
    (pipeline.sidecars_brought_up_to_date: missing, or older than their sidecar), counted in report.sidecars;
    one that cannot be written fails its photo (said, and in `failed`), whose restored copy lacks it. Both
    backends' (distributed.photos too, on the driver)."""
    redone = set(todo)
    for path in photos:
        if path in redone:
            continue
        relative = path.relative_to(source)
        try:
            report.sidecars += sidecars_brought_up_to_date(path, target / relative)
        except ClrfaceError as error:
            report.failed.append(failure_line(relative, error))
            say_failed(report.failed[-1])


class _PhotoStory:
    """A folder's photo story, its models loaded when the first photo has been read (`models_for`, as
    restore_folder's): a rerun whose photos left to do all fail to read (broken files tried again) loads none.
    The report names the model once loaded, and the settings once a photo is restored with it (JobSettings:
    none for a run that restored nothing)."""

    def __init__(self, models_for: ModelsFor, config: RestoreConfig, timer: StageTimer,
                 report: RestoreReport) -> None:
        self.models_for, self.config, self.timer, self.report = models_for, config, timer, report
        self.story: FrameStory | None = None

    def __call__(self) -> FrameStory:
        """The story, its models loaded on the first call; a failure to load them stops the folder
        (_RestorerFault: every photo would meet it), not this photo alone."""
        if self.story is None:
            try:
                models = self.models_for(False)
            except Exception as error:
                raise _RestorerFault(error) from error
            self.report.model = getattr(models.restorer, "name", self.config.model)
            self.report.device = str(models.device)
            self.story = FrameStory(models, self.config, self.timer, video=False)
        return self.story

    def counts(self) -> Counts:
        """The faces counted so far, a copy (none before the models load): uncount puts them back."""
        return deepcopy(self.story.counts) if self.story is not None else Counts()

    def uncount(self, before: Counts) -> None:
        """Take back the faces counted since `before`: those of a photo that failed, which was not written."""
        if self.story is not None:
            self.story.counts = before

    def restored_one(self, relative: Path, before: Counts) -> None:
        """Count a restored photo, name the settings it was restored with, and list the faces it left alone (those
        counted since `before`) under its path in the folder."""
        assert self.story is not None
        self.report.images += 1
        self.report.settings = self.report.settings or job_settings(self.config, self.story.models, video=False)
        if faces := self.story.counts.photo_faces_left_alone[len(before.photo_faces_left_alone):]:
            self.report.left_alone[str(relative)] = [asdict(face) for face in faces]


def _restore_photos(source: Path, target: Path, todo: list[Path], story: _PhotoStory, report: RestoreReport,
                    progress: Progress | None, timer: StageTimer, start: float, tried: list[Path]) -> None:
    """The folder's photos, each into the mirrored tree, counted in the folder's report (a full disk stops them),
    each added to `tried` once restored or failed."""
    for path in todo:
        relative = path.relative_to(source)
        before, there = story.counts(), _file_state(target / relative)
        try:
            _restore_one(story, path, target / relative, timer, within=target)
        except KeyboardInterrupt:  # its faces were counted as restored, but it is in no output: not finished,
            # unless the signal came once its output was renamed into place, before it was counted (the report
            # said 0 files of the 1 kept: tests/test_cli.py's signal test failed so on a loaded machine)
            if _put_in_place(path, target / relative, there):
                story.restored_one(relative, before)
                tried.append(path)
            else:
                story.uncount(before)
            raise
        except _PhotoFault as fault:  # this photo (unreadable, unwritable, odd metadata), not the folder
            story.uncount(before)  # its faces were restored, but are in no output
            report.failed.append(failure_line(relative, fault.__cause__ or fault))
            if disk_full(fault):
                finish_report(report, story.story, timer, start)
                raise stopped(relative, report) from fault
            say_failed(report.failed[-1])
        except _RestorerFault as fault:  # the model or the device: every photo after it would meet it too
            raise fault.error
        else:
            story.restored_one(relative, before)
        tried.append(path)
        if progress is not None:
            progress.advance()


def _file_state(path: Path) -> tuple[int, int] | None:
    """A file's inode and modification time, or None where there is none: whether it was replaced since."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _put_in_place(source: Path, output: Path, before: tuple[int, int] | None) -> bool:
    """Whether `source`'s output was put in place since its state was `before` (renamed there whole: another file
    now, and one a rerun leaves as is), so that a photo stopped after that counts as finished."""
    state = _file_state(output)
    return state is not None and state != before and up_to_date(source, output)


def say_failed(line: str) -> None:
    """Name a file of the folder that could not be restored ('path: reason', as its report's `failed` lists it):
    logged as an error, which -q (that hides warnings) still prints, since a failure is not a warning and the
    user must learn which files to look at without a --report. Both backends' (distributed.photos too)."""
    log.error("skipped %s", line)


def interrupted(report: RestoreReport, start: float, unfinished: list[Path] | None = None) -> Interrupted:
    """The folder's stop at Ctrl-C or SIGTERM, carrying its report marked interrupted: what was finished before
    it is kept (each output renamed into place only when whole) and a rerun goes on from there, so --report
    says what that is, and so does the line the CLI ends with. Both backends' (distributed.photos too).
    unfinished: the files (paths in the folder) it had still to restore, listed in the report where given."""
    report.interrupted = True
    if unfinished is not None:
        report.unfinished = [str(relative) for relative in unfinished]
    report.seconds = round(time.perf_counter() - start, 4)
    done = report.images + report.videos
    return Interrupted(report, f"; {done} file{'' if done == 1 else 's'} finished and kept, no partial output was "
                               "left: run it again to go on from there")


def _untried(todo: list[Path], tried: list[Path], source: Path) -> list[Path]:
    """The files of `todo` not restored or failed yet (`tried`), as paths in the folder `source`."""
    done = set(tried)
    return [path.relative_to(source) for path in todo if path not in done]


def stopped(relative: Path, report: RestoreReport) -> Stopped:
    """The folder's stop where the disk is full: every file after it would fail the same way (each was tried
    and failed, a warning each). The files finished before it are kept, and a rerun goes on from there. Both
    backends' (distributed.photos too)."""
    done = report.images + report.videos
    return Stopped(f"no space left on device writing {relative}; the folder is stopped there ({done} restored "
                   f"file{'' if done == 1 else 's'} kept): free some space and run it again to go on",
                   report)


class _PhotoFault(Exception):
    """One photo of a folder could not be read or written (the folder goes on without it)."""


class _RestorerFault(Exception):
    """The restorer failed on a picture (the model, the device): carried out of the page writer, which removes
    its partial output, and raised again as it came, which stops the folder."""

    def __init__(self, error: Exception) -> None:
        super().__init__(one_line(error))
        self.error = error


def _restore_one(story: _PhotoStory, path: Path, destination: Path, timer: StageTimer, *, within: Path) -> None:
    """One photo of a folder: read, restore, write into the mirrored tree. A fault of the file (reading it,
    its metadata, writing it) is this photo's alone; one of the restorer (the model, the device) stops the
    folder, since every photo after it would meet it too. A multi-page scan is read, restored and written page
    by page, each page's restoration told apart from its file's faults as a single photo's is (_restored). It is
    written inside the output folder `within`, never through a link out of it. The models are asked of `story`
    once the photo is read (the first time, they load)."""
    try:
        check_within(destination, within)
        if tiff_pages(path) > 1 or picture_count(path) > 1:  # a scan's pages, an MPO's or a HEIF's pictures
            pages = story()
            destination.parent.mkdir(parents=True, exist_ok=True)
            restore_pages(pages, path, destination, timer, restore=_restored)  # 1-7, page by page
            return
        with timer("decode"):
            original = read_photo(path)  # 1 read
            photo = output_format(original, destination)  # a GIF or a PNG named .jpg: a JPEG, as its name says
        image = _restored(story(), photo.image)  # 2 detect, 4 align, 5 restore, 6 paste
        destination.parent.mkdir(parents=True, exist_ok=True)
        with timer("encode"):
            save_photo(path, destination, image, photo, unchanged=photo is original)  # 7 write (temporary, renamed)
    except (_PhotoFault, _RestorerFault):
        raise
    except Exception as error:  # reading the file, its metadata, writing it
        raise _PhotoFault() from error


def _restored(story: FrameStory, image: np.ndarray) -> np.ndarray:
    """Steps 2-6 for one picture of a folder: a ClrfaceError is the picture's fault (_PhotoFault), any other
    error the restorer's (_RestorerFault)."""
    try:
        return restore_photo_array(story, image)
    except ClrfaceError as error:
        raise _PhotoFault() from error
    except Exception as error:
        raise _RestorerFault(error) from error


def _restore_videos(source: Path, target: Path, videos: list[Path], config: RestoreConfig, report: RestoreReport,
                    progress: Progress | None, models_for: ModelsFor, tried: list[Path]) -> None:
    """The folder's videos, one restore_video each into the mirrored tree, added into the folder's report (and to
    `tried`). Each is one the folder found not done (or stale, said once already): restore_video is not asked
    again."""
    models: Models | None = None
    config = replace(config, overwrite=True)
    for path in videos:
        relative = path.relative_to(source)
        models = models or models_for(True)
        try:
            check_within(mirrored(path, source, target), target)
            done = restore_video(path, mirrored(path, source, target), config, models=models)
        except ClrfaceError as error:  # this video (unreadable, truncated, unwritable), not the folder
            report.failed.append(failure_line(relative, error))
            if disk_full(error):
                raise stopped(relative, report) from error
            say_failed(report.failed[-1])
        else:
            report.model, report.device = done.model, done.device
            if done.settings is not None:
                report.video_settings = with_codec_of(report.video_settings, done.settings)
            report.videos += 1
            report.add_counts(done)
            for stage, seconds in done.stages.items():
                report.stages[stage] = round(report.stages.get(stage, 0.0) + seconds, 4)
        tried.append(path)
        if progress is not None:
            progress.advance()


# -- debugging helpers for `clrface-video detect` ---------------------------------------------------
def detect_faces(path: str | Path, config: RestoreConfig | None = None) -> tuple[np.ndarray, list[Face]]:
    """The RGB uint8 pixels of a photo (EXIF orientation applied) and the faces found in it."""
    config = config or RestoreConfig()
    source = Path(path).expanduser()
    if not source.exists():
        raise InputError(f"input not found: {source}")
    if source.is_dir():
        raise InputError(f"{source} is a folder; detect looks at one photo")
    if source.suffix.lower() in VIDEO_EXTENSIONS - PILLOW_ANIMATIONS:
        raise InputError(f"{source.name} is a video; detect looks at one photo (restore takes videos)")
    check_not_raw(source)
    photo, count = first_picture(source)  # an animation's first frame, a scan's first page
    if count > 1:
        what = "pages" if photo.format == "TIFF" else "frames"
        log.warning("%s: only the first of its %d %s was read (detect looks at one picture)", source.name, count, what)
    image = to_uint8(photo.image)
    return image, detector_for(config, pick_device(config.device), video=False).detect(image)


def draw_faces(image: np.ndarray, faces: list[Face], path: str | Path) -> None:
    """Save a copy of `image` with each face's box and its 5 landmarks drawn on it, its folder made where missing
    (and removed again if nothing could be written), as -o and --report make theirs."""
    from .io import cv_files
    from .opencv import cv2

    canvas = np.ascontiguousarray(image[..., ::-1])
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255)]  # BGR, per landmark
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in faces:
        x1, y1, x2, y2 = (round(float(v)) for v in face.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 255, 0), thickness)
        for (x, y), colour in zip(face.landmarks, colours):
            cv2.circle(canvas, (round(float(x)), round(float(y))), 2 * thickness, colour, -1)
    with output_folder(Path(path).parent):
        try:
            written = cv_files.imwrite(path, canvas)
        except cv2.error:
            written = False
        if not written:
            raise ClrfaceError(f"cannot write {path}; use a .png or .jpg name in a writable folder")
