"""Unpaired evaluation of real degraded faces: no-reference figures and input-to-output identity."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..opencv import cv2
from . import judge, metrics
from .paired import (
    GRID_IMAGES,
    INPUT,
    Grid,
    PairedResult,
    Restorers,
    cosine_rows,
    facenet_backend,
    facenet_embeddings,
    list_images,
    load_face,
    nanmean,
    paired_deltas,
    run_restorer,
)


@dataclass(frozen=True)
class UnpairedScore:
    """Figures of one method on one real face. identity_*: cosine similarity of the output to the input
    (how much of the person the restorer kept; 1 for the input itself); noise_sigma: Immerkaer's estimate
    of the noise standard deviation (0..255 units, lower is cleaner)."""

    image: str
    method: str
    sharpness: float
    noise_sigma: float
    identity_judge: float
    identity_facenet: float


@dataclass(frozen=True)
class UnpairedSummary:
    method: str
    images: int
    sharpness: float
    noise_sigma: float
    identity_judge: float
    identity_facenet: float


# Immerkaer's Laplacian-difference mask: zero response to any locally planar image, unit-variance noise -> 36
IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)


def noise_sigma(image: np.ndarray) -> float:
    """Estimated Gaussian noise std (0..255) of an RGB uint8 image's grey values.

    Immerkaer, "Fast noise variance estimation", CVIU 1996: sqrt(pi/2) / 6 * mean |I * M| over the interior.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    response = cv2.filter2D(grey, cv2.CV_64F, IMMERKAER)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) / 6 * np.abs(response).mean())


def evaluate_unpaired(folder: Path, restorers: Restorers, *, size: int, limit: int | None = None,
                      blurriest: int | None = None) -> PairedResult:
    """Real degraded aligned faces -> each restorer -> sharpness, noise, identity kept from the input; with
    `blurriest`, only that many faces, those whose input is least sharp (where softness shows most)."""
    files = list_images(folder, limit)
    faces = np.stack([load_face(p, size) for p in files])
    if blurriest is not None:
        keep = least_sharp(faces, blurriest)
        files, faces = [files[i] for i in keep], faces[keep]
    names = [p.stem for p in files]
    seconds: dict[str, float] = {}
    outputs = {INPUT: faces}
    for name, restorer in zip(restorers.names, restorers.restorers):
        start = time.perf_counter()
        outputs[name] = run_restorer(restorer, faces, guidance=restorers.guidance)
        seconds[f"restore:{name}"] = round(time.perf_counter() - start, 4)
    start = time.perf_counter()
    ref_j, ref_f = judge.judge_embeddings(faces), facenet_embeddings(faces)
    rows: list[UnpairedScore] = []
    for method, out in outputs.items():
        if method == INPUT:
            ids_j = ids_f = np.ones(len(out))
        else:
            ids_j = cosine_rows(judge.judge_embeddings(out), ref_j)
            ids_f = cosine_rows(facenet_embeddings(out), ref_f)
        rows.extend(UnpairedScore(names[i], method, metrics.sharpness(out[i]), noise_sigma(out[i]),
                                  float(ids_j[i]), float(ids_f[i])) for i in range(len(out)))
    seconds["score"] = round(time.perf_counter() - start, 4)
    methods = tuple(outputs)
    k = min(GRID_IMAGES, len(names))
    grid = Grid(tuple(names[:k]), {m: o[:k] for m, o in outputs.items()})
    return PairedResult("unpaired", str(folder), size, None, None, methods, tuple(rows),
                        summarise_unpaired(rows, methods), restorers.skipped, seconds, facenet_backend(),
                        grid=grid, deltas=paired_deltas(rows, methods, ("sharpness", "noise_sigma")))


def least_sharp(faces: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` least sharp of (N, S, S, 3) faces (all of them if fewer), in their own order."""
    return np.sort(np.argsort([metrics.sharpness(f) for f in faces], kind="stable")[:count])


def summarise_unpaired(rows: Sequence[UnpairedScore], methods: Sequence[str]) -> tuple[UnpairedSummary, ...]:
    out = []
    for m in methods:
        mine = [r for r in rows if r.method == m]
        out.append(UnpairedSummary(m, len(mine), *(nanmean([getattr(r, f) for r in mine]) for f in
                                                    ("sharpness", "noise_sigma", "identity_judge",
                                                     "identity_facenet"))))
    return tuple(out)
