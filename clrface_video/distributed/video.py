"""A video on Ray: keyframe segments -> detect -> whole-video tracking plan -> identity -> restore -> join."""
from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic, keep_date_and_mode
from ..config import RestoreConfig
from ..errors import ClrfaceError, ModelError, backend_name, one_line, option_name
from ..faces.identity import IdentityEncoder, load_identity_encoder
from ..faces.shots import is_cut
from ..io.completeness import check_frame_count
from ..io.decode import VideoInfo, probe_video
from ..io.deinterlace import bwdif_deint
from ..io.encode import AUTO
from ..io.output_stream import (
    auto_codec,
    check_codec,
    check_mxf_rate,
    container_takes,
    muxer_name,
    other_containers,
    upright_turns,
)
from ..io.palette import is_gif
from ..io.pixels import to_uint8
from ..paths import check_writable, resolve_paths
from ..pipeline import already_done, finish_report
from ..report import Progress, RestoreReport, StageTimer, kept_when_stopped, reports_warnings
from ..reruns import left_as_is
from ..types import Face, Frame
from .cluster import ask, run_all, say_warnings
from .plan import FacePlan, VideoPlan, identity_versions, track_video
from .segments import Segment, join_segments, plan_segments, read_segment, segment_complete, segment_suffix
from .worker import SegmentFile, SegmentResult

log = logging.getLogger(__name__)

SEGMENTS_PER_WORKER = 4  # more segments than workers, so a slow segment does not hold up the others
JOB_VERSION = 4  # 2: JSON and .npy state (1 pickled it); 3: detections carry shot cuts; 4: segments in the job's
# codec (an .mpg's MPEG-2, not H.264), upright for an output that keeps no rotation


def _to_json(value: Any) -> Any:
    """Segments, faces, tuples and lists as JSON values, tagged so that _from_json rebuilds them."""
    if isinstance(value, Segment):
        return {"segment": [value.number, value.start, value.end]}
    if isinstance(value, Face):
        return {"face": [value.box.tolist(), value.landmarks.tolist(), float(value.score)]}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "segment" in value:
        return Segment(*value["segment"])
    if isinstance(value, dict) and "face" in value:
        box, landmarks, score = value["face"]
        return Face(np.array(box, np.float32), np.array(landmarks, np.float32), score)
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    return value


class JobFolder:
    """The resumable state of one video job, hidden beside its output: segment split, detections, segment files.

    Everything is written under a temporary name and renamed, so whatever exists is complete. A
    folder left by a job with another input, output or settings is emptied first; it is deleted
    when the output has been joined.
    """

    def __init__(self, source: Path, target: Path, config: RestoreConfig, codec: str, turns: int = 0) -> None:
        self.path = target.with_name(f".{target.name}.ray-job")
        self.codec = codec  # the encoder the segments are written with
        self.turns = turns  # and the quarter turns their frames are written upright with (output_stream.upright_turns)
        self.suffix = segment_suffix(target, codec)
        stat = source.stat()
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                    if k not in ("overwrite", "quiet")}
        self.key = {"version": JOB_VERSION, "source": str(source.resolve()), "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns, "output": str(target.resolve()), "config": settings}

    def open(self) -> None:
        key_file = self.path / "job.json"
        if self.path.exists() and (not key_file.exists() or json.loads(key_file.read_text()) != self.key):
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if not key_file.exists():
            self.save_text("job.json", json.dumps(self.key, indent=1))

    def save_text(self, name: str, text: str) -> None:
        with atomic(self.path / name) as temp:
            temp.write_text(text)

    def save(self, name: str, value: Any) -> None:
        """JSON (segments, detections) or, for a .npy name, an array (identity embeddings); never a pickle,
        so a job folder holds no code to run."""
        with atomic(self.path / name) as temp:
            if name.endswith(".npy"):
                with open(temp, "wb") as file:
                    np.save(file, np.asarray(value), allow_pickle=False)
            else:
                temp.write_text(json.dumps(_to_json(value)))

    def load(self, name: str) -> Any:
        path = self.path / name
        if not path.exists():
            return None
        if name.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        return _from_json(json.loads(path.read_text()))

    def segment_file(self, segment: Segment) -> Path:
        return self.path / f"segment_{segment.number:05d}{self.suffix}"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


JOINED_AUTO_CODECS = frozenset({"libx264", "mpeg2video"})  # what --codec auto may give segments that are joined


def ray_codec(target: Path, info: VideoInfo, config: RestoreConfig) -> str:
    """The encoder of a video job on Ray, or a one-line error for what its segments cannot carry (an alpha
    channel, .avi, a GIF or animated PNG, a container that cannot hold the codec); asked before Ray starts."""
    if target.suffix.lower() == ".avi":
        raise ClrfaceError(f"{backend_name('ray')} cannot write .avi (segments are joined with B-frames); use .mp4 "
                           "or .mkv")
    if info.alpha:
        raise ClrfaceError(f"{backend_name('ray')} does not carry a video's alpha channel; restore it with "
                           f"{backend_name('local')}")
    if config.codec == AUTO and auto_codec(target) not in JOINED_AUTO_CODECS:
        raise ClrfaceError(f"{backend_name('ray')}: give {option_name('codec')} for a {target.suffix} output, or "
                           f"restore it with {backend_name('local')}")
    if is_gif(target) or target.suffix.lower() in (".png", ".apng"):
        raise ClrfaceError(f"{backend_name('ray')} cannot write a GIF or an animated PNG; restore it with "
                           f"{backend_name('local')}")
    check_mxf_rate(target, info.fps)  # as the local writer does, not as the join opens the .mxf
    codec = check_codec(config.codec if config.codec != AUTO else auto_codec(target, info))
    if not container_takes(target.suffix, codec):  # before the segments are restored, not when they are joined
        raise ClrfaceError(f"a {target.suffix} file cannot hold {codec} video; use {other_containers(target, codec)}, "
                           f"or another {option_name('codec')}")
    return codec


@reports_warnings
def restore_video_ray(ray: Any, actors: list[Any], input: str | Path, output: str | Path | None = None,
                      config: RestoreConfig | None = None, *, progress: Progress | None = None) -> RestoreReport:
    """Restore a video on the worker actors; the output matches restore_video's frames, timestamps and streams."""
    config = config or RestoreConfig()
    start = time.perf_counter()
    source, target = resolve_paths(input, output)  # 0 check the input before any work
    info = probe_video(source)
    if left_as_is(source, target, config):
        return already_done(source, target, "video", config, local=False)
    check_writable(target.parent, target.name)  # one to redo: its folder is asked once it must be written
    codec = ray_codec(target, info, config)
    target.parent.mkdir(parents=True, exist_ok=True)
    job = JobFolder(source, target, config, codec, upright_turns(info, muxer_name(target)))
    job.open()
    timer = StageTimer()
    try:
        report = _run_job(ray, actors, job, source, target, info, config, progress, timer)
    except ClrfaceError:  # a fault in this video or these settings: a rerun would meet it again, so nothing to keep
        job.remove()
        raise
    return finish_report(report, None, timer, start)  # counts come from the plan, not a local FrameStory


def _run_job(ray: Any, actors: list[Any], job: JobFolder, source: Path, target: Path, info: VideoInfo,
             config: RestoreConfig, progress: Progress | None, timer: StageTimer) -> RestoreReport:
    """Steps 1-7 of restore_video_ray in its job folder (kept on a crash, so that a rerun resumes)."""
    segments = job.load("segments.json")
    if segments is None:
        segments = plan_segments(source, SEGMENTS_PER_WORKER * len(actors))  # 1 split at keyframes
        job.save("segments.json", segments)
    name, device, resolution, with_identity = ask(ray, actors[0].describe)
    with timer("detect"):
        segments, pts, detections, cuts = _detect(ray, actors, job, source, info, segments)  # 2 detect, per segment
    first_index = np.cumsum([0] + [len(p) for p in pts]).tolist()
    embedder = _driver_embedder(source, info, config, segments, first_index, device, resolution) \
        if with_identity else None
    with timer("track"):
        plan = track_video([faces for part in detections for faces in part], config, resolution,
                           with_identity, info.pixel_aspect, cuts, embedder)  # 3 track
    with timer("identity"):
        identities = _identities(ray, actors, job, source, info, segments, first_index, plan)
    report = RestoreReport(input=str(source), output=str(target), kind="video", model=name, device=device,
                           deinterlaced=bwdif_deint(config.deinterlace, info.interlaced) is not None,
                           settings=ask(ray, actors[0].settings, job.codec))
    if progress is not None:
        progress.start(sum(len(p) for p in pts), "frames")
    results = _restore(ray, actors, job, source, info, segments, first_index, plan, identities, pts,
                       progress)  # 4 align, 5 restore, 6 paste, 7 encode: one file per segment
    with timer("encode"):
        report.frames = join_segments([job.segment_file(s) for s in segments], pts, target, source, info)  # join
    with kept_when_stopped(report):  # the output is in place: a stop from here on says that it is kept
        for result in results:
            for stage, seconds in result.stages.items():
                timer.add(stage, seconds)
        report.faces = sum(len(faces) for faces in plan.faces)
        report.faces_left_alone = plan.left_alone
        report.tracks = len(plan.track_ids)
        keep_date_and_mode(source, target)  # as restore_video's copy
        job.remove()
    return report


def _detect(ray: Any, actors: list[Any], job: JobFolder, source: Path, info: VideoInfo, segments: list[Segment]
            ) -> tuple[list[Segment], list[list[int | None]], list[list[list[Face]]], set[int]]:
    """The segments that hold frames, and per segment: frame pts and faces (each result is saved as it arrives,
    and kept by a rerun); and the (global) indices of the frames that start a new shot, a segment's first frame
    included. A segment before the last whose every frame was damaged (an animated PNG's one-frame segment) is
    left out, as read_frames leaves its frames out; any other that decoded no frames is refused."""
    names = [f"detect_{s.number:05d}.json" for s in segments]
    found = [job.load(name) for name in names]
    todo = [i for i, value in enumerate(found) if value is None]
    run_all(ray, actors, "detect", [(source, segments[i], info) for i in todo],
            on_done=lambda position, result: job.save(names[todo[position]], result))
    found = [job.load(name) for name in names]
    check_frame_count(source, frames_counted(found))  # an animated PNG cut short, as read_frames says it
    empty = {i for i, (p, *_) in enumerate(found) if not p}
    if any(i == len(found) - 1 or not frames_counted([found[i]]) for i in empty):
        raise ClrfaceError(f"{source.name}: a keyframe segment decoded to no frames; use {backend_name('local')}")
    segments, found = [s for i, s in enumerate(segments) if i not in empty], [r for i, r in enumerate(found) if i not in empty]
    return segments, [p for p, *_ in found], [faces for _, faces, *_ in found], shot_cuts(found)


def frames_counted(found: list[Any]) -> int:
    """The frames the segments' detect results count: those read, and those left out as damaged (a result saved
    by an older version, resumed, has no such count). Why: an animated PNG with a damaged frame, passed over as
    read_frames passes it over, was refused as cut short ('decoding stopped after 5 of its 6 frames')."""
    return sum(len(pts) + (lost[0] if lost else 0) for pts, _, _, _, *lost in found)


def shot_cuts(found: list[Any]) -> set[int]:
    """The global indices of the frames that start a new shot, from the segments' detect results in order: the
    cuts each worker saw inside its segment, and a segment's first frame where it differs from the last
    frame of the segment before as a cut does (faces.shots)."""
    cuts: set[int] = set()
    start, last = 0, None
    for pts, _, inside, (first, final), *_ in found:
        cuts.update(start + position for position in inside)
        if is_cut(last, np.asarray(first, np.uint8)):
            cuts.add(start)
        start, last = start + len(pts), np.asarray(final, np.uint8)
    return cuts


def _identities(ray: Any, actors: list[Any], job: JobFolder, source: Path, info: VideoInfo,
                segments: list[Segment], first_index: list[int], plan: VideoPlan) -> dict[tuple[int, int], np.ndarray]:
    """The identity of every track at every sample, from embeddings of the due faces (saved for a rerun)."""
    if not plan.samples:
        return {}
    if all(s.embedding is not None for s in plan.samples):  # the driver embedded them while tracking
        return identity_versions(plan.samples, np.stack([s.embedding for s in plan.samples]))  # type: ignore[misc]
    embeddings = job.load("identity.npy")
    if embeddings is None or len(embeddings) != len(plan.samples):
        owner = np.searchsorted(first_index, [s.index for s in plan.samples], side="right") - 1
        parts = sorted(set(owner.tolist()))
        jobs = [(source, segments[k], info, first_index[k],
                 [(s.index, s.landmarks) for s, o in zip(plan.samples, owner) if o == k]) for k in parts]
        found = run_all(ray, actors, "embed", jobs)
        embeddings = np.concatenate(found)  # segments in order, samples within each in order
        job.save("identity.npy", embeddings)
    return identity_versions(plan.samples, embeddings)


class DriverEmbedder:
    """Faces embedded on the driver, in frame order, from the frames read segment by segment as the workers read
    them: the embeddings the tracking plan needs while it tracks (plan.track_video's embedder)."""

    def __init__(self, encoder: IdentityEncoder, frames: Iterator[Frame], resolution: int,
                 pixel_aspect: float) -> None:
        self.encoder, self.frames, self.resolution, self.pixel_aspect = encoder, frames, resolution, pixel_aspect
        self.index, self.image = -1, np.zeros((0, 0, 3), np.uint8)

    def __call__(self, index: int, landmarks: np.ndarray) -> np.ndarray:
        while self.index < index:
            frame = next(self.frames)
            self.index, self.image = frame.index, to_uint8(frame.image)
        return self.encoder.embed_face(self.image, landmarks, self.resolution, self.pixel_aspect)

    def informative(self, embedding: np.ndarray) -> bool:
        return self.encoder.informative(embedding)


def _driver_embedder(source: Path, info: VideoInfo, config: RestoreConfig, segments: list[Segment],
                     first_index: list[int], device: str, resolution: int) -> DriverEmbedder | None:
    """An embedder on the workers' device where the driver has it (else the CPU); None where the driver has no
    FaceNet, said in one warning: the plan then associates by IoU only, and re-joins no one. The workers, which
    have it, still give each track its identity: identity_encoder_or_none's 'identity guidance off' said
    otherwise, and nothing of the people a local run would have re-joined."""
    import torch

    try:
        encoder = load_identity_encoder(device if device == "cpu" or torch.cuda.is_available() else "cpu")
    except (ImportError, ModelError) as error:
        log.warning("%s: a person who leaves the picture, or is cut away from, and comes back is restored as "
                    "someone new (another identity and noise seed), not re-joined to their first track as %s "
                    "does: this machine, which tracks the faces for %s, has no FaceNet (%s)", source.name,
                    backend_name("local"), backend_name("ray"), one_line(error))
        return None
    deint = bwdif_deint(config.deinterlace, info.interlaced)
    frames = chain.from_iterable(read_segment(source, segment, info.bit_depth > 8, first_index[k], deint)
                                 for k, segment in enumerate(segments))
    return DriverEmbedder(encoder, frames, resolution, info.pixel_aspect)


def planned_faces(plan: VideoPlan, identities: dict[tuple[int, int], np.ndarray], start: int,
                  stop: int) -> tuple[dict[int, list[FacePlan]], dict[tuple[int, int], np.ndarray]]:
    """The faces of frames start..stop-1 for a worker, and the identity versions they refer to."""
    faces = {index: plan.faces[index] for index in range(start, stop) if plan.faces[index]}
    keys = {face.identity_key for planned in faces.values() for face in planned} - {None}
    table = {key: identities[key] for key in keys}
    return faces, table


def _restore(ray: Any, actors: list[Any], job: JobFolder, source: Path, info: VideoInfo,
             segments: list[Segment], first_index: list[int], plan: VideoPlan,
             identities: dict[tuple[int, int], np.ndarray], pts: list[list[int | None]],
             progress: Progress | None) -> list[SegmentResult]:
    """Restore each segment not already complete in the job folder into its own file."""
    jobs = []
    for k, segment in enumerate(segments):
        if segment_complete(job.segment_file(segment), info, pts[k]):
            if progress is not None:
                progress.advance(len(pts[k]))
            continue
        faces, table = planned_faces(plan, identities, first_index[k], first_index[k + 1])
        jobs.append((source, segment, info, first_index[k], faces, table,
                     SegmentFile(job.segment_file(segment), job.codec, job.turns)))

    said: set[str] = set()

    def done(position: int, result: SegmentResult) -> None:
        say_warnings(result.warnings, said)
        if progress is not None:
            progress.advance(result.frames)

    return run_all(ray, actors, "restore_segment", jobs, on_done=done)
