"""--device: what a user may type, and the one-line errors for what cannot run."""
from __future__ import annotations

import pytest
import torch

from clrface_video.device import compute_dtype, gpu_index, pick_device, same_device_name, training_autocast
from clrface_video.errors import ClrfaceError


def test_cpu_and_auto_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == torch.device("cpu") and pick_device("auto") == torch.device("cpu")
    assert compute_dtype(torch.device("cpu")) == torch.float32
    with pytest.raises(ClrfaceError, match="torch sees no CUDA GPU"):
        pick_device("cuda")


@pytest.mark.parametrize("name", ["mps", "xpu", "tpu", "gpu", "cuda:x"])
def test_other_devices_are_refused_in_one_line(name):
    with pytest.raises(ClrfaceError, match="must be auto, cpu, cuda or cuda:N") as caught:
        pick_device(name)
    assert "\n" not in str(caught.value)


def test_a_gpu_index_past_the_last_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1") and pick_device("cuda") == torch.device("cuda")
    with pytest.raises(ClrfaceError, match="sees 2 CUDA GPU"):
        pick_device("cuda:2")


def test_the_detector_gets_the_gpu_the_device_names(monkeypatch):
    """onnxruntime's CUDA provider is handed the restorer's GPU: N for cuda:N, torch's current GPU for cuda;
    the shared FaceNet is cached under the same GPU's one name."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert gpu_index("cuda:3") == 3 and gpu_index(torch.device("cuda", 2)) == 2
    assert gpu_index("cuda") == 1
    assert gpu_index("cpu") is None and gpu_index(None) is None and gpu_index(torch.device("cpu")) is None
    assert same_device_name("cuda") == same_device_name("cuda:1") == "cuda:1" != same_device_name("cuda:3")
    assert same_device_name(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize(("device", "bf16"), [("cpu", True), ("cuda", False)])
def test_training_stays_fp32_where_bf16_is_missing(monkeypatch, device, bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    with training_autocast(torch.device(device)):  # the CPU, or a GPU without bf16 (fp16 needs loss scaling)
        product = torch.ones(2, 2) @ torch.ones(2, 2)
    assert product.dtype == torch.float32 and not torch.is_autocast_enabled("cuda")


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # the context is only built here, never entered
def test_training_autocasts_to_bf16_on_a_gpu_that_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    context = training_autocast(torch.device("cuda"))
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
