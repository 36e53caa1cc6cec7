"""The blend gate: the share it keeps, how the restorer applies it, that it can learn, and training/export."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from clrface_video.errors import ModelError
from clrface_video.restore.base import RestoreBatch
from clrface_video.restore.gate import BlendGate, GateConfig, best_share, blend, gate_loss
from clrface_video.restore.model import CLRFaceConfig, CLRFaceModel, Knobs
from clrface_video.restore.restorer import CLRFaceRestorer
from tests.tiny_models import randomised_model

KNOBS = Knobs(t_star=0.5, guidance_weight=0.0, steps=4)


def gated_model(bias: float | None = None) -> CLRFaceModel:
    model = randomised_model(replace(CLRFaceConfig.tiny(), gate=GateConfig.tiny()))
    if bias is not None:
        with torch.no_grad():
            model.gate.head.bias.fill_(bias)
    return model


def crops(n: int = 3) -> np.ndarray:
    return np.random.default_rng(4).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_an_untrained_gate_keeps_its_initial_share_of_every_face() -> None:
    gate = BlendGate(GateConfig.tiny())
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    share = gate(x, -x)
    assert share.shape == (5,) and torch.allclose(share, torch.full((5,), 0.75), atol=1e-5)


def test_the_restorer_blends_each_face_by_its_gate() -> None:
    lq, seeds = crops(), np.array([1, 2, 3])
    whole = CLRFaceRestorer(gated_model(), "cpu", knobs=KNOBS).restore(RestoreBatch(lq, seeds=seeds, gate=False))
    closed = CLRFaceRestorer(gated_model(-30.0), "cpu", knobs=KNOBS).restore(RestoreBatch(lq, seeds=seeds))
    opened = CLRFaceRestorer(gated_model(30.0), "cpu", knobs=KNOBS).restore(RestoreBatch(lq, seeds=seeds))
    half = CLRFaceRestorer(gated_model(0.0), "cpu", knobs=KNOBS).restore(RestoreBatch(lq, seeds=seeds))
    assert np.abs(whole.astype(int) - lq).mean() > 20  # the tiny random model changes the faces a lot
    assert np.array_equal(closed, lq)  # share 0: the input itself
    assert np.array_equal(opened, whole)  # share 1: the restoration itself
    assert np.abs(half.astype(float) - (lq.astype(float) + whole) / 2).max() <= 1.0
    plain = CLRFaceModel(CLRFaceConfig.tiny())
    plain.load_state_dict({k: v for k, v in gated_model().state_dict().items() if not k.startswith("gate.")})
    no_gate = CLRFaceRestorer(plain.eval(), "cpu", knobs=KNOBS).restore(RestoreBatch(lq, seeds=seeds))
    assert np.array_equal(no_gate, whole)  # the same weights without a gate restore the same faces


def test_the_gate_learns_which_faces_the_restoration_helps() -> None:
    """Half the faces are clean inputs with a noisy 'restoration', half noisy inputs with a clean one:
    trained as the gate stage trains it, the gate keeps little of the first and most of the second."""
    torch.manual_seed(0)
    hq = torch.rand(16, 3, 32, 32) * 1.6 - 0.8
    noisy = (hq + 0.3 * torch.randn_like(hq)).clamp(-1, 1)
    helps = torch.arange(16) % 2 == 0
    lq = torch.where(helps.view(-1, 1, 1, 1), noisy, hq)
    out = torch.where(helps.view(-1, 1, 1, 1), hq, noisy)
    assert torch.equal(best_share(lq, out, hq), helps.float())
    gate = BlendGate(GateConfig.tiny())
    opt = torch.optim.Adam(gate.parameters(), 1e-2)
    for _ in range(150):
        loss = gate_loss(gate.logits(lq, out), lq, out, hq)
        opt.zero_grad()
        loss.backward()
        opt.step()
    share = gate(lq, out).detach()
    assert share[helps].min() > 0.8 and share[~helps].max() < 0.2, share
    assert torch.allclose(blend(lq, out, torch.ones(16)), out) and torch.allclose(blend(lq, out, torch.zeros(16)), lq)


class FixedShares(torch.nn.Module):
    """Stands in for a trained gate: hands out the given shares in order."""

    def __init__(self, shares: list[float]) -> None:
        super().__init__()
        self.shares = torch.tensor(shares)

    def forward(self, lq: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        return self.shares[: len(lq)].to(lq.dtype)


def test_in_video_the_share_is_averaged_along_each_track() -> None:
    """Frames of one track whose gate says 0, 1, 1 get 0, 0.1, 0.19 (SHARE_SMOOTHING 0.9), so the
    restoration's strength does not jump; a second track starts from its own first share."""
    from clrface_video.restore.temporal import TrackMemory
    from clrface_video.story import SHARE_SMOOTHING

    lq, seeds = crops(4), np.array([1, 1, 1, 2])
    model = gated_model()
    whole = CLRFaceRestorer(model, "cpu", knobs=KNOBS).restore(RestoreBatch(lq, seeds=seeds, gate=False)).astype(float)
    model.gate = FixedShares([0.0, 1.0, 1.0, 1.0])
    batch = RestoreBatch(lq, seeds=seeds, tracks=np.array([7, 7, 7, 8]), gate_memory=TrackMemory(SHARE_SMOOTHING))
    out = CLRFaceRestorer(model, "cpu", knobs=KNOBS).restore(batch)
    a = SHARE_SMOOTHING
    for i, share in enumerate([0.0, 1 - a, (1 - a) * (1 + a), 1.0]):
        assert np.abs(out[i] - (lq[i] + share * (whole[i] - lq[i]))).max() <= 1.0, i


def test_a_gate_on_the_degraded_face_alone_gives_a_face_the_same_share_whatever_its_restoration() -> None:
    """inputs="degraded" (the default): the share is a function of the input only, so each output is
    lq + w(lq) (restored - lq) and its distance to the input scales with the restoration's (--fidelity
    stays monotonic under --strength auto); inputs="both" looks at the restoration too."""
    torch.manual_seed(1)
    lq, a, b = (torch.rand(4, 3, 32, 32) * 2 - 1 for _ in range(3))
    only = BlendGate(GateConfig.tiny())
    torch.nn.init.normal_(only.head.weight, std=0.5)
    assert only.cfg.inputs == "degraded" and only.features[0].in_channels == 3
    assert torch.equal(only(lq, a), only(lq, b)) and not torch.allclose(only(lq, a), only(a, a))
    both = BlendGate(replace(GateConfig.tiny(), inputs="both"))
    torch.nn.init.normal_(both.head.weight, std=0.5)
    assert both.features[0].in_channels == 9 and not torch.allclose(both(lq, a), both(lq, b))


def test_a_face_and_its_mirror_image_get_the_same_share_and_a_pixel_moves_it_less_than_one_view() -> None:
    """The share is averaged over the face's views (mirrored; moved by a pixel), so a mirrored face gets
    exactly its share, and a crop moved by one pixel changes it less than it changes the single view."""
    from clrface_video.restore.gate import view

    torch.manual_seed(2)
    gate = BlendGate(GateConfig.tiny())
    torch.nn.init.normal_(gate.head.weight, std=0.1)  # shares near 0.6, where they move
    x = torch.rand(16, 3, 32, 32) * 2 - 1
    single = torch.sigmoid(gate.logits(x, None))
    assert (single - torch.sigmoid(gate.logits(x.flip(3), None))).abs().mean() > 1e-3  # one view is not symmetric
    assert torch.allclose(gate(x.flip(3), None), gate(x, None), atol=1e-6)
    moved = view(x, False, 0, 1)
    assert (gate(moved, None) - gate(x, None)).abs().mean() < (torch.sigmoid(gate.logits(moved, None)) - single).abs().mean()


def test_weights_saved_before_the_gate_had_inputs_load_as_a_gate_that_sees_both(tmp_path) -> None:
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    model = randomised_model(replace(CLRFaceConfig.tiny(), gate=replace(GateConfig.tiny(), inputs="both")))
    path = tmp_path / "new.safetensors"
    model.save(path)
    assert CLRFaceModel.load(path).cfg.gate == model.cfg.gate
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    config = json.loads(metadata["config"])
    del config["gate"]["inputs"]  # as session 9's file was written
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata={**metadata, "config": json.dumps(config)})
    loaded = CLRFaceModel.load(old)
    assert loaded.cfg.gate.inputs == "both"
    lq = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded.gate(lq, -lq), model.gate(lq, -lq))
    config["gate"]["inputs"] = "restored"
    save_file(load_file(str(path)), str(old), metadata={**metadata, "config": json.dumps(config)})
    with pytest.raises(ModelError, match="invalid config: gate inputs must be"):
        CLRFaceModel.load(old)
