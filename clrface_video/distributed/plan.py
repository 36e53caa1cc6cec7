"""Whole-video face plan: replay local tracking over all detections on the driver, then fold in identities."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import RestoreConfig
from ..faces.track import FaceTracker
from ..pipeline import FaceRestorer, Models
from ..report import StageTimer
from ..types import Face, FaceTrack

_NO_CROP = np.zeros((1, 1, 3), np.uint8)  # what the placeholder encoder is shown (it never looks)


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
    weight: float = 1.0  # FaceRestorer.paste_weight: the share of the restored face that is pasted


@dataclass(frozen=True)
class IdentitySample:
    """A face whose aligned crop feeds its track identity: frame index, landmarks (5, 2), weight."""

    index: int
    track_id: int
    landmarks: np.ndarray
    weight: float


@dataclass
class VideoPlan:
    """Per frame (global index) the faces to restore; the identity samples in order; report counts."""

    faces: list[list[FacePlan]] = field(default_factory=list)
    samples: list[IdentitySample] = field(default_factory=list)
    left_alone: int = 0
    track_ids: set[int] = field(default_factory=set)


class _PlaceholderEncoder:
    """Stands in for the identity encoder while tracking: counts the due faces, returns a fixed unit vector."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.ones((len(crops), 1), np.float32)


@dataclass(frozen=True)
class _SizeOnly:
    """The restorer's crop side, all the tracking replay needs of it."""

    resolution: int
    name: str = "plan"


def track_video(detections: list[list[Face]], config: RestoreConfig, resolution: int, identity: bool,
                pixel_aspect: float = 1.0) -> VideoPlan:
    """Replay step 3 (track) and the size check of step 4 over every frame's detections, as locally.

    Why this keeps track identity across segments, exactly as one machine would:

    1. Workers only *detect* faces per segment (detection is per frame, so it splits anywhere).
    2. The driver runs the local tracker (pipeline's `_Tracking`, the same code and parameters) over the
       detections of the whole video in frame order. Association (IoU), track ids, noise seeds, the
       One-Euro landmark smoothing and the choice of frames whose faces feed a track's identity depend
       only on the detections, never on embedding values, so no pixels are needed: a placeholder encoder
       records which faces are due and with what weight.
    3. Workers embed just those due faces (aligned from the smoothed landmarks, one crop per call, as
       locally), and the driver folds the embeddings into each track's running-mean identity with the
       tracker's own `add_identity`, in the same order, so each face gets the identity its track had
       at that frame in a local run.
    4. The restore pass gets, per frame, each face's landmarks, seed and identity: a track that crosses
       a segment boundary keeps its id, seed, smoothing state and identity, and no worker re-tracks.

    identity: whether the workers have an identity encoder (per-track identity is on and the
    restorer uses it), exactly when a local run would embed faces.
    """
    encoder = _PlaceholderEncoder() if identity else None
    models = Models(device=torch.device("cpu"), detector=None, restorer=_SizeOnly(resolution),  # type: ignore[arg-type]
                    identity=encoder)  # type: ignore[arg-type]
    story = FaceRestorer(models, config, StageTimer(), video=True, pixel_aspect=pixel_aspect)
    tracking = story.tracking
    assert tracking is not None
    weights: list[tuple[int, float]] = []
    add_identity = tracking.tracker.add_identity

    def recording_add_identity(track_id: int, embedding: np.ndarray, quality: float) -> None:
        weights.append((track_id, quality))
        add_identity(track_id, embedding, quality)

    tracking.tracker.add_identity = recording_add_identity  # type: ignore[method-assign]
    plan = VideoPlan()
    folded: dict[int, int] = {}
    for index, faces in enumerate(detections):
        jobs = []
        for face in tracking.update(index, faces):
            weight = story.paste_weight(face.landmarks)
            if weight == 0.0:
                plan.left_alone += 1
                continue
            before = len(weights)
            _, seed = tracking.identity_and_seed(index, face, _NO_CROP)
            if len(weights) > before:
                track_id, quality = weights[-1]
                plan.samples.append(IdentitySample(index, track_id, face.landmarks, quality))
                folded[track_id] = folded.get(track_id, 0) + 1
            jobs.append(FacePlan(face.track_id, face.landmarks, seed, folded.get(face.track_id, 0), weight))
            plan.track_ids.add(face.track_id)
        plan.faces.append(jobs)
    return plan


def identity_versions(samples: list[IdentitySample], embeddings: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """(track id, samples folded) -> the track identity then, folded with the tracker's own running mean."""
    scratch = FaceTracker()
    versions: dict[tuple[int, int], np.ndarray] = {}
    counts: dict[int, int] = {}
    for sample, embedding in zip(samples, embeddings, strict=True):
        track = scratch.tracks.setdefault(sample.track_id, FaceTrack(sample.track_id, sample.index, sample.index))
        scratch.add_identity(sample.track_id, embedding, sample.weight)
        counts[sample.track_id] = counts.get(sample.track_id, 0) + 1
        assert track.identity is not None
        versions[(sample.track_id, counts[sample.track_id])] = track.identity.copy()
    return versions
