"""Face detection: RetinaFace finds real faces with landmarks in the right order; clear errors otherwise."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from clrface_video.errors import ClrfaceError, ModelError
from clrface_video.faces.align import estimate_similarity
from clrface_video.faces.detect import (
    RetinaFaceDetector,
    make_detector,
    nms,
    retinaface_priors,
    stored_points,
    upright,
    visible_scale,
)
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return make_detector("retinaface")


def check_landmark_layout(landmarks: np.ndarray) -> None:
    left_eye, right_eye, nose, left_mouth, right_mouth = landmarks
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    eyes_y = (left_eye[1] + right_eye[1]) / 2
    mouth_y = (left_mouth[1] + right_mouth[1]) / 2
    assert eyes_y < nose[1] < mouth_y


def test_astronaut_face_and_landmarks(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.9
    assert face.box.dtype == np.float32 and face.box.shape == (4,)
    assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (5, 2)
    x1, y1, x2, y2 = face.box
    assert 150 < x1 < 200 and 30 < y1 < 90 and 250 < x2 < 300 and 150 < y2 < 210
    assert np.all((face.landmarks >= face.box[:2]) & (face.landmarks <= face.box[2:]))
    check_landmark_layout(face.landmarks)


def test_large_image_is_resized_and_mapped_back(detector, astronaut):
    small = detector.detect(astronaut)[0]
    big = cv2.resize(astronaut, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1536 > max_side
    faces = detector.detect(big)
    assert len(faces) == 1
    assert np.abs(faces[0].landmarks / 3 - small.landmarks).max() < 3.0
    assert np.abs(faces[0].box / 3 - small.box).max() < 5.0


def test_mirrored_image_keeps_image_left_first(detector, astronaut):
    faces = detector.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    assert len(faces) == 1
    check_landmark_layout(faces[0].landmarks)


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_points_in_a_turned_frame_map_to_the_same_stored_pixels(turns):
    stored = np.random.default_rng(turns).integers(0, 255, (7, 11), dtype=np.uint8)
    turned = np.rot90(stored, turns)
    yy, xx = np.mgrid[0:turned.shape[0], 0:turned.shape[1]]
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    mapped = np.round(stored_points(points, turns, 11, 7)).astype(int)
    assert np.array_equal(stored[mapped[:, 1], mapped[:, 0]], turned.ravel())
    box = stored_points(np.float32([[0, 0], [turned.shape[1], turned.shape[0]]]), turns, 11, 7, edges=True)
    assert sorted(box[:, 0]) == [0, 11] and sorted(box[:, 1]) == [0, 7]  # the whole frame stays the whole frame


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_a_frame_stored_on_its_side_is_searched_upright(detector, astronaut, rotation):
    """A small face stored sideways or upside down is missed as stored and found when turned upright;
    its landmarks come back in stored pixels, on the same points of the face."""
    shown = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)
    turns = round(rotation / 90) % 4
    stored = np.ascontiguousarray(np.rot90(shown, -turns))  # display = np.rot90(stored, turns)
    assert detector.detect(stored) == []
    assert upright(detector, 0) is detector
    faces = upright(detector, rotation).detect(stored)
    reference = detector.detect(shown)
    assert len(faces) == len(reference) == 1
    back = stored_points(reference[0].landmarks, turns, 160, 160)
    assert np.allclose(faces[0].landmarks, back, atol=1e-3)
    assert np.all((faces[0].landmarks >= faces[0].box[:2]) & (faces[0].landmarks <= faces[0].box[2:]))
    crop = cv2.warpAffine(stored, estimate_similarity(faces[0].landmarks, 128), (128, 128))
    check_landmark_layout(detector.detect(cv2.resize(crop, (256, 256)))[0].landmarks)  # aligned crops come out upright


def test_max_side_is_configurable(astronaut):
    small = make_detector(max_side=256).detect(astronaut)  # runs on a 256 x 256 copy
    assert len(small) == 1
    assert np.abs(small[0].box - make_detector().detect(astronaut)[0].box).max() < 12


def test_small_faces_in_a_large_photo_are_found_as_photos_are_scanned(astronaut):
    """A 24 MP group photo: faces with a 21 px eye-to-mouth span (above --min-face 16) shrank to 4 px at 1280 px,
    which no detector sees. A photo is scanned at visible_scale(min_face) of its size; a video frame still at
    1280 px (every frame is scanned)."""
    from clrface_video.config import RestoreConfig
    from clrface_video.faces.align import eye_mouth_span
    from clrface_video.pipeline import detector_for

    face = cv2.resize(astronaut[20:260, 130:330], (100, 120), interpolation=cv2.INTER_AREA)
    photo = np.full((4000, 6000, 3), 96, np.uint8)
    spots = [(400 + 1500 * i, 500 + 1400 * j) for i in range(4) for j in range(3)]
    for x, y in spots:
        photo[y:y + 120, x:x + 100] = face
    config = RestoreConfig()
    found = detector_for(config, "cpu", video=False).detect(photo)
    assert len(found) == len(spots)
    for f, (x, y) in zip(sorted(found, key=lambda f: (f.box[0] // 500, f.box[1])), spots):  # each in its own patch
        assert x - 4 < f.box[0] < f.box[2] < x + 104 and y - 4 < f.box[1] < f.box[3] < y + 124
    assert min(eye_mouth_span(f.landmarks) for f in found) > config.min_face  # faces the restorer takes
    assert detector_for(config, "cpu", video=True).detect(photo) == []
    assert visible_scale(config.min_face) == 0.625 and visible_scale(0) == 1.0


def test_a_wide_panorama_is_scanned_in_tiles_each_face_once(astronaut):
    """A 20000 x 400 panorama was scanned for small faces at most 4096 px long, 82 px high, where faces with a
    21 px eye-to-mouth span shrink to 4 px: none found. Scanned in overlapping tiles at the scale --min-face
    asks, each of 100 faces (some cut by a tile's edge) is found once, in its own place."""
    from clrface_video.config import RestoreConfig
    from clrface_video.pipeline import detector_for

    face = cv2.resize(astronaut[20:260, 130:330], (100, 120), interpolation=cv2.INTER_AREA)
    strip = np.full((400, 20000, 3), 96, np.uint8)
    spots = [50 + 200 * i for i in range(100)]
    for x in spots:
        strip[140:260, x:x + 100] = face
    found = sorted(detector_for(RestoreConfig(), "cpu", video=False).detect(strip), key=lambda f: f.box[0])
    assert len(found) == len(spots)
    for f, x in zip(found, spots):
        assert x - 4 < f.box[0] < f.box[2] < x + 104 and 136 < f.box[1] < f.box[3] < 264
        assert x < f.landmarks[:, 0].min() and f.landmarks[:, 0].max() < x + 100
    tall = np.full((20000, 400, 3), 96, np.uint8)  # a tall one is cut along its height
    for y in spots:
        tall[y:y + 120, 140:240] = face
    found = sorted(detector_for(RestoreConfig(), "cpu", video=False).detect(tall), key=lambda f: f.box[1])
    assert len(found) == len(spots) and all(y - 4 < f.box[1] < f.box[3] < y + 124 for f, y in zip(found, spots))


def test_a_close_up_in_a_large_photo_is_one_face_not_its_parts(astronaut):
    """Scanned whole at 4096 px, a face of 1000 px (a phone selfie) outgrows the network's largest anchor and
    comes apart into boxes on its eyes, cheeks and chin (11 here); the finer pass only adds small faces."""
    from clrface_video.config import RestoreConfig
    from clrface_video.pipeline import detector_for

    close_up = cv2.resize(astronaut, (4096, 4096), interpolation=cv2.INTER_CUBIC)
    assert len(make_detector(max_side=4096).detect(close_up)) > 3  # what one pass at the finer scale gives
    found = detector_for(RestoreConfig(), "cpu", video=False).detect(close_up)
    assert len(found) == 1 and np.abs(found[0].box / 8 - make_detector().detect(astronaut)[0].box).max() < 6


def test_six_faces_of_insightface_t1(detector):
    path = shared_file("photos/insightface_t1.jpg")
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    faces = detector.detect(image)
    assert len(faces) == 6
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    for face in faces:
        check_landmark_layout(face.landmarks)


def test_no_face_in_flat_image(detector):
    assert detector.detect(np.full((200, 300, 3), 128, np.uint8)) == []


def test_rejects_wrong_input(detector):
    with pytest.raises(ValueError):
        detector.detect(np.zeros((64, 64, 3), np.float32))


def test_priors_match_network_output_count():
    priors = retinaface_priors(64, 96)
    assert priors.centres.shape == (2 * (8 * 12 + 4 * 6 + 2 * 3), 2)


def test_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keep = nms(boxes, np.array([0.8, 0.9, 0.7], np.float32), 0.4)
    assert keep.tolist() == [1, 2]


def test_unknown_detector_and_missing_insightface(tmp_path):
    with pytest.raises(ClrfaceError, match="unknown face detector"):
        make_detector("haar")
    with pytest.raises(ModelError, match=str(tmp_path)):
        make_detector("insightface", insightface_root=tmp_path)
    with pytest.raises(ModelError):
        make_detector("insightface")


def test_retinaface_threads_sleep_between_frames(detector):
    """onnxruntime's threads busy-waited after every run, taking a core from the decoder, OpenCV, torch and x264
    between one frame's detection and the next (on a 2-core CPU the crowd clip's detection took twice as long)."""
    assert detector.session.get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "0"


def test_retinaface_runs_on_the_gpu_the_device_names(monkeypatch):
    """--device cuda:1 put the restorer on GPU 1 and RetinaFace on GPU 0 (onnxruntime's CUDA provider without a
    device_id). No GPU here: onnxruntime is told it has the CUDA provider and the sessions it is asked for are
    recorded."""
    import onnxruntime

    from clrface_video.faces import detect

    made: list[list] = []
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda path, sess_options=None, providers=None:
                        made.append(providers) or object())
    detect._retinaface_session.cache_clear()
    try:
        for device in ("cuda:1", "cuda", "cpu"):
            make_detector("retinaface", device=device)
    finally:
        detect._retinaface_session.cache_clear()  # the fakes out of the shared cache
    cpu = "CPUExecutionProvider"
    assert made == [[("CUDAExecutionProvider", {"device_id": 1}), cpu], [("CUDAExecutionProvider", {"device_id": 0}), cpu],
                    [cpu]]


def test_insightface_runs_on_the_gpu_the_device_names(monkeypatch, tmp_path):
    """The same for a user's InsightFace pack: it was always given GPU 0 (ctx_id 0, no device_id). insightface
    is not installed here, so a stand-in FaceAnalysis records what the detector asks it for."""
    import sys
    import types

    asked: list[tuple] = []

    class FaceAnalysis:
        def __init__(self, name, allowed_modules, providers, root=None):
            asked.append(("providers", providers))

        def prepare(self, ctx_id, det_thresh, det_size):
            asked.append(("ctx_id", ctx_id))

    app = types.ModuleType("insightface.app")
    app.FaceAnalysis = FaceAnalysis  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "insightface", types.ModuleType("insightface"))
    monkeypatch.setitem(sys.modules, "insightface.app", app)
    (tmp_path / "det_10g.onnx").write_bytes(b"")
    for device in ("cuda:1", "cpu"):
        make_detector("insightface", insightface_root=tmp_path, device=device)
    cpu = "CPUExecutionProvider"
    assert asked == [("providers", [("CUDAExecutionProvider", {"device_id": 1}), cpu]), ("ctx_id", 1),
                     ("providers", [cpu]), ("ctx_id", -1)]
