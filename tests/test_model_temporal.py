"""Latent smoothing along a track: the moving average itself, in the restorer, and as the pipeline feeds it."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.errors import ClrfaceError
from clrface_video.pipeline import restore_video
from clrface_video.restore.base import RestoreBatch, register_restorer
from clrface_video.restore.baseline import BicubicSharpenRestorer
from clrface_video.restore.model import Knobs
from clrface_video.restore.restorer import CLRFaceRestorer
from clrface_video.restore.temporal import TrackMemory
from tests.media import make_clip
from tests.tiny_models import randomised_model


def _ema(seq: list[torch.Tensor], a: float, start: torch.Tensor | None) -> list[torch.Tensor]:
    out, s = [], seq[0] if start is None else start
    for z in seq:
        s = a * s + (1 - a) * z
        out.append(s)
    return out


def test_smooth_is_a_per_track_moving_average_across_calls() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(10, 4, 8, 8, generator=g)
    tracks = np.array([3, 7, 3, 3, 7, 3, 7, 7, 3, 3])
    memory = TrackMemory(0.6)
    out = torch.cat([memory.smooth(z[:4], tracks[:4]), memory.smooth(z[4:], tracks[4:])])
    for track in (3, 7):
        idx = np.flatnonzero(tracks == track)
        expected = _ema([z[i] for i in idx], 0.6, None)
        for i, e in zip(idx, expected):
            assert torch.allclose(out[i], e, atol=1e-5)
    assert torch.allclose(out[0], z[0], atol=1e-6) and torch.allclose(out[1], z[1], atol=1e-6)  # own start
    assert set(memory.latents) == {3, 7} and torch.allclose(memory.latents[3], out[9])


def test_memory_keeps_the_most_recent_tracks_only() -> None:
    memory = TrackMemory(0.5, max_tracks=3)
    for track in (1, 2, 3, 1, 4):
        memory.smooth(torch.randn(1, 4, 8, 8), np.array([track]))
    assert list(memory.latents) == [3, 1, 4]  # 2, the least recently seen, was forgotten


def test_zero_strength_is_a_no_op_and_bad_strengths_are_refused() -> None:
    z = torch.randn(3, 4, 8, 8)
    assert TrackMemory(0.0).smooth(z, np.array([1, 1, 1])) is z
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="smoothing strength"):
            TrackMemory(bad)
    with pytest.raises(ClrfaceError, match="^temporal_smoothing must be between 0 and 0.95, got 0.99"):
        RestoreConfig(temporal_smoothing=0.99)


def _restorer() -> CLRFaceRestorer:
    return CLRFaceRestorer(randomised_model(), "cpu", knobs=Knobs(t_star=0.6, guidance_weight=0.0, steps=4))


def _jitter(restorer: CLRFaceRestorer, crops: np.ndarray, strength: float) -> tuple[np.ndarray, float]:
    """Outputs for one track whose frames get fresh noise seeds, and their mean frame-to-frame change."""
    n = len(crops)
    memory = TrackMemory(strength) if strength > 0 else None
    out = restorer.restore(RestoreBatch(crops, seeds=np.arange(n), tracks=np.zeros(n, np.int64), memory=memory))
    out = out.astype(float)
    return out, float(np.abs(np.diff(out, axis=0)).mean())


def test_smoothing_steadies_a_still_face_sampled_with_fresh_noise() -> None:
    """The same face, 8 frames, a new noise seed each frame: the stronger the smoothing, the less it moves."""
    crop = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    crops, r = np.repeat(crop, 8, axis=0), _restorer()
    (plain, j0), (light, j3), (strong, j7) = (_jitter(r, crops, a) for a in (0.0, 0.3, 0.7))
    assert j0 > 1.0  # fresh noise really moves this model's output
    assert j7 < j3 < j0
    assert np.array_equal(strong[0], plain[0]) and np.array_equal(light[0], plain[0])  # frame 1 untouched
    with pytest.raises(ClrfaceError, match="tracks must be"):
        r.restore(RestoreBatch(crops, tracks=np.zeros(3, np.int64), memory=TrackMemory(0.5)))


def test_shipped_model_jitters_less_with_smoothing_and_loses_nothing() -> None:
    """The shipped checkpoint on a degraded astronaut face: 0.6 halves the frame-to-frame change."""
    from clrface_video.eval.bench import sample_crops
    from clrface_video.restore import restorer as restorer_mod
    from clrface_video.train.degrade import DegradeConfig, degrade

    if not restorer_mod.SHIPPED_WEIGHTS.is_file():
        pytest.skip(f"shipped weights absent: {restorer_mod.SHIPPED_WEIGHTS}")
    restorer = restorer_mod.make_clrface(torch.device("cpu"))
    clean = sample_crops(1, restorer.resolution)[0]
    lq = degrade(clean, np.random.default_rng(3), DegradeConfig(codec_prob=0.0))
    crops = np.repeat(lq[None], 8, axis=0)
    (plain, j0), (smooth, j6) = (_jitter(restorer, crops, a) for a in (0.0, 0.6))
    assert j6 < 0.7 * j0
    error = [float(np.abs(out - clean).mean()) for out in (plain, smooth)]
    assert error[1] < error[0] + 0.5  # as close to the clean face as without smoothing


class _MemoryRecorder(BicubicSharpenRestorer):
    """The baseline, keeping the track ids and smoothing state the pipeline hands it."""

    name = "test-memory-recorder"
    calls: ClassVar[list[tuple[np.ndarray, TrackMemory | None]]] = []
    snaps: ClassVar[list[bool]] = []
    gates: ClassVar[list[tuple[bool, object]]] = []

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        self.calls.append((np.array(batch.tracks), batch.memory))
        self.snaps.append(batch.snap)
        self.gates.append((batch.gate, batch.gate_memory))
        return super().restore(batch)


register_restorer(_MemoryRecorder.name, "test only")(lambda device, fidelity=0.5, path=None: _MemoryRecorder())


@pytest.mark.parametrize(("strength", "gated"), [(None, True), (1.0, False), (0.5, False)])
def test_the_blend_gate_acts_only_at_auto_strength_with_one_share_memory_per_video(tmp_path, strength, gated):
    """--strength auto leaves the share to the gate, averaged along each track (one memory per video, so it does
    not pulse); a number pastes that share of the whole restoration, the gate left out."""
    clip = make_clip(tmp_path / "c.mp4", frames=8, size=(256, 192))
    _MemoryRecorder.gates.clear()
    cfg = RestoreConfig(device="cpu", model=_MemoryRecorder.name, track_identity=False, batch_size=2, strength=strength)
    restore_video(clip, tmp_path / "o.mp4", cfg)
    assert len(_MemoryRecorder.gates) == 4 and {gate for gate, _ in _MemoryRecorder.gates} == {gated}
    memories = {id(memory) for _, memory in _MemoryRecorder.gates}
    assert len(memories) == 1 and (_MemoryRecorder.gates[0][1] is not None) == gated


@pytest.mark.parametrize("strength", [0.0, 0.5])
def test_pipeline_hands_one_memory_per_video_and_track_ids(tmp_path, strength) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=10, size=(256, 192))
    _MemoryRecorder.calls.clear()
    cfg = RestoreConfig(device="cpu", model=_MemoryRecorder.name, track_identity=False, batch_size=4,
                        temporal_smoothing=strength)
    report = restore_video(clip, tmp_path / "o.mp4", cfg)
    assert report.tracks == 1 and len(_MemoryRecorder.calls) >= 3
    tracks = np.concatenate([t for t, _ in _MemoryRecorder.calls])
    assert len(tracks) == 10 and len(set(tracks.tolist())) == 1
    memories = {id(m) for _, m in _MemoryRecorder.calls}
    if strength == 0.0:
        assert all(m is None for _, m in _MemoryRecorder.calls)
    else:
        assert len(memories) == 1 and _MemoryRecorder.calls[0][1].strength == 0.5


@pytest.mark.parametrize(("option", "video", "photo"), [(None, False, True), (True, True, True),
                                                         (False, False, False)])
def test_videos_skip_the_codebook_snap_and_photos_keep_it_unless_told(tmp_path, astronaut, option, video,
                                                                     photo) -> None:
    from PIL import Image

    from clrface_video.pipeline import restore_path

    clip = make_clip(tmp_path / "c.mp4", frames=3, size=(256, 192))
    Image.fromarray(astronaut).save(tmp_path / "p.png")
    cfg = RestoreConfig(device="cpu", model=_MemoryRecorder.name, track_identity=False, snap_to_codebook=option)
    _MemoryRecorder.snaps.clear()
    restore_video(clip, tmp_path / "o.mp4", cfg)
    assert _MemoryRecorder.snaps and set(_MemoryRecorder.snaps) == {video}
    _MemoryRecorder.snaps.clear()
    restore_path(tmp_path / "p.png", tmp_path / "p_out.png", cfg)
    assert _MemoryRecorder.snaps and set(_MemoryRecorder.snaps) == {photo}


def test_ray_segments_restore_as_a_video_from_the_plan_without_tracking_again(tmp_path) -> None:
    """PlannedRestorer (a Ray worker's segment): video latents (unsnapped, one memory for the segment), the
    plan's track ids and seeds, and no detection or tracking of its own."""
    from clrface_video.distributed.plan import FacePlan
    from clrface_video.distributed.worker import PlannedRestorer
    from clrface_video.io.decode import read_frames
    from clrface_video.io.pixels import to_uint8
    from clrface_video.pipeline import load_models
    from clrface_video.report import StageTimer

    clip = make_clip(tmp_path / "c.mp4", frames=4, size=(256, 192))
    cfg = RestoreConfig(device="cpu", model=_MemoryRecorder.name, track_identity=False, temporal_smoothing=0.5)
    models = load_models(cfg, video=True)
    frames = list(read_frames(clip))
    plan = {f.index: [FacePlan(7, face.landmarks, 123, 0) for face in models.detector.detect(to_uint8(f.image))]
            for f in frames}
    assert all(len(faces) == 1 for faces in plan.values())
    models.detector.detect = None  # the worker must not detect again
    _MemoryRecorder.calls.clear()
    _MemoryRecorder.snaps.clear()
    out = list(PlannedRestorer(models, cfg, StageTimer(), plan, {}).run(frames))
    assert len(out) == 4 and any(not np.array_equal(a.image, b.image) for a, b in zip(out, frames))
    assert set(_MemoryRecorder.snaps) == {False}
    assert np.concatenate([t for t, _ in _MemoryRecorder.calls]).tolist() == [7, 7, 7, 7]
    memories = {id(m) for _, m in _MemoryRecorder.calls}
    assert len(memories) == 1 and _MemoryRecorder.calls[0][1] is not None


def test_cli_refuses_an_out_of_range_smoothing(tmp_path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=2, size=(64, 64))
    result = CliRunner().invoke(cli, ["restore", str(clip), "--temporal-smoothing", "1.5"])
    assert result.exit_code == 2 and "--temporal-smoothing" in result.output
    assert not list(tmp_path.glob("*_restored*"))
