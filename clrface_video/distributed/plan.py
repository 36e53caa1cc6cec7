"""Whole-video face plan: replay local tracking and its embeddings on the driver, then fold in identities."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..config import RestoreConfig
from ..faces.track import FaceTracker, IdentitySchedule, TrackerParams
from ..story import WeightRamp, paste_weight
from ..types import Face, FaceTrack


@dataclass(frozen=True)
class FacePlan:
    """One face to restore in one frame: smoothed landmarks (5, 2) float32, track, seed, identity version.

    samples: how many identity embeddings the track had folded in when this frame was restored
    locally (its identity is version `samples` of the track), 0 without per-track identity.
    """

    track_id: int
    landmarks: np.ndarray
    seed: int
    samples: int
    weight: float = 1.0  # story.paste_weight: the share of the restored face that is pasted

    @property
    def identity_key(self) -> tuple[int, int] | None:
        """The key of this face's identity version in a job's identity table, None without per-track identity."""
        return (self.track_id, self.samples) if self.samples else None


@dataclass(frozen=True)
class IdentitySample:
    """A face whose aligned crop feeds its track identity: frame index, landmarks (5, 2), weight; and its
    embedding where the driver embedded it (track_video's embedder), else None: the workers embed it.
    joins: the finished track whose identity the track took over before this sample (FaceTracker.sample)."""

    index: int
    track_id: int
    landmarks: np.ndarray
    weight: float
    embedding: np.ndarray | None = None
    joins: int | None = None


@dataclass
class VideoPlan:
    """Per frame (global index) the faces to restore; the identity samples in order; report counts."""

    faces: list[list[FacePlan]] = field(default_factory=list)
    samples: list[IdentitySample] = field(default_factory=list)
    left_alone: int = 0
    track_ids: set[int] = field(default_factory=set)


class Embedder(Protocol):
    """Faces of the video embedded on the driver (video.DriverEmbedder)."""

    def __call__(self, index: int, landmarks: np.ndarray) -> np.ndarray:
        """(frame index, landmarks (5, 2)) -> the aligned crop's embedding."""

    def informative(self, embedding: np.ndarray) -> bool:
        """IdentityEncoder.informative: whether the embedding may re-identify a track."""


def track_video(detections: list[list[Face]], config: RestoreConfig, resolution: int, identity: bool,
                pixel_aspect: float = 1.0, cuts: set[int] | frozenset[int] = frozenset(),
                embedder: Embedder | None = None) -> VideoPlan:
    """Replay step 3 (track) and the size check of step 4 over every frame's detections, as locally.

    Why this keeps track identity across segments, exactly as one machine would:

    1. Workers only *detect* faces per segment (detection is per frame, so it splits anywhere).
    2. The driver runs the local tracker (FaceTracker and IdentitySchedule, the same code and parameters
       as the pipeline's) over the detections of the whole video in frame order. Without per-track
       identity, association (IoU), track ids, noise seeds, the One-Euro landmark smoothing and the choice
       of faces that feed a track's identity depend only on the detections, so no pixels are needed.
       With it, the tracker also asks for embeddings where IoU is not sure, which depend on pixels and
       on the identities so far: the driver then embeds those faces and the due ones while it tracks
       (`embedder`), as locally.
    3. Otherwise (identity without an embedder) workers embed just the due faces (aligned from the smoothed
       landmarks, one crop per call, as locally) after the plan. Either way the driver folds the embeddings
       into each track's running-mean identity with the tracker's own `add_identity`, in the same order, so
       each face gets the identity its track had at that frame in a local run.
    4. The restore pass gets, per frame, each face's landmarks, seed and identity: a track that crosses
       a segment boundary keeps its id, seed, smoothing state and identity, and no worker re-tracks.

    identity: whether the workers have an identity encoder (per-track identity is on and the
    restorer uses it), exactly when a local run would embed faces.
    cuts: indices of the frames that start a new shot (faces.shots), where every track ends, as locally.
    embedder: with identity, embeds a face of a frame as the pipeline does (story._Tracking), asked in frame
    order. Locally the tracker asks for embeddings where IoU is not enough (FaceTracker.update's embed), which
    depend on pixels and on the track identities: with an embedder the driver embeds those faces and the due
    ones itself, in the same order, so its decisions are the local run's (without one, association is IoU
    only, and differs from a local run wherever the local tracker would have asked).
    """
    tracker = FaceTracker(TrackerParams(base_seed=config.seed))
    schedule = IdentitySchedule() if identity else None
    ramp = WeightRamp()
    plan = VideoPlan()
    for index, faces in enumerate(detections):
        if index in cuts:
            tracker.cut()
            ramp.shot_start = index
        jobs = []
        asks = _FrameEmbeddings(embedder, index, faces) if embedder is not None and schedule is not None else None
        tracked = tracker.update(index, faces, weak_below=config.threshold(video=True), embed=asks)
        for track_id, parent in tracker.split.items():  # as story._Tracking does
            ramp.inherit(track_id, parent)
        for face in tracked:
            weight = ramp(face.track_id, index,
                          paste_weight(face.landmarks, config, resolution, pixel_aspect, face.face.score))
            if weight == 0.0:
                plan.left_alone += 1
                continue
            samples = 0
            if schedule is not None:
                quality = tracker.face_quality(face.face)
                due = schedule.due(index, face.track_id, quality)
                if due is not None:
                    embedding, joins = None, None
                    if asks is not None:
                        embedding = asks.sample(face.face, face.landmarks)
                        joins = tracker.sample(face.track_id, embedding, due,
                                               quality > 0 and asks.embedder.informative(embedding))
                    plan.samples.append(IdentitySample(index, face.track_id, face.landmarks, due, embedding, joins))
                    schedule.forget(tracker.tracks)
                samples = schedule.count(face.track_id)
            seed = tracker.tracks[face.track_id].seed  # a re-joined person's (tracker.sample)
            jobs.append(FacePlan(face.track_id, face.landmarks, seed, samples, weight))
            plan.track_ids.add(face.track_id)
        plan.faces.append(jobs)
    return plan


class _FrameEmbeddings:
    """One frame's embeddings on the driver: those the tracker asks for (raw landmarks), kept so that a face's
    is also its identity sample when one is due, as story._Tracking does (no face embedded twice)."""

    def __init__(self, embedder: Embedder, index: int, faces: list[Face]) -> None:
        self.embedder, self.index, self.faces = embedder, index, faces
        self.asked: dict[int, np.ndarray] = {}  # id(face) -> embedding

    def __call__(self, c: int) -> np.ndarray:
        face = self.faces[c]
        embedding = self.asked[id(face)] = self.embedder(self.index, face.landmarks)
        return embedding

    def sample(self, face: Face, landmarks: np.ndarray) -> np.ndarray:
        """The identity sample of a due face: the tracker's embedding of it, else one of its smoothed crop."""
        embedding = self.asked.get(id(face))
        return self.embedder(self.index, landmarks) if embedding is None else embedding


def identity_versions(samples: list[IdentitySample], embeddings: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """(track id, samples folded) -> the track identity then, folded with the tracker's own running mean, from the
    identity of the track it re-joined where it did (the plan's tracker decided, with the driver's embeddings)."""
    scratch = FaceTracker()
    versions: dict[tuple[int, int], np.ndarray] = {}
    counts: dict[int, int] = {}
    for sample, embedding in zip(samples, embeddings, strict=True):
        track = scratch.tracks.setdefault(sample.track_id, FaceTrack(sample.track_id, sample.index, sample.index))
        if sample.joins is not None:
            before = scratch.tracks[sample.joins]
            track.identity, track.identity_weight = before.identity, before.identity_weight
        scratch.add_identity(sample.track_id, embedding, sample.weight)
        counts[sample.track_id] = counts.get(sample.track_id, 0) + 1
        assert track.identity is not None
        versions[(sample.track_id, counts[sample.track_id])] = track.identity.copy()
    return versions
