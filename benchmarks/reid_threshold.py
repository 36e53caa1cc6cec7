"""Re-identification threshold: FaceNet similarity of same-person and different-person LFW pairs, as the tracker sees them.

    python benchmarks/reid_threshold.py [LFW_DIR] [--people 0] [--scale 1.0] [--cache /tmp/lfw_embeddings.npz]

LFW_DIR (default ../shared/data/faces-train/lfw: identities A to S, up to 4 photos each; the T to Z ones are kept for
independent evaluation and never read here). Each photo's face nearest its centre is found by the product's detector
(RetinaFace) and embedded as the tracker embeds a face (IdentityEncoder.embed_face at 512, on the CPU). Every pair of
photos of one person is a same-person pair; every pair of photos of two people, a different-person pair.
Printed per threshold: the share of different-person pairs at or above it (false accepts: a re-join there pulls a face
toward someone else) and of same-person pairs (true accepts; LFW's photos of one person are of other days and
lights, so a video's returning face, same scene, is easier); then the chance that a newcomer is at or above it with
at least one of K people gone before (the tracker compares a new track with every finished person), drawn at random;
and how many faces IdentityEncoder.informative turns down (those never re-identify a track).
--scale 0.4: each photo shrunk to 40% and enlarged back first (a face about 45 px across, near the tracker's good_size).
--people N: the first N people only (quick runs). Skips with a message where the data is absent.
--mean: also a young track's running identity (the mean of its first k good samples) against a finished person's:
each person with 4 photos, in each of 4 turns, gives one photo as the finished person's identity and the mean of the
first k of the other 3 as the newcomer's, k = 1..3 (LFW has at most 4 photos a person); the different-person side
compares those means with one photo of every other person. Printed per k and threshold: the accepts of the mean of
k, and of the rule that re-checks at every sample (the first k means, any at or above: what a tracker that looks
again at each good sample while the track is young accepts), with the newcomer chance among K people gone before;
and the first look at 0.6 with the means of 2 and 3 re-checked, everywhere or only where the first look was in a
grey zone under 0.6.
--kept: a finished person's kept samples as well as their running target: each person with 4 photos, in each of 4
turns, gives one photo as the newcomer's first face and the other 3 as the finished person's samples, their mean as the
target; a newcomer is that person where its similarity to the target or to any of the first b kept samples (b = 0..3;
0: the target alone, the rule) is at or above the threshold. The different-person side compares every photo of the
other people with each 4-photo person's first turn. Printed per b and threshold: false and true accepts.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
GALLERIES = (1, 10, 50)  # finished people a newcomer is compared with
SIZE = 512  # the restorer's crop size, which the tracker embeds at


def embed_folder(folder: Path, people: int, scale: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(N, 512) embeddings, (N,) person numbers, and how many photos had no face found."""
    from clrface_video.faces.detect import make_detector
    from clrface_video.faces.identity import load_identity_encoder

    detector, encoder = make_detector("retinaface"), load_identity_encoder("cpu")
    names = sorted(p for p in folder.iterdir() if p.is_dir())[:people or None]
    embeddings, labels, missed = [], [], 0
    start = time.perf_counter()
    for number, person in enumerate(names):
        for path in sorted(person.glob("*.jpg")):
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            if scale != 1.0:
                h, w = image.shape[:2]
                small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
                image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
            faces = detector.detect(image)
            if not faces:
                missed += 1
                continue
            centre = np.array(image.shape[1::-1]) / 2
            face = min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))
            embeddings.append(encoder.embed_face(image, face.landmarks, SIZE))
            labels.append(number)
        if number % 500 == 499:
            print(f"  {number + 1} people, {len(labels)} faces, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return np.stack(embeddings).astype(np.float32), np.array(labels), missed


def pair_counts(embeddings: np.ndarray, labels: np.ndarray) -> tuple[dict[float, list[int]], int, int]:
    """Per threshold [same pairs at or above, different pairs at or above]; and the numbers of pairs of each kind."""
    above = {t: [0, 0] for t in THRESHOLDS}
    same_total = different_total = 0
    for start in range(0, len(labels), 512):  # the upper triangle in row blocks: never the whole N x N at once
        sim = embeddings[start:start + 512] @ embeddings.T
        rows = np.arange(start, min(start + 512, len(labels)))
        upper = np.arange(len(labels))[None, :] > rows[:, None]
        same = (labels[rows][:, None] == labels[None, :]) & upper
        different = (labels[rows][:, None] != labels[None, :]) & upper
        same_total += int(same.sum())
        different_total += int(different.sum())
        for t in THRESHOLDS:
            above[t][0] += int((sim[same] >= t).sum())
            above[t][1] += int((sim[different] >= t).sum())
    return above, same_total, different_total


def newcomer_rates(embeddings: np.ndarray, labels: np.ndarray, draws: int = 20000) -> dict[int, np.ndarray]:
    """Per gallery size K: for `draws` random newcomers, the highest similarity to one photo each of K other people."""
    rng = np.random.default_rng(0)
    first = {int(label): int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)}
    people = np.array(sorted(first))
    best = {k: np.empty(draws, np.float32) for k in GALLERIES}
    for d in range(draws):
        probe = int(rng.integers(len(labels)))
        others = people[people != labels[probe]]
        gallery = rng.choice(others, min(max(GALLERIES), len(others)), replace=False)  # --people: fewer
        sims = embeddings[[first[int(p)] for p in gallery]] @ embeddings[probe]
        for k in GALLERIES:
            best[k][d] = sims[:k].max()
    return best


def four_photo_turns(labels: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(person, their 4 rows rolled by the turn) for each person with 4 photos and each of 4 turns: LFW's most photos of
    one person, so each photo in turn is the one held out."""
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) == 4:
            for turn in range(4):
                yield int(label), np.roll(rows, -turn)


def running_means(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, 3, D) newcomer means of the first k = 1..3 photos, (P, D) the finished person's photo, (P,) person; one row
    per person with 4 photos and turn (which of the 4 is the finished person's)."""
    means, gallery, person = [], [], []
    for label, order in four_photo_turns(labels):
        total = np.cumsum(embeddings[order[:3]], axis=0)
        means.append(total / np.linalg.norm(total, axis=1, keepdims=True))
        gallery.append(embeddings[order[3]])
        person.append(label)
    return np.stack(means), np.stack(gallery), np.array(person)


def print_running_means(embeddings: np.ndarray, labels: np.ndarray, draws: int = 10) -> None:
    """The --mean table: per k and threshold, same-person and different-person accepts of the mean of k and of the
    re-check rule (any of the first k means), and the rule's newcomer chance among K people gone before."""
    means, gallery, person = running_means(embeddings, labels)
    first = {int(label): int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)}
    people = np.array(sorted(first))
    others = embeddings[[first[int(p)] for p in people]]  # one photo of each person
    same = np.einsum("pkd,pd->pk", means, gallery)  # (P, 3)
    different = np.einsum("pkd,qd->kpq", means, others)  # (3, P, people)
    different[:, person[:, None] == people[None, :]] = -1.0  # a person's own photo is no different-person pair
    rule_same, rule_different = np.maximum.accumulate(same, axis=1), np.maximum.accumulate(different, axis=0)
    pairs = int((different[0] > -1.0).sum())
    rng = np.random.default_rng(0)
    size = min(max(GALLERIES), len(people) - 1)  # --people: fewer
    galleries = np.array([[rng.choice(np.flatnonzero(people != p), size, replace=False)
                           for _ in range(draws)] for p in person])  # (P, draws, 50) columns of `others`
    print(f"\nrunning means: {len(person)} newcomers (4-photo people x 4 turns), {pairs} different-person pairs a k")
    print("k  threshold  mean of k: false accepts  true accepts | re-checked at 1..k: false accepts  true accepts  "
          + "  ".join(f"newcomer K={k}" for k in GALLERIES))
    for k in range(3):
        for t in THRESHOLDS:
            fa, ta = int((different[k] >= t).sum()), float((same[:, k] >= t).mean())
            rfa, rta = int((rule_different[k] >= t).sum()), float((rule_same[:, k] >= t).mean())
            best = np.maximum.accumulate(rule_different[k][np.arange(len(person))[:, None, None], galleries], axis=2)
            newcomer = "  ".join(f"{100 * float((best[..., min(g, size) - 1] >= t).mean()):10.3f}%" for g in GALLERIES)
            print(f"{k + 1}  {t:9.2f}  {fa:8d} = {100 * fa / pairs:7.4f}%  {100 * ta:6.2f}% | "
                  f"{rfa:8d} = {100 * rfa / pairs:7.4f}%  {100 * rta:6.2f}%  {newcomer}")
    # (first look's threshold, grey zone's floor: the means of 2 and 3 are re-checked where the first look reached it,
    # their threshold); 0.62: the highest a re-check may have for hamilton's singer (0.626 at his 7th sample)
    for first, grey, t in ((0.6, -1.0, 0.65), (0.6, -1.0, 0.7), (0.6, 0.4, 0.6), (0.6, 0.5, 0.6), (0.6, 0.4, 0.65),
                           (0.65, -1.0, 0.62)):
        fa = int(((different[0] >= first) | ((different[0] >= grey) & (different[1:].max(axis=0) >= t))).sum())
        ta = float(((same[:, 0] >= first) | ((same[:, 0] >= grey) & (same[:, 1:].max(axis=1) >= t))).mean())
        zone = f" where the first was {grey} or above" if grey > -1.0 else ""
        print(f"first at {first}, means of 2 and 3 re-checked at {t}{zone}: false accepts {fa} = {100 * fa / pairs:.4f}%, "
              f"true accepts {100 * ta:.2f}%")


def kept_samples(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, 4, D) per 4-photo person and turn: the finished person's target (the mean of 3 photos) then those 3 photos;
    (P, D) the newcomer's photo (the 4th); (P,) person."""
    finished, newcomer, person = [], [], []
    for label, order in four_photo_turns(labels):
        target = embeddings[order[1:]].sum(axis=0)
        finished.append(np.vstack([target / np.linalg.norm(target), embeddings[order[1:]]]))
        newcomer.append(embeddings[order[0]])
        person.append(label)
    return np.stack(finished), np.stack(newcomer), np.array(person)


def print_kept_samples(embeddings: np.ndarray, labels: np.ndarray) -> None:
    """The --kept table: per number b of kept samples and threshold, the accepts of max(target, b samples)."""
    finished, newcomer, person = kept_samples(embeddings, labels)
    same = np.maximum.accumulate(np.einsum("pjd,pd->pj", finished, newcomer), axis=1)  # (P, 4): b = 0..3
    first = np.flatnonzero(np.arange(len(person)) % 4 == 0)  # each person's first turn: its 3 photos kept
    above = {t: np.zeros(4, np.int64) for t in THRESHOLDS}
    pairs = 0
    for p in first:
        others = labels != person[p]
        sims = np.maximum.accumulate(embeddings[others] @ finished[p].T, axis=1)  # (faces, 4)
        pairs += int(others.sum())
        for t in THRESHOLDS:
            above[t] += (sims >= t).sum(axis=0)
    print(f"\nkept samples: {len(person)} newcomers (4-photo people x 4 turns) for true accepts; {pairs} "
          "different-person pairs (every photo of another person x each 4-photo person's 3 photos and their mean)")
    print("threshold  " + "  ".join(f"target and {b} kept: false accepts  true accepts" for b in range(4)))
    for t in THRESHOLDS:
        print(f"{t:9.2f}  " + "  ".join(f"{above[t][b]:8d} = {100 * above[t][b] / pairs:7.4f}%  "
                                        f"{100 * float((same[:, b] >= t).mean()):6.2f}%" for b in range(4)))


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces-train" / "lfw"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lfw", nargs="?", type=Path, default=default)
    parser.add_argument("--people", type=int, default=0, help="the first N people only (0: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink each photo to this and enlarge it back")
    parser.add_argument("--cache", type=Path, help="an .npz to keep the embeddings in (reused when it exists)")
    parser.add_argument("--mean", action="store_true", help="also the running identity of a young track's first k samples")
    parser.add_argument("--kept", action="store_true", help="also a finished person's kept samples beside their target")
    args = parser.parse_args()
    if not args.lfw.is_dir():
        print(f"skipped: research data not found: {args.lfw} (pass the faces-train/lfw folder)")
        return
    if args.cache is not None and args.cache.exists():
        saved = np.load(args.cache)
        embeddings, labels, missed = saved["embeddings"], saved["labels"], int(saved["missed"])
    else:
        embeddings, labels, missed = embed_folder(args.lfw, args.people, args.scale)
        if args.cache is not None:
            np.savez(args.cache, embeddings=embeddings, labels=labels, missed=missed)
    above, same_total, different_total = pair_counts(embeddings, labels)
    print(f"{len(labels)} faces of {len(np.unique(labels))} people (scale {args.scale}; {missed} photos without a face "
          f"found): {same_total} same-person pairs, {different_total} different-person pairs")
    from clrface_video.faces.identity import load_identity_encoder

    encoder = load_identity_encoder("cpu")
    dull = sum(not encoder.informative(e) for e in embeddings)
    print(f"not informative (IdentityEncoder.informative): {dull} of {len(labels)} faces")
    best = newcomer_rates(embeddings, labels)
    print("threshold  false accepts (different pairs)  true accepts (same pairs)  "
          + "  ".join(f"newcomer matched, K={k}" for k in GALLERIES))
    for t in THRESHOLDS:
        same, different = above[t]
        newcomer = "  ".join(f"{100 * float((best[k] >= t).mean()):20.3f}%" for k in GALLERIES)
        print(f"{t:9.2f}  {different:12d} = {100 * different / different_total:8.4f}%  "
              f"{same:9d} = {100 * same / same_total:6.2f}%  {newcomer}")
    if args.mean:
        print_running_means(embeddings, labels)
    if args.kept:
        print_kept_samples(embeddings, labels)


if __name__ == "__main__":
    main()
