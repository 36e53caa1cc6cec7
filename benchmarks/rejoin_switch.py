"""The switch at a late re-join: how much a re-joined track's restored face changes where it takes over a finished
person's noise seed and identity target, against its change between neighbouring frames.

    python benchmarks/rejoin_switch.py VIDEO [--frames 64] [--after 6]
    python benchmarks/rejoin_switch.py --crossing ../shared/data/videos   (track_identity.py's synthetic crossing)

A re-join is decided at a new track's first good, informative face (FaceTracker.sample), which may come a few frames
into the track (in facenet_crowd_1080p.mp4 track 12 starts at 45 and re-joins at 48): the frames before were given
the track's own seed and target. Detection, tracking and identity run as `clrface-video restore` runs them with the
default model on the CPU over frames 0..FRAMES-1; then only the faces of each track re-joined after its first frame
are restored, from its first frame to AFTER frames past the switch, twice:

- as run: the seeds and targets the story gave each frame;
- joined throughout: the joined person's seed and target (as at the switch) on the frames before it too;

and the frames before the switch a third time with the joined seed and their own target (the seed's part).

Per frame, against the frame before: the mean absolute difference (0-255) of the input crops, of the restored crops
and of the pasted crops (share x restored + (1 - share) x input, the crop-space part of paste_faces), and the
FaceNet similarity of the two restored faces; then, on the frames before the switch, the difference between the
runs' restored crops of the same input (what the switch itself changes), and how much of it the seed makes.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from clrface_video.config import RestoreConfig
from clrface_video.io.decode import read_frames
from clrface_video.io.pixels import to_uint8
from clrface_video.pipeline import load_models
from clrface_video.report import StageTimer
from clrface_video.restore.temporal import TrackMemory
from clrface_video.story import SHARE_SMOOTHING, FaceJob, FrameStory
from clrface_video.types import Frame


@dataclass(frozen=True)
class Switch:
    """A track re-joined after its first frame: where, and the person's seed and target it took there."""

    track: int
    frame: int
    seed: int
    identity: np.ndarray


def gather(story: FrameStory, images: list[np.ndarray]) -> tuple[dict[int, dict[int, FaceJob]], list[Switch]]:
    """Every face job of the frames by track and frame (tracked, not restored), and the late re-joins."""
    assert story.tracking is not None
    tracker = story.tracking.tracker
    sample, current, switches = tracker.sample, [0], []
    jobs: dict[int, dict[int, FaceJob]] = {}

    def sampled(track_id: int, embedding: np.ndarray, weight: float, good: bool) -> int | None:
        joined = sample(track_id, embedding, weight, good)
        if joined is not None and tracker.tracks[track_id].first_frame < current[0]:
            person = tracker.tracks[joined]
            assert person.identity is not None
            switches.append(Switch(track_id, current[0], person.seed, person.identity.copy()))
        return joined

    tracker.sample = sampled  # type: ignore[method-assign]
    for index, image in enumerate(images):
        current[0] = index
        for job in story.faces_of(Frame(image, index)):
            jobs.setdefault(job.track, {})[index] = job
    return jobs, switches


def restored(story: FrameStory, jobs: list[FaceJob]) -> np.ndarray:
    """The crops restored in frame order, with a fresh share memory (the blend gate's smoothing starts anew)."""
    story.share_memory = TrackMemory(SHARE_SMOOTHING) if story.share_memory is not None else None
    jobs = [replace(job, restored=None) for job in jobs]
    story.restore(jobs)
    return np.stack([job.restored for job in jobs]).astype(np.float64)  # type: ignore[misc]


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def p99(a: np.ndarray, b: np.ndarray) -> float:
    """The 99th percentile of the absolute difference: a change in a small part of the face (eyes, mouth)."""
    return float(np.percentile(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), 99))


def report(story: FrameStory, jobs: list[FaceJob], switch: Switch, frames: list[int]) -> None:
    before = [frame < switch.frame for frame in frames]
    joined = [replace(job, seed=switch.seed, identity=switch.identity) if early else job
              for job, early in zip(jobs, before)]
    runs = {"as run": restored(story, jobs), "joined throughout": restored(story, joined)}
    crops = np.stack([job.crop for job in jobs]).astype(np.float64)
    shares = np.array([job.weight for job in jobs])[:, None, None, None]
    assert story.models.identity is not None
    print(f"track {switch.track}: frames {frames[0]}-{frames[-1]}, re-joined at {switch.frame}")
    print("  frame share  input (p99) | as run: restored (p99) pasted identity | joined throughout: the same")
    rows, embedded = {}, {}
    for name, faces in runs.items():
        pasted = shares * faces + (1 - shares) * crops
        e = embedded[name] = story.models.identity.embed(np.clip(faces, 0, 255).astype(np.uint8))
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        rows[name] = [f"{mad(faces[i], faces[i - 1]):6.2f} ({p99(faces[i], faces[i - 1]):5.1f}) "
                      f"{mad(pasted[i], pasted[i - 1]):6.2f} {float(e[i] @ e[i - 1]):6.3f}" for i in range(1, len(jobs))]
    for i in range(1, len(jobs)):
        mark = "  <- switch" if frames[i] == switch.frame else ""
        print(f"  {frames[i]:5d} {shares[i, 0, 0, 0]:5.2f} {mad(crops[i], crops[i - 1]):6.2f} "
              f"({p99(crops[i], crops[i - 1]):5.1f}) | {' | '.join(rows[name][i - 1] for name in runs)}{mark}")
    own, seeded = runs["as run"], restored(story, [replace(job, seed=switch.seed) for job, early in zip(jobs, before)
                                                   if early])
    other, e = runs["joined throughout"], embedded
    print("  frames before the switch, same input: own seed and target against the joined ones, restored mean (p99),"
          " pasted mean and identity; the part of the seed (own target, joined seed) and of the target (joined seed,"
          " both targets)")
    for i in range(len(seeded)):
        print(f"  {frames[i]:5d} {mad(own[i], other[i]):6.2f} ({p99(own[i], other[i]):4.1f}) "
              f"{mad(shares[i] * own[i], shares[i] * other[i]):6.2f} "
              f"{float(e['as run'][i] @ e['joined throughout'][i]):6.3f} | seed {mad(own[i], seeded[i]):5.2f} "
              f"| target {mad(seeded[i], other[i]):5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path, nargs="?")
    parser.add_argument("--crossing", type=Path, help="folder of the liveportrait clips")
    parser.add_argument("--frames", type=int, default=64, help="frames tracked from the first")
    parser.add_argument("--after", type=int, default=6, help="frames restored past each switch")
    args = parser.parse_args()
    if args.crossing is not None:
        from track_identity import crossing  # beside this script

        images = crossing(args.crossing)[:args.frames]
    else:
        images = [to_uint8(f.image) for _, f in zip(range(args.frames), read_frames(args.video))]
    config = RestoreConfig(device="cpu")
    models = load_models(config, video=True)
    assert models.identity is not None, "identity is off: nothing to measure"
    story = FrameStory(models, config, StageTimer(), video=True)
    jobs, switches = gather(story, images)
    print(f"{len(images)} frames, {len(jobs)} tracks, {len(switches)} re-joined after their first frame")
    for switch in switches:
        frames = [f for f in sorted(jobs[switch.track]) if f <= switch.frame + args.after]
        report(story, [jobs[switch.track][f] for f in frames], switch, frames)


if __name__ == "__main__":
    main()
