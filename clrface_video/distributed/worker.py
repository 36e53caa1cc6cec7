"""The Ray worker: an actor that loads the models once and runs detect, identity and restore jobs on its share."""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RestoreConfig
from ..errors import ClrfaceError, disk_full, failure_line, named_as
from ..faces.align import align_face
from ..faces.detect import upright
from ..faces.shots import is_cut, thumbnail
from ..io.damage import Damage
from ..io.decode import VideoInfo
from ..io.deinterlace import bwdif_deint
from ..io.encode import VideoWriter
from ..io.pixels import to_uint8
from ..paths import check_within
from ..pipeline import job_settings, load_models, restore_image
from ..report import JobSettings, RestoreReport, StageTimer, warnings_logged
from ..story import FaceJob, FrameStory, Models
from ..types import Face, Frame
from .plan import FacePlan
from .segments import Segment, read_segment

CRASH_ONCE = "CLRFACE_RAY_CRASH_ONCE"  # tests: a marker path; the first restore call that finds it absent exits


@dataclass(frozen=True)
class SegmentResult:
    """What restoring one segment reports back: frames written, crops restored, seconds per stage, and the
    warning lines logged meanwhile (Ray does not bring a worker's log to the driver, which says them)."""

    number: int
    frames: int
    faces: int
    stages: dict[str, float]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SegmentFile:
    """Where and how a worker writes one segment: the job's encoder (ray_codec: the output's --codec auto, MPEG-2
    for an .mpg, not the segment container's own), and the quarter turns that write its frames upright for an
    output that keeps no rotation tag (output_stream.upright_turns), so that the join copies what a local run
    would have encoded."""

    path: Path
    codec: str
    turns: int = 0


@dataclass(frozen=True)
class ShardResult:
    """What restoring a shard of photos reports back: each photo's report, or 'path: reason' where it could not be
    restored, and the warning lines logged meanwhile (for the driver to say, as for a segment); `full`: the photo
    (its path in the folder) that could not be written for a full disk, where the shard stopped (the driver
    stops the folder there, as a local run does)."""

    photos: list[RestoreReport | str]
    warnings: tuple[str, ...] = ()
    full: Path | None = None


@dataclass(frozen=True)
class ShardProgress:
    """A shard of photos (paths in the folder) and what restoring it has reported so far: its first photos'
    reports (or 'path: reason') and the warning lines logged meanwhile; on the worker, the lists it fills."""

    relatives: list[Path]
    photos: list[RestoreReport | str]
    warnings: list[str]

    def copy(self) -> ShardProgress:
        return ShardProgress(list(self.relatives), list(self.photos), list(self.warnings))


class PlannedRestorer(FrameStory):
    """FrameStory whose faces come from the whole-video plan (no detection or tracking on the worker).

    Batching, the bounded frame window and paste-back are the local ones; only step 2-4 differ.
    """

    def __init__(self, models: Models, config: RestoreConfig, timer: StageTimer,
                 faces: dict[int, list[FacePlan]], identities: dict[tuple[int, int], np.ndarray],
                 pixel_aspect: float = 1.0) -> None:
        super().__init__(models, config, timer, video=True, track=False,  # smoothing restarts with each segment
                         pixel_aspect=pixel_aspect)
        self.planned = faces
        self.identities = identities

    def faces_of(self, frame: Frame) -> list[FaceJob]:
        image = to_uint8(frame.image)
        jobs = []
        for face in self.planned.get(frame.index, ()):
            with self.timer("align"):
                crop = align_face(image, face.landmarks, self.size,  # 4 align, from the planned landmarks
                                  pixel_aspect=self.pixel_aspect)
            key = face.identity_key
            identity = None if key is None else self.identities[key]
            jobs.append(FaceJob(crop.image, crop.matrix, identity, face.seed, face.track_id, face.weight))
        return jobs


def _named(job: Callable[..., Any]) -> Callable[..., Any]:
    """A worker's job, its messages naming options as the driver's front end does (the CLI's --preset, not the
    keyword preset): errors.named_as there holds in the driver's thread only."""

    @functools.wraps(job)
    def run(self: RestoreWorker, *args: Any, **kwargs: Any) -> Any:
        with named_as(self.names):
            return job(self, *args, **kwargs)

    return run


class RestoreWorker:
    """One worker process: models loaded once in __init__, then any number of segment or photo jobs."""

    def __init__(self, config: RestoreConfig, video: bool, names: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.names = names or {}
        self.models = load_models(config, video=video)
        self.shard = ShardProgress([], [], [])

    def describe(self) -> tuple[str, str, int, bool]:
        """(restorer name, torch device, crop resolution, whether faces get per-track identity), for the driver."""
        restorer = self.models.restorer
        return (getattr(restorer, "name", type(restorer).__name__), str(self.models.device), restorer.resolution,
                self.models.identity is not None)

    def settings(self, codec: str) -> JobSettings:
        """What a video job runs with on this worker's models, written with `codec` (the report's settings)."""
        return job_settings(self.config, self.models, video=True, codec=codec)

    def deint(self, info: VideoInfo) -> str | None:
        """The deinterlacing of this job's video (io.deinterlace.bwdif_deint), the same in every segment."""
        return bwdif_deint(self.config.deinterlace, info.interlaced)

    # -- videos ------------------------------------------------------------------------------------
    @_named
    def detect(self, source: Path, segment: Segment,
               info: VideoInfo) -> tuple[list[int | None], list[list[Face]], list[int], list[list[Any]], int]:
        """Step 2 on one segment: each frame's pts and detected faces, in presentation order; the positions of
        the frames after a cut (faces.shots), and the first and last frames' thumbnails (as lists), with which
        the driver sees a cut between two segments; and the frames left out as damaged (io.damage), which a
        stated frame count counts (distributed.video.frames_counted)."""
        pts, faces, cuts = [], [], []
        first = before = None
        damage = Damage()
        detector = upright(self.models.detector, info.rotation)  # faces looked for upright, kept in stored pixels
        frames = read_segment(source, segment, info.bit_depth > 8, 0, self.deint(info),
                              check_end=False, damage=damage)  # counted from 0: the restore, counting on, checks the end
        for position, frame in enumerate(frames):
            image = to_uint8(frame.image)
            pts.append(frame.pts)
            faces.append(detector.detect(image))
            thumb = thumbnail(image)
            if is_cut(before, thumb):
                cuts.append(position)
            first, before = thumb if first is None else first, thumb
        ends = [] if first is None or before is None else [first.tolist(), before.tolist()]
        return pts, faces, cuts, ends, damage.frames

    @_named
    def embed(self, source: Path, segment: Segment, info: VideoInfo, first_index: int,
              samples: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """Identity embeddings of the due faces (frame index, landmarks) of a segment, one crop per call as locally."""
        assert self.models.identity is not None
        wanted: dict[int, list[tuple[int, np.ndarray]]] = {}
        for order, (index, landmarks) in enumerate(samples):
            wanted.setdefault(index, []).append((order, landmarks))
        out = np.zeros((len(samples), 0), np.float32)
        last = max(wanted)
        for frame in read_segment(source, segment, info.bit_depth > 8, first_index, self.deint(info)):
            for order, landmarks in wanted.get(frame.index, ()):
                embedding = self.models.identity.embed_face(to_uint8(frame.image), landmarks,
                                                            self.models.restorer.resolution, info.pixel_aspect)
                if out.shape[1] == 0:
                    out = np.zeros((len(samples), len(embedding)), np.float32)
                out[order] = embedding
            if frame.index >= last:
                break
        return out

    @_named
    def restore_segment(self, source: Path, segment: Segment, info: VideoInfo, first_index: int,
                        faces: dict[int, list[FacePlan]], identities: dict[tuple[int, int], np.ndarray],
                        output: SegmentFile) -> SegmentResult:
        """Steps 4-7 on one segment into its own file (written under a temporary name, then renamed)."""
        timer = StageTimer()
        story = PlannedRestorer(self.models, self.config, timer, faces, identities, info.pixel_aspect)
        frames = 0
        with warnings_logged() as lines, VideoWriter(output.path, source, replace(info, other_streams=0),
                                                     codec=output.codec, crf=self.config.crf,
                                                     preset=self.config.preset, turns=output.turns,
                                                     segment=True) as writer:
            decoded = read_segment(source, segment, info.bit_depth > 8, first_index, self.deint(info), samples=True)
            for frame in story.run(decoded):
                with timer("encode"):
                    writer.write(frame)
                frames += 1
                _crash_once_for_tests()
        return SegmentResult(segment.number, frames, story.counts.faces, timer.rounded(), tuple(lines))

    # -- photos ------------------------------------------------------------------------------------
    @_named
    def restore_one(self, source: Path, output: Path | None) -> RestoreReport:
        """One photo, exactly restore_image (its report holds the warnings logged, for the driver to say)."""
        return restore_image(source, output, self.config, models=self.models)

    @_named
    def restore_photos(self, source: Path, target: Path, relatives: list[Path]) -> ShardResult:
        """The local per-photo job (restore_image) for each photo of a shard; 'path: reason' for unreadable ones.
        A full disk stops the shard at the photo it could not write: every photo after it would fail alike."""
        out: list[RestoreReport | str] = []
        full: Path | None = None
        redo = replace(self.config, overwrite=True)  # each one the driver found not done or stale (photos.undone)
        with warnings_logged() as lines:  # a photo that failed may have warned before, as locally
            self.shard = ShardProgress(relatives, out, lines)  # the same lists, filled as it goes
            for relative in relatives:
                destination = target / relative
                try:
                    check_within(destination, target)  # never through a link in the output tree onto an original
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    out.append(restore_image(source / relative, destination, redo, models=self.models))
                except (ClrfaceError, OSError) as error:  # this photo's file (read, metadata, write): as locally
                    if not (isinstance(error, ClrfaceError) or disk_full(error)):
                        raise  # a full disk is the file's too: a photo copied as it was (no face) meets it bare
                    out.append(failure_line(relative, error))
                    if disk_full(error):  # told here, where the error's causes (its errno) still are
                        full = relative
                        break
                _crash_once_for_tests()
        return ShardResult(out, tuple(lines), full)

    def shard_so_far(self) -> ShardProgress:
        """The shard restore_photos is on (or last ran) and the photos it has finished so far, answered while it
        runs (the photo workers are threaded actors): a folder stopped by Ctrl-C or SIGTERM reports them, with
        their faces and settings, before it kills this worker."""
        return self.shard.copy()


def _crash_once_for_tests() -> None:
    """If $CLRFACE_RAY_CRASH_ONCE names a missing file, create it and kill this worker process (fault tests)."""
    marker = os.environ.get(CRASH_ONCE)
    if marker and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(17)
