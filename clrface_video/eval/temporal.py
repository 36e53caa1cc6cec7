"""Video evaluation: warping error, identity spread and landmark jitter in face regions, all methods in one run."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path

import numpy as np

from ..config import RestoreConfig
from ..errors import ClrfaceError
from ..faces.detect import iou_matrix
from ..io.pixels import to_uint8
from ..types import Face, Frame
from . import judge, metrics
from .paired import INPUT, facenet_embeddings, nanmean

CLEAN = "clean (reference)"  # the row of a paired video's clean frames
TRACK_IOU = 0.3  # a face continues a track when its box overlaps the track's last box this much
TRACK_GAP = 2  # frames a track may miss and still continue
BOX_MARGIN = 0.1  # face regions are the detected boxes grown by this fraction per side
ALIGN_SIZE = 128  # crops for identity embeddings


@dataclass(frozen=True)
class VideoMethod:
    """One way of producing the frames: the input itself, or a restorer with per-track or per-frame identity."""

    name: str
    model: str | None  # None = the input frames
    track_identity: bool = True
    smoothing: float = 0.0  # RestoreConfig.temporal_smoothing
    snap: bool | None = None  # RestoreConfig.snap_to_codebook (None: the video default, no snap)
    detail: float | None = None  # RestoreConfig.keep_detail (None: the config's)
    strength: float | None = None  # RestoreConfig.strength (None: auto, the model's blend gate)


@dataclass(frozen=True)
class VideoScore:
    """Temporal figures of one method (lower is steadier, except PSNR/SSIM which are paired only).

    warping_error: mean |out_t - warp(out_t-1)| (0..255) in face regions, flow measured on the input;
    identity_spread_*: mean cosine distance of a track's embeddings to the track mean, averaged over tracks;
    landmark_jitter: high-pass (second difference) of re-detected RetinaFace landmarks along each track,
    over the inter-ocular distance (true motion counts too); landmark_jitter_added: the same high-pass of
    (output - input) landmarks, the jitter the method adds (0 for the input); sharpness: Laplacian variance
    inside the face boxes (higher is sharper; finer detail also raises the warping error, so read the two
    together); psnr / ssim: against the clean video inside face boxes (NaN unpaired).
    """

    method: str
    warping_error: float
    identity_spread_judge: float
    identity_spread_facenet: float
    landmark_jitter: float
    landmark_jitter_added: float
    sharpness: float
    psnr: float
    ssim: float
    warping_error_per_frame: tuple[float, ...] = ()


@dataclass(frozen=True)
class Track:
    """A face followed over the input frames: (frame index, Face) in frame order."""

    track_id: int
    faces: tuple[tuple[int, Face], ...]


@dataclass(frozen=True)
class TemporalResult:
    kind: str  # "video"
    source: str
    clean: str | None
    frames: int
    width: int
    height: int
    tracks: int
    faces: int
    methods: tuple[str, ...]
    rows: tuple[VideoScore, ...]  # paired: the clean frames' row (CLEAN) first, then one per method
    skipped_models: tuple[str, ...] = ()
    restore_path: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    degradation: dict | None = None  # the recipe and seed when the clean SOURCE was degraded here
    face_box: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2: union of the grown face boxes (for grids)
    outputs: dict[str, list[np.ndarray]] | None = None  # frames per method (and "clean"), for grids and --compare

    def to_dict(self) -> dict:
        out = asdict(replace(self, outputs=None))
        out.pop("outputs")
        return out


# ----------------------------------------------------------------------------- pure figures


def identity_spread(embeddings: np.ndarray) -> float:
    """Mean cosine distance of (T, D) embeddings to their normalised mean; 0 for a constant track."""
    e = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    centre = e.mean(axis=0)
    centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    return float(np.mean(1.0 - e @ centre))


def landmark_jitter(trajectory: np.ndarray, scale: np.ndarray | float) -> float:
    """High-pass of a (T, K, 2) landmark trajectory: mean |x_t - (x_t-1 + x_t+1) / 2| over `scale` (T,) or scalar.

    Constant-velocity motion scores 0; NaN rows (missed detections) drop the triplets that touch them.
    """
    if len(trajectory) < 3:
        return float("nan")
    hp = np.linalg.norm(trajectory[1:-1] - (trajectory[:-2] + trajectory[2:]) / 2, axis=-1).mean(axis=-1)
    scale = np.broadcast_to(np.asarray(scale, np.float64), (len(trajectory),))[1:-1]
    values = hp / np.maximum(scale, 1e-6)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two x1y1x2y2 boxes."""
    return float(iou_matrix(np.asarray(a)[None], np.asarray(b)[None])[0, 0])


def link_tracks(detections: Sequence[Sequence[Face]]) -> list[Track]:
    """Greedy IoU linking of per-frame detections (the measurement's own tracks, independent of the pipeline's)."""
    tracks: list[list[tuple[int, Face]]] = []
    for t, faces in enumerate(detections):
        free = [k for k, tr in enumerate(tracks) if t - tr[-1][0] <= TRACK_GAP + 1]
        for face in sorted(faces, key=lambda f: -f.score):
            best = max(free, key=lambda k: box_iou(tracks[k][-1][1].box, face.box), default=None)
            if best is not None and box_iou(tracks[best][-1][1].box, face.box) >= TRACK_IOU:
                tracks[best].append((t, face))
                free.remove(best)
            else:
                tracks.append([(t, face)])
    return [Track(i, tuple(tr)) for i, tr in enumerate(tracks)]


def face_region(shape: tuple[int, int], faces: Sequence[Face]) -> np.ndarray:
    """(H, W) bool union of the face boxes grown by BOX_MARGIN."""
    mask = np.zeros(shape, bool)
    for f in faces:
        x1, y1, x2, y2 = _grown(f.box, shape)
        mask[y1:y2, x1:x2] = True
    return mask


def _grown(box: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = box[2] - box[0], box[3] - box[1]
    x1, y1 = int(max(0, box[0] - BOX_MARGIN * w)), int(max(0, box[1] - BOX_MARGIN * h))
    x2, y2 = int(min(shape[1], box[2] + BOX_MARGIN * w)), int(min(shape[0], box[3] + BOX_MARGIN * h))
    return x1, y1, x2, y2


# ----------------------------------------------------------------------------- restoring the clip


def read_clip(path: Path, max_frames: int) -> list[Frame]:
    """The clip's first frames at 8 bits (a 10-bit clip rounded as the pipeline rounds it for detection)."""
    from ..io.decode import read_frames

    frames = list(islice(read_frames(path), max_frames))
    return [replace(f, image=to_uint8(f.image)) for f in frames]


def restore_clip(images: list[np.ndarray], config: RestoreConfig) -> list[np.ndarray]:
    """The frames restored as one video by the pipeline (tracking on; identity per track or per frame)."""
    from ..pipeline import restore_frames

    return [to_uint8(image) for image in restore_frames(images, config, as_video=True)]


SMOOTHING = 0.5  # the latent-smoothing strength the video evaluation compares against none


def video_methods(models: Sequence[str], baseline: str = "baseline-bicubic-sharpen",
                  gated: Sequence[str] = (), guided: bool = True) -> list[VideoMethod]:
    """input, then for each model: per-track identity, per-frame identity, per-track identity with latent
    smoothing (SMOOTHING), per-track identity with the final latent snapped to the codebook (the
    photo default), and per-track identity without the input's finer detail over large faces
    (keep_detail 0), and for models with a blend gate (`gated`) per-track identity with whole restored
    faces (strength 1); one run for the baseline, which has neither identity nor latents. Without identity
    guidance (`guided` False) there is no identity target: the per-frame run is left out and the rows say
    "no identity guidance" where they say "track identity"."""
    methods = [VideoMethod(INPUT, None)]
    for m in models:
        if m == baseline:
            methods.append(VideoMethod(m, m, True))
        else:
            who = "track identity" if guided else "no identity guidance"
            methods.append(VideoMethod(f"{m} ({who})", m, True))
            if guided:
                methods.append(VideoMethod(f"{m} (per-frame identity)", m, False))
            methods += [VideoMethod(f"{m} ({who}, smoothing {SMOOTHING})", m, True, SMOOTHING),
                        VideoMethod(f"{m} ({who}, snapped to the codebook)", m, True, snap=True),
                        VideoMethod(f"{m} ({who}, keep detail 0)", m, True, detail=0.0)]
            if m in gated:
                methods.append(VideoMethod(f"{m} ({who}, strength 1)", m, True, strength=1.0))
    return methods


# ----------------------------------------------------------------------------- the evaluation


def trajectories(outputs: list[np.ndarray], tracks: list[Track], detector) -> list[np.ndarray]:
    """Per track, (T, 5, 2) RetinaFace landmarks re-detected on `outputs` (NaN where no face overlaps the track's)."""
    redetected = [detector.detect(o) for o in outputs]
    out = []
    for track in tracks:
        trajectory = np.full((len(track.faces), 5, 2), np.nan)
        for k, (t, face) in enumerate(track.faces):
            match = max(redetected[t], key=lambda d: box_iou(d.box, face.box), default=None)
            if match is not None and box_iou(match.box, face.box) >= TRACK_IOU:
                trajectory[k] = match.landmarks
        out.append(trajectory)
    return out


def score_outputs(method: str, outputs: list[np.ndarray], flows: list[np.ndarray], regions: list[np.ndarray],
                  tracks: list[Track], detector, input_marks: list[np.ndarray],
                  clean: list[np.ndarray] | None) -> VideoScore:
    """All temporal figures of one method's frames (tracks, flows and regions come from the input)."""
    from ..faces.align import align_face

    per_frame = tuple(metrics.warping_error(outputs[t - 1], outputs[t], flows[t - 1], regions[t])
                      for t in range(1, len(outputs)))
    spreads_j, spreads_f, jitters, added, weights = [], [], [], [], []
    for track, marks, reference in zip(tracks, trajectories(outputs, tracks, detector), input_marks):
        if len(track.faces) < 2:
            continue
        crops = np.stack([align_face(outputs[t], f.landmarks, ALIGN_SIZE).image for t, f in track.faces])
        spreads_j.append(identity_spread(judge.judge_embeddings(crops)))
        spreads_f.append(identity_spread(facenet_embeddings(crops)))
        weights.append(len(track.faces))
        iod = np.array([np.linalg.norm(f.landmarks[0] - f.landmarks[1]) for _, f in track.faces])
        jitters.append(landmark_jitter(marks, iod))
        added.append(landmark_jitter(marks - reference, iod))
    psnrs, ssims, sharp = [], [], []
    for track in tracks:
        for t, face in track.faces:
            x1, y1, x2, y2 = _grown(face.box, outputs[t].shape[:2])
            if x2 - x1 < 7 or y2 - y1 < 7:
                continue
            sharp.append(metrics.sharpness(outputs[t][y1:y2, x1:x2]))
            if clean is not None:
                psnrs.append(metrics.psnr(outputs[t][y1:y2, x1:x2], clean[t][y1:y2, x1:x2]))
                ssims.append(metrics.ssim(outputs[t][y1:y2, x1:x2], clean[t][y1:y2, x1:x2]))

    def weighted(values: list[float]) -> float:
        ok = [(v, w) for v, w in zip(values, weights) if np.isfinite(v)]
        return float(np.average([v for v, _ in ok], weights=[w for _, w in ok])) if ok else float("nan")

    return VideoScore(method, nanmean(per_frame), weighted(spreads_j), weighted(spreads_f), weighted(jitters),
                      weighted(added), nanmean(sharp), nanmean(psnrs), nanmean(ssims), per_frame)


def evaluate_video(video: Path, models: Sequence[str], *, clean: Path | None = None, degrade_seed: int | None = None,
                   max_frames: int = 24, config: RestoreConfig | None = None,
                   keep_outputs: bool = True) -> TemporalResult:
    """Restore the first `max_frames` frames once per method and score them all against the same input.

    clean: the clean version of `video` (paired: PSNR/SSIM in face regions). degrade_seed: `video` is clean;
    its frames are degraded with train.degrade.degrade_sequence (one draw of blur, scale, noise and x264 CRF
    for the clip, noise per frame) from default_rng(degrade_seed), and scored against the original.
    """
    from ..faces.detect import make_detector
    from ..train.degrade import degrade_sequence
    from .paired import EVAL_DEGRADE, make_restorers

    config = config or RestoreConfig()
    seconds: dict[str, float] = {}
    inputs = [f.image for f in read_clip(video, max_frames)]
    clean_frames = [f.image for f in read_clip(clean, max_frames)] if clean else None
    if degrade_seed is not None:
        if clean is not None:
            raise ClrfaceError("give either a clean video or a degradation seed, not both")
        clean_frames, inputs = inputs, degrade_sequence(inputs, np.random.default_rng(degrade_seed), EVAL_DEGRADE)
    if clean_frames is not None and (len(clean_frames) < len(inputs) or clean_frames[0].shape != inputs[0].shape):
        raise ClrfaceError(f"clean video {clean} must have at least {len(inputs)} frames of {inputs[0].shape[:2]}")
    detector = make_detector(config.detector, threshold=config.threshold(video=True))
    start = time.perf_counter()
    detections = [detector.detect(clean_frames[t] if clean_frames else im) for t, im in enumerate(inputs)]
    tracks = link_tracks(detections)
    regions = [face_region(im.shape[:2], d) for im, d in zip(inputs, detections)]
    flows = [metrics.optical_flow(inputs[t - 1], inputs[t]) for t in range(1, len(inputs))]
    seconds["measure_input"] = round(time.perf_counter() - start, 4)
    usable = make_restorers(models, config.device, config.fidelity)
    outputs: dict[str, list[np.ndarray]] = {}
    gated = [n for n, r in zip(usable.names, usable.restorers) if getattr(getattr(r, "model", None), "gate", None)]
    for method in video_methods(usable.names, gated=gated, guided=config.identity_guidance):
        start = time.perf_counter()
        if method.model is None:
            outputs[method.name] = inputs
        else:
            cfg = replace(config, model=method.model, track_identity=method.track_identity,
                          temporal_smoothing=method.smoothing, snap_to_codebook=method.snap,
                          keep_detail=config.keep_detail if method.detail is None else method.detail,
                          strength=method.strength)
            outputs[method.name] = restore_clip(inputs, cfg)
        seconds[f"restore:{method.name}"] = round(time.perf_counter() - start, 4)
    input_marks = trajectories(inputs, tracks, detector)
    rows = []
    # paired: the clean frames scored the same way, what a perfect restorer would get (their own detail
    # moves too, so a warping error above the input's is not flicker as long as it stays near this one)
    scored = ({CLEAN: clean_frames} if clean_frames is not None else {}) | outputs
    for name, outs in scored.items():
        start = time.perf_counter()
        rows.append(score_outputs(name, outs, flows, regions, tracks, detector, input_marks, clean_frames))
        seconds[f"score:{name}"] = round(time.perf_counter() - start, 4)
    h, w = inputs[0].shape[:2]
    boxes = [_grown(f.box, (h, w)) for d in detections for f in d]
    face_box = None if not boxes else (min(b[0] for b in boxes), min(b[1] for b in boxes),
                                       max(b[2] for b in boxes), max(b[3] for b in boxes))
    degradation = None
    if degrade_seed is not None:
        degradation = {"recipe": "train.degrade.degrade_sequence", "seed": degrade_seed, **asdict(EVAL_DEGRADE)}
    return TemporalResult("video", str(video), str(clean) if clean else None, len(inputs), w, h, len(tracks),
                          sum(len(d) for d in detections), tuple(outputs), tuple(rows), usable.skipped,
                          "pipeline.restore_frames", seconds, degradation, face_box,
                          ({"clean": clean_frames} if clean_frames else {}) | outputs if keep_outputs else None)
