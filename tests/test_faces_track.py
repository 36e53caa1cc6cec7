"""Tracking: consistent ids, survival over short misses, smoother landmarks, identity per track."""
from __future__ import annotations

import itertools
import sys

import cv2
import numpy as np

from clrface_video.faces.align import FFHQ_TEMPLATE_512
from clrface_video.faces.detect import make_detector
from clrface_video.faces.track import NO_MATCH, FaceTracker, IdentitySchedule, TrackerParams, assign
from clrface_video.types import Face
from tests.conftest import shared_file


def synthetic_face(cx: float, cy: float, side: float = 100.0, score: float = 0.99,
                   noise: np.ndarray | None = None) -> Face:
    """A face whose landmarks are the FFHQ template scaled into a box of `side` pixels around (cx, cy)."""
    marks = (FFHQ_TEMPLATE_512 - 256) * (side / 270) + [cx, cy]
    if noise is not None:
        marks = marks + noise
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
    return Face(box=box, landmarks=marks.astype(np.float32), score=score)


def jitter(points: np.ndarray) -> float:
    """Mean absolute second difference along time of (T, 5, 2) landmarks."""
    return float(np.abs(np.diff(points, 2, axis=0)).mean())


def test_two_moving_faces_keep_their_ids():
    tracker = FaceTracker()
    ids = []
    for t in range(30):
        faces = [synthetic_face(100 + 4 * t, 200), synthetic_face(500 - 3 * t, 220)]
        if t % 2:
            faces = faces[::-1]  # detection order must not matter
        out = tracker.update(t, faces)
        by_x = sorted(out, key=lambda r: r.face.box[0])
        ids.append((by_x[0].track_id, by_x[1].track_id) if t < 30 else None)
    assert len(set(ids)) == 1 and len(set(ids[0])) == 2
    assert set(tracker.tracks) == set(ids[0])
    assert all(tracker.tracks[i].frames == 30 for i in ids[0])


def test_survives_a_three_frame_miss_but_not_a_long_one():
    tracker = FaceTracker(TrackerParams(max_age=10))
    first = tracker.update(0, [synthetic_face(200, 200)])[0].track_id
    for t in range(1, 5):
        tracker.update(t, [synthetic_face(200 + 5 * t, 200)])
    for t in range(5, 8):
        assert tracker.update(t, []) == []
    again = tracker.update(8, [synthetic_face(240, 200)])[0].track_id  # moved on while unseen
    assert again == first
    for t in range(9, 21):
        tracker.update(t, [])
    assert tracker.update(21, [synthetic_face(240, 200)])[0].track_id != first
    assert first not in tracker.live_ids and first in tracker.tracks


def test_a_cut_ends_every_live_track():
    tracker = FaceTracker()
    before = [r.track_id for r in tracker.update(0, [synthetic_face(200, 200), synthetic_face(400, 200)])]
    tracker.cut()
    after = [r.track_id for r in tracker.update(1, [synthetic_face(200, 200), synthetic_face(400, 200)])]
    assert not set(before) & set(after) and set(tracker.live_ids) == set(after)
    assert all(i in tracker.tracks for i in before)  # ended, still known for late look-ups


def test_a_cut_is_a_new_picture_not_a_pan_or_a_camera_flash():
    from clrface_video.faces.shots import is_cut, thumbnail
    from tests.media import clip_image

    pan = [thumbnail(clip_image(i, 12, (256, 192))) for i in range(12)]  # a fast pan and zoom over the astronaut
    assert not any(is_cut(a, b) for a, b in itertools.pairwise(pan))
    flash = np.clip(clip_image(6, 12, (256, 192)).astype(np.float32) * 1.3 + 30, 0, 255).astype(np.uint8)
    assert not is_cut(pan[5], thumbnail(flash)) and not is_cut(thumbnail(flash), pan[7])
    other = thumbnail(clip_image(6, 12, (256, 192), cut_at=6))  # Grace Hopper where the astronaut was
    assert is_cut(pan[5], other) and not is_cut(None, other)


def test_one_euro_lowers_jitter_when_still_and_follows_fast_motion():
    rng = np.random.default_rng(0)
    tracker = FaceTracker()
    raw, smooth = [], []
    for t in range(60):
        out = tracker.update(t, [synthetic_face(300, 300, noise=rng.normal(0, 1.5, (5, 2)))])[0]
        raw.append(out.face.landmarks)
        smooth.append(out.landmarks)
    assert jitter(np.array(smooth)) < 0.35 * jitter(np.array(raw))
    # then a fast pan of 15 px per frame: after a few frames the lag is small compared to the face
    for t in range(60, 80):
        out = tracker.update(t, [synthetic_face(300 + 15 * (t - 59), 300)])[0]
    lag = np.abs(out.landmarks - out.face.landmarks).max()
    assert lag < 15.0


def test_identity_is_a_weighted_normalised_mean_and_reassociates():
    rng = np.random.default_rng(1)
    person = rng.normal(size=512)
    person /= np.linalg.norm(person)
    tracker = FaceTracker()
    for t in range(5):
        emb = person + rng.normal(0, 0.01, 512)  # cosine about 0.97 each
        out = tracker.update(t, [synthetic_face(200, 200)], emb[None])
    track = tracker.tracks[out[0].track_id]
    assert track.identity is not None and abs(np.linalg.norm(track.identity) - 1) < 1e-5
    assert track.identity @ person > 0.99 and track.identity_weight > 0
    # a low-score frame does not count
    before = track.identity_weight
    tracker.update(5, [synthetic_face(200, 200, score=0.5)], person[None])
    assert track.identity_weight == before
    # after a cut the face reappears one face-size away: the embedding brings it back to its track
    tracker.update(6, [])
    other = rng.normal(size=512)
    out = tracker.update(7, [synthetic_face(330, 200), synthetic_face(600, 400)], np.stack([person, other]))
    assert out[0].track_id == track.track_id and out[1].track_id != track.track_id
    tracker.add_identity(track.track_id, -person, quality=0.01)
    assert track.identity @ person > 0.99


def test_seeds_are_deterministic_and_memory_is_bounded():
    params = TrackerParams(max_age=1, keep_dead=5, history=8)
    a, b = FaceTracker(params), FaceTracker(params)
    for t in range(0, 60, 3):  # a new face every 3 frames, each track dies
        for tracker in (a, b):
            tracker.update(t, [synthetic_face(100 + 200 * (t % 2), 100)])
    assert [tr.seed for tr in a.tracks.values()] == [tr.seed for tr in b.tracks.values()]
    assert len(a.tracks) <= 5 + len(a.live_ids)
    assert len({tr.seed for tr in a.tracks.values()}) == len(a.tracks)
    steady = FaceTracker(params)
    for t in range(40):
        steady.update(t, [synthetic_face(100, 100)])
    assert len(next(iter(steady.tracks.values())).history) == 8


def test_greedy_fallback_without_scipy(monkeypatch):
    cost = np.array([[0.1, 0.5], [0.2, NO_MATCH]])
    assert sorted(assign(cost)) == [(0, 1), (1, 0)]  # Hungarian: total 0.7
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    assert sorted(assign(cost)) == [(0, 0)]  # greedy takes 0.1 first, the rest is gated


def test_real_video_keeps_one_id_and_smooths():
    path = shared_file("videos/keep_real_1.mp4")
    capture = cv2.VideoCapture(str(path))
    detector, tracker = make_detector(), FaceTracker()
    raw, smooth, ids = [], [], set()
    for t in range(40):
        ok, frame = capture.read()
        assert ok, "could not decode keep_real_1.mp4"
        if t in (20, 21, 22):  # a simulated 3-frame detector miss
            tracker.update(t, [])
            continue
        out = tracker.update(t, detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        assert len(out) == 1
        ids.add(out[0].track_id)
        if t > 22:
            raw.append(out[0].face.landmarks)
            smooth.append(out[0].landmarks)
    capture.release()
    assert len(ids) == 1
    assert jitter(np.array(smooth)) < jitter(np.array(raw))


def test_identity_schedule_takes_the_first_face_then_good_ones_spaced_then_a_refresh():
    schedule = IdentitySchedule(samples=3, gap=2, refresh=10)
    assert schedule.due(0, 7, 0.0) == schedule.first_weight  # a poor first face still starts the identity
    assert schedule.due(1, 7, 2.0) is None  # too soon
    assert schedule.due(2, 7, 0.0) is None  # not a good face
    assert schedule.due(2, 7, 2.0) == 2.0 and schedule.due(4, 7, 1.5) == 1.5 and schedule.count(7) == 3
    assert [schedule.due(i, 7, 2.0) for i in range(5, 14)] == [None] * 9  # samples used up: wait for the refresh
    assert schedule.due(14, 7, 2.0) == 2.0 and schedule.count(7) == 4
    assert schedule.due(14, 8, 1.0) == 1.0 and schedule.count(8) == 1  # each track on its own


def _unit(*values: float) -> np.ndarray:
    e = np.zeros(8, np.float32)
    e[: len(values)] = values
    return e / np.linalg.norm(e)


def test_a_face_hidden_for_a_few_frames_comes_back_to_its_track_by_embedding_not_iou():
    """(a) A face gone for 4 frames that reappears where IoU no longer reaches its track keeps its id when its
    embedding matches the track's identity, and embeddings are asked for only on that frame."""
    tracker, asked = FaceTracker(), []
    a_id = tracker.update(0, [synthetic_face(200, 200)])[0].track_id
    tracker.add_identity(a_id, _unit(1, 0), 1.0)
    b_id = tracker.update(1, [synthetic_face(200, 200), synthetic_face(600, 200)])[1].track_id
    tracker.add_identity(b_id, _unit(0, 1), 1.0)

    def embed(c: int) -> np.ndarray:
        asked.append(c)
        return [_unit(0, 1), _unit(0.9, 0.1)][c]

    for t in range(2, 4):
        out = tracker.update(t, [synthetic_face(200, 200), synthetic_face(600, 200)], embed=embed)
        assert [f.track_id for f in out] == [a_id, b_id]
    for t in range(4, 8):  # A hidden
        assert [f.track_id for f in tracker.update(t, [synthetic_face(600, 200)], embed=embed)] == [b_id]
    assert asked == []  # sure IoU matches: nothing embedded
    back = tracker.update(8, [synthetic_face(600, 200), synthetic_face(340, 200)], embed=embed)
    assert [f.track_id for f in back] == [b_id, a_id] and asked == [1]
    plain = FaceTracker()
    plain.update(0, [synthetic_face(200, 200)])
    for t in range(1, 5):
        plain.update(t, [])
    assert plain.update(5, [synthetic_face(340, 200)])[0].track_id != 0  # IoU alone: a new track


def test_an_unsure_iou_match_to_someone_else_is_refused_by_embedding():
    """(b) A different face found over a track's box with a falling detector score starts its own track
    instead of taking the track's identity and seed; the same person with a falling score keeps it."""
    def run(other: np.ndarray, embed_on: bool = True, score: float = 0.45) -> list[int]:
        tracker = FaceTracker()
        ids = [tracker.update(0, [synthetic_face(200, 200)])[0].track_id]
        tracker.add_identity(ids[0], _unit(1, 0), 1.0)
        for t in range(1, 4):
            ids.append(tracker.update(t, [synthetic_face(200, 200)], embed=lambda c: _unit(1, 0))[0].track_id)
        embed = (lambda c: other) if embed_on else None
        ids.append(tracker.update(4, [synthetic_face(203, 200, score=score)], embed=embed)[0].track_id)
        return ids

    assert run(_unit(0.1, 1)) == [0, 0, 0, 0, 1]
    assert run(_unit(1, 0.2)) == [0] * 5
    assert run(_unit(0.1, 1), embed_on=False) == [0] * 5  # no encoder: IoU only, as before
    assert run(_unit(0.1, 1), score=0.75) == [0, 0, 0, 0, 1]  # a small fall, but under good_score: checked too
    assert run(_unit(0.1, 1), score=0.95) == [0] * 5  # a sure match (alone, IoU 0.94, score kept): not embedded


def _half_hidden(tracker: FaceTracker) -> tuple[int, int]:
    """Track A (identity _unit(1, 0)) at frame 0, hidden 1-3, half out at 4 (unlike A: a new young track). The ids."""
    a_id = tracker.update(0, [synthetic_face(200, 200)])[0].track_id
    tracker.add_identity(a_id, _unit(1, 0), 1.0)
    for t in range(1, 4):
        tracker.update(t, [])
    return a_id, tracker.update(4, [synthetic_face(330, 200)], embed=lambda c: _unit(0.3, 1))[0].track_id


def test_a_young_track_started_by_a_half_hidden_face_hands_it_back_to_its_own_track():
    """A face coming out from behind another is unlike its track on its first frame (a new track starts) and like
    it on the next: the new track ends and the face goes on in its own, older track."""
    tracker = FaceTracker()
    a_id, half = _half_hidden(tracker)
    assert half != a_id
    tracker.add_identity(half, _unit(0.3, 1), 1e-3)  # its first identity sample, as the schedule takes it
    out = tracker.update(5, [synthetic_face(335, 200)], embed=lambda c: _unit(1, 0.1))
    assert out[0].track_id == a_id and half not in tracker.live_ids
    assert tracker.update(6, [synthetic_face(340, 200)], embed=lambda c: _unit(1, 0.1))[0].track_id == a_id


def test_a_track_started_by_a_refused_face_goes_on_from_the_weight_its_face_was_pasted_at():
    """A face refused by embedding starts a new track (FaceTracker.split names the track it was refused from),
    and the paste ramp carries that track's weight over: a new track fades in from 1/8, so a wrong refusal (FaceNet
    telling a small face apart from itself) faded the same face out and back in; a track new by itself still
    fades in."""
    from clrface_video.story import WeightRamp

    tracker, ramp = FaceTracker(), WeightRamp()
    first = tracker.update(0, [synthetic_face(200, 200)])[0].track_id
    tracker.add_identity(first, _unit(1, 0), 1.0)
    for t in range(4):
        assert tracker.update(t, [synthetic_face(200, 200)], embed=lambda c: _unit(1, 0))[0].track_id == first
        assert ramp(first, t, 1.0) == 1.0
    assert tracker.split == {}
    (refused,) = tracker.update(4, [synthetic_face(203, 200, score=0.45)], embed=lambda c: _unit(0.1, 1))
    assert refused.track_id != first and tracker.split == {refused.track_id: first}
    for track_id, parent in tracker.split.items():
        ramp.inherit(track_id, parent)
    assert ramp(refused.track_id, 4, 1.0) == 1.0
    assert ramp(99, 4, 1.0) == 1 / 8  # a track of its own: faded in
    assert tracker.update(5, [synthetic_face(203, 200, score=0.45)], embed=lambda c: _unit(0.1, 1))[0].track_id \
        == refused.track_id and tracker.split == {}


def test_a_face_refused_frame_after_frame_stays_in_the_one_track_it_started():
    """A face scored under good_score and unlike a track's identity, found where that track's predicted box still
    wins the IoU, was refused every frame and started a new track, a new noise seed, each frame (the young
    track gets no identity from faces under good_score, so it could not take the face back by embedding). It
    stays in the track it started on its first refused frame now."""
    tracker = FaceTracker()
    first = tracker.update(0, [synthetic_face(200, 200)])[0].track_id
    tracker.add_identity(first, _unit(1, 0), 1.0)
    for t in range(1, 4):
        tracker.update(t, [synthetic_face(200 + t, 200)], embed=lambda c: _unit(1, 0))
    ids, splits = [], []
    for t in range(4, 10):
        (face,) = tracker.update(t, [synthetic_face(200 + t, 200, score=0.7)], weak_below=0.6,
                                 embed=lambda c: _unit(0, 1))
        ids.append(face.track_id)
        splits.append(dict(tracker.split))
    assert first not in ids and len(set(ids)) == 1
    assert splits == [{ids[0]: first}] + [{}] * 5


def _come_back(tracker: FaceTracker, back: np.ndarray, gap: int = 30, cut: bool = False,
               first: float = 0.99) -> tuple[int, int, list]:
    """Person A (embedding _unit(1, 0)) on frames 0-9 at x=200; then nobody for `gap` frames (or a cut); then a face
    at x=420 whose embeddings are `back`, its first face scored `first`, on 5 frames. (A's track, the new track, the
    new track's TrackedFaces)."""
    for t in range(10):
        out = tracker.update(t, [synthetic_face(200, 200)], _unit(1, 0.05 * (t % 3))[None])
    a_id = out[0].track_id
    start = 10 + gap
    if cut:
        tracker.cut()
    faces = []
    for t in range(start, start + 5):
        faces += tracker.update(t, [synthetic_face(420, 200, score=first if t == start else 0.99)], back[None])
    return a_id, faces[0].track_id, faces


def test_a_person_back_after_thirty_frames_takes_over_their_identity_and_seed():
    """A face gone for 30 frames (max_age 10: its track has ended) comes back as a new track (new id, fresh landmark
    smoothing) that takes over the person's identity target and noise seed at its first good embedding; someone
    else there gets their own."""
    tracker = FaceTracker()
    a_id, back_id, faces = _come_back(tracker, _unit(1, 0.1))
    a, back = tracker.tracks[a_id], tracker.tracks[back_id]
    assert back_id != a_id and a_id not in tracker.live_ids
    assert back.person == a.person == a_id and back.seed == a.seed
    assert back.identity_weight > a.identity_weight and float(back.identity @ a.identity) > 0.99
    assert np.array_equal(faces[0].landmarks, faces[0].face.landmarks)  # no smoothing from A's last place

    other = FaceTracker()
    a_id, new_id, _ = _come_back(other, _unit(0.3, 1))
    assert other.tracks[new_id].person == new_id and other.tracks[new_id].seed != other.tracks[a_id].seed
    assert float(other.tracks[new_id].identity @ _unit(1, 0)) < 0.5


def test_a_person_back_after_a_cut_takes_over_their_identity_and_seed_at_their_first_good_face():
    """Shot / reverse shot: A, a cut, A again. A's new track re-joins A by the first embedding of a good face (a
    poor first face, under good_score, feeds the identity but does not decide)."""
    tracker = FaceTracker()
    a_id, back_id, _ = _come_back(tracker, _unit(1, 0.1), gap=1, cut=True)
    assert tracker.tracks[back_id].person == a_id and tracker.tracks[back_id].seed == tracker.tracks[a_id].seed
    poor = FaceTracker()
    a_id, back_id, _ = _come_back(poor, _unit(1, 0.1), gap=1, cut=True, first=0.5)
    assert poor.tracks[back_id].person == a_id and poor.tracks[back_id].seed == poor.tracks[a_id].seed
    assert poor.sample(back_id, _unit(1, 0), 1.0, good=True) is None  # decided once, at the first good face


def test_two_faces_seen_at_once_never_share_a_person():
    """A ends; two look-alikes come at once: only one takes over A (the other starts a person of its own), and a
    finished person whose new track is live is no candidate for a third face."""
    tracker = FaceTracker()
    for t in range(5):
        tracker.update(t, [synthetic_face(200, 200)], _unit(1, 0)[None])
    for t in range(20, 25):
        out = tracker.update(t, [synthetic_face(200, 200), synthetic_face(600, 200)],
                             np.stack([_unit(1, 0.1), _unit(1, 0.12)]))
    people = [tracker.tracks[f.track_id].person for f in out]
    assert people[0] == 0 and people[1] != 0
    assert tracker.tracks[out[0].track_id].seed != tracker.tracks[out[1].track_id].seed
    third = tracker.update(25, [synthetic_face(200, 200), synthetic_face(600, 200), synthetic_face(400, 500)],
                           np.stack([_unit(1, 0.1), _unit(1, 0.12), _unit(1, 0.11)]))
    assert len({tracker.tracks[f.track_id].person for f in third}) == 3


def test_a_young_track_handed_back_is_no_one_who_may_come_back():
    """A young track whose face went back to its older track was that older track's person all along: a face like
    it afterwards does not take over its identity and seed (in the crowd clip such a one-frame track was re-joined
    by someone else at 0.88 the next frame)."""
    tracker = FaceTracker()
    a_id, half = _half_hidden(tracker)
    assert tracker.sample(half, _unit(0.3, 1), 1.0, good=True) is None  # its first good face: no one gone yet
    assert tracker.update(5, [synthetic_face(335, 200)], embed=lambda c: _unit(1, 0.1))[0].track_id == a_id
    assert half not in tracker.live_ids
    (new,) = tracker.update(6, [synthetic_face(335, 200), synthetic_face(700, 400)],
                            embed=lambda c: [_unit(1, 0.1), _unit(0.3, 1)][c])[1:]
    assert tracker.sample(new.track_id, _unit(0.3, 1), 1.0, good=True) is None
    assert tracker.tracks[new.track_id].seed != tracker.tracks[half].seed
