"""CLRFaceModel safetensors round trip (fp32 and fp16), config as JSON metadata, fidelity knobs."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from clrface_video.errors import ClrfaceError, ModelError
from clrface_video.restore.model import CLRFaceConfig, CLRFaceModel, fidelity_to_knobs, read_metadata
from tests.tiny_models import randomised_model


def _randomised(cfg: CLRFaceConfig) -> CLRFaceModel:
    model = randomised_model(cfg)
    with torch.no_grad():  # the mask too, so outputs depend on every module
        model.mask.spatial_logits.normal_()
    return model


def _outputs(model: CLRFaceModel) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    z = torch.randn(2, 4, 8, 8, generator=g)
    with torch.inference_mode():
        recon, vq = model.vqgan(x)
        return [recon, vq.indices.float(), model.denoiser(z, torch.tensor([0.3, 3.0]), z), model.irn(x), model.mask()]


def test_fp32_round_trip_is_exact(tmp_path: Path) -> None:
    model = _randomised(CLRFaceConfig.tiny())
    path = tmp_path / "m.safetensors"
    model.save(path, extra_metadata={"steps": "123"})
    loaded = CLRFaceModel.load(path)
    assert loaded.cfg == model.cfg
    for a, b in zip(_outputs(model), _outputs(loaded)):
        assert torch.equal(a, b)
    meta = read_metadata(path)
    assert meta["steps"] == "123" and meta["dtype"] == "float32"
    assert json.loads(meta["config"])["vqgan"]["resolution"] == 32


def test_fp16_round_trip_is_close_and_half_the_size(tmp_path: Path) -> None:
    model = _randomised(CLRFaceConfig.tiny())
    model.save(tmp_path / "a.safetensors")
    model.save(tmp_path / "b.safetensors", fp16=True)
    assert (tmp_path / "b.safetensors").stat().st_size < 0.6 * (tmp_path / "a.safetensors").stat().st_size
    loaded = CLRFaceModel.load(tmp_path / "b.safetensors")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    out_a, out_b = _outputs(model), _outputs(loaded)
    for i in (0, 2, 3, 4):
        assert torch.allclose(out_a[i], out_b[i], atol=5e-3, rtol=5e-3)
    assert (out_a[1] == out_b[1]).float().mean() > 0.95  # a code index may flip on a near tie


def test_config_json_round_trip_keeps_tuples() -> None:
    cfg = CLRFaceConfig.small_128()
    back = CLRFaceConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and isinstance(back.vqgan.channel_mult, tuple) and isinstance(back.t_star_range, tuple)


def test_load_errors_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        CLRFaceModel.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError):
        CLRFaceModel.load(bad)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ModelError, match="not a CLR-Face"):
        CLRFaceModel.load(other)
    data = CLRFaceConfig.tiny().to_dict() | {"from_the_future": 1}
    with pytest.raises(ModelError, match="unknown fields"):
        CLRFaceConfig.from_dict(data)


def test_a_tensor_of_the_wrong_shape_is_a_model_error(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    good = tmp_path / "good.safetensors"
    randomised_model().save(good)
    tensors, metadata = load_file(str(good)), read_metadata(good)
    name = next(iter(tensors))
    tensors[name] = torch.zeros(1, 1, 1, 1)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(ModelError, match=f"does not match its config: size mismatch for {name}"):
        CLRFaceModel.load(tmp_path / "bad.safetensors")


def test_fidelity_knobs_are_monotonic_and_documented_ends() -> None:
    cfg = CLRFaceConfig.small_128()
    knobs = [fidelity_to_knobs(cfg, f / 10) for f in range(11)]
    assert all(a.t_star >= b.t_star for a, b in itertools.pairwise(knobs))
    assert all(a.guidance_weight >= b.guidance_weight for a, b in itertools.pairwise(knobs))
    assert knobs[0].t_star > knobs[-1].t_star and knobs[0].guidance_weight > knobs[-1].guidance_weight
    assert (knobs[0].t_star, knobs[-1].t_star) == (cfg.t_star_range[1], cfg.t_star_range[0])
    assert all(k.steps == cfg.steps for k in knobs)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ClrfaceError, match="fidelity"):
            fidelity_to_knobs(cfg, bad)
