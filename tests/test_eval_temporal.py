"""Video eval: identity spread, landmark jitter, face sharpness and track linking on known answers, and one tiny clip end to end."""
from __future__ import annotations

import numpy as np
import pytest

from clrface_video.eval.temporal import (
    Track,
    face_region,
    identity_spread,
    landmark_jitter,
    link_tracks,
    score_outputs,
)
from clrface_video.types import Face


def test_identity_spread_is_zero_for_a_constant_track_and_grows_with_drift():
    e = np.random.default_rng(0).normal(size=(1, 512))
    assert abs(identity_spread(np.repeat(e, 6, axis=0))) < 1e-12
    assert abs(identity_spread(np.repeat(e, 6, axis=0) * 3.0)) < 1e-12  # scale does not matter
    other = np.random.default_rng(1).normal(size=(1, 512))
    two = np.concatenate([np.repeat(e, 3, axis=0), np.repeat(other, 3, axis=0)])
    # two near-orthogonal halves: each is at 45 degrees from their mean -> 1 - cos(45) ~ 0.29
    assert abs(identity_spread(two) - (1 - np.sqrt(0.5))) < 0.05


def test_landmark_jitter_ignores_steady_motion_and_measures_alternating_jitter():
    t = np.arange(10, dtype=np.float64)
    steady = np.zeros((10, 5, 2))
    steady[..., 0] = 3.0 * t[:, None]  # constant velocity: no high frequency
    assert landmark_jitter(steady, 10.0) == 0.0
    shaky = steady.copy()
    shaky[..., 0] += 0.5 * (-1.0) ** t[:, None]  # +-0.5 px: second-difference high-pass of 1 px
    assert abs(landmark_jitter(shaky, 10.0) - 0.1) < 1e-12
    shaky[4] = np.nan  # a missed detection drops the triplets that touch it
    assert abs(landmark_jitter(shaky, 10.0) - 0.1) < 1e-12
    assert np.isnan(landmark_jitter(steady[:2], 10.0))


def _face(x: float, y: float, side: float = 40.0) -> Face:
    marks = np.array([[x + 12, y + 15], [x + 28, y + 15], [x + 20, y + 24], [x + 14, y + 32], [x + 26, y + 32]],
                     np.float32)
    return Face(np.array([x, y, x + side, y + side], np.float32), marks, 0.9)


def test_link_tracks_follows_two_moving_faces_across_a_missed_frame():
    frames = [[_face(10 + 2 * t, 10), _face(200 - 2 * t, 100)] for t in range(6)]
    frames[3] = frames[3][:1]  # the second face is missed once
    tracks = link_tracks(frames)
    assert len(tracks) == 2
    assert [t for t, _ in tracks[0].faces] == [0, 1, 2, 3, 4, 5]
    assert [t for t, _ in tracks[1].faces] == [0, 1, 2, 4, 5]


def test_sharpness_in_faces_drops_with_blur_and_ignores_the_background(astronaut):
    import cv2

    face = _face(180.0, 80.0, side=120.0)
    frames = [astronaut, astronaut]
    blurred = [cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames]
    background_blurred = [f.copy() for f in blurred]
    for out in background_blurred:  # the face box (grown by the margin) sharp again, the rest blurred
        out[60:220, 160:320] = astronaut[60:220, 160:320]

    class NoFaces:
        def detect(self, image):
            return []

    tracks = [Track(0, ((0, face),)), Track(1, ((1, face),))]  # single-face tracks: no identity model needed
    flows = [np.zeros((512, 512, 2), np.float32)]
    regions = [face_region((512, 512), [face])] * 2
    marks = [np.full((1, 5, 2), np.nan)] * 2

    def sharpness(outputs):
        return score_outputs("m", outputs, flows, regions, tracks, NoFaces(), marks, None).sharpness

    assert sharpness(blurred) < 0.2 * sharpness(frames)
    assert sharpness(background_blurred) == pytest.approx(sharpness(frames))


def test_video_eval_scores_input_and_baseline_on_a_tiny_clip(tmp_path):
    pytest.importorskip("dlib", reason="eval needs dlib-bin and face-recognition-models")
    from clrface_video.config import RestoreConfig
    from clrface_video.eval.bench import make_clip
    from clrface_video.eval.temporal import evaluate_video

    clip = make_clip(tmp_path / "clip.mp4", frames=4, size=(160, 160))
    result = evaluate_video(clip, ["baseline-bicubic-sharpen"], clean=clip, max_frames=4,
                            config=RestoreConfig(device="cpu"))
    assert result.frames == 4 and result.tracks == 1 and result.faces == 4
    assert result.methods == ("input", "baseline-bicubic-sharpen")
    clean, source, baseline = result.rows
    assert clean.method == "clean (reference)" and source.method == "input"
    assert source.psnr == float("inf") and source.ssim == 1.0  # the clean video is the input itself
    # the clean frames are the input's here, so their reference row is the input's, figure for figure
    assert clean.warping_error_per_frame == source.warping_error_per_frame and clean.sharpness == source.sharpness
    assert np.isfinite(baseline.psnr) and baseline.ssim < 1.0
    for row in result.rows:
        assert len(row.warping_error_per_frame) == 3
        assert all(np.isfinite([row.warping_error, row.identity_spread_judge, row.identity_spread_facenet,
                                row.landmark_jitter, row.landmark_jitter_added, row.sharpness]))
        assert 0.0 <= row.identity_spread_facenet < 0.2
    assert source.landmark_jitter_added == 0.0 and np.isfinite(baseline.landmark_jitter_added)


def test_video_methods_compare_whole_faces_only_for_models_with_a_blend_gate():
    from clrface_video.eval.temporal import video_methods

    plain = video_methods(["clrface", "baseline-bicubic-sharpen"])
    gated = video_methods(["clrface", "baseline-bicubic-sharpen"], gated=["clrface"])
    extra = [m for m in gated if m not in plain]
    assert [m.name for m in extra] == ["clrface (track identity, strength 1)"] and len(gated) == len(plain) + 1
    assert extra[0].strength == 1.0 and all(m.strength is None for m in plain)
    unguided = video_methods(["clrface", "baseline-bicubic-sharpen"], guided=False)
    assert len(unguided) == len(plain) - 1 and not any("identity)" in m.name for m in unguided)
    assert [m.name for m in unguided[1:3]] == ["clrface (no identity guidance)",
                                               "clrface (no identity guidance, smoothing 0.5)"]


def test_a_video_degraded_here_is_scored_beside_its_clean_frames(tmp_path):
    pytest.importorskip("dlib", reason="eval needs dlib-bin and face-recognition-models")
    from clrface_video.config import RestoreConfig
    from clrface_video.eval.bench import make_clip
    from clrface_video.eval.temporal import CLEAN, evaluate_video

    clip = make_clip(tmp_path / "clip.mp4", frames=4, size=(160, 160))
    result = evaluate_video(clip, ["baseline-bicubic-sharpen"], degrade_seed=0, max_frames=4,
                            config=RestoreConfig(device="cpu"))
    clean, source, _ = result.rows
    assert clean.method == CLEAN and source.method == "input"
    assert clean.psnr == float("inf") and np.isfinite(source.psnr) and source.psnr < 40
    assert clean.sharpness != source.sharpness and clean.landmark_jitter_added != 0.0
