"""Face tracking: IoU + embedding association, survival over short misses, ends at cuts, One-Euro landmarks, identity."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..types import Face, FaceTrack, TrackedFace
from .detect import iou_matrix

NO_MATCH = 1e6  # association cost of a pair that the gates forbid


@dataclass(frozen=True)
class OneEuroParams:
    """One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) with time in frames and speed in face sizes.

    cutoff = min_cutoff + beta * |speed|: a low cutoff (smooth) when still, higher when moving fast.
    """

    min_cutoff: float = 0.04  # cycles per frame when still
    beta: float = 8.0  # per (face size per frame) of landmark speed
    d_cutoff: float = 0.2  # cut-off of the speed estimate


@dataclass(frozen=True)
class TrackerParams:
    """Association gates and weights, track lifetime and identity quality rules."""

    max_age: int = 10  # frames a track survives without a detection
    min_iou: float = 0.2  # IoU gate (with the track's predicted box)
    min_similarity: float = 0.55  # embedding gate when IoU alone fails
    max_jump: float = 2.5  # embedding-only matches must lie within this many face sizes
    sure_iou: float = 0.5  # an IoU match below this (or see unsure_match) is checked by embedding when it can be
    score_drop: float = 0.3  # ... as is one whose detector score fell by more than this since the track's last face
    refuse_below: float = 0.4  # a checked IoU match less similar than this to the track's identity is refused
    young: int = 3  # a track seen on fewer frames than this still hands its face to an older one it matches better
    iou_weight: float = 0.5  # cost = 1 - (w * IoU + (1 - w) * cosine) when both are known
    good_score: float = 0.8  # frames that feed the identity: detector score at least this...
    good_size: float = 40.0  # ... and face box side at least this many pixels (weight saturates at 4x)
    history: int = 64  # frame indices kept per live track
    keep_dead: int = 256  # finished tracks kept (without history) for late identity look-ups
    # a new track this like a finished person is that person (FaceTracker.sample): 0.0095% of LFW's different-person
    # pairs reach it, 80% of its same-person pairs (benchmarks/reid_threshold.py, docs/results.md)
    rejoin_similarity: float = 0.6
    base_seed: int = 0


def smoothing_factor(cutoff: float, dt: float) -> float:
    """Exponential smoothing weight of a first-order low-pass at `cutoff` over a step `dt`."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass(frozen=True)
class OneEuroState:
    """Filtered landmarks (5, 2), their filtered speed (5, 2) per frame, and the frame of the last sample."""

    value: np.ndarray
    speed: np.ndarray
    frame: int


def one_euro_step(state: OneEuroState | None, raw: np.ndarray, frame: int, scale: float,
                  params: OneEuroParams) -> OneEuroState:
    """One causal One-Euro update of a set of points; `scale` (face size, px) normalises the speed."""
    raw = np.asarray(raw, np.float64)
    if state is None:
        return OneEuroState(raw, np.zeros_like(raw), frame)
    dt = float(max(frame - state.frame, 1))
    speed_raw = (raw - state.value) / dt
    a_d = smoothing_factor(params.d_cutoff, dt)
    speed = state.speed + a_d * (speed_raw - state.speed)
    magnitude = float(np.linalg.norm(speed, axis=1).mean()) / max(scale, 1.0)
    a = smoothing_factor(params.min_cutoff + params.beta * magnitude, dt)
    return OneEuroState(state.value + a * (raw - state.value), speed, frame)


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one pairs under NO_MATCH gating: Hungarian (scipy) or greedy."""
    if cost.size == 0:
        return []
    if min(cost.shape) == 1:  # one track or one face (most frames): the cheapest pair, without scipy's import
        r, c = divmod(int(np.argmin(cost)), cost.shape[1])
        return [(r, c)] if cost[r, c] < NO_MATCH else []
    try:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        pairs = list(zip(rows.tolist(), cols.tolist()))
    except ImportError:
        pairs, used_r, used_c = [], set(), set()
        for flat in np.argsort(cost, axis=None, kind="stable"):
            r, c = divmod(int(flat), cost.shape[1])
            if r not in used_r and c not in used_c:
                pairs.append((r, c))
                used_r.add(r)
                used_c.add(c)
    return [(r, c) for r, c in pairs if cost[r, c] < NO_MATCH]


def box_side(box: np.ndarray) -> float:
    return float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)))


def track_seed(base_seed: int, track_id: int) -> int:
    """A deterministic 32-bit seed per track, independent of frame order elsewhere."""
    return int(np.random.SeedSequence(base_seed, spawn_key=(track_id,)).generate_state(1)[0])


@dataclass
class LiveTrack:
    """Tracker-internal state of a track that can still be matched."""

    info: FaceTrack
    box: np.ndarray  # last detected box
    velocity: np.ndarray  # box change per frame (smoothed)
    smooth: OneEuroState
    score: float = 1.0  # detector score of the last face
    known: bool = False  # a good face's embedding has been sampled (and the track re-identified by it)
    joined: int | None = None  # the finished track it re-identified, if any

    def predicted_box(self, frame: int) -> np.ndarray:
        return self.box + self.velocity * (frame - self.info.last_frame)


class FaceTracker:
    """Turns per-frame detections into tracks; call update() once per frame in order.

    tracks: every live track and the most recent finished ones, by id.
    """

    def __init__(self, params: TrackerParams | None = None, smoothing: OneEuroParams | None = None) -> None:
        self.params = params or TrackerParams()
        self.smoothing = smoothing or OneEuroParams()
        self.tracks: dict[int, FaceTrack] = {}
        self._live: dict[int, LiveTrack] = {}
        self._dead: list[int] = []
        self._gone: dict[int, int] = {}  # person with no live track -> their last track known by a good face
        self._next_id = 0
        self._refused: dict[int, int] = {}  # this frame's faces refused by embedding -> the track IoU gave them
        self.split: dict[int, int] = {}  # tracks started this frame by a refused face -> the track it was refused

    def add_identity(self, track_id: int, embedding: np.ndarray, quality: float) -> None:
        """Fold an embedding into the track's identity: running mean weighted by `quality`, re-normalised."""
        track = self.tracks[track_id]
        if quality <= 0:
            return
        emb = np.asarray(embedding, np.float32).ravel()
        emb = emb / max(float(np.linalg.norm(emb)), 1e-12)
        if track.identity is None:
            track.identity, track.identity_weight = emb, float(quality)
            return
        total = track.identity_weight + quality
        mean = (track.identity * track.identity_weight + emb * quality) / total
        track.identity = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        track.identity_weight = float(total)

    def sample(self, track_id: int, embedding: np.ndarray, weight: float, good: bool) -> int | None:
        """Fold an identity sample into a track (add_identity), after re-identifying the track by it where it is a
        live track's first good one (`good`: face_quality above 0 and IdentityEncoder.informative): a person who
        turned away, walked behind someone or came back after a cut has a new track (new landmark smoothing, new
        paste ramp), which takes over the identity target and noise seed of the most similar finished person at
        rejoin_similarity or above, instead of a target built anew from few samples and a seed of its own. Only
        people none of whose tracks is live are candidates, so two faces seen at once are never one person.
        Returns the track re-joined, or None."""
        live = self._live.get(track_id)
        joined = None
        if good and live is not None and not live.known:
            live.known = True
            joined = live.joined = self._rejoin(track_id, embedding)
        self.add_identity(track_id, embedding, weight)
        return joined

    def _rejoin(self, track_id: int, embedding: np.ndarray) -> int | None:
        similarity = {gone: self._similarity(gone, embedding) for gone in self._gone.values()}
        best = max(similarity, key=similarity.__getitem__, default=None)
        if best is None or similarity[best] < self.params.rejoin_similarity:
            return None
        track, before = self.tracks[track_id], self.tracks[best]
        del self._gone[before.person]
        assert before.identity is not None
        track.person, track.seed = before.person, before.seed
        track.identity, track.identity_weight = before.identity.copy(), before.identity_weight
        return best

    def face_quality(self, face: Face) -> float:
        """Weight of a face's embedding in its track identity; 0 for frames that are not good."""
        side = box_side(face.box)
        if face.score < self.params.good_score or side < self.params.good_size:
            return 0.0
        return face.score * min(side / self.params.good_size, 4.0)

    def _cost(self, frame: int, faces: list[Face], embeddings: np.ndarray | None) -> tuple[list[int], np.ndarray]:
        ids = list(self._live)
        p = self.params
        cost = np.full((len(ids), len(faces)), NO_MATCH)
        if not ids or not faces:
            return ids, cost
        predicted = np.stack([self._live[i].predicted_box(frame) for i in ids])
        boxes = np.stack([f.box for f in faces]).astype(np.float64)
        iou = iou_matrix(predicted, boxes)
        centres_t = (predicted[:, :2] + predicted[:, 2:]) / 2
        centres_d = (boxes[:, :2] + boxes[:, 2:]) / 2
        sides = np.array([box_side(b) for b in predicted])
        jump = np.linalg.norm(centres_t[:, None] - centres_d[None], axis=2) / sides[:, None]
        for r, track_id in enumerate(ids):
            identity = self.tracks[track_id].identity
            for c in range(len(faces)):
                if embeddings is not None and identity is not None:
                    sim = float(identity @ embeddings[c] / max(float(np.linalg.norm(embeddings[c])), 1e-12))
                    ok = (iou[r, c] >= p.min_iou and sim > 0.0) or (sim >= p.min_similarity and jump[r, c] <= p.max_jump)
                    score = p.iou_weight * iou[r, c] + (1 - p.iou_weight) * max(sim, 0.0)
                else:
                    ok, score = iou[r, c] >= p.min_iou, iou[r, c]
                if ok:
                    cost[r, c] = 1.0 - score
        return ids, cost

    def _start(self, frame: int, face: Face) -> int:
        track_id = self._next_id
        self._next_id += 1
        info = FaceTrack(track_id=track_id, first_frame=frame, last_frame=frame,
                         seed=track_seed(self.params.base_seed, track_id), person=track_id)
        self.tracks[track_id] = info
        self._live[track_id] = LiveTrack(info, face.box.astype(np.float64), np.zeros(4), None,  # type: ignore[arg-type]
                                         face.score)
        return track_id

    def _retire(self, frame: int) -> None:
        self._end([i for i, t in self._live.items() if frame - t.info.last_frame > self.params.max_age])

    def _end(self, track_ids: list[int], left: bool = True) -> None:
        """End tracks; left=False: their faces went on in other tracks (a young track handed back), so they are no
        person who may come back (sample), and a person such a track re-identified is as before it."""
        for track_id in track_ids:
            live = self._live.pop(track_id)
            live.info.history.clear()
            self._dead.append(track_id)
            if live.known and left:
                self._gone[live.info.person] = track_id
            elif live.joined is not None and live.joined in self.tracks:
                self._gone[live.info.person] = live.joined
        while len(self._dead) > self.params.keep_dead:
            gone = self.tracks.pop(self._dead.pop(0), None)
            if gone is not None and self._gone.get(gone.person) == gone.track_id:
                del self._gone[gone.person]

    def cut(self) -> None:
        """A shot change (faces.shots): every live track ends, so the faces after it start tracks of their own
        (new ids and landmark smoothing) instead of taking over those of whoever stood there before; a face that
        was in an earlier shot gets its person's identity and seed back by embedding (sample)."""
        self._end(list(self._live))

    def unsure_match(self, track_id: int, face: Face, iou: float, faces: list[Face]) -> bool:
        """Whether an IoU match may be someone else: a low IoU, a detector score under good_score or fallen
        by more than score_drop (the detector finds a face that passes in front of the tracked one, or merges
        with it, worse than either), or another face of the frame overlapping this one."""
        p = self.params
        if iou < p.sure_iou or face.score < p.good_score or self._live[track_id].score - face.score > p.score_drop:
            return True
        others = [f.box for f in faces if f is not face]
        return bool(others) and float(iou_matrix(face.box[None], np.stack(others)).max()) > 0.0

    def _similarity(self, track_id: int, embedding: np.ndarray) -> float:
        identity = self.tracks[track_id].identity
        assert identity is not None
        return float(identity @ embedding / max(float(np.linalg.norm(embedding)), 1e-12))

    def _check_by_embedding(self, frame: int, faces: list[Face], ids: list[int], cost: np.ndarray,
                            owner: dict[int, int], embed: Callable[[int], np.ndarray | None]) -> dict[int, int]:
        """Embeddings where IoU is not enough, asked for face by face (embed(c) -> (D,) or None; each at most
        once): an unsure IoU match to a track with an identity is refused when the face is unlike it, and faces
        no track took, or only a young one, are matched by embedding alone (min_similarity, max_jump) to unmatched
        tracks with an identity, so a face hidden for a few frames, or refused, keeps or finds its own track (a
        face half out from behind another may be unlike its track on the first frame: the young track it
        started then ends, handing its face back)."""
        p = self.params
        asked: dict[int, np.ndarray | None] = {}

        def embedding(c: int) -> np.ndarray | None:
            if c not in asked:
                asked[c] = embed(c)
            return asked[c]

        for c, track_id in list(owner.items()):
            if self.tracks[track_id].identity is None:
                continue
            if self.unsure_match(track_id, faces[c], 1.0 - cost[ids.index(track_id), c], faces):
                e = embedding(c)
                if e is not None and self._similarity(track_id, e) < p.refuse_below:
                    self._refused[c] = owner.pop(c)
        self._rematch_refused(ids, cost, owner, embedding)
        taken = set(owner.values())
        waiting = [t for t in ids if t not in taken and self.tracks[t].identity is not None]
        loose = [c for c in range(len(faces)) if c not in owner or self.tracks[owner[c]].frames < p.young]
        if not waiting or not loose:
            return owner
        predicted = np.stack([self._live[t].predicted_box(frame) for t in waiting])
        sides = np.array([box_side(b) for b in predicted])
        centres = (predicted[:, :2] + predicted[:, 2:]) / 2
        second = np.full((len(waiting), len(loose)), NO_MATCH)
        for j, c in enumerate(loose):
            e = embedding(c)
            if e is None:
                continue
            centre = (faces[c].box[:2] + faces[c].box[2:]) / 2
            for r, track_id in enumerate(waiting):
                sim = self._similarity(track_id, e)
                if sim >= p.min_similarity and np.linalg.norm(centres[r] - centre) / sides[r] <= p.max_jump:
                    second[r, j] = 1.0 - sim
        pairs = assign(second)
        self._end([owner[loose[j]] for _, j in pairs if loose[j] in owner], left=False)  # young tracks handed back
        owner.update({loose[j]: waiting[r] for r, j in pairs})
        return owner

    def _rematch_refused(self, ids: list[int], cost: np.ndarray, owner: dict[int, int],
                         embedding: Callable[[int], np.ndarray | None]) -> None:
        """A refused face goes, by IoU, to a track not matched this frame other than the one that refused it,
        one without an identity or one the face is like: the track it started a frame before, whose identity
        is not known yet where its faces score under good_score. Else the old track, whose predicted box still
        wins the IoU, refused it again frame after frame, and each frame started a track with a seed of its own."""
        refused, taken = list(self._refused), set(owner.values())
        others = [t for t in ids if t not in taken]
        if not refused or not others:
            return
        second = np.full((len(others), len(refused)), NO_MATCH)
        for r, track_id in enumerate(others):
            for j, c in enumerate(refused):
                price = cost[ids.index(track_id), c]
                if track_id == self._refused[c] or price >= NO_MATCH:
                    continue
                if self.tracks[track_id].identity is not None:
                    e = embedding(c)
                    if e is None or self._similarity(track_id, e) < self.params.refuse_below:
                        continue
                second[r, j] = price
        for r, j in assign(second):
            owner[refused[j]] = others[r]
            del self._refused[refused[j]]

    def update(self, frame_index: int, faces: list[Face], embeddings: np.ndarray | None = None, *,
               weak_below: float | None = None,
               embed: Callable[[int], np.ndarray | None] | None = None) -> list[TrackedFace]:
        """Match this frame's faces to tracks (new ids for the rest); results in the order of `faces`.

        embeddings: optional (N, D) per face; used for association and, on good frames, folded
        into the track identity (so do not also pass them to add_identity).
        weak_below: a face scored at or below this only continues a live track; it starts none, and is left
        out of the results when it matches none (detection hysteresis: RestoreConfig.detection_floor).
        embed: without `embeddings`, a face's embedding by its index, asked for only where IoU is not enough
        and a track has an identity (_check_by_embedding); never folded into the identity here.
        """
        if embeddings is not None and len(embeddings) != len(faces):
            raise ValueError("update: one embedding per face is needed")
        self._retire(frame_index)
        self._refused, self.split = {}, {}
        ids, cost = self._cost(frame_index, faces, embeddings)
        owner = {c: ids[r] for r, c in assign(cost)}
        if embed is not None and embeddings is None:
            owner = self._check_by_embedding(frame_index, faces, ids, cost, owner, embed)
        out = []
        for c, face in enumerate(faces):
            track_id = owner.get(c)
            if track_id is None and weak_below is not None and face.score <= weak_below:
                continue
            if track_id is None:
                track_id = self._start(frame_index, face)
                if c in self._refused:
                    self.split[track_id] = self._refused[c]
            live = self._live[track_id]
            info = live.info
            gap = max(frame_index - info.last_frame, 1)
            box = face.box.astype(np.float64)
            if info.frames:
                live.velocity = 0.5 * live.velocity + 0.5 * (box - live.box) / gap
            live.box, live.score = box, face.score
            live.smooth = one_euro_step(live.smooth, face.landmarks, frame_index, box_side(box), self.smoothing)
            info.last_frame = frame_index
            info.frames += 1
            info.history.append(frame_index)
            del info.history[:-self.params.history]
            if embeddings is not None:
                quality = self.face_quality(face)
                self.sample(track_id, embeddings[c], quality, quality > 0)
            out.append(TrackedFace(face=face, track_id=track_id, landmarks=live.smooth.value.astype(np.float32)))
        return out

    @property
    def live_ids(self) -> list[int]:
        """Ids of tracks that can still be matched."""
        return list(self._live)


@dataclass
class IdentitySchedule:
    """Which faces feed their track's identity: a track's first face, then up to `samples` good faces `gap`
    frames apart, then one good face every `refresh` frames (embedding every face of every frame would cost
    more than restoring it on a CPU). It sees frame indices and face qualities (FaceTracker.face_quality),
    never pixels, so the Ray driver replays it over the detections alone."""

    samples: int = 5
    gap: int = 3
    refresh: int = 48
    first_weight: float = 1e-3  # a track's first embedding counts even on a poor frame; good frames outweigh it
    taken: dict[int, tuple[int, int]] = field(default_factory=dict)  # track id -> (embeddings taken, last frame)

    def due(self, index: int, track_id: int, quality: float) -> float | None:
        """The weight of this face's embedding in its track's identity if it is due now (and counts it as
        taken), else None."""
        count, last = self.taken.get(track_id, (0, index))
        since = index - last
        if count and not (quality > 0 and ((count < self.samples and since >= self.gap) or since >= self.refresh)):
            return None
        self.taken[track_id] = (count + 1, index)
        return max(quality, self.first_weight)

    def count(self, track_id: int) -> int:
        """Embeddings taken for a track so far (the version of its identity)."""
        return self.taken.get(track_id, (0, 0))[0]

    def forget(self, kept: Iterable[int]) -> None:
        """Drop the tracks the tracker no longer keeps, once many have gone (a long video's memory stays flat)."""
        kept = set(kept)
        if len(self.taken) > 4 * len(kept) + 64:
            self.taken = {i: v for i, v in self.taken.items() if i in kept}
