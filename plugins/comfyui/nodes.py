"""ComfyUI nodes for clrface-video: Load CLR-Face Model and CLR-Face Restore (IMAGE batch in, IMAGE + MASK out)."""
from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from clrface_video.api import Session, load_restorer
from clrface_video.config import DETECTORS, MAX_SMOOTHING, PHOTO_THRESHOLD, VIDEO_THRESHOLD, RestoreConfig
from clrface_video.errors import ClrfaceError, OptionError, named_as
from clrface_video.pipeline import check_image

try:  # ComfyUI's modules; absent when the nodes are unit-tested on their own
    import folder_paths  # type: ignore[import-not-found]
except ImportError:
    folder_paths = None
try:
    from comfy import model_management  # type: ignore[import-not-found]
    from comfy.utils import ProgressBar  # type: ignore[import-not-found]
except ImportError:
    model_management = None
    ProgressBar = None

log = logging.getLogger(__name__)

CATEGORY = "image/restoration"
DEFAULT = RestoreConfig()  # the inputs' defaults are the library's
MODEL_TYPE = "CLRFACE_MODEL"
FOLDER = "clrface"  # models/clrface/*.safetensors: CLR-Face weights
SHARED_FOLDER = "facerestore_models"  # the folder other face-restoration node packs use
SHIPPED = "shipped"  # the package's own weights, or the classical baseline when none ship
BASELINE = "baseline-bicubic-sharpen"
# the restore node's inputs named unlike clrface_video's options (and restore_frames' as_video)
INPUT_NAMES = {"det_threshold": "detection_threshold", "as_video": "batch_is_video"}
LOADER_NAMES = {"model": "model_name"}  # the loader's input, which picks clrface_video's `model`
BAR_STEPS = 100  # ComfyUI's progress bar counts hundredths of a frame: it moves within a batch of faces
WORK_MEMORY = 1 << 30  # bytes asked of ComfyUI's memory manager before a run (crops, VQGAN activations)

KEPT_PER_DEVICE = 2  # an A/B workflow's two models stay loaded; a third choice closes the least recently used
_LOADED: dict[tuple[str, str], Session] = {}  # (choice, device) -> session, least recently used first
_MADE: weakref.WeakValueDictionary[tuple[str, str], Session] = weakref.WeakValueDictionary()  # every live session


def register_folders() -> None:
    """Add models/clrface (and models/facerestore_models when no other pack did) to ComfyUI's model folders."""
    if folder_paths is None:
        return
    folders = folder_paths.folder_names_and_paths
    if FOLDER not in folders:
        folders[FOLDER] = ([os.path.join(folder_paths.models_dir, FOLDER)], {".safetensors"})
    if SHARED_FOLDER not in folders:  # keep other packs' extensions (.pth) listed for them
        folders[SHARED_FOLDER] = ([os.path.join(folder_paths.models_dir, SHARED_FOLDER)],
                                  set(folder_paths.supported_pt_extensions))


def weight_files(folder: str) -> list[str]:
    """The .safetensors files ComfyUI lists in one of its model folders ([] outside ComfyUI)."""
    if folder_paths is None:
        return []
    try:
        names = folder_paths.get_filename_list(folder)
    except KeyError:
        return []
    return [name for name in names if name.lower().endswith(".safetensors")]


def model_choices() -> list[str]:
    """shipped, the baseline, then models/clrface files, then models/facerestore_models files (prefixed)."""
    return [SHIPPED, BASELINE, *weight_files(FOLDER), *(f"{SHARED_FOLDER}/{n}" for n in weight_files(SHARED_FOLDER))]


def model_option(choice: str) -> str:
    """The `model` option of clrface_video for a loader choice (a registered name or a weights path)."""
    if choice == SHIPPED:
        return "auto"
    if choice == BASELINE:
        return BASELINE
    if os.path.isabs(choice) and choice.endswith(".safetensors"):
        return choice
    folder, name = (SHARED_FOLDER, choice[len(SHARED_FOLDER) + 1:]) if choice.startswith(SHARED_FOLDER + "/") \
        else (FOLDER, choice)
    path = folder_paths.get_full_path(folder, name) if folder_paths is not None else None
    if path is None:
        raise ClrfaceError(f"CLR-Face weights {choice!r} not found in models/{FOLDER} or models/{SHARED_FOLDER}")
    return path


def comfy_device() -> str:
    """ComfyUI's torch device (--cpu gives cpu), or the CPU where that is another kind than CUDA (Apple silicon's mps,
    Intel's xpu, DirectML), which clrface_video refuses; outside ComfyUI, clrface_video's own choice."""
    if model_management is None:
        return "auto"
    device = model_management.get_torch_device()
    return str(device) if torch.device(device).type in ("cpu", "cuda") else "cpu"


def empty_cache() -> None:
    """Return freed device memory the way ComfyUI does (no-op outside ComfyUI or on the CPU)."""
    if model_management is not None:
        model_management.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


def _make_room(key: tuple[str, str]) -> None:
    """Close the least recently used sessions on key's device, so that with key's own at most KEPT_PER_DEVICE are
    loaded there."""
    others = [k for k in _LOADED if k[1] == key[1] and k != key]
    stale = others[:max(0, len(others) - KEPT_PER_DEVICE + 1)]
    for old in stale:
        _LOADED.pop(old).close()
    if stale:
        empty_cache()


def _use(key: tuple[str, str], session: Session) -> Session:
    """`session` as the most recently used on its device; one closed to make room (its models load again when it
    runs) first makes room in turn."""
    if _LOADED.pop(key, None) is None:
        _make_room(key)
    _LOADED[key] = session
    return session


def load_cached(choice: str, device: str) -> Session:
    """The session for (choice, device), loaded on first use, FaceNet too where its identity guidance uses it, so
    that a graph's first run does not load models. Up to KEPT_PER_DEVICE stay loaded on a device (FaceNet is shared
    between them); loading one more closes the least recently used once it has loaded, whose nodes reload it if run
    again: a file that is not CLR-Face weights closed a loaded model first, then failed."""
    key = (choice, device)
    session = _MADE.get(key)  # closed earlier but still held by a node: the same session, not a second one
    if session is None:
        session = _MADE[key] = load_restorer(model=model_option(choice), device=device)
        if getattr(session.restorer, "uses_identity", False):  # FaceNet, loaded by the first guided batch otherwise
            session.identity_encoder()  # (0.9 s of a graph's first run on a CPU); shared per device, as the restorer's
        log.info("clrface: loaded %s (%s) on %s", choice, session.model_name, device)
    return _use(key, session)


def in_use(session: Session) -> None:
    """A restore node is about to run `session`: it becomes the most recently used, and where it was closed to make
    room it makes room in turn. ComfyUI does not run a loader again while its choice is unchanged, so its restore
    nodes hand the session back here; otherwise a graph of three loaders reloaded all three models in its
    restore nodes, past KEPT_PER_DEVICE."""
    key = next((k for k, made in _MADE.items() if made is session), None)
    if key is not None:
        _use(key, session)


def insightface_root() -> Path | None:
    """An InsightFace pack where ComfyUI users keep it (models/insightface/models/buffalo_l), if present."""
    if folder_paths is None:
        return None
    base = Path(folder_paths.models_dir) / "insightface"
    for folder in (base / "models" / "buffalo_l", base / "buffalo_l", base / "models" / "antelopev2"):
        if folder.is_dir():
            return folder
    return None


class CLRFaceModelLoader:
    """Load CLR-Face weights (or the baseline) once; later runs with the same choice reuse them."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model_name": (model_choices(), {
            "default": SHIPPED,
            "tooltip": "shipped: the package's CLR-Face weights (the classical baseline when none ship); "
                       f"or a .safetensors file from models/{FOLDER} or models/{SHARED_FOLDER}."})}}

    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("clrface_model",)
    OUTPUT_TOOLTIPS = ("The face restorer, loaded on ComfyUI's device: connect it to CLR-Face Restore.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads the CLR-Face face restorer on ComfyUI's device and keeps it loaded between runs."

    def load(self, model_name: str) -> tuple[Session]:
        try:
            return (load_cached(model_name, comfy_device()),)
        except OptionError as error:  # a model clrface_video refused, named as this node's input
            raise error.named(LOADER_NAMES) from None


class CLRFaceRestore:
    """Restore the faces of an IMAGE batch; a batch can be a video (faces tracked, one identity per person)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "clrface_model": (MODEL_TYPE, {"tooltip": "From Load CLR-Face Model."}),
            "images": ("IMAGE", {"tooltip": "The images, or the frames of one video with batch_is_video on."}),
            "fidelity": ("FLOAT", {"default": DEFAULT.fidelity, "min": 0.0, "max": 1.0, "step": 0.01,
                                   "tooltip": "0 trusts the face prior (quality), 1 stays close to the input."}),
            "detector": (list(DETECTORS), {"default": DETECTORS[0],
                                           "tooltip": "retinaface ships with the package; insightface needs "
                                                      "models/insightface/models/buffalo_l."}),
            "min_face": ("INT", {"default": DEFAULT.min_face, "min": 0, "max": 4096, "step": 1,
                                 "tooltip": "Faces whose eye-to-mouth span is under this many pixels fade out of restoration "
                                            "(left alone below 75% of it)."}),
            "max_upscale": ("FLOAT", {"default": DEFAULT.max_upscale, "min": 0.1, "max": 64.0, "step": 0.1,
                                      "tooltip": "Faces over this many times the model's resolution fade out of restoration "
                                                 "(left alone above 1.25 x it)."}),
            "batch_is_video": ("BOOLEAN", {"default": True,
                                           "tooltip": "Track faces across the batch (video frames: no flicker); "
                                                      "off: every image is restored on its own. One image, "
                                                      "or unrelated images (most of them a cut from the one "
                                                      "before: a KSampler batch, ImageBatch of two photos), are "
                                                      "restored as images even when on, as the console says."}),
        }, "optional": {
            "temporal_smoothing": ("FLOAT", {"default": DEFAULT.temporal_smoothing, "min": 0.0, "max": MAX_SMOOTHING, "step": 0.05,
                                             "tooltip": "Video: blend each face's latent with the same person's "
                                                        "earlier frames (0 = off; 0.3-0.6 steadies still faces)."}),
            "keep_detail": ("FLOAT", {"default": DEFAULT.keep_detail, "min": 0.0, "max": 1.0, "step": 0.05,
                                      "tooltip": "Faces larger than the model's crop: share of the input's finer "
                                                 "detail kept over the restored face (0 = the model's face alone)."}),
            "strength": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "Share of each restored face pasted over the input; 0 = auto: the "
                                              "model's blend gate chooses per face (the CLI's --strength)."}),
            "identity_guidance": ("BOOLEAN", {"default": DEFAULT.identity_guidance,
                                              "tooltip": "The method's identity guidance; off is about 5x faster on "
                                                         "a CPU and keeps a little less of the person's identity."}),
            "detection_threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.99, "step": 0.01,
                                              "tooltip": "Faces the detector scores below this are left alone: "
                                                         "raise it when hands or patterns are restored as faces. "
                                                         f"0 = auto: {PHOTO_THRESHOLD} for images, "
                                                         f"{VIDEO_THRESHOLD} for a batch restored as a video."}),
        }}

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "face_mask")
    OUTPUT_TOOLTIPS = ("The images with their faces restored; every other pixel, and the alpha, as it came in.",
                       "The share of the restored face pasted at each pixel: 0 where the image is untouched.")
    FUNCTION = "restore"
    CATEGORY = CATEGORY
    DESCRIPTION = "Restores every face in the images with CLR-Face; the mask marks the restored face regions."

    def restore(self, clrface_model: Session, images: torch.Tensor, fidelity: float, detector: str, min_face: int,
                max_upscale: float, batch_is_video: bool,
                temporal_smoothing: float = 0.0, keep_detail: float = 1.0,
                strength: float = 0.0, identity_guidance: bool = True,
                detection_threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[-1] not in (3, 4):
            raise ClrfaceError(f"images: CLR-Face Restore takes IMAGE [B, H, W, 3 or 4], got {list(images.shape)}")
        if images.shape[0] == 0:
            raise ClrfaceError("images: CLR-Face Restore got an empty IMAGE batch (no frames)")
        batch = float_images(images)
        frames = batch[..., :3].numpy()  # a view: the input tensor is never written
        for frame in frames:  # NaN, or 0..255 values: said of `images`, before any frame is restored
            check_image(frame, "images")
        options = {"fidelity": float(fidelity), "detector": detector, "min_face": int(min_face),
                   "max_upscale": float(max_upscale), "temporal_smoothing": float(temporal_smoothing),
                   "keep_detail": float(keep_detail), "strength": None if strength == 0 else float(strength),
                   "identity_guidance": bool(identity_guidance),
                   "det_threshold": None if detection_threshold == 0 else float(detection_threshold)}  # 0: auto; NaN or
        # a negative value is checked (and refused) with the others, not taken for auto
        if detector == "insightface":
            options["insightface_root"] = insightface_root()
            if options["insightface_root"] is None:
                home = Path(folder_paths.models_dir) if folder_paths is not None else Path("ComfyUI/models")
                raise ClrfaceError(f"detector insightface: no model pack in {home / 'insightface/models/buffalo_l'} "
                                   "(put InsightFace's buffalo_l folder there, or choose retinaface)")
        in_use(clrface_model)
        if model_management is not None:
            model_management.free_memory(WORK_MEMORY, clrface_model.device)  # let ComfyUI offload other models
        bar = ProgressBar(len(frames) * BAR_STEPS) if ProgressBar is not None else None
        # Each frame is put in place as it comes: a list of frames stacked at the end held the batch twice more
        # (2.7x the input at the peak, 1.3x now: the IMAGE and MASK returned), and a video's batch is large.
        out = torch.empty(batch.shape, dtype=torch.float32)
        masks = torch.empty(batch.shape[:3], dtype=torch.float32)
        # ComfyUI's Cancel is checked at each sampler step: frames come out a batch of faces at a time, and a check
        # between frames alone kept a CPU restoring a 16-frame batch for half a minute after Cancel.
        interrupted = None if model_management is None else model_management.throw_exception_if_processing_interrupted
        try:
            with named_as(INPUT_NAMES):  # a batch of unrelated images, restored as such, is said of batch_is_video
                run = clrface_model.restore_frames(iter(frames), as_video=bool(batch_is_video) and len(frames) > 1,
                                                   check_interrupt=interrupted, on_progress=moved(bar), **options)
            for index, (image, mask) in enumerate(run.with_masks()):
                out[index, ..., :3] = torch.from_numpy(image)
                masks[index] = torch.from_numpy(mask)
        except OptionError as error:  # a value clrface_video checked, named as this node's input
            raise error.named(INPUT_NAMES) from None
        finally:
            empty_cache()
        out[..., 3:] = batch[..., 3:]  # alpha passes through
        say_done(run.faces, run.faces_left_alone, len(frames))
        return out, masks


def moved(bar: Any) -> Callable[[float], None] | None:
    """The restore's on_progress for ComfyUI's bar of BAR_STEPS a frame: it moves as frames are read in and as
    their faces go through the sampler's steps, not a batch of frames at a time (it sat at 0 for the first 16
    frames, half a minute on a CPU, then jumped), and ends at its total. Only a change is sent to the browser."""
    if bar is None:
        return None
    shown = 0

    def update(frames_done: float) -> None:
        nonlocal shown
        value = int(frames_done * BAR_STEPS)
        if value > shown:
            shown = value
            bar.update_absolute(value)
    return update


def say_done(faces: int, left_alone: int, images: int) -> None:
    """The CLI's closing count, in ComfyUI's console: a face too large for the model (a 4000 px portrait at the
    default max_upscale) or too small came back unchanged, its mask 0, without a word of why."""
    done = f"clrface: restored {faces} face{'s' * (faces != 1)} in {images} image{'s' * (images != 1)}"
    if left_alone:
        log.warning("%s; %d left alone as too small or too large for the model (lower min_face or raise "
                    "max_upscale to restore them)", done, left_alone)
    else:
        log.info("%s", done)


def float_images(images: torch.Tensor) -> torch.Tensor:
    """The IMAGE batch on the CPU as ComfyUI's float32 0..1 (a no-op for ComfyUI's own). A custom node upstream
    may hand 8-bit pixels, uint8 0..255: they are taken as what they plainly are, divided by 255 as ComfyUI's
    image loaders divide them, so the node returns a proper IMAGE to the nodes after it. They were cast to
    float32 0..255 and refused as 'float32 images are 0..1 and this one reaches 255', as if the values were
    wrong rather than the dtype. Other integer (or bool) types have no one scale: refused, naming the dtype."""
    if images.dtype == torch.uint8:
        return images.detach().to("cpu", torch.float32) / 255
    if not images.dtype.is_floating_point:
        got = str(images.dtype).removeprefix("torch.")
        raise ClrfaceError(f"images: IMAGE must be float32 0..1, got {got}; convert it to float32 and divide it by "
                           "its largest value (255 for 8 bits)")
    return images.detach().to("cpu", torch.float32)


NODE_CLASS_MAPPINGS = {"CLRFaceModelLoader": CLRFaceModelLoader, "CLRFaceRestore": CLRFaceRestore}
NODE_DISPLAY_NAME_MAPPINGS = {"CLRFaceModelLoader": "Load CLR-Face Model", "CLRFaceRestore": "CLR-Face Restore"}

register_folders()
