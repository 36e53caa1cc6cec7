"""Paired image evaluation: clean faces, seeded degradation, each restorer, full-reference and identity figures."""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ClrfaceError
from ..io.decode import IMAGE_EXTENSIONS, is_image_path
from ..io.photo_read import read_photo
from ..io.pixels import to_uint8
from ..opencv import cv2
from ..train.degrade import DegradeConfig, degrade
from . import judge, metrics

INPUT = "input"  # the degraded face as it is, the "method" every restorer must beat
# The eval recipe: the training family (train/degrade.py), its ranges pinned here (the training defaults of
# 2026-11) so that later changes to the training defaults do not move the eval; face i draws from
# default_rng((seed, i)), so one --seed always gives the same degraded set at one code version.
EVAL_DEGRADE = DegradeConfig(
    blur_prob=0.9, motion_blur_prob=0.2, gaussian_sigma=(0.2, 3.0), motion_length=(3, 11),
    downsample_prob=0.9, scale=(1.0, 8.0),
    noise_prob=0.7, gaussian_noise=(0.0, 12.0), poisson_prob=0.3, poisson_peak=(20.0, 200.0),
    compress_prob=0.9, codec_prob=0.35, jpeg_quality=(20, 90), crf=(30, 48), codec_frames=1,
)
GRID_IMAGES = 6  # faces kept for the before/after grid


@dataclass(frozen=True)
class ImageScore:
    """Figures of one method on one face. identity_*: cosine similarity to the reference face;
    landmark_nme: mean 68-point distance over the inter-ocular distance (0 = same landmarks)."""

    image: str
    method: str
    psnr: float
    ssim: float
    identity_judge: float
    identity_facenet: float
    landmark_nme: float
    sharpness: float


@dataclass(frozen=True)
class MethodSummary:
    """Means over the images of one method (NaN-aware; PSNR averaged over finite values)."""

    method: str
    images: int
    psnr: float
    ssim: float
    identity_judge: float
    identity_facenet: float
    landmark_nme: float
    sharpness: float


@dataclass(frozen=True)
class Delta:
    """Mean per-image difference (method - input) of one figure, with its normal-approximation 95% half-width."""

    method: str
    metric: str
    mean: float
    ci95: float
    images: int


@dataclass(frozen=True)
class Grid:
    """Faces for the before/after grid: names (K,) and per column (K, S, S, 3) uint8."""

    names: tuple[str, ...]
    columns: dict[str, np.ndarray]


@dataclass(frozen=True)
class PairedResult:
    kind: str  # "paired" | "unpaired"
    source: str
    size: int
    seed: int | None
    degradation: dict | None  # the DegradeConfig fields, or None for an existing degraded folder
    methods: tuple[str, ...]
    rows: tuple  # ImageScore (paired) or unpaired.UnpairedScore rows
    summary: tuple  # MethodSummary / unpaired.UnpairedSummary
    skipped_models: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)
    facenet: str = ""  # facenet_backend()
    judge: str = "dlib ResNet face descriptor (face_recognition_models), never trained against"
    grid: Grid | None = None
    deltas: tuple[Delta, ...] = ()  # each restorer against the input, image by image

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("grid")
        return out


# ----------------------------------------------------------------------------- loading faces


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files of a folder (not recursive), sorted by name, the first `limit`."""
    if not folder.is_dir():
        raise ClrfaceError(f"not a folder of faces: {folder}")
    files = sorted(p for p in folder.iterdir() if is_image_path(p) and not p.name.startswith("."))
    if not files:
        raise ClrfaceError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {folder}")
    return files[:limit] if limit else files


def load_face(path: Path, size: int) -> np.ndarray:
    """An aligned face file as (S, S, 3) uint8 RGB, area-resized to S."""
    image = to_uint8(read_photo(path).image)  # upright, any mode or depth, HEIC too
    if image.shape[0] != image.shape[1]:
        raise ClrfaceError(f"{path.name} is {image.shape[1]}x{image.shape[0]}; eval expects square aligned faces")
    if image.shape[0] != size:
        interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_CUBIC
        image = cv2.resize(image, (size, size), interpolation=interp)
    return np.ascontiguousarray(image)


def degrade_faces(clean: np.ndarray, seed: int, config: DegradeConfig = EVAL_DEGRADE) -> np.ndarray:
    """The seeded eval degradation: face i with default_rng((seed, i))."""
    return np.stack([degrade(face, np.random.default_rng((seed, i)), config) for i, face in enumerate(clean)])


# ----------------------------------------------------------------------------- restorers


@dataclass(frozen=True)
class Restorers:
    """The restorers to compare, by name, and the requested names that are not available."""

    names: tuple[str, ...]
    restorers: tuple  # Restorer objects, same order
    skipped: tuple[str, ...]
    guidance: bool = True  # run their identity guidance (RestoreBatch.guidance)


def make_restorers(models: Sequence[str], device: str = "auto", fidelity: float = 0.5, *,
                   guidance: bool = True) -> Restorers:
    """Build each requested restorer; one that cannot be built (e.g. 'clrface' before its weights land) is
    skipped and listed as "name: reason"."""
    from ..device import pick_device
    from ..errors import ModelError
    from ..restore.base import make_restorer

    names, built, skipped = [], [], []
    for model in models:
        try:
            built.append(make_restorer(model, device=pick_device(device), fidelity=fidelity))
        except ModelError as error:
            skipped.append(f"{model}: {error}")
            continue
        names.append(model)
    if not names:
        raise ClrfaceError(f"none of --models could be built ({'; '.join(skipped) or 'none given'})")
    return Restorers(tuple(names), tuple(built), tuple(skipped), guidance)


def run_restorer(restorer, faces: np.ndarray, batch_size: int = 16, *, guidance: bool = True) -> np.ndarray:
    """Restore (N, S, S, 3) faces in batches, resizing to and from the restorer's resolution."""
    from ..restore.base import RestoreBatch

    size = faces.shape[1]
    res = int(restorer.resolution)
    out = np.empty_like(faces)
    for start in range(0, len(faces), batch_size):
        chunk = faces[start:start + batch_size]
        if res != size:
            chunk = np.stack([cv2.resize(f, (res, res), interpolation=cv2.INTER_AREA) for f in chunk])
        restored = restorer.restore(RestoreBatch(crops=np.ascontiguousarray(chunk), guidance=guidance))
        if res != size:
            restored = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in restored])
        out[start:start + len(chunk)] = restored
    return out


# ----------------------------------------------------------------------------- identity and landmarks


def facenet_backend() -> str:
    """Which FaceNet runs the identity figures (recorded in the reports)."""
    return "faces.identity.IdentityEncoder (torch)"


def facenet_embeddings(faces: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 FFHQ-aligned faces -> (N, 512) L2-normalised FaceNet embeddings (CPU)."""
    from ..faces.identity import load_identity_encoder

    return load_identity_encoder("cpu").embed(faces)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(na, 1e-12)


@lru_cache(maxsize=1)
def _shape68():
    # dlib's 68-point model from face_recognition_models was trained on iBUG 300-W, whose licence
    # excludes commercial use: it is used here only to measure, never shipped or trained against.
    judge.check_installed()
    import dlib

    return dlib.shape_predictor(str(judge._models_dir() / "shape_predictor_68_face_landmarks.dat"))


def landmarks68(faces: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 aligned faces -> (N, 68, 2) float32 dlib landmarks in crop pixels.

    The face rectangle is the same fixed part of the FFHQ crop that the identity judge uses.
    """
    predictor = _shape68()  # first: it names the extra where dlib is missing
    import dlib

    out = np.empty((len(faces), 68, 2), np.float32)
    for i, face in enumerate(faces):
        h, w = face.shape[:2]
        rect = dlib.rectangle(int(0.2 * w), int(0.2 * h), int(0.8 * w), int(0.85 * h))
        shape = predictor(np.ascontiguousarray(face), rect)
        out[i] = [(p.x, p.y) for p in shape.parts()]
    return out


def landmark_nme(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean point distance (N,) between (N, 68, 2) sets, over the reference's outer-eye-corner distance."""
    iod = np.linalg.norm(reference[:, 36] - reference[:, 45], axis=1)
    return np.linalg.norm(points - reference, axis=2).mean(axis=1) / np.maximum(iod, 1e-6)


@dataclass(frozen=True)
class FaceFeatures:
    """Identity embeddings and landmarks of a batch of faces, computed once and compared many times."""

    judge: np.ndarray  # (N, 128)
    facenet: np.ndarray  # (N, 512)
    landmarks: np.ndarray  # (N, 68, 2)


def face_features(faces: np.ndarray, with_landmarks: bool = True) -> FaceFeatures:
    marks = landmarks68(faces) if with_landmarks else np.zeros((len(faces), 68, 2), np.float32)
    return FaceFeatures(judge.judge_embeddings(faces), facenet_embeddings(faces), marks)


def nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; inf when every value is +inf (identical images), NaN when none is usable."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite:
        return float(np.mean(finite))
    return float("inf") if values and all(v == math.inf for v in values) else float("nan")


# ----------------------------------------------------------------------------- the evaluation


def score_method(method: str, names: Sequence[str], out: np.ndarray, clean: np.ndarray,
                 ref: FaceFeatures) -> list[ImageScore]:
    feats = face_features(out)
    ids_j = cosine_rows(feats.judge, ref.judge)
    ids_f = cosine_rows(feats.facenet, ref.facenet)
    nme = landmark_nme(feats.landmarks, ref.landmarks)
    return [ImageScore(names[i], method, metrics.psnr(out[i], clean[i]), metrics.ssim(out[i], clean[i]),
                       float(ids_j[i]), float(ids_f[i]), float(nme[i]), metrics.sharpness(out[i]))
            for i in range(len(out))]


def paired_deltas(rows: Sequence, methods: Sequence[str], names: Sequence[str]) -> tuple[Delta, ...]:
    """For each restorer and figure: mean and 95% half-width of (method - input) over images where both are finite."""
    by = {(r.image, r.method): r for r in rows}
    out = []
    for method in methods:
        if method == INPUT:
            continue
        for metric in names:
            d = np.array([getattr(by[(img, method)], metric) - getattr(by[(img, INPUT)], metric)
                          for img in dict.fromkeys(r.image for r in rows)
                          if math.isfinite(getattr(by[(img, method)], metric))
                          and math.isfinite(getattr(by[(img, INPUT)], metric))])
            half = 1.96 * float(d.std(ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
            out.append(Delta(method, metric, float(d.mean()) if len(d) else float("nan"), half, len(d)))
    return tuple(out)


def summarise(rows: Sequence[ImageScore], methods: Sequence[str]) -> tuple[MethodSummary, ...]:
    out = []
    for m in methods:
        mine = [r for r in rows if r.method == m]
        out.append(MethodSummary(m, len(mine), *(nanmean([getattr(r, f) for r in mine]) for f in
                                                  ("psnr", "ssim", "identity_judge", "identity_facenet",
                                                   "landmark_nme", "sharpness"))))
    return tuple(out)


def evaluate_pairs(names: Sequence[str], clean: np.ndarray, degraded: np.ndarray, restorers: Restorers, *,
                   source: str, seed: int | None, degradation: dict | None) -> PairedResult:
    """Restore `degraded` with each restorer and score every method (input included) against `clean`."""
    seconds: dict[str, float] = {}
    ref = face_features(clean)
    outputs = {INPUT: degraded}
    for name, restorer in zip(restorers.names, restorers.restorers):
        start = time.perf_counter()
        outputs[name] = run_restorer(restorer, degraded, guidance=restorers.guidance)
        seconds[f"restore:{name}"] = round(time.perf_counter() - start, 4)
    rows: list[ImageScore] = []
    start = time.perf_counter()
    for method, out in outputs.items():
        rows.extend(score_method(method, names, out, clean, ref))
    seconds["score"] = round(time.perf_counter() - start, 4)
    methods = tuple(outputs)
    k = min(GRID_IMAGES, len(names))
    grid = Grid(tuple(names[:k]), {"clean": clean[:k], **{m: o[:k] for m, o in outputs.items()}})
    figures = ("psnr", "ssim", "identity_judge", "identity_facenet", "landmark_nme", "sharpness")
    return PairedResult("paired", source, int(clean.shape[1]), seed, degradation, methods, tuple(rows),
                        summarise(rows, methods), restorers.skipped, seconds, facenet_backend(), grid=grid,
                        deltas=paired_deltas(rows, methods, figures))


def evaluate_folder(folder: Path, restorers: Restorers, *, size: int, seed: int = 0, limit: int | None = None,
                    config: DegradeConfig = EVAL_DEGRADE) -> PairedResult:
    """Clean aligned faces -> seeded degradation at S -> each restorer -> scores against the clean face."""
    files = list_images(folder, limit)
    clean = np.stack([load_face(p, size) for p in files])
    degraded = degrade_faces(clean, seed, config)
    return evaluate_pairs([p.stem for p in files], clean, degraded, restorers, source=str(folder), seed=seed,
                          degradation=asdict(config))


def evaluate_existing_pairs(clean_dir: Path, degraded_dir: Path, restorers: Restorers, *, size: int,
                            limit: int | None = None) -> PairedResult:
    """An existing (clean, degraded) pair of folders, matched by file stem."""
    degraded_files = {p.stem: p for p in list_images(degraded_dir)}
    files = [p for p in list_images(clean_dir) if p.stem in degraded_files][:limit or None]
    if not files:
        raise ClrfaceError(f"no file names in common between {clean_dir} and {degraded_dir}")
    clean = np.stack([load_face(p, size) for p in files])
    degraded = np.stack([load_face(degraded_files[p.stem], size) for p in files])
    return evaluate_pairs([p.stem for p in files], clean, degraded, restorers,
                          source=f"{clean_dir} | {degraded_dir}", seed=None, degradation=None)
