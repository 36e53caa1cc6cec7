"""The ComfyUI nodes called directly on IMAGE tensors, without ComfyUI: shapes, precision, masks, video batches, cache."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from clrface_video.api import Session
from clrface_video.errors import ClrfaceError
from tests.media import grace_hopper, unrelated_pair

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "comfyui"
BASELINE = "baseline-bicubic-sharpen"
FACE = (slice(60, 190), slice(150, 290))  # rows, columns around the astronaut's face
NEAR_FACE = (slice(0, 260), slice(90, 360))  # where a face mask may reach
FAR = (slice(330, 512), slice(0, 512))


def load_plugin() -> ModuleType:
    """Import plugins/comfyui as ComfyUI does (a package from its __init__.py), under a private name."""
    name = "clrface_comfyui_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PLUGIN / "__init__.py",
                                                      submodule_search_locations=[str(PLUGIN)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    return load_plugin()


@pytest.fixture(scope="module")
def nodes(plugin) -> ModuleType:
    return sys.modules[f"{plugin.__name__}.nodes"]


@pytest.fixture(scope="module")
def model(plugin) -> Session:
    (session,) = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]().load(BASELINE)
    return session


def image_batch(astronaut: np.ndarray, count: int, noise: float = 1e-3, seed: int = 0) -> torch.Tensor:
    """[count, 512, 512, 3] float32 in 0..1: the astronaut plus a little noise (off the 1/255 grid)."""
    rng = np.random.default_rng(seed)
    frames = [np.clip(astronaut / 255.0 + rng.uniform(-noise, noise, astronaut.shape), 0, 1) for _ in range(count)]
    return torch.from_numpy(np.stack(frames).astype(np.float32))


def restore(plugin, model, images, **options) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = {"fidelity": 0.5, "detector": "retinaface", "min_face": 16, "max_upscale": 4.0, "batch_is_video": True}
    return plugin.NODE_CLASS_MAPPINGS["CLRFaceRestore"]().restore(model, images, **{**inputs, **options})


def test_mappings_and_declared_inputs(plugin, nodes):
    assert set(plugin.NODE_CLASS_MAPPINGS) == set(plugin.NODE_DISPLAY_NAME_MAPPINGS) == {"CLRFaceModelLoader",
                                                                                         "CLRFaceRestore"}
    assert plugin.NODE_DISPLAY_NAME_MAPPINGS["CLRFaceModelLoader"] == "Load CLR-Face Model"
    assert not hasattr(plugin, "comfy_entrypoint")  # classic style only
    loader, node = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"], plugin.NODE_CLASS_MAPPINGS["CLRFaceRestore"]
    choices = loader.INPUT_TYPES()["required"]["model_name"][0]
    assert choices[:2] == ["shipped", BASELINE]
    required = node.INPUT_TYPES()["required"]
    assert required["clrface_model"][0] == loader.RETURN_TYPES[0] and required["images"][0] == "IMAGE"
    assert {"fidelity", "detector", "min_face", "max_upscale", "batch_is_video"} <= set(required)
    assert set(nodes.CLRFaceRestore.INPUT_TYPES()["optional"]) == {"temporal_smoothing", "keep_detail", "strength",
                                                                       "identity_guidance", "detection_threshold"}
    assert node.RETURN_TYPES == ("IMAGE", "MASK") and callable(getattr(node(), node.FUNCTION))
    assert nodes.folder_paths is None and nodes.model_management is None  # no ComfyUI here
    for each in (loader, node):  # hovering any input or output in ComfyUI says what it is (none said it of two)
        declared = each.INPUT_TYPES()
        untold = [name for group in declared.values() for name, spec in group.items()
                  if len(spec) < 2 or not spec[1].get("tooltip")]
        assert untold == [] and len(each.OUTPUT_TOOLTIPS) == len(each.RETURN_TYPES), each.__name__


def test_loader_caches_and_runs_on_the_expected_device(plugin, nodes, model):
    (again,) = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]().load(BASELINE)
    assert again is model and model.model_name == BASELINE
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert nodes.model_option("shipped") == "auto" and nodes.model_option("/x/w.safetensors") == "/x/w.safetensors"
    with pytest.raises(ClrfaceError, match="not found in models/clrface"):
        nodes.model_option("missing.safetensors")


def test_the_loader_loads_facenet_so_a_graphs_first_run_does_not(plugin, nodes, astronaut, monkeypatch):
    """The shipped model's identity guidance loaded FaceNet in the first guided batch: a graph's first restore took
    about 0.9 s longer on a CPU. The loader loads it (once per device, shared); the baseline, which has no
    guidance, does not."""
    from clrface_video.faces import identity

    monkeypatch.setattr(nodes, "_LOADED", {})
    monkeypatch.setattr(nodes, "_MADE", type(nodes._MADE)())
    identity._shared_encoder.cache_clear()
    loader = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]()
    loader.load(BASELINE)
    assert identity._shared_encoder.cache_info().currsize == 0
    (session,) = loader.load("shipped")
    assert session.model_name == "clrface" and identity._shared_encoder.cache_info().misses == 1
    restore(plugin, session, image_batch(astronaut, 1))
    assert session.restorer.identity_net is not None and identity._shared_encoder.cache_info().misses == 1


def test_two_loaders_on_one_device_stay_loaded_and_a_third_closes_the_oldest(plugin, nodes, astronaut, monkeypatch):
    """An A/B workflow: models A and B both stay loaded on the device, so running the graph again loads nothing;
    a third model closes the least recently loaded (A), whose restore node then loads it again instead of failing."""
    from clrface_video.restore import base

    loads = []
    real = base.make_restorer
    monkeypatch.setattr(base, "make_restorer", lambda model, **kw: loads.append(model) or real(model, **kw))
    nodes._LOADED.clear()
    nodes._MADE.clear()
    loader = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]()
    (a,) = loader.load(BASELINE)
    first, _ = restore(plugin, a, image_batch(astronaut, 1), batch_is_video=False)
    (b,) = loader.load("shipped")
    assert b is not a
    for _ in range(2):  # the graph run twice: each node reuses its loaded model
        for session in (a, b):
            assert loader.load(session.config.model if session is a else "shipped")[0] is session
            restore(plugin, session, image_batch(astronaut, 1), batch_is_video=False)
    assert loads == [BASELINE, "auto"], loads
    weights = str(Path(base.__file__).resolve().parents[1] / "weights" / "clrface-128.safetensors")
    (c,) = loader.load(weights)
    assert a._restorer is None and b._restorer is not None and c._restorer is not None
    assert [k[0] for k in nodes._LOADED] == [BASELINE, "shipped", weights][1:]
    assert torch.equal(restore(plugin, a, image_batch(astronaut, 1), batch_is_video=False)[0], first)
    assert loads == [BASELINE, "auto", weights, BASELINE], loads
    assert loader.load(BASELINE)[0] is a  # A's loader again: the session its node reloaded, not a second one
    assert b._restorer is None and [k[0] for k in nodes._LOADED] == [weights, BASELINE]
    assert loads == [BASELINE, "auto", weights, BASELINE], loads


def test_weights_that_cannot_be_loaded_close_no_loaded_model(plugin, nodes, tmp_path):
    """A file in models/clrface that is not CLR-Face weights (empty, another pack's) is refused by the loader; with
    two models loaded it first closed the least recently used to make room for it, so a broken choice cost a good
    model, which its restore node then loaded again. Room is made once the new model has loaded."""
    from clrface_video.errors import ModelError

    nodes._LOADED.clear()
    nodes._MADE.clear()
    loader = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]()
    a, b = (loader.load(choice)[0] for choice in (BASELINE, "shipped"))
    broken = tmp_path / "empty.safetensors"
    broken.write_bytes(b"")
    with pytest.raises(ModelError, match="cannot read CLR-Face weights"):
        loader.load(str(broken))
    assert a._restorer is not None and b._restorer is not None, "a loaded model was closed for a file that failed"
    assert [k[0] for k in nodes._LOADED] == [BASELINE, "shipped"] and len(nodes._MADE) == 2


def test_restore_nodes_of_three_loaders_keep_two_models_loaded(plugin, nodes, astronaut):
    """ComfyUI does not run a loader again while its choice is unchanged: its restore node gets the same session
    from ComfyUI's cache. With three loaders the first was closed by the third and reloaded by its restore node
    beside the other two, so all three stayed loaded; each restore node now makes room as a loader does."""
    from clrface_video.restore import base

    nodes._LOADED.clear()
    nodes._MADE.clear()
    loader = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]()
    weights = str(Path(base.__file__).resolve().parents[1] / "weights" / "clrface-128.safetensors")
    sessions = [loader.load(choice)[0] for choice in (BASELINE, "shipped", weights)]  # the loaders, run once
    for _ in range(2):  # the graph run twice with new images: only the restore nodes run
        for session in sessions:
            restore(plugin, session, image_batch(astronaut, 1), batch_is_video=False)
            loaded = [s for s in sessions if s._restorer is not None]
            assert session in loaded and len(loaded) == nodes.KEPT_PER_DEVICE
    assert [k[0] for k in nodes._LOADED] == ["shipped", weights]


def test_restore_keeps_shape_range_precision_and_background(plugin, model, astronaut):
    images = image_batch(astronaut, 2)
    before = images.clone()
    out, mask = restore(plugin, model, images, batch_is_video=False)
    assert torch.equal(images, before), "the input tensor was modified"
    assert out.shape == images.shape and out.dtype == torch.float32 and 0.0 <= out.min() and out.max() <= 1.0
    assert mask.shape == images.shape[:3] and mask.dtype == torch.float32 and 0.0 <= mask.min() <= mask.max() <= 1.0
    changed = (out != images).any(-1)
    assert changed[(slice(None), *FACE)].float().mean() > 0.3, "the faces were not restored"
    assert not changed[mask == 0].any(), "a pixel outside the face mask changed"
    assert torch.equal(out[(slice(None), *FAR)], images[(slice(None), *FAR)])  # bit for bit, no uint8 trip
    outside = torch.ones_like(mask, dtype=torch.bool)
    outside[(slice(None), *NEAR_FACE)] = False
    assert mask[outside].max() == 0 and mask[(slice(None), *FACE)].max() == 1.0


# Run in a fresh process, whose peak resident memory (VmHWM, reset by writing 5 to clear_refs) is the node's run: the
# batch's restored frames and masks collected in lists and stacked at the end held it twice more (2.7x the input).
PEAK_MEMORY = """
import re, sys
from skimage import data
from tests.test_comfyui_nodes import load_plugin, restore, image_batch
def peak():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
plugin = load_plugin()
(model,) = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]().load("baseline-bicubic-sharpen")
restore(plugin, model, image_batch(data.astronaut(), 2))  # the detector's and the restorer's buffers, once
images = image_batch(data.astronaut(), int(sys.argv[1]))
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")
before = peak()
out, mask = restore(plugin, model, images)
print((peak() - before) / (images.numel() * images.element_size()), out.shape[0], int((mask.amax((1, 2)) == 1).sum()))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="the peak memory is reset on Linux only")
def test_a_video_batch_is_restored_in_place_not_held_twice_more():
    frames = 48  # 144 MiB of IMAGE
    run = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(frames)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    grown, count, restored = run.stdout.split()
    assert (int(count), int(restored)) == (frames, frames)  # every frame back, its face restored
    assert float(grown) < 2.0, f"the node grew by {float(grown):.2f}x its IMAGE (the output and mask are 1.33x)"


def test_batch_as_video_tracks_one_person_without_flicker(plugin, model, astronaut, monkeypatch):
    runs = []
    original = model.restore_frames

    def spy(frames, **options):
        runs.append((options, original(frames, **options)))
        return runs[-1][1]

    monkeypatch.setattr(model, "restore_frames", spy)
    images = image_batch(astronaut, 3, noise=2e-3, seed=3)
    out, _ = restore(plugin, model, images, batch_is_video=True)
    (options, run), = runs
    assert options["as_video"] is True and run.tracks == 1 and run.faces == 3
    face_out, face_in = out[(slice(None), *FACE)], images[(slice(None), *FACE)]
    for i in (1, 2):  # near-identical frames give near-identical restored faces
        assert (face_out[i] - face_out[0]).abs().mean() < (face_in[i] - face_in[0]).abs().mean() + 2e-3
    restore(plugin, model, images, batch_is_video=False)
    assert runs[-1][0]["as_video"] is False
    restore(plugin, model, images, temporal_smoothing=0.4)
    assert runs[-1][0]["temporal_smoothing"] == 0.4
    restore(plugin, model, images, keep_detail=0.25)
    assert runs[-1][0]["keep_detail"] == 0.25 and runs[-2][0]["keep_detail"] == 1.0
    assert runs[-1][0]["strength"] is None  # 0, the default, is auto
    restore(plugin, model, images, strength=0.5)
    assert runs[-1][0]["strength"] == 0.5 and runs[-1][0]["det_threshold"] is None  # 0, the default, is auto
    restore(plugin, model, images, detection_threshold=0.8)
    assert runs[-1][0]["det_threshold"] == 0.8 and runs[-1][0]["identity_guidance"] is True
    restore(plugin, model, images, identity_guidance=False)
    assert runs[-1][0]["identity_guidance"] is False


def test_options_reach_the_pipeline(plugin, model, astronaut):
    images = image_batch(astronaut, 1)
    untouched, mask = restore(plugin, model, images, min_face=400)  # the face is smaller: left alone
    assert torch.equal(untouched, images) and mask.max() == 0
    sharp, _ = restore(plugin, model, images, fidelity=0.0)
    soft, _ = restore(plugin, model, images, fidelity=1.0)
    assert (sharp - images).abs().sum() > (soft - images).abs().sum()


def test_alpha_passes_through_and_bad_shapes_fail(plugin, model, astronaut):
    rgb = image_batch(astronaut, 1)
    rgba = torch.cat([rgb, torch.full_like(rgb[..., :1], 0.25)], dim=-1)
    out, _ = restore(plugin, model, rgba)
    assert out.shape == rgba.shape and torch.equal(out[..., 3], rgba[..., 3])
    assert torch.equal(out[..., :3], restore(plugin, model, rgb)[0])
    for wrong in (rgb[0], rgb[..., :1], rgb.permute(0, 3, 1, 2)):  # no batch axis, grey, channels first
        with pytest.raises(ClrfaceError) as caught:
            restore(plugin, model, wrong)
        assert str(caught.value) == f"images: CLR-Face Restore takes IMAGE [B, H, W, 3 or 4], got {list(wrong.shape)}"
    with pytest.raises(ClrfaceError) as caught:  # said of the input, as its other checks are (images: ... NaN)
        restore(plugin, model, rgb[:0])
    assert str(caught.value) == "images: CLR-Face Restore got an empty IMAGE batch (no frames)"


@pytest.mark.parametrize(("inputs", "words"), [
    ({"fidelity": 2.0}, "fidelity must be between 0 and 1, got 2.0"),
    ({"temporal_smoothing": 1.5}, "temporal_smoothing must be between 0 and 0.95, got 1.5"),
    ({"detection_threshold": 1.0}, "detection_threshold must be between 0 and 1, got 1.0"),
    ({"detection_threshold": -0.3}, "detection_threshold must be between 0 and 1, got -0.3"),
    ({"detection_threshold": float("nan")}, "detection_threshold must be a finite number, got nan"),
    ({"strength": float("nan")}, "strength must be auto or a share above 0 and at most 1, got nan"),
    ({"strength": -0.5}, "strength must be auto or a share above 0 and at most 1, got -0.5"),
])
def test_a_bad_input_is_named_as_the_nodes_input(plugin, model, astronaut, inputs, words):
    """A value out of range (from a linked node, which ComfyUI's widget limits do not hold) was said in the CLI's
    words: '--fidelity must be between 0 and 1', '--temporal-smoothing ...', 'det_threshold ...'. A NaN or
    negative strength or threshold (0 is auto) was taken for auto without a word."""
    with pytest.raises(ClrfaceError) as caught:
        restore(plugin, model, image_batch(astronaut, 1), **inputs)
    assert str(caught.value) == words


@pytest.mark.parametrize(("value", "words"), [
    (float("nan"), "images: the float32 image holds NaN or infinite values"),
    (255.0, "images: float32 images are 0..1 and this one reaches 255; divide it by 255"),
    (-1.0, "images: float32 images are 0..1 and this one goes down to -1; a -1..1 image is (x + 1) / 2 in 0..1"),
])
def test_bad_pixels_are_said_of_the_images_input(plugin, model, astronaut, value, words):
    """The node's IMAGE check was said as the library function's ('restore_frames: the float32 image holds NaN')."""
    images = image_batch(astronaut, 2)
    images[1, 0, 0, 0] = value
    with pytest.raises(ClrfaceError) as caught:
        restore(plugin, model, images)
    assert str(caught.value) == words


def test_a_resized_images_overshoot_is_taken_and_kept_outside_the_faces(plugin, model, astronaut):
    """A bicubic or Lanczos resize upstream (ImageScale) overshoots 0..1 a little at sharp edges; only a -1..1 IMAGE
    (whose face was pasted back in 0..1 over a -1..1 background) is refused. The overshoot is kept bit for bit
    outside the faces, and the restored faces are in 0..1."""
    images = image_batch(astronaut, 1)
    images[0, FAR[0], FAR[1]] = images[0, FAR[0], FAR[1]] * 1.3 - 0.15  # -0.15..1.15 below the face
    out, mask = restore(plugin, model, images)
    assert torch.equal(out[mask == 0], images[mask == 0]) and out.min() == images.min() == -0.15
    assert mask[0, FACE[0], FACE[1]].max() == 1 and 0 <= out[mask == 1].min() and out[mask == 1].max() <= 1


def test_an_8_bit_image_from_a_custom_node_is_taken_as_comfyui_loads_it(plugin, model, astronaut):
    """A custom node upstream may hand a uint8 IMAGE (0..255): it was refused as 'float32 images are 0..1 and this
    one reaches 255', which read as if the values were wrong. It is restored as the float32 IMAGE ComfyUI's own
    loader makes of those pixels (divided by 255), and a float32 IMAGE comes back; an integer type with no one
    scale is refused, naming its dtype."""
    pixels = torch.from_numpy(np.stack([astronaut, astronaut[:, ::-1].copy()]))
    out, mask = restore(plugin, model, pixels)
    loaded = torch.from_numpy(np.stack([astronaut, astronaut[:, ::-1]]).astype(np.float32) / 255.0)
    as_float, float_mask = restore(plugin, model, loaded)
    assert out.dtype == torch.float32 and torch.equal(out, as_float) and torch.equal(mask, float_mask)
    assert mask.amax() > 0 and not torch.equal(out, loaded)  # a face was restored
    with pytest.raises(ClrfaceError) as caught:
        restore(plugin, model, pixels.to(torch.int64))
    assert str(caught.value) == ("images: IMAGE must be float32 0..1, got int64; convert it to float32 and divide "
                                 "it by its largest value (255 for 8 bits)")


def test_insightface_without_a_model_pack_names_where_to_put_it(plugin, model, astronaut):
    with pytest.raises(ClrfaceError, match="insightface/models/buffalo_l"):
        restore(plugin, model, image_batch(astronaut, 1), detector="insightface")


def test_the_loader_takes_the_cpu_where_comfyui_runs_on_apple_silicon(plugin, nodes, monkeypatch):
    """On a Mac ComfyUI's device is Apple's mps, which clrface_video refuses: the Load CLR-Face Model node failed
    there with "unknown --device 'mps'". It loads on the CPU where ComfyUI's device is neither CUDA nor the CPU."""
    from types import SimpleNamespace

    def comfyui_on(device: str) -> SimpleNamespace:
        return SimpleNamespace(get_torch_device=lambda: torch.device(device), soft_empty_cache=lambda: None)

    for device, expected in (("mps", "cpu"), ("xpu:0", "cpu"), ("cpu", "cpu"), ("cuda:1", "cuda:1")):
        monkeypatch.setattr(nodes, "model_management", comfyui_on(device))
        assert nodes.comfy_device() == expected
    monkeypatch.setattr(nodes, "model_management", comfyui_on("mps"))
    (session,) = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]().load(BASELINE)
    assert session.device.type == "cpu"


def test_the_detection_threshold_is_auto_by_default_as_the_clis(plugin, nodes, model, astronaut):
    """The node's threshold was 0.6 whatever it restored: on one image it restored the sample's spacesuit (the
    detector gives it 0.61) as a face, which `clrface-video restore` leaves alone at the photos' 0.7."""
    from PIL import Image

    assert nodes.CLRFaceRestore.INPUT_TYPES()["optional"]["detection_threshold"][1]["default"] == 0.0
    sample = np.asarray(Image.open(Path(__file__).parents[1] / "samples" / "astronaut.jpg").convert("RGB"))
    images = image_batch(sample, 1)
    _, auto = restore(plugin, model, images, batch_is_video=False)
    _, low = restore(plugin, model, images, batch_is_video=False, detection_threshold=0.6)
    outside = torch.ones_like(auto, dtype=torch.bool)
    outside[0, 10:210, 130:320] = False  # the face and its feathered edge
    assert auto[0, FACE[0], FACE[1]].max() > 0 and auto[outside].max() == 0  # the face alone
    assert low[outside].max() > 0  # asked for, 0.6 still finds the suit


def test_a_model_the_library_refuses_is_named_as_the_loaders_input(plugin, nodes, monkeypatch):
    """The library's model error named its command-line flag (`unknown --model ...`); the loader names its own
    input, model_name, as the restore node names its inputs."""
    from clrface_video.errors import ModelError

    monkeypatch.setattr(nodes, "model_option", lambda choice: "nosuch")  # a choice whose restorer is not registered
    with pytest.raises(ModelError, match=r"^model_name must be one of: .*, got 'nosuch'$"):
        plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]().load("gone.safetensors")


def test_cancel_stops_a_batch_within_a_sampler_step_and_the_next_run_is_whole(plugin, nodes, astronaut,
                                                                               monkeypatch):
    """ComfyUI's Cancel was checked between the frames the node returns, which come a batch of faces at a time: on
    a CPU a 16-frame batch with the shipped model ran on for 32 s after Cancel (a real server, POST /interrupt 3 s
    in). It is checked at each sampler step as well; the run after a cancelled one restores as if none had been."""
    from types import SimpleNamespace

    class Interrupted(Exception):  # ComfyUI's InterruptProcessingException, which it shows as "interrupted"
        pass

    cancel = []

    def throw_exception_if_processing_interrupted() -> None:
        if cancel:
            raise Interrupted

    (session,) = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]().load("shipped")
    monkeypatch.setattr(nodes, "model_management", SimpleNamespace(
        throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted,
        free_memory=lambda *_: None, soft_empty_cache=lambda: None))
    images = image_batch(astronaut[::2, ::2], 3)  # three 256 px photos: one batch of three faces
    inputs = {"batch_is_video": False, "identity_guidance": False}
    whole, whole_mask = restore(plugin, session, images, **inputs)
    steps = []
    restorer, denoiser = session.restorer, session.restorer.denoiser

    def step(*args):
        steps.append(len(cancel))
        cancel.append("pressed")  # Cancel pressed during the batch's first step
        return denoiser(*args)

    monkeypatch.setattr(restorer, "denoiser", step)
    with pytest.raises(Interrupted):
        restore(plugin, session, images, **inputs)
    assert steps == [0], f"the batch ran {len(steps)} sampler steps after Cancel"
    cancel.clear()
    monkeypatch.setattr(restorer, "denoiser", denoiser)
    again, again_mask = restore(plugin, session, images, **inputs)
    assert torch.equal(again, whole) and torch.equal(again_mask, whole_mask) and whole_mask.amax() == 1


def test_faces_left_alone_are_said_in_comfyuis_console(plugin, nodes, model, astronaut, caplog):
    """A face too large for the model (a 4000 px portrait at the default max_upscale) or too small came back
    unchanged with a zero mask and no word, where the CLI says '1 left alone (too small or too large ...)'."""
    import logging

    big = torch.nn.functional.interpolate(image_batch(astronaut, 1).permute(0, 3, 1, 2), scale_factor=4,
                                          mode="bilinear").permute(0, 2, 3, 1).clamp(0, 1).contiguous()
    with caplog.at_level(logging.INFO, logger=nodes.log.name):
        out, mask = restore(plugin, model, big, batch_is_video=False)
        assert torch.equal(out, big) and mask.max() == 0
        restore(plugin, model, image_batch(astronaut, 2), batch_is_video=False)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == nodes.log.name]
    left_alone = ("clrface: restored 0 faces in 1 image; 1 left alone as too small or too large for the model "
                  "(lower min_face or raise max_upscale to restore them)")
    assert said == [("WARNING", left_alone), ("INFO", "clrface: restored 2 faces in 2 images")]


def test_without_the_package_comfyui_is_told_how_to_install_it(tmp_path):
    """Linked into custom_nodes without `pip install -e` in ComfyUI's own Python (the embedded one on Windows), the
    package failed to import with a bare "No module named 'clrface_video'"; ComfyUI shows the message, which now
    names the Python and the command. Copied rather than linked, the checkout cannot be found and is left to say."""
    code = ("import importlib.util, sys\nclass NotInstalled:  # the import system's own words where it finds none\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'clrface_video':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, NotInstalled())\nfolder = sys.argv[1]\n"
            "spec = importlib.util.spec_from_file_location('node_pack', folder + '/__init__.py',\n"
            "                                              submodule_search_locations=[folder])\n"
            "sys.modules['node_pack'] = module = importlib.util.module_from_spec(spec)\n"
            "try:\n    spec.loader.exec_module(module)\n"
            "except ModuleNotFoundError as error:\n    print(error.name, error, sep='|')\n")
    repo = PLUGIN.parents[1]
    copied = tmp_path / "custom_nodes" / "clrface-video"
    shutil.copytree(PLUGIN, copied)
    said = []
    for folder in (PLUGIN, copied):
        run = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
        said.append(run.stdout.strip())
    lead = f"clrface_video|the CLR-Face nodes need the clrface-video package in ComfyUI's Python, which lacks it: " \
           f"{sys.executable} -m pip install -c "
    unknown = "<your clrface-video checkout>"
    assert said == [f"{lead}{repo / 'constraints.txt'} -e {repo}", f"{lead}{unknown}/constraints.txt -e {unknown}"]


def test_the_progress_bar_moves_within_a_batch_and_ends_at_its_total(plugin, nodes, astronaut, monkeypatch):
    """ComfyUI's bar moved once per frame returned, and frames come out a batch of faces at a time: on a CPU a
    16-frame batch sat at 0 for half a minute, then jumped to 16. It moves as frames are read in and at each
    sampler step, never back, and ends at its total."""
    bars = []

    class ProgressBar:  # comfy.utils.ProgressBar's surface
        def __init__(self, total: int) -> None:
            self.total, self.current, self.values = total, 0, []
            bars.append(self)

        def update_absolute(self, value: int, total: int | None = None) -> None:
            self.current = min(value, self.total)
            self.values.append(self.current)

        def update(self, value: int) -> None:
            self.update_absolute(self.current + value)

    monkeypatch.setattr(nodes, "ProgressBar", ProgressBar)
    (session,) = plugin.NODE_CLASS_MAPPINGS["CLRFaceModelLoader"]().load("shipped")
    restorer, denoiser = session.restorer, session.restorer.denoiser
    at_steps = []  # the bar's value as each sampler step starts, before any frame comes out

    def step(*args):
        at_steps.append(bars[-1].current)
        return denoiser(*args)

    monkeypatch.setattr(restorer, "denoiser", step)
    images = image_batch(astronaut[::2, ::2], 3)  # three 256 px photos: one batch of three faces
    restore(plugin, session, images, batch_is_video=False, identity_guidance=False)
    (bar,) = bars
    assert len(at_steps) >= 2, at_steps
    assert 0 < at_steps[0] < at_steps[-1] < bar.total, f"the bar during the batch's steps: {at_steps} of {bar.total}"
    assert bar.values == sorted(bar.values) and bar.values[-1] == bar.total, bar.values


def node_defaults(node) -> dict:
    return {name: spec[1]["default"] for name, spec in node.INPUT_TYPES()["required"].items()
            if len(spec) > 1 and "default" in spec[1]}


def test_a_batch_of_unrelated_photos_is_restored_as_photos_with_the_defaults(plugin, model, info_logged):
    """LoadImage of the sample + ImageBatch with another photo, restored with the node's defaults (batch_is_video
    on): the pair was restored as a video, at its threshold 0.6, so the spacesuit (0.61) was restored as a face
    covering 80% of the frame, which the sample alone (a photo, 0.7) is not. Said once, in the console."""

    images = torch.from_numpy(np.stack(unrelated_pair()).astype(np.float32) / 255)
    node = plugin.NODE_CLASS_MAPPINGS["CLRFaceRestore"]
    assert node_defaults(node)["batch_is_video"] is True
    out, mask = node().restore(model, images, **node_defaults(node))
    outside = torch.ones_like(mask[0], dtype=torch.bool)
    outside[10:210, 130:320] = False  # the astronaut's face and its feathered edge
    assert mask[0][outside].max() == 0 and torch.equal(out[0][outside], images[0][outside])  # no spacesuit face
    assert mask[0][FACE].max() > 0 and mask[1].max() > 0  # both faces restored
    said = [r.getMessage() for r in info_logged.records if "separate images" in r.getMessage()]
    why = ("batch_is_video: the 2 frames are no video's (1 of 1 neighbouring pairs is a cut), restored as separate "
           "images: faces not tracked, detection threshold 0.7 as for photos")
    assert said == [why]


def test_a_videos_frames_stay_tracked_with_a_cut_among_them(plugin, model, monkeypatch, info_logged):
    """A real clip's frames (the shipped sample video), and the same with another shot cut in, stay a video."""

    from PIL import Image

    from clrface_video.io.decode import read_frames

    clip = [frame.image for frame, _ in zip(read_frames(Path(__file__).parents[1] / "samples" /
                                                        "astronaut_degraded.mp4"), range(6))]
    runs = []
    original = model.restore_frames
    monkeypatch.setattr(model, "restore_frames", lambda frames, **options: runs.append(original(frames, **options))
                        or runs[-1])
    node = plugin.NODE_CLASS_MAPPINGS["CLRFaceRestore"]
    other = np.asarray(Image.fromarray(grace_hopper()).resize(clip[0].shape[1::-1]))
    cut_in = [*clip[:3], other, *clip[3:]]
    for frames in (clip, cut_in):
        node().restore(model, torch.from_numpy(np.stack(frames).astype(np.float32) / 255), **node_defaults(node))
    assert (runs[0].faces, runs[0].tracks) == (6, 1)  # one person followed through the clip
    assert runs[1].faces == 7 and runs[1].tracks == 3  # the cut ends the track; a photo each would give 7
    assert not [r for r in info_logged.records if "separate images" in r.getMessage()]
