"""Face tracks of a video stretch with per-track identity on: which frames each track holds, and the embeddings.

    python benchmarks/track_identity.py VIDEO [--start 0] [--frames 45]   (frames counted from --start)
    python benchmarks/track_identity.py --crossing ../shared/data/videos [--start 8 --frames 14 --restore]
    python benchmarks/track_identity.py VIDEO --frames 0 --crops /tmp/rejoins   (the whole video; re-join crops)

Detection, tracking, alignment and identity as `clrface-video restore` runs them with the default model on the
CPU (FaceNet embeds the faces the identity schedule picks, and those the tracker asks for), without restoring.
Per track: its first and last frame, the frames it missed, and its shares under 1 (a new track fades in from
1/8, story.WeightRamp); then FaceNet embeddings per frame and the stage seconds.
Re-identification (FaceTracker.sample): each new track's first good face is compared with the finished people; each
such look is printed (frame, track, the most similar finished track, similarity, re-joined or not) where a finished
person was there to compare with; then the highest similarity of the track's own running identity (the weighted mean
of its samples so far, as if it had not re-joined) to those people at each of its next --follow good samples (4); and
the highest similarity of the compared face to any one good sample of those people (a rule that keeps a person's
samples, not only their running target, would compare with these). For each look at 0.4 or above, the similarities
of the finished person's good samples (frame, quality: FaceTracker.face_quality) to the new track's first good ones.
--crops DIR: for each look at 0.4 or above, the finished track's first and last crops beside the new track's crop
that was compared (the frame and the tracks in the file name), to judge by eye whether it is the same person.
--crossing: a synthetic 64-frame clip from the liveportrait d3, d19 and d9 clips in that folder: person A walks
right behind person B (hidden frames 13-16), goes off the right edge (39-45) and comes back; a cut at 56.
--restore: restore the faces too (the default model, CPU), and print the wall time of the whole run.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from clrface_video.config import RestoreConfig
from clrface_video.io.decode import read_frames
from clrface_video.io.pixels import to_uint8
from clrface_video.pipeline import load_models
from clrface_video.report import StageTimer
from clrface_video.story import FrameStory
from clrface_video.types import Frame


def _square(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return cv2.resize(image[top:top + s, left:left + s], (side, side), interpolation=cv2.INTER_AREA)


def _degrade(image: np.ndarray) -> np.ndarray:
    """Blur, half-size and back, JPEG quality 45: a soft, blocky face as in an old clip."""
    h, w = image.shape[:2]
    small = cv2.resize(cv2.GaussianBlur(image, (0, 0), 1.2), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    _, data = cv2.imencode(".jpg", cv2.resize(small, (w, h))[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 45])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _place(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    h, w = canvas.shape[:2]
    s = patch.shape[0]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + s, w), min(y + s, h)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def crossing(folder: Path, side: int = 150) -> list[np.ndarray]:
    """The synthetic crossing's 64 frames (640 x 360, RGB uint8)."""
    clips = {name: [to_uint8(f.image) for _, f in zip(range(80), read_frames(folder / f"liveportrait_{name}.mp4"))]
             for name in ("d3", "d19", "d9")}
    frames = []
    for t in range(64):
        canvas = np.broadcast_to(np.linspace(90, 140, 640)[None, :, None] * np.array([1.0, 0.95, 0.85]),
                                 (360, 640, 3)).astype(np.uint8).copy()
        if t < 30:
            xa, xb = int(40 + 410 * t / 29), int(450 - 410 * t / 29)
        elif t < 46:
            xa, xb = (int(450 + 270 * min(t - 30, 8) / 8) if t < 39 else 720), 40
        else:
            xa, xb = int(720 - 270 * min(t - 46, 8) / 8), 40
        if t < 56:
            _place(canvas, _square(clips["d3"][t % 80], side), xa, 100)
            _place(canvas, _square(clips["d19"][t % 80], side), xb, 100)  # B on top: hides A where they cross
        else:
            _place(canvas, _square(clips["d9"][t % 80], side), 40, 100)
        frames.append(_degrade(canvas))
    return frames


@dataclass(frozen=True)
class Look:
    """A new track's first good face compared with the finished people (FaceTracker.sample)."""

    frame: int
    track: int
    nearest: int  # the most similar finished person's last track
    similarity: float
    joined: bool
    best_sample: float  # the highest similarity to any one good sample of the finished people
    running: list[float] = field(default_factory=list)  # its own running identity's, at its next good samples


@dataclass(frozen=True)
class Sample:
    """A good identity sample as the tracker folded it."""

    frame: int
    quality: float  # its weight (FaceTracker.face_quality)
    embedding: np.ndarray  # (D,) unit length


def watch_rejoins(story: FrameStory, current: list[int], follow: int = 4) -> tuple[list[Look], dict[int, list[Sample]]]:
    """The re-identification looks of the story's tracker, gathered as it samples identities, and each track's good
    samples (the people compared with at a look are those of their tracks)."""
    assert story.tracking is not None
    tracker = story.tracking.tracker
    sample, looks = tracker.sample, []
    samples: dict[int, list[Sample]] = {}
    own: dict[int, np.ndarray] = {}  # track -> the weighted sum of its own samples (its running identity, unjoined)
    young: dict[int, tuple[Look, list[int]]] = {}  # tracks followed after their first look -> it, its candidates

    def nearest(gone: list[int], embedding: np.ndarray) -> tuple[int, float]:
        e = embedding / np.linalg.norm(embedding)
        similarity = {t: float(tracker.tracks[t].identity @ e) for t in gone}
        best = max(similarity, key=similarity.__getitem__)
        return best, similarity[best]

    def best_sample(gone: list[int], embedding: np.ndarray) -> float:
        people = {tracker.tracks[t].person for t in gone}
        kept = [s.embedding for t, own_samples in samples.items() for s in own_samples
                if t in tracker.tracks and tracker.tracks[t].person in people]
        return float(np.max(np.stack(kept) @ (embedding / np.linalg.norm(embedding))))

    def sampled(track_id: int, embedding: np.ndarray, weight: float, good: bool) -> int | None:
        live = tracker._live.get(track_id)
        first = good and live is not None and not live.known
        gone = list(tracker._gone.values())
        joined = sample(track_id, embedding, weight, good)
        e = np.asarray(embedding, np.float32) / np.linalg.norm(embedding)
        own[track_id] = own.get(track_id, 0.0) + weight * e
        if first and gone:
            look = Look(current[0], track_id, *nearest(gone, embedding), joined is not None, best_sample(gone, e))
            looks.append(look)
            young[track_id] = look, gone
        elif good and track_id in young:
            look, candidates = young[track_id]
            look.running.append(nearest(candidates, own[track_id])[1])
            if len(look.running) >= follow:
                del young[track_id]
        if good:
            samples.setdefault(track_id, []).append(Sample(current[0], weight, e))
        return joined

    tracker.sample = sampled  # type: ignore[method-assign]
    return looks, samples


def print_samples(look: Look, samples: dict[int, list[Sample]], count: int) -> None:
    """The similarities of the finished track's good samples (rows) to the new track's first `count` good ones."""
    before, after = samples.get(look.nearest, []), samples.get(look.track, [])[:count]
    agree = [a.embedding @ b.embedding for i, a in enumerate(before) for b in before[i + 1:]]
    if agree:
        print(f"    the finished track's good samples to each other: {min(agree):.3f} to {max(agree):.3f}, "
              f"mean {np.mean(agree):.3f}")
    print("    finished track's samples (frame, quality) x the new track's at frames "
          + " ".join(f"{s.frame:6d}" for s in after))
    for s in before:
        print(f"    {s.frame:5d} {s.quality:5.2f}  " + " ".join(f"{s.embedding @ t.embedding:6.3f}" for t in after))


def print_looks(looks: list[Look], crops: dict[int, dict[int, np.ndarray]], folder: Path | None,
                samples: dict[int, list[Sample]], follow: int = 4) -> None:
    joined = sum(look.joined for look in looks)
    print(f"re-identification: {len(looks)} new tracks compared with finished people, {joined} re-joined")
    for look in looks:
        print(f"  frame {look.frame}: track {look.track} ~ track {look.nearest} {look.similarity:.3f}"
              f"{' re-joined' if look.joined else ''}; best single sample {look.best_sample:.3f}"
              + (f"; running identity at its next good samples: {' '.join(f'{v:.3f}' for v in look.running)}"
                 if look.running else ""))
        if look.similarity >= 0.4:
            print_samples(look, samples, follow + 1)
        if folder is not None and look.similarity >= 0.4:
            folder.mkdir(parents=True, exist_ok=True)
            before = crops[look.nearest]
            row = [before[min(before)], before[max(before)], crops[look.track][look.frame]]
            name = f"{'joined' if look.joined else 'apart'}_{look.frame}_{look.nearest}_{look.track}.png"
            cv2.imwrite(str(folder / name), np.hstack(row)[..., ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path, nargs="?")
    parser.add_argument("--start", type=int, default=0, help="first frame")
    parser.add_argument("--frames", type=int, help="how many (default: 45 of a video, the whole crossing)")
    parser.add_argument("--crossing", type=Path, help="folder of the liveportrait clips")
    parser.add_argument("--restore", action="store_true")
    parser.add_argument("--crops", type=Path, help="folder for the crops of both sides of each re-identification look")
    parser.add_argument("--follow", type=int, default=4, help="good samples a new track's running identity is followed")
    args = parser.parse_args()
    if args.crossing is not None:
        images = crossing(args.crossing)[args.start:][:args.frames]
    else:
        frames = (to_uint8(f.image) for f in read_frames(args.video) if f.index >= args.start)
        images = [image for _, image in zip(range(45 if args.frames is None else args.frames or 10**9), frames)]
    config = RestoreConfig(device="cpu")
    models = load_models(config, video=True)
    assert models.identity is not None, "identity is off: nothing to measure"
    resolution = models.restorer.resolution
    models.identity.embed(np.zeros((1, resolution, resolution, 3), np.uint8))  # its first call's set-up, untimed
    asked: list[int] = []
    current = [0]  # the frame being tracked
    embed = models.identity.embed
    models.identity.embed = lambda crops: asked.append(current[0]) or embed(crops)  # type: ignore[method-assign]
    story = FrameStory(models, config, StageTimer(), video=True)
    tracks: dict[int, dict[int, float]] = {}  # track -> frame -> share pasted
    crops: dict[int, dict[int, np.ndarray]] = {}  # track -> frame -> its aligned crop, 128 px
    looks, samples = watch_rejoins(story, current, args.follow)
    faces_of = story.faces_of

    def tracked(frame: Frame) -> list:
        current[0] = frame.index
        jobs = faces_of(frame)
        for job in jobs:
            tracks.setdefault(job.track, {})[frame.index] = job.weight
            if args.crops is not None:
                crops.setdefault(job.track, {})[frame.index] = cv2.resize(job.crop, (128, 128), cv2.INTER_AREA)
        return jobs

    story.faces_of = tracked  # type: ignore[method-assign]
    start = time.perf_counter()
    frames = [Frame(image, index) for index, image in enumerate(images)]
    if args.restore:
        for _ in story.run(frames):
            pass
    else:
        for frame in frames:
            story.faces_of(frame)
    seconds = time.perf_counter() - start
    for track, shares in sorted(tracks.items()):
        seen = sorted(shares)
        gaps = [f"{a + 1}-{b - 1}" for a, b in pairwise(seen) if b - a > 1]
        faded = " ".join(f"{shares[i]:.2f}" for i in seen if shares[i] < 1)
        print(f"track {track}: frames {seen[0]}-{seen[-1]} ({len(seen)} found), missed {' '.join(gaps) or '-'}, "
              f"shares under 1: {faded or '-'}")
    per_frame = np.bincount(asked, minlength=len(images))
    print(f"{len(images)} frames, FaceNet embeddings {len(asked)} ({len(asked) / len(images):.2f} a frame): "
          f"{' '.join(map(str, per_frame.tolist()))}")
    print(f"{seconds:.1f} s in all; by stage", {k: round(v, 2) for k, v in story.timer.seconds.items() if v})
    print_looks(looks, crops, args.crops, samples, args.follow)


if __name__ == "__main__":
    main()
