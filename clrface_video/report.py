"""What a restore job reports: the JSON report (settings used, warnings logged), per-stage timers, the progress hook."""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ParamSpec, Protocol

from .atomic import atomic
from .errors import ClrfaceError, one_line, reason

P = ParamSpec("P")

# The stages of the story, in the order they run; every report names all of them.
STAGES = ("decode", "detect", "track", "align", "identity", "restore", "paste", "encode")


class Progress(Protocol):
    """Where a job says how far it got (the CLI's tqdm bar; None in library use)."""

    def start(self, total: int | None, unit: str) -> None:
        """Called once, before the first item: how many frames or images to expect (None: unknown)."""

    def advance(self, n: int = 1) -> None:
        """n more frames or images are done."""


class StageTimer:
    """Adds up perf_counter seconds spent in each stage: `with timer("detect"): ...`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in self.seconds.items()}


@dataclass(frozen=True)
class JobSettings:
    """The settings a job ran with, as they took effect (a report's `settings`), so that an archive can tell from
    the report what was done to a file: 'auto' and defaults resolved (the encoder used, the detection threshold
    of photos or of video frames, codebook snapping), identity guidance on only where the restorer has it, --crf
    and --preset only where the encoder takes them (None otherwise, and codec None for a photo)."""

    version: str  # clrface-video's
    model: str
    device: str
    fidelity: float
    strength: float | None  # None: auto, each face's share chosen by the model's blend gate
    identity_guidance: bool
    track_identity: bool  # one identity target per tracked person (videos)
    detector: str
    detection_threshold: float
    min_face: int
    max_upscale: float
    keep_detail: float
    temporal_smoothing: float
    snap_to_codebook: bool
    batch_size: int
    seed: int
    deinterlace: str  # as asked (auto, on, off); the report's `deinterlaced` says whether it ran
    start: float
    duration: float | None
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None


def with_codec_of(settings: JobSettings | None, done: JobSettings) -> JobSettings:
    """A folder's video settings after one more video: the first video's, with every codec used named (an HDR
    video's auto codec is libx265, the others' libx264)."""
    if settings is None:
        return done
    codecs = (settings.codec or "").split(", ")
    return settings if done.codec in codecs else replace(settings, codec=", ".join([*codecs, str(done.codec)]))


class _WarningLines(logging.Handler):
    """Collects the package's warnings as the lines the CLI prints (without `warning: `), in order: those logged
    by the thread that made it only. The logger is the process's, shared by every job; a job logs from the
    thread it runs in (its steps run there, and on Ray the driver says its workers' lines there), so another
    thread's job (a script restoring two files at once) keeps its warnings in its own report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.thread = threading.get_ident()  # alive until the block ends, so no other thread has its id meanwhile

    def emit(self, record: logging.LogRecord) -> None:
        if threading.get_ident() == self.thread:  # emit runs in the logging thread (record.thread may be unset)
            self.lines.append(one_line(Exception(record.getMessage())))


@contextmanager
def warnings_logged() -> Iterator[list[str]]:
    """The warnings the package logs inside the block (a job's) from this thread, gathered while they are also
    shown as usual."""
    logger = logging.getLogger("clrface_video")
    handler = _WarningLines()
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def reports_warnings(job: Callable[P, RestoreReport]) -> Callable[P, RestoreReport]:
    """Give the report a job returns the warnings logged while it ran (its `warnings`); an outer job's list,
    set last, holds its inner jobs' too (restore_path's, a photo's --codec warning before restore_image)."""

    @functools.wraps(job)
    def run(*args: P.args, **kwargs: P.kwargs) -> RestoreReport:
        with warnings_logged() as lines:
            try:
                report = job(*args, **kwargs)
            except (Stopped, Interrupted) as stopped:  # the report of what was done before it, its warnings too
                stopped.report.warnings = list(lines)
                raise
        report.warnings = list(lines)
        return report

    return run


class Stopped(ClrfaceError):
    """A folder's job stopped part way (the disk is full), with the report of what it had done: the CLI still
    writes --report from it."""

    def __init__(self, message: str, report: RestoreReport) -> None:
        super().__init__(message)
        self.report = report


class Interrupted(KeyboardInterrupt):
    """A folder's job stopped by Ctrl-C or SIGTERM part way, with the report of what it had finished (marked
    interrupted) and what the stop leaves, for the line after 'interrupted' (`left`): the CLI still writes
    --report from it, then stops as for any interrupt."""

    def __init__(self, report: RestoreReport, left: str) -> None:
        super().__init__()
        self.report = report
        self.left = left


def finished(report: RestoreReport) -> Interrupted:
    """The stop of a job whose output was already in place (Ctrl-C or SIGTERM while Ray shuts down, or the date
    is set, or the summary is said): the command still ends as stopped, but says that the output is whole and
    kept, where it said 'no partial output was left' of a finished file. --report is written from `report`."""
    return Interrupted(report, f" once its output was finished: {report.output} is whole and kept")


@contextmanager
def kept_when_stopped(report: RestoreReport) -> Iterator[None]:
    """The steps after a job's output is in place: a stop there raises finished(report), not a bare interrupt
    (a folder's own Interrupted passes as it is)."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt as stop:
        raise finished(report) from stop


@dataclass
class RestoreReport:
    """The outcome of one job; `to_json()` is what `--report report.json` writes.

    frames: video frames written (a video, or the videos of a folder); images: photos restored (a photo or a
    folder); videos: videos restored (a folder);
    faces: face crops restored; tracks: face tracks (distinct people-in-time; one per face for photos);
    skipped: photos already done and left alone; sidecars: XMP sidecar copies written beside those (missing, or
    older than their sidecar: pipeline.sidecars_brought_up_to_date); failed: "path: reason" for photos that could not be read;
    stages: seconds per stage (decode, detect, track, align, identity, restore, paste, encode).
    deinterlaced: the video's frames went through the deinterlacer (--deinterlace) before the faces were found.
    settings: what the job ran with, resolved (JobSettings; for a folder its photos', None for a job that found
    its output done); video_settings: a folder's videos' (their codecs joined when they differ), else None.
    warnings: every warning line logged while the job ran, in order (on Ray the workers' too: each segment or
    shard of photos brings back its lines, which the driver logs once each).
    interrupted: a folder's job stopped by Ctrl-C or SIGTERM (Interrupted); the counts are the files it finished.
    unfinished: the files (paths in the folder) such a job had still to restore when it was stopped, which a rerun
    restores: the one it was on, and those after it.
    left_alone: the files whose faces were left alone (a folder's by their paths in it, a photo's by its name),
    each photo's faces listed (types.LeftAlone: box, why, span, size); a video of a folder is named with none
    listed, its frames' faces counted in faces_left_alone. A folder's summary names them: '2 left alone' did not
    say where to look.
    """

    input: str
    output: str
    kind: str  # video | image | folder
    model: str
    device: str
    frames: int = 0
    images: int = 0
    videos: int = 0
    faces: int = 0
    faces_left_alone: int = 0
    tracks: int = 0
    skipped: int = 0
    sidecars: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    deinterlaced: bool = False
    settings: JobSettings | None = None
    video_settings: JobSettings | None = None
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    unfinished: list[str] = field(default_factory=list)
    left_alone: dict[str, list[dict]] = field(default_factory=dict)

    def add_counts(self, done: RestoreReport) -> None:
        """Fold a finished job's frames, faces and tracks into this folder's report (its seconds are the caller's),
        and the faces it left alone under its path in the folder (a Ray worker's photo, a video)."""
        self.frames += done.frames
        self.faces += done.faces
        self.faces_left_alone += done.faces_left_alone
        self.tracks += done.tracks
        if done.faces_left_alone:
            self.left_alone[os.path.relpath(done.input, self.input)] = [
                face for faces in done.left_alone.values() for face in faces]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path: str | Path) -> None:
        """Write the JSON report atomically (temporary name, then rename), into its folder, made where missing as
        a job's output folder is. A file system's refusal (a full disk) is a one-line ClrfaceError that names the
        report: a bare 'No space left on device' after a job that wrote its output did not say which file could
        not be written."""
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with atomic(path) as temp:
                temp.write_text(self.to_json() + "\n", encoding="utf-8")
        except OSError as error:
            raise ClrfaceError(f"cannot write the report {path} ({reason(error)})") from error

    def summary(self) -> str:
        """One line for the terminal: what was done and where the output is."""
        brought = f", {_count(self.sidecars, 'sidecar')} brought up to date" if self.sidecars else ""
        if self.kind != "folder" and self.skipped:
            return f"already restored, left as is{brought} (pass --overwrite to redo it) -> {self.output}"
        if self.kind == "video":
            done = f"{_count(self.faces, 'face crop')} in {_count(self.frames, 'frame')} ({_count(self.tracks, 'track')})"
            if self.deinterlaced:
                done += ", deinterlaced"
        else:
            done = f"{_count(self.faces, 'face')} in {_count(self.images, 'image')}"
            if self.videos:
                done += f" and {_count(self.videos, 'video')} ({_count(self.frames, 'frame')})"
            if self.skipped:
                done += f", {self.skipped} already done{brought}"
            if self.failed:
                done += f", {len(self.failed)} failed"
        if self.faces_left_alone:
            where = f": {_some(list(self.left_alone))}" if self.kind == "folder" and self.left_alone else ""
            done += f"; {self.faces_left_alone} left alone (too small or too large for the model{where})"
        return f"restored {done} with {self.model} in {self.seconds:.1f} s -> {self.output}"


NAMED = 3  # the files a summary names before 'and N more'


def _some(names: list[str]) -> str:
    """A few names, then how many more: 'a.jpg, b.jpg, c.jpg and 2 more' (the report lists them all)."""
    if len(names) <= NAMED:
        return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
    return f"{', '.join(names[:NAMED])} and {len(names) - NAMED} more"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
