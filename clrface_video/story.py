"""Steps 2-6 over a stream of frames: detect, track, align, restore in bounded batches, paste."""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import torch

from .config import RestoreConfig
from .errors import ClrfaceError, option_name
from .faces.align import align_face, face_sizes, size_limit, size_weight
from .faces.detect import FaceDetector, upright
from .faces.identity import IdentityEncoder
from .faces.paste import changed_boxes, paste_faces
from .faces.shots import is_cut, thumbnail
from .faces.track import FaceTracker, IdentitySchedule, TrackerParams
from .io.pixels import to_uint8
from .report import StageTimer
from .restore.base import RestoreBatch, Restorer
from .restore.temporal import TrackMemory
from .types import Face, Frame, LeftAlone, TrackedFace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Models:
    """What a job loads once: the face detector, the restorer, and (videos) the identity encoder."""

    device: torch.device
    detector: FaceDetector
    restorer: Restorer
    identity: IdentityEncoder | None = None  # per-track identity in videos


# Video: the blend gate's share for a face is averaged along its track (an exponential moving average,
# restore.temporal.TrackMemory), so the restoration's strength does not pulse from frame to frame.
SHARE_SMOOTHING = 0.9


@dataclass
class FaceJob:
    """One aligned face waiting for the restorer, and where its result goes."""

    crop: np.ndarray  # (S, S, 3) uint8
    matrix: np.ndarray  # (2, 3) frame -> crop
    identity: np.ndarray | None  # (D,) track identity, or None: the restorer takes it from the crop
    seed: int
    track: int
    weight: float = 1.0  # share of the restored face pasted over the input (paste_weight)
    restored: np.ndarray | None = None
    done: float = 0.0  # share of its restoration done, for progress (RestoreBatch.on_step): 1 once restored


# Of a frame with faces, the share done once it is read, its faces found and aligned; the rest goes as its faces
# go through the restorer's steps. A frame without faces is done once read.
READ_SHARE = 0.1


@dataclass
class _Waiting:
    """A frame queued until all of its faces are restored."""

    frame: Frame
    jobs: list[FaceJob] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(job.restored is not None for job in self.jobs)

    @property
    def done(self) -> float:
        """How much of the frame is done, 0..1: READ_SHARE once read, then the mean of its faces' restoration."""
        if self.ready:
            return 1.0
        return READ_SHARE + (1 - READ_SHARE) * sum(job.done for job in self.jobs) / len(self.jobs)


@dataclass
class FrameProgress:
    """How many frames of a run are done, for a host's progress bar (ComfyUI's), in parts of a frame as its faces
    go through the restorer's steps: frames come out a batch of faces at a time, and a count of those alone sat
    at 0 through the first batch (16 frames: half a minute on a CPU), then jumped. Never decreases; reaches the
    number of frames, exactly, once the last frame is restored."""

    report: Callable[[float], None]
    out: int = 0  # frames handed on
    told: float = 0.0

    def tell(self, waiting: Iterable[_Waiting]) -> None:
        done = self.out + sum(item.done for item in waiting)
        if done > self.told:  # an out-of-memory retry runs a batch's steps again: the count waits for them
            self.told = done
            self.report(done)


@dataclass
class Counts:
    faces: int = 0  # crops restored
    left_alone: int = 0  # faces too small or too large for the model
    photo_faces_left_alone: list[LeftAlone] = field(default_factory=list)  # a photo's: where, and why
    track_ids: set[int] = field(default_factory=set)


def out_of_memory(error: BaseException) -> bool:
    """Whether a restorer's error is the device running out of memory (CUDA's allocator, or the CPU's).
    torch.cuda.OutOfMemoryError is torch.OutOfMemoryError from torch 2.4, and the only name before it."""
    return isinstance(error, torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(error)


def paste_weight(landmarks: np.ndarray, config: RestoreConfig, size: int, pixel_aspect: float = 1.0,
                 score: float = 1.0) -> float:
    """How much of a restored face is pasted: --strength when it is a number (auto leaves the share to the
    restorer's blend gate), times the size weight: 1 inside the range the model handles (config.min_face,
    config.max_upscale), fading to 0 over the SIZE_FADE beyond either limit, so a face whose size hovers at a
    limit is not restored in one frame and left alone in the next; times the weight of its detector score
    (RestoreConfig.confidence_weight), for the same reason when its score hovers at the threshold."""
    strength = 1.0 if config.strength is None else config.strength
    span, footprint = face_sizes(landmarks, size, pixel_aspect)
    return strength * config.confidence_weight(score) * size_weight(span, config.min_face, footprint,
                                                                    config.max_upscale * size)


def left_alone(face: TrackedFace, config: RestoreConfig, size: int) -> LeftAlone:
    """Why a photo's face paste_weight gives 0 is left alone, and where it is (the report's per photo)."""
    span, footprint = face_sizes(face.landmarks, size)
    why = size_limit(span, config.min_face, footprint, config.max_upscale * size)
    return LeftAlone(box=tuple(round(float(v)) for v in face.face.box),
                     why=why or ("strength 0" if config.strength == 0 else "low score"),
                     span=round(span, 1), size=round(footprint, 1))


FADE_FRAMES = 8  # a track's paste weight moves by at most 1/8 a frame: about a third of a second at 24 fps


class WeightRamp:
    """Each video track's paste weight, moved at most 1/FADE_FRAMES a frame towards the weight its face has now
    (paste_weight), so that a restoration fades in where a track starts mid-shot, or where its face grows past
    --min-face or its score past the threshold within a frame or two, instead of appearing in one frame (eyes
    and a mouth popping into a background face); and fades out the same way while the face is still found.
    Tracks that start with a shot (the first frame, or the one after a cut) start at their full weight."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[int, float]] = {}  # track id -> (frame, weight pasted there)
        self.shot_start = 0

    def inherit(self, track_id: int, parent: int) -> None:
        """A track started where `parent`'s face was refused by embedding (FaceTracker.split) goes on from the
        weight `parent` was pasted at: the pixels there were restored at it, and a wrong refusal (a small face
        FaceNet tells apart from itself) would otherwise fade the same face out to 1/FADE_FRAMES and back in."""
        if track_id not in self.last and parent in self.last:
            self.last[track_id] = self.last[parent]

    def __call__(self, track_id: int, frame: int, weight: float) -> float:
        if track_id not in self.last and frame == self.shot_start:
            self.last[track_id] = (frame, weight)
            return weight
        seen, before = self.last.get(track_id, (frame - 1, 0.0))
        step = (frame - seen) / FADE_FRAMES
        weight = min(max(weight, before - step), before + step)
        self.last[track_id] = (frame, weight)
        if len(self.last) > 1024:  # tracks long gone
            self.last = {t: kept for t, kept in self.last.items() if kept[0] > frame - 4 * FADE_FRAMES}
        return weight


class FrameStory:
    """Steps 2-6 over a stream of frames, restoring crops in batches within a bounded window.

    Frames wait in a queue until their faces are restored; whole batches of `batch_size` crops are run
    as soon as they are gathered (a remainder waits for the next frames' faces), and everything
    gathered once `batch_size` frames are waiting, so memory holds at most about `batch_size` frames
    whatever the length of the video.
    video=True: the frames are a video's (latent smoothing along tracks, latents decoded unsnapped by
    default) and faces are tracked across them (identity and noise seed per track) unless track=False
    says the tracks come from elsewhere; video=False treats every frame as an unrelated photo.
    pixel_aspect: width over height of the frames' pixels (VideoInfo.pixel_aspect); faces in anamorphic
    frames are aligned unsqueezed and pasted back squeezed.
    rotation: the frames' display rotation in degrees (VideoInfo.rotation); faces are looked for in
    frames turned upright, and aligned, restored and pasted in the frames as stored.
    check_interrupt: a host's cancel check, called as each frame comes in and at each sampler step; it raises
    to stop the run (RestoreBatch.check_interrupt).
    on_progress: called with how many frames are done (FrameProgress) as each frame comes in, at each sampler
    step and after each batch.
    """

    def __init__(self, models: Models, config: RestoreConfig, timer: StageTimer, *, video: bool,
                 track: bool | None = None, pixel_aspect: float = 1.0, rotation: int = 0,
                 check_interrupt: Callable[[], None] | None = None,
                 on_progress: Callable[[float], None] | None = None) -> None:
        self.models = models
        self.check_interrupt = check_interrupt
        self.progress = FrameProgress(on_progress) if on_progress is not None else None
        self.waiting: deque[_Waiting] = deque()  # frames whose faces are not all restored yet, in order
        self.detector = upright(models.detector, rotation)
        self.config = config
        self.timer = timer
        self.pixel_aspect = pixel_aspect
        self.size = models.restorer.resolution
        self.window = max(1, config.batch_size)
        self.batch_size = max(1, config.batch_size)  # halved for the rest of the job when a batch runs out of memory
        self.counts = Counts()
        self.stills_seen = 0
        tracked = video if track is None else track
        self.tracking = _Tracking(models.identity, config, timer, self.size, pixel_aspect) if tracked else None
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
        waiting = self.waiting = deque()
        batch: list[FaceJob] = []
        for frame in frames:
            if self.check_interrupt is not None:
                self.check_interrupt()
            item = _Waiting(frame, self.faces_of(frame))  # 2 detect, 3 track, 4 align
            waiting.append(item)
            self.tell_progress()
            batch.extend(item.jobs)
            if len(waiting) >= self.window:  # the frame window is full: restore all, to let frames go
                self.restore(batch)  # 5 restore
                batch = []
            elif len(batch) >= self.batch_size:  # whole batches; the rest waits for the next frame's faces
                whole = len(batch) // self.batch_size * self.batch_size
                self.restore(batch[:whole])  # 5 restore
                batch = batch[whole:]
            while waiting and waiting[0].ready:
                yield self.paste(self.next_out())  # 6 paste
        self.restore(batch)
        while waiting:
            yield self.paste(self.next_out())

    def next_out(self) -> _Waiting:
        """The first waiting frame, taken off the queue (and counted out, for progress)."""
        if self.progress is not None:
            self.progress.out += 1
        return self.waiting.popleft()

    def tell_progress(self) -> None:
        if self.progress is not None:
            self.progress.tell(self.waiting)

    def stepped(self, jobs: list[FaceJob], share: float) -> None:
        """A sampler step of the batch of `jobs` is done: `share` of their restoration (RestoreBatch.on_step)."""
        for job in jobs:
            job.done = max(job.done, share)
        self.tell_progress()

    def faces_of(self, frame: Frame) -> list[FaceJob]:
        """Detect, track and align the faces of one frame; faces the model cannot take are left alone."""
        image = to_uint8(frame.image)
        with self.timer("detect"):
            faces = self.detector.detect(image)  # 2 detect
        if self.tracking is not None:
            tracked = self.tracking.update(frame.index, faces, image)  # 3 track: ids and smoothed landmarks
        else:  # a photo: every face is its own track; noise seeds count from config.seed in each photo
            faces = [face for face in faces if face.score > self.config.threshold(video=False)]  # no track to continue
            first, self.stills_seen = self.stills_seen, self.stills_seen + len(faces)
            tracked = [TrackedFace(face, first + i, face.landmarks) for i, face in enumerate(faces)]
        jobs = []
        for number, face in enumerate(tracked):
            weight = self.paste_weight(face.landmarks, face.face.score)
            if self.tracking is not None:
                weight = self.tracking.ramp(face.track_id, frame.index, weight)
            if weight == 0.0:
                self.counts.left_alone += 1
                if self.tracking is None:  # a photo's, named in the report (a video's are counted)
                    self.counts.photo_faces_left_alone.append(left_alone(face, self.config, self.size))
                continue
            with self.timer("align"):
                crop = align_face(image, face.landmarks, self.size, pixel_aspect=self.pixel_aspect)  # 4 align
            if self.tracking is not None:
                identity, seed = self.tracking.identity_and_seed(frame.index, face, crop.image)
            else:
                # the face's number in its photo: the same seed whichever folder, shard or rerun restores it
                identity, seed = None, self.config.seed + number
            jobs.append(FaceJob(crop.image, crop.matrix, identity, seed, face.track_id, weight))
            self.counts.track_ids.add(face.track_id)
        return jobs

    def paste_weight(self, landmarks: np.ndarray, score: float = 1.0) -> float:
        return paste_weight(landmarks, self.config, self.size, self.pixel_aspect, score)

    def restore(self, jobs: list[FaceJob]) -> None:
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
                                 gate=self.config.strength is None, gate_memory=self.share_memory,
                                 check_interrupt=self.check_interrupt,
                                 on_step=None if self.progress is None else partial(self.stepped, chunk))
            with self.timer("restore"):
                restored = self.restore_fitting(batch)
            if restored is None:
                continue  # out of memory: the same faces again, in the halved batch size
            for job, face in zip(chunk, restored):
                job.restored, job.done = face, 1.0
            self.counts.faces += len(chunk)
            start += len(chunk)
            self.tell_progress()

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
                          f"close other programs using the GPU, or run with {option_name('device')} cpu")
                raise ClrfaceError(f"out of memory restoring a single face; {advice}") from error
            self.batch_size = n // 2
            log.warning("out of memory restoring %d faces at once: going on with batches of %d "
                        "(pass %s %d to start there)", n, self.batch_size, option_name("batch_size"), self.batch_size)
            return None

    def paste(self, item: _Waiting) -> tuple[Frame, np.ndarray | None]:
        """Paste the restored faces into the frame at its own bit depth (and its mask); faceless frames pass through."""
        if not item.jobs:
            return item.frame, None
        with self.timer("paste"):
            crops, matrices = [job.restored for job in item.jobs], [job.matrix for job in item.jobs]
            image, mask = paste_faces(item.frame.image, crops, matrices, originals=[job.crop for job in item.jobs],
                                      detail=self.config.keep_detail, weights=[job.weight for job in item.jobs])
            touched = () if item.frame.source is None else changed_boxes(mask, crops, matrices)  # the writer's to convert
        return replace(item.frame, image=image, touched=touched), mask


class _Tracking:
    """Step 3 for videos: FaceTracker ids and smoothed landmarks, and each track's running-mean identity,
    fed from the faces IdentitySchedule picks; with an encoder, the tracker also asks for the embeddings of
    faces that IoU alone cannot place (FaceTracker.update's embed)."""

    def __init__(self, encoder: IdentityEncoder | None, config: RestoreConfig, timer: StageTimer, size: int = 512,
                 pixel_aspect: float = 1.0) -> None:
        self.tracker = FaceTracker(TrackerParams(base_seed=config.seed))
        self.weak_below = config.threshold(video=True)  # faces found under it only continue tracks
        self.schedule = IdentitySchedule()
        self.encoder = encoder  # None: no per-track identity (the restorer takes it from each crop)
        self.timer = timer
        self.last_thumbnail: np.ndarray | None = None  # the frame before's (faces.shots), to see cuts
        self.ramp = WeightRamp()
        self.size, self.pixel_aspect = size, pixel_aspect  # of the aligned crops identity_and_seed embeds
        self.embedded: dict[int, np.ndarray] = {}  # id(face) -> the embedding the tracker asked for, this frame

    def update(self, index: int, faces: list[Face], image: np.ndarray) -> list[TrackedFace]:
        """The faces of the frame `image` (RGB uint8) with their tracks; a cut before it ends every track."""
        with self.timer("track"):
            thumb = thumbnail(image)
            cut = is_cut(self.last_thumbnail, thumb)
            if cut:
                self.tracker.cut()
            if cut or self.last_thumbnail is None:  # a shot starts: its faces are restored from its first frame
                self.ramp.shot_start = index
            self.last_thumbnail = thumb
            self.embedded = {}
            embed = None if self.encoder is None else lambda c: self.embed_for_tracker(image, faces[c])
            tracked = self.tracker.update(index, faces, weak_below=self.weak_below, embed=embed)
            for track_id, parent in self.tracker.split.items():
                self.ramp.inherit(track_id, parent)
            return tracked

    def embed_for_tracker(self, image: np.ndarray, face: Face) -> np.ndarray:
        """A face's embedding for association, from its raw landmarks (it has no track, so no smoothed ones
        yet), aligned as identity_and_seed aligns; kept so that it is also the frame's identity sample when
        one is due, and no face is embedded twice. Counted in the "track" stage."""
        assert self.encoder is not None
        embedding = self.embedded[id(face)] = self.encoder.embed_face(image, face.landmarks, self.size,
                                                                      self.pixel_aspect)
        return embedding

    def identity_and_seed(self, index: int, face: TrackedFace, crop: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The track's identity target (updated from this aligned crop when due) and its noise seed, both a
        finished person's where this crop re-identifies the track as them (FaceTracker.sample)."""
        track = self.tracker.tracks[face.track_id]
        if self.encoder is None:
            return None, track.seed
        quality = self.tracker.face_quality(face.face)
        weight = self.schedule.due(index, face.track_id, quality)
        if weight is not None:
            embedding = self.embedded.get(id(face.face))
            if embedding is None:
                with self.timer("identity"):
                    embedding = self.encoder.embed(crop[None])[0]
            self.tracker.sample(face.track_id, embedding, weight, quality > 0 and self.encoder.informative(embedding))
            self.schedule.forget(self.tracker.tracks)
        return track.identity, track.seed


def restore_photo_array(story: FrameStory, image: np.ndarray) -> np.ndarray:
    """Steps 2-6 for one still image (RGB uint8 or uint16)."""
    (frame,) = story.run([Frame(image=image)])
    return frame.image
