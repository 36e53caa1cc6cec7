"""Face detection: RetinaFace finds real faces with landmarks in the right order; clear errors otherwise."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from clrface_video.errors import ClrfaceError, ModelError
from clrface_video.faces.detect import RetinaFaceDetector, make_detector, nms, retinaface_priors
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


def test_max_side_is_configurable(astronaut):
    small = make_detector(max_side=256).detect(astronaut)  # runs on a 256 x 256 copy
    assert len(small) == 1
    assert np.abs(small[0].box - make_detector().detect(astronaut)[0].box).max() < 12


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
