"""The restore story: decode -> detect -> track -> align -> restore (batches) -> paste -> encode."""
from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RestoreConfig
from .device import pick_device
from .errors import ClrfaceError, InputError
from .faces.align import align_face, estimate_similarity, face_footprint
from .faces.detect import FaceDetector, make_detector, upright
from .faces.identity import IdentityEncoder, load_identity_encoder
from .faces.paste import paste_faces
from .faces.track import FaceTracker, IdentitySchedule, TrackerParams
from .io.decode import FIELD_PROGRESSIVE, VideoInfo, is_image_path, probe_video, read_frames
from .io.deinterlace import bwdif_deint
from .io.encode import VideoWriter, output_exists
from .io.photo_read import Photo, read_photo
from .io.photo_write import copy_photo, fit_format, format_for, write_photo
from .io.pixels import to_uint8
from .io.sequence import is_sequence
from .paths import output_folder, resolve_paths
from .report import Progress, RestoreReport, StageTimer
from .restore.base import RestoreBatch, Restorer, make_restorer
from .restore.temporal import TrackMemory
from .types import Face, Frame, TimeSpan, TrackedFace

log = logging.getLogger(__name__)
DTYPES = (np.uint8, np.uint16, np.float32)  # the images the pipeline takes (float32 in 0..1)
FLOAT_MAX = 2.0  # a float32 image above this is on the 0..255 scale, not 0..1
# Beyond min_face and max_upscale a face's restoration fades out over this share of the limit instead of
# stopping at it (a face hovering at a limit would otherwise pop in and out of restoration).
SIZE_FADE = 0.25
# Video: the blend gate's share for a face is averaged along its track (an exponential moving average,
# restore.temporal.TrackMemory), so the restoration's strength does not pulse from frame to frame.
SHARE_SMOOTHING = 0.9


# -- models -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Models:
    """What a job loads once: the face detector, the restorer, and (videos) the identity encoder."""

    device: torch.device
    detector: FaceDetector
    restorer: Restorer
    identity: IdentityEncoder | None = None  # per-track identity in videos


ModelsFor = Callable[[bool], Models]  # the loaded models for a video job (True) or a photo job (False)


def load_models(config: RestoreConfig, *, video: bool) -> Models:
    """Build detector, restorer and (for videos with track identity) the identity encoder."""
    device = pick_device(config.device)
    detector = make_detector(config.detector, insightface_root=config.insightface_root,
                             threshold=config.det_threshold, device=str(device))
    restorer = make_restorer(config.model, device=device, fidelity=config.fidelity, compile=config.compile)
    identity = load_identity_encoder(str(device)) if needs_identity_encoder(config, restorer, video=video) else None
    return Models(device=device, detector=detector, restorer=restorer, identity=identity)


def needs_identity_encoder(config: RestoreConfig, restorer: Restorer, *, video: bool) -> bool:
    """Whether a job computes per-track identity targets: videos with track identity, for a restorer whose
    identity guidance runs (and so needs a target)."""
    guided = config.identity_guidance and getattr(restorer, "uses_identity", True)
    return video and config.track_identity and guided


# -- the frame story (steps 2-6), shared by videos, photos and restore_frames ---------------------
@dataclass
class _FaceJob:
    """One aligned face waiting for the restorer, and where its result goes."""

    crop: np.ndarray  # (S, S, 3) uint8
    matrix: np.ndarray  # (2, 3) frame -> crop
    identity: np.ndarray | None  # (D,) track identity, or None: the restorer takes it from the crop
    seed: int
    track: int
    weight: float = 1.0  # share of the restored face pasted over the input (paste_weight)
    restored: np.ndarray | None = None


@dataclass
class _Waiting:
    """A frame queued until all of its faces are restored."""

    frame: Frame
    jobs: list[_FaceJob] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(job.restored is not None for job in self.jobs)


@dataclass
class Counts:
    faces: int = 0  # crops restored
    left_alone: int = 0  # faces too small or too large for the model
    track_ids: set[int] = field(default_factory=set)


def out_of_memory(error: BaseException) -> bool:
    """Whether a restorer's error is the device running out of memory (CUDA's allocator, or the CPU's)."""
    return isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in str(error)


def size_weight(span: float, min_span: float, footprint: float, max_footprint: float) -> float:
    """1 for min_span <= span and footprint <= max_footprint, fading linearly to 0 at (1 - SIZE_FADE) x min_span
    and at (1 + SIZE_FADE) x max_footprint."""
    small = 1.0 if min_span <= 0 else (span / min_span - (1.0 - SIZE_FADE)) / SIZE_FADE
    large = ((1.0 + SIZE_FADE) - footprint / max_footprint) / SIZE_FADE
    return float(np.clip(min(small, large), 0.0, 1.0))


def eye_mouth_span(landmarks: np.ndarray) -> float:
    """Distance in pixels from the midpoint of the eyes to the midpoint of the mouth corners."""
    marks = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(marks[3:5].mean(0) - marks[0:2].mean(0)))


def paste_weight(landmarks: np.ndarray, config: RestoreConfig, size: int, pixel_aspect: float = 1.0) -> float:
    """How much of a restored face is pasted: --strength when it is a number (auto leaves the share to the
    restorer's blend gate), times the size weight: 1 inside the range the model handles (config.min_face,
    config.max_upscale), fading to 0 over the SIZE_FADE beyond either limit, so a face whose size hovers at a
    limit is not restored in one frame and left alone in the next."""
    strength = 1.0 if config.strength is None else config.strength
    return strength * size_weight(eye_mouth_span(landmarks), config.min_face,
                                  face_footprint(estimate_similarity(landmarks, size, pixel_aspect), size),
                                  config.max_upscale * size)


class FaceRestorer:
    """Steps 2-6 over a stream of frames, restoring crops in batches within a bounded window.

    Frames wait in a queue until their faces are restored; a batch is run as soon as
    `batch_size` crops are gathered or `batch_size` frames are waiting, so memory holds at most
    about `batch_size` frames whatever the length of the video.
    video=True: the frames are a video's (latent smoothing along tracks, latents decoded unsnapped by
    default) and faces are tracked across them (identity and noise seed per track) unless track=False
    says the tracks come from elsewhere; video=False treats every frame as an unrelated photo.
    pixel_aspect: width over height of the frames' pixels (VideoInfo.pixel_aspect); faces in anamorphic
    frames are aligned unsqueezed and pasted back squeezed.
    rotation: the frames' display rotation in degrees (VideoInfo.rotation); faces are looked for in
    frames turned upright, and aligned, restored and pasted in the frames as stored.
    """

    def __init__(self, models: Models, config: RestoreConfig, timer: StageTimer, *, video: bool,
                 track: bool | None = None, pixel_aspect: float = 1.0, rotation: int = 0) -> None:
        self.models = models
        self.detector = upright(models.detector, rotation)
        self.config = config
        self.timer = timer
        self.pixel_aspect = pixel_aspect
        self.size = models.restorer.resolution
        self.window = max(1, config.batch_size)
        self.batch_size = max(1, config.batch_size)  # halved for the rest of the job when a batch runs out of memory
        self.counts = Counts()
        self.stills_seen = 0
        self.tracking = _Tracking(models.identity, config, timer) if (video if track is None else track) else None
        smooth = video and config.temporal_smoothing > 0
        self.memory = TrackMemory(config.temporal_smoothing) if smooth else None  # latents along each track
        gated = video and config.strength is None
        self.share_memory = TrackMemory(SHARE_SMOOTHING) if gated else None  # blend-gate shares along each track
        self.snap = config.snaps(video)

    def run(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame, _ in self.run_masked(frames):
            yield frame

    def run_masked(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, np.ndarray | None]]:
        """run(), also yielding each frame's (H, W) float32 paste mask in 0..1 (None: nothing pasted)."""
        waiting: deque[_Waiting] = deque()
        batch: list[_FaceJob] = []
        for frame in frames:
            item = _Waiting(frame, self.faces_of(frame))  # 2 detect, 3 track, 4 align
            waiting.append(item)
            batch.extend(item.jobs)
            if len(batch) >= self.config.batch_size or len(waiting) >= self.window:
                self.restore(batch)  # 5 restore
                batch = []
            while waiting and waiting[0].ready:
                yield self.paste(waiting.popleft())  # 6 paste
        self.restore(batch)
        while waiting:
            yield self.paste(waiting.popleft())

    def faces_of(self, frame: Frame) -> list[_FaceJob]:
        """Detect, track and align the faces of one frame; faces the model cannot take are left alone."""
        image = to_uint8(frame.image)
        with self.timer("detect"):
            faces = self.detector.detect(image)  # 2 detect
        if self.tracking is not None:
            tracked = self.tracking.update(frame.index, faces)  # 3 track: ids and smoothed landmarks
        else:  # a photo: every face is its own track; noise seeds count from config.seed in each photo
            first, self.stills_seen = self.stills_seen, self.stills_seen + len(faces)
            tracked = [TrackedFace(face, first + i, face.landmarks) for i, face in enumerate(faces)]
        jobs = []
        for number, face in enumerate(tracked):
            weight = self.paste_weight(face.landmarks)
            if weight == 0.0:
                self.counts.left_alone += 1
                continue
            with self.timer("align"):
                crop = align_face(image, face.landmarks, self.size, pixel_aspect=self.pixel_aspect)  # 4 align
            if self.tracking is not None:
                identity, seed = self.tracking.identity_and_seed(frame.index, face, crop.image)
            else:
                # the face's number in its photo: the same seed whichever folder, shard or rerun restores it
                identity, seed = None, self.config.seed + number
            jobs.append(_FaceJob(crop.image, crop.matrix, identity, seed, face.track_id, weight))
            self.counts.track_ids.add(face.track_id)
        return jobs

    def paste_weight(self, landmarks: np.ndarray) -> float:
        return paste_weight(landmarks, self.config, self.size, self.pixel_aspect)

    def restore(self, jobs: list[_FaceJob]) -> None:
        """Run the restorer on the gathered crops, batch_size at a time (one device crossing each)."""
        start = 0
        while start < len(jobs):
            chunk = jobs[start:start + self.batch_size]
            identities = [job.identity for job in chunk]
            identity = np.stack(identities).astype(np.float32) if all(i is not None for i in identities) else None
            batch = RestoreBatch(crops=np.stack([job.crop for job in chunk]), identity=identity,
                                 seeds=np.array([job.seed for job in chunk], np.int64),
                                 tracks=np.array([job.track for job in chunk], np.int64), memory=self.memory,
                                 snap=self.snap, guidance=self.config.identity_guidance,
                                 gate=self.config.strength is None, gate_memory=self.share_memory)
            with self.timer("restore"):
                restored = self.restore_fitting(batch)
            if restored is None:
                continue  # out of memory: the same faces again, in the halved batch size
            for job, face in zip(chunk, restored):
                job.restored = face
            self.counts.faces += len(chunk)
            start += len(chunk)

    def restore_fitting(self, batch: RestoreBatch) -> np.ndarray | None:
        """The restored batch, or None when it ran out of memory: then the batch size is halved for the rest
        of the job (with a warning) and the smoothing states are as before the call, so the caller can retry."""
        states = [(m, dict(m.latents)) for m in (self.memory, self.share_memory) if m is not None]
        try:
            return self.models.restorer.restore(batch)
        except RuntimeError as error:  # torch.OutOfMemoryError is one
            if not out_of_memory(error):
                raise
            for memory, latents in states:
                memory.latents = latents
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            n = len(batch.crops)
            if n == 1:
                advice = ("close other programs to free memory" if self.models.device.type == "cpu" else
                          "close other programs using the GPU, or run with --device cpu")
                raise ClrfaceError(f"out of memory restoring a single face; {advice}") from error
            self.batch_size = n // 2
            log.warning("out of memory restoring %d faces at once: going on with batches of %d "
                        "(pass --batch-size %d to start there)", n, self.batch_size, self.batch_size)
            return None

    def paste(self, item: _Waiting) -> tuple[Frame, np.ndarray | None]:
        """Paste the restored faces into the frame at its own bit depth (and its mask); faceless frames pass through."""
        if not item.jobs:
            return item.frame, None
        with self.timer("paste"):
            image, mask = paste_faces(item.frame.image, [job.restored for job in item.jobs],
                                      [job.matrix for job in item.jobs], originals=[job.crop for job in item.jobs],
                                      detail=self.config.keep_detail, weights=[job.weight for job in item.jobs])
        return replace(item.frame, image=image), mask


class _Tracking:
    """Step 3 for videos: FaceTracker ids and smoothed landmarks, and each track's running-mean identity,
    fed from the faces IdentitySchedule picks."""

    def __init__(self, encoder: IdentityEncoder | None, config: RestoreConfig, timer: StageTimer) -> None:
        self.tracker = FaceTracker(TrackerParams(base_seed=config.seed))
        self.schedule = IdentitySchedule()
        self.encoder = encoder  # None: no per-track identity (the restorer takes it from each crop)
        self.timer = timer

    def update(self, index: int, faces: list[Face]) -> list[TrackedFace]:
        with self.timer("track"):
            return self.tracker.update(index, faces)

    def identity_and_seed(self, index: int, face: TrackedFace, crop: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The track's identity target (updated from this aligned crop when due) and its noise seed."""
        track = self.tracker.tracks[face.track_id]
        if self.encoder is None:
            return None, track.seed
        weight = self.schedule.due(index, face.track_id, self.tracker.face_quality(face.face))
        if weight is not None:
            with self.timer("identity"):
                embedding = self.encoder.embed(crop[None])[0]
            self.tracker.add_identity(face.track_id, embedding, weight)
            self.schedule.forget(self.tracker.tracks)
        return track.identity, track.seed


def _new_report(source: Path, target: Path, kind: str, models: Models) -> RestoreReport:
    return RestoreReport(input=str(source), output=str(target), kind=kind,
                         model=getattr(models.restorer, "name", type(models.restorer).__name__),
                         device=str(models.device))


def _frames_in(info: VideoInfo, span: TimeSpan | None) -> int | None:
    """How many frames a job will write (for the progress bar), or None when that is not known."""
    if span is None:
        return info.frames
    if info.fps is None or (span.end is None and info.duration_s is None):
        return None
    end = span.end if span.end is not None else info.duration_s
    if info.duration_s is not None:
        end = min(end, info.duration_s)
    return max(0, round((end - span.start) * float(info.fps)))


def _timed(frames: Iterable[Frame], timer: StageTimer, stage: str) -> Iterator[Frame]:
    """Yield from `frames`, adding the time spent producing each one to `stage`."""
    iterator = iter(frames)
    while True:
        with timer(stage):
            item = next(iterator, None)
        if item is None:
            return
        yield item


# -- the jobs ---------------------------------------------------------------------------------------
def restore_video(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                  progress: Progress | None = None, models: Models | None = None) -> RestoreReport:
    """Restore every face of a video into a new file with the same timing, streams and colour tags."""
    config = config or RestoreConfig()
    start = time.perf_counter()
    source, target = resolve_paths(input, output)  # 0 check the input before loading anything
    info = probe_video(source, config.fps)
    if config.fps is not None and not is_sequence(source):
        log.warning("--fps sets the rate of an image sequence; %s keeps its own timestamps", source.name)
    if output_exists(target) and not config.overwrite:
        return _already_done(source, target, "video", config)
    models = models or load_models(config, video=True)
    timer = StageTimer()
    story = FaceRestorer(models, config, timer, video=True, pixel_aspect=info.pixel_aspect, rotation=info.rotation)
    report = _new_report(source, target, "video", models)
    span = config.span()
    if progress is not None:
        progress.start(_frames_in(info, span), "frames")
    deint = bwdif_deint(config.deinterlace, info.interlaced)
    report.deinterlaced = deint is not None
    # what the output holds: the source's fields as they are, or progressive frames once deinterlaced
    written = info if deint is None else replace(info, interlaced=False, field_order=FIELD_PROGRESSIVE)
    with output_folder(target.parent), \
            VideoWriter(target, source, written, codec=config.codec, crf=config.crf, span=span) as writer:
        frames = _timed(read_frames(source, deint, config.fps, span, alpha=info.alpha), timer, "decode")  # 1 decode
        for frame in story.run(frames):  # 2 detect, 3 track, 4 align, 5 restore, 6 paste
            with timer("encode"):
                writer.write(frame)  # 7 encode
            report.frames += 1
            if progress is not None:
                progress.advance()
        flushed_from = time.perf_counter()
    timer.add("encode", time.perf_counter() - flushed_from)  # the flush and atomic rename on close
    return finish_report(report, story, timer, start)


def restore_image(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                  progress: Progress | None = None, models: Models | None = None) -> RestoreReport:
    """Restore every face of one photo; EXIF, ICC profile and format are kept."""
    config = config or RestoreConfig()
    if config.span() is not None:
        raise ClrfaceError("--start and --duration pick a stretch of a video; a photo is restored whole")
    start = time.perf_counter()
    source, target = resolve_paths(input, output)
    if target.exists() and not config.overwrite:
        return _already_done(source, target, "image", config)
    timer = StageTimer()
    with timer("decode"):
        original = read_photo(source)  # 1 read (orientation applied)
        photo = output_format(original, target)
    models = models or load_models(config, video=False)
    story = FaceRestorer(models, config, timer, video=False)
    report = _new_report(source, target, "image", models)
    if progress is not None:
        progress.start(1, "images")
    image = restore_photo_array(story, photo.image)  # 2-6
    with output_folder(target.parent), timer("encode"):
        save_photo(source, target, image, photo, unchanged=photo is original)  # 7 write (atomic)
    report.images = 1
    if progress is not None:
        progress.advance()
    return finish_report(report, story, timer, start)


def save_photo(source: Path, target: Path, image: np.ndarray, photo: Photo, *, unchanged: bool = True) -> None:
    """Write the restored photo with the source's modification time; one whose pixels nothing changed (no face,
    or none restored), in its own format (`unchanged`), is copied byte for byte instead of encoded again."""
    if unchanged and np.array_equal(image, photo.image):
        copy_photo(source, target)
    else:
        write_photo(target, image, like=photo)
    stat = source.stat()  # the photo's own date, which albums and backups sort by
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def output_format(photo: Photo, target: Path) -> Photo:
    """The photo's write-back settings, in the format its output name asks for (photo.png -o out.jpg: JPEG),
    with what that format cannot hold converted (io.photo_write.fit_format)."""
    wanted = format_for(target)
    if wanted is None:
        raise ClrfaceError(f"a photo cannot be written as {target.suffix or target.name!r}; name the output "
                           ".jpg, .png, .tif, .webp or another image extension")
    return fit_format(photo, wanted, target.name) if wanted != photo.format else photo


def restore_photo_array(story: FaceRestorer, image: np.ndarray) -> np.ndarray:
    """Steps 2-6 for one still image (RGB uint8 or uint16)."""
    (frame,) = story.run([Frame(image=image)])
    return frame.image


def restore_frames(frames: Iterable[np.ndarray], config: RestoreConfig | None = None, *,
                   as_video: bool = True) -> Iterator[np.ndarray]:
    """For API users: RGB uint8/uint16/float32 (H, W, 3) arrays in, restored arrays out, in order.

    as_video=True tracks faces across the frames (one identity per person); False restores each
    array as an unrelated photo. Frames are consumed lazily, a bounded window at a time.
    """
    config = config or RestoreConfig()
    models = load_models(config, video=as_video)
    story = FaceRestorer(models, config, StageTimer(), video=as_video)
    wrapped = (Frame(image=check_image(image, "restore_frames"), index=i) for i, image in enumerate(frames))
    for frame in story.run(wrapped):
        yield frame.image


def restore_path(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                 progress: Progress | None = None, models_for: ModelsFor | None = None) -> RestoreReport:
    """Restore a video, an image sequence (scan_%06d.dpx), a photo or a folder, whichever INPUT is.

    `models_for(video)` gives models loaded once for many calls (a Session's); without it each job loads its own."""
    source = Path(input).expanduser()
    video = is_sequence(source) or (source.is_file() and not is_image_path(source))
    if not video and not source.exists():
        raise InputError(f"input not found: {source}")
    if source.is_dir():
        from .photos import restore_folder

        return restore_folder(source, output, config, progress=progress, models_for=models_for)
    if video and models_for is not None:
        resolve_paths(source, output)  # check the paths before the identity encoder loads
    models = None if models_for is None else models_for(video)
    job = restore_video if video else restore_image
    return job(source, output, config, progress=progress, models=models)


def check_image(image: Any, where: str) -> np.ndarray:
    """An (H, W, 3) RGB uint8, uint16 or float32 (0..1) array with pixels, or a one-line InputError naming `where`."""
    if isinstance(image, (str, Path)):
        raise InputError(f"{where} takes an RGB array; for a file (photo, video or folder) use "
                         "clrface_video.restore_video(path), which restores whichever it is")
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype not in DTYPES:
        got = f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}".strip()
        hint = "; a single image given as the frames is read row by row: pass a list of frames" \
            if isinstance(image, np.ndarray) and image.ndim == 2 and image.shape[-1] == 3 else ""
        raise InputError(f"{where} takes RGB (H, W, 3) uint8, uint16 or float32 (0..1) arrays, got {got}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{where}: the image is empty ({image.shape[0]} x {image.shape[1]} pixels)")
    if image.dtype == np.float32:
        top = float(image.max(initial=0.0))  # NaN propagates
        if not math.isfinite(top) or not np.isfinite(image.min()):
            raise InputError(f"{where}: the float32 image holds NaN or infinite values")
        if top > FLOAT_MAX:
            raise InputError(f"{where}: float32 images are 0..1 and this one reaches {top:g}; divide it by 255")
    return np.ascontiguousarray(image)


def _already_done(source: Path, target: Path, kind: str, config: RestoreConfig) -> RestoreReport:
    log.warning("%s already exists; left as is (pass --overwrite to redo it)", target)
    return RestoreReport(input=str(source), output=str(target), kind=kind, model=config.model,
                         device=config.device, skipped=1)


def finish_report(report: RestoreReport, story: FaceRestorer | None, timer: StageTimer,
                  start: float) -> RestoreReport:
    """Fill in the face counts (when any face work ran), the stage seconds and the wall-clock time."""
    if story is not None:
        report.faces = story.counts.faces
        report.faces_left_alone = story.counts.left_alone
        report.tracks = len(story.counts.track_ids)
    report.stages = timer.rounded()
    report.seconds = round(time.perf_counter() - start, 4)
    return report

