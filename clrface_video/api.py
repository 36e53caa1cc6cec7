"""Python API for editors, scripts and host plug-ins: numpy frames in, restored frames out, the CLI's options."""
from __future__ import annotations

import copy
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, fields
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import DEFAULT_CRF, RestoreConfig
from .errors import ClrfaceError, InputError, OptionError, option_name
from .faces.detect import FaceDetector
from .faces.identity import IdentityEncoder
from .faces.shots import is_cut, thumbnail
from .io.pixels import to_uint8
from .pipeline import DTYPES, check_image, detector_for, needs_identity_encoder
from .report import Progress, RestoreReport, StageTimer
from .restore.base import Restorer
from .story import FrameStory, Models

OPTIONS = tuple(f.name for f in fields(RestoreConfig))  # the keyword options, named as in RestoreConfig
FIXED_AT_LOAD = ("model", "device", "compile")  # options that pick the loaded models; the rest may change per call
FRAME_DTYPES = (*DTYPES, np.float64)  # the pipeline's, and NumPy's default float (rgb / 255.0), restored as float32
# Frames looked at to tell separate pictures from a video's (separate_pictures; a generator's held meanwhile): in
# the research clips no 16 frames in a row had more than one cut; in 50 batches of 16 LFW faces in their listed
# order (up to 4 of a person in a row) at least 12 of 15 neighbours were cuts (benchmarks/batch_kind.py).
LOOKAHEAD = 16

log = logging.getLogger(__name__)


def make_config(base: RestoreConfig | None = None, **options: Any) -> RestoreConfig:
    """A RestoreConfig from keyword options (the CLI's names and defaults); a one-line ClrfaceError when wrong."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ClrfaceError(f"unknown option {unknown[0]!r}; the options are: {', '.join(OPTIONS)}")
    base = base or RestoreConfig()
    values = {name: _checked(name, value, getattr(base, name)) for name, value in options.items()}
    merged = {f.name: values.get(f.name, getattr(base, f.name)) for f in fields(RestoreConfig)}
    return RestoreConfig(**merged)  # its __post_init__ checks the ranges and the detector name


def _checked(name: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of the option's default, or a one-line OptionError."""
    if name == "insightface_root":
        if value is None or isinstance(value, (str, Path)):
            return None if value is None else Path(value).expanduser()
        raise OptionError("insightface_root", f"must be a folder path or None, got {type(value).__name__}")
    if name == "snap_to_codebook":  # None = the default for photos or videos
        if value is None or isinstance(value, (bool, np.bool_)):
            return None if value is None else bool(value)
        raise OptionError("snap_to_codebook", f"must be True, False or None, got {value!r}")
    if name == "crf":  # None = not given: DEFAULT_CRF, and no word from an encoder that takes none
        if value is None:
            return None
        default = DEFAULT_CRF  # else a whole number, as the other whole numbers are checked
    if name == "preset":  # None = the encoder's own
        if value is None or isinstance(value, str):
            return value
        raise OptionError("preset", f"must be a name such as 'veryfast', or None, got {value!r}")
    if name in ("fps", "duration", "strength", "det_threshold"):  # None = 24 fps; to the end; auto; by kind
        if value is None or (name == "strength" and value == "auto"):
            return None
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return float(value)
        allowed = "auto or a share above 0 and at most 1" if name == "strength" else "a finite number"
        raise OptionError(name, f"must be {allowed}, got {value!r}")
    if isinstance(default, bool):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise OptionError(name, f"must be True or False, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        raise OptionError(name, f"must be a whole number, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return float(value)
        raise OptionError(name, f"must be a number, got {value!r}")
    if isinstance(value, str) or (name == "model" and isinstance(value, Path)) \
            or (name == "device" and isinstance(value, torch.device)):
        return str(value)
    raise OptionError(name, f"must be a string, got {value!r}")


class RestoredFrames(Iterator[np.ndarray]):
    """Restored frames in input order, computed lazily; also counts the faces and tracks seen so far.

    Iterate it for the frames, or iterate `.with_masks()` for (frame, mask) pairs, where mask is
    (H, W) float32 in 0..1: where restored faces were pasted (0 elsewhere, pixels there are unchanged).
    A float64 frame is restored as float32 and comes back float64, its pixels outside the mask its own.
    """

    def __init__(self, story: FrameStory, frames: Iterable[np.ndarray], where: str) -> None:
        from .types import Frame

        self._story = story
        if not isinstance(frames, Iterable) or isinstance(frames, (str, Path)):
            raise InputError(f"{where} takes an iterable of RGB frames (a list, a generator, an (N, H, W, 3) "
                             f"array), not {type(frames).__name__}; for a file use clrface_video.restore_video(path)")
        self._float64: deque[np.ndarray | None] = deque()  # each frame in flight: as given where float64, else None
        checked = (Frame(image=self._taken(image, where), index=i) for i, image in enumerate(frames))
        self._pairs = story.run_masked(checked)

    def _taken(self, image: Any, where: str) -> np.ndarray:
        """The frame as the story takes it (check_image), a float64 one kept for its return in its own dtype."""
        self._float64.append(image if is_float64(image) else None)
        return as_float32(check_image(image, where, FRAME_DTYPES))

    def __next__(self) -> np.ndarray:
        return next(self.with_masks())[0]

    def with_masks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for frame, mask in self._pairs:  # in input order, one for one
            mask = mask if mask is not None else np.zeros(frame.image.shape[:2], np.float32)
            given = self._float64.popleft()
            if given is None:
                yield frame.image, mask
            else:  # the faces at float32's precision; every other pixel bit for bit
                yield np.where(mask[..., None] > 0, frame.image.astype(np.float64), given), mask

    @property
    def faces(self) -> int:
        """Face crops restored so far."""
        return self._story.counts.faces

    @property
    def faces_left_alone(self) -> int:
        """Faces too small (min_face) or too large (max_upscale) for the model, left as they were."""
        return self._story.counts.left_alone

    @property
    def tracks(self) -> int:
        """People followed so far (as_video=False: one per face)."""
        return len(self._story.counts.track_ids)


@dataclass(frozen=True)
class BatchLook:
    """What separate_pictures saw of a batch's first frames, and the frames themselves, all of them again."""

    frames: Iterable[Any]  # in order, those looked at first
    looked: int  # frames looked at: up to LOOKAHEAD; 0 where one is no image (restore_frames says what is wrong)
    cuts: int  # neighbouring pairs of them on either side of a cut (faces.shots); the others are of one shot

    @property
    def pictures(self) -> bool:
        """Separate pictures: one frame, or frames most of whose neighbours are cuts from them (a tie: a video)."""
        return self.looked == 1 or (self.looked > 1 and 2 * self.cuts > self.looked - 1)


def separate_pictures(frames: Iterable[Any], check_interrupt: Callable[[], None] | None = None) -> BatchLook:
    """Whether frames given as a video's are separate pictures, by their first LOOKAHEAD. A batch of unrelated
    images restored as a video got the video threshold (a photo's spacesuit, 0.61, restored as a face) and
    tracking, which a cut ends anyway. Most neighbours, not all: of 750 neighbouring LFW faces 3 were of one shot,
    of different people, and 30 in the set's listed order, one person's photos together (benchmarks/batch_kind.py);
    a video's frames, a cut or two among them, are mostly of one shot, told once half of the pairs looked at are
    (a generator's read 9 frames ahead, and one more for each cut among them). check_interrupt (restore_frames')
    is called as each is read, as the story calls it: a host's Cancel stops the look too."""
    if not isinstance(frames, Iterable) or isinstance(frames, (str, Path)):
        return BatchLook(frames, 0, 0)  # refused by RestoredFrames
    limit = min(len(frames), LOOKAHEAD) if isinstance(frames, Sized) else LOOKAHEAD
    source, same = iter(frames), 0
    read: list[Any] = []
    thumbs: list[np.ndarray | None] = []
    for frame in source:
        read.append(frame)
        if check_interrupt is not None:
            check_interrupt()
        thumbs.append(_thumbnail(frame))
        if thumbs[-1] is None:
            return BatchLook(chain(read, source), 0, 0)
        same += len(thumbs) > 1 and not is_cut(thumbs[-2], thumbs[-1])
        if len(read) == limit or (same and 2 * same >= limit - 1):  # a video, whatever the frames left show
            break
    return BatchLook(chain(read, source), len(read), len(read) - 1 - same)


def _thumbnail(frame: Any) -> np.ndarray | None:
    """faces.shots' thumbnail of a frame restore_frames takes, in 8 bits; None for one it refuses."""
    try:
        image = check_image(frame, "restore_frames", FRAME_DTYPES)
    except InputError:
        return None
    return to_uint8(as_float32(thumbnail(image)))


def say_pictures(look: BatchLook, config: RestoreConfig) -> None:
    """Why frames asked for as a video are restored as photos, once, in the front end's words (as_video, or the
    ComfyUI node's batch_is_video)."""
    first = "the first " if look.looked == LOOKAHEAD else "the "
    frames = "one frame" if look.looked == 1 else \
        f"{first}{look.looked} frames are no video's ({look.cuts} of {look.looked - 1} neighbouring pairs " \
        f"{'is a cut' if look.cuts == 1 else 'are cuts'})"
    log.info("%s: %s, restored as separate images: faces not tracked, detection threshold %g as for photos",
             option_name("as_video"), frames, config.threshold(video=False))


def is_float64(image: Any) -> bool:
    return isinstance(image, np.ndarray) and image.dtype == np.float64


def as_float32(image: Any) -> Any:
    """A float64 image (NumPy's default float: `rgb / 255.0`) as the float32 the pipeline restores; others as given."""
    return image.astype(np.float32) if is_float64(image) else image


class Session:
    """Models loaded once and reused across calls: face detector(s), the restorer, the identity encoder.

    `model` and `device` are fixed when the session is made; every other option may change per call
    (a new fidelity reuses the loaded weights, a new detector is loaded once and kept).
    """

    def __init__(self, config: RestoreConfig) -> None:
        from .device import pick_device

        self.config = config
        self.device: torch.device = pick_device(config.device)
        self._restorer: Restorer | None = None
        self._variants: dict[float, Restorer] = {config.fidelity: self.restorer}
        self._detectors: dict[tuple[str, Path | None, float], FaceDetector] = {}
        self._identity: IdentityEncoder | None = None
        self.detector(config)  # load the detector now, so a missing one fails at load time

    @property
    def restorer(self) -> Restorer:
        """The restorer at the session's own fidelity, loaded now if it is not (at first, or after close())."""
        if self._restorer is None:
            from .restore.base import make_restorer

            self._restorer = make_restorer(self.config.model, device=self.device, fidelity=self.config.fidelity,
                                           compile=self.config.compile)
        return self._restorer

    @property
    def model_name(self) -> str:
        """The restorer that runs, e.g. 'clrface' or 'baseline-bicubic-sharpen'."""
        return getattr(self.restorer, "name", type(self.restorer).__name__)

    def options(self, **overrides: Any) -> RestoreConfig:
        """This session's config with per-call overrides, checked; model and device cannot change."""
        for name in FIXED_AT_LOAD:  # compared as load_restorer takes them: torch.device("cpu") is "cpu"
            fixed = getattr(self.config, name)
            if name in overrides and _checked(name, overrides[name], fixed) != fixed:
                raise ClrfaceError(f"{name} is fixed when the models are loaded; call load_restorer({name}=...) "
                                   "for another session")
        return make_config(self.config, **overrides)

    def detector(self, config: RestoreConfig) -> FaceDetector:
        """One detector for photos and videos: it finds faces down to the video floor, and a photo's story keeps
        those over the threshold (story.FrameStory), so a session holds one per detector setting, not two."""
        key = (config.detector, config.insightface_root, config.detection_floor(video=True))
        if key not in self._detectors:
            self._detectors[key] = detector_for(config, self.device, video=True)
        return self._detectors[key]

    def restorer_at(self, fidelity: float) -> Restorer:
        """The loaded restorer at another fidelity (the session's own plus at most one other is kept)."""
        if fidelity not in self._variants:
            self._variants = {self.config.fidelity: self.restorer}  # after close() the own one is loaded again too
            if fidelity != self.config.fidelity:
                self._variants[fidelity] = with_fidelity(self.restorer, fidelity, self.config.model, self.device)
        return self._variants[fidelity]

    def identity_encoder(self) -> IdentityEncoder | None:
        from .faces.identity import identity_encoder_or_none

        if self._identity is None:
            self._identity = identity_encoder_or_none(str(self.device))
        return self._identity

    def models(self, config: RestoreConfig, *, video: bool) -> Models:
        """The pipeline's Models for one call (the identity encoder only for videos with track identity, and
        only when the restorer's identity guidance runs and so needs a target)."""
        restorer = self.restorer_at(config.fidelity)
        identity = self.identity_encoder() if needs_identity_encoder(config, restorer, video=video) else None
        return Models(device=self.device, detector=self.detector(config), restorer=restorer, identity=identity)

    def restore_frames(self, frames: Iterable[np.ndarray], *, as_video: bool = True,
                       check_interrupt: Callable[[], None] | None = None,
                       on_progress: Callable[[float], None] | None = None, **options: Any) -> RestoredFrames:
        """RGB (H, W, 3) uint8/uint16/float32/float64 frames in, restored frames of the same dtype out, in order.

        as_video=True tracks the faces across the frames (one identity target and noise seed per
        person, so faces do not flicker); False restores each frame as an unrelated photo, as True does one frame
        or frames most of whose neighbours are cuts from them (separate_pictures: a batch of unrelated images).
        check_interrupt: a host's cancel check (ComfyUI's), called as each frame comes in and at each sampler step;
        what it raises stops the run and reaches the caller. Frames come out a batch of faces at a time, so a
        check between them alone waited for the whole batch.
        on_progress: called, at the same points, with how many frames are done: a float that grows by parts of a
        frame as its faces go through the sampler's steps, never decreases, and is the number of frames, exactly,
        once the last is restored (a host's progress bar moves within a batch, not a batch at a time).
        """
        if not isinstance(as_video, (bool, np.bool_)):  # "no" or 0 as a truthy flag restored a photo list as video
            raise ClrfaceError(f"restore_frames: as_video must be True or False, got {_kind(as_video)}")
        for name, hook in (("check_interrupt", check_interrupt), ("on_progress", on_progress)):
            if hook is not None and not callable(hook):
                raise ClrfaceError(f"restore_frames: {name} must be a function or None, got {_kind(hook)}")
        config = self.options(**options)
        if as_video:
            look = separate_pictures(frames, check_interrupt)
            frames, as_video = look.frames, not look.pictures
            if look.pictures:
                say_pictures(look, config)
        story = FrameStory(self.models(config, video=as_video), config, StageTimer(), video=as_video,
                           check_interrupt=check_interrupt, on_progress=on_progress)
        return RestoredFrames(story, frames, "restore_frames")

    def restore_image(self, image: np.ndarray, **options: Any) -> np.ndarray:
        """One RGB photo (H, W, 3) uint8/uint16/float32/float64 in, restored copy of the same dtype out."""
        check_image(image, "restore_image", FRAME_DTYPES)
        (restored,) = self.restore_frames([image], as_video=False, **options)
        return restored

    def restore_video(self, input: str | Path, output: str | Path | None = None, *,
                      progress: Progress | None = None, **options: Any) -> RestoreReport:
        """Restore a video, an image sequence, a photo or a folder to `output`, as the CLI does, with this
        session's models."""
        from .pipeline import restore_path

        check_job_arguments(input, output, progress)
        config = self.options(**options)
        return restore_path(input, output, config, progress=progress,
                            models_for=lambda video: self.models(config, video=video))

    def close(self) -> None:
        """Drop the loaded models to free their memory (the caller then frees the device's, e.g.
        torch.cuda.empty_cache()); a later call loads them again. FaceNet, which the identity guidance uses,
        stays loaded once per device for every session (faces.identity)."""
        self._restorer = None
        self._variants.clear()
        self._detectors.clear()
        self._identity = None


def with_fidelity(restorer: Restorer, fidelity: float, model: str, device: torch.device) -> Restorer:
    """The restorer at another fidelity: CLR-Face shares its loaded weights; others are rebuilt (cheap)."""
    if getattr(restorer, "name", "") == "clrface":
        from .restore.model import fidelity_to_knobs

        variant = copy.copy(restorer)  # shares the model, identity net and sampler
        variant.knobs = fidelity_to_knobs(variant.cfg, fidelity)  # type: ignore[attr-defined]
        return variant
    from .restore.base import make_restorer

    return make_restorer(model, device=device, fidelity=fidelity)


# -- one-call functions (each loads the models; use load_restorer() to keep them between calls) ------
def load_restorer(**options: Any) -> Session:
    """Load the detector and restorer once for many calls: `s = load_restorer(fidelity=0.7); s.restore_frames(...)`."""
    return Session(make_config(**options))


def restore_image(image: np.ndarray, **options: Any) -> np.ndarray:
    """Restore the faces of one RGB photo (H, W, 3) uint8/uint16/float32/float64; returns a copy of the same dtype."""
    check_image(image, "restore_image", FRAME_DTYPES)  # before the models load
    return load_restorer(**options).restore_image(image)


def restore_frames(frames: Iterable[np.ndarray], *, as_video: bool = True,
                   check_interrupt: Callable[[], None] | None = None,
                   on_progress: Callable[[float], None] | None = None, **options: Any) -> RestoredFrames:
    """Restore a sequence of RGB frames lazily, faces tracked across them (per-track identity) by default."""
    return load_restorer(**options).restore_frames(frames, as_video=as_video, check_interrupt=check_interrupt,
                                                   on_progress=on_progress)


def restore_video(input: str | Path, output: str | Path | None = None, *, progress: Progress | None = None,
                  config: RestoreConfig | None = None, **options: Any) -> RestoreReport:
    """Restore a video (or a photo, or a folder of photos) into `output` (default: beside it, _restored).

    Options override `config` (default RestoreConfig()); the CLI passes its parsed config.
    """
    from .pipeline import restore_path

    check_job_arguments(input, output, progress)
    if config is not None and not isinstance(config, RestoreConfig):
        raise ClrfaceError(f"restore_video: config must be a RestoreConfig or None, got {_kind(config)}")
    return restore_path(input, output, make_config(config, **options), progress=progress)


def check_job_arguments(input: Any, output: Any, progress: Any) -> None:
    """restore_video's arguments, checked where a script passes them: a wrong type failed deep inside the job, as
    pathlib's TypeError or an AttributeError, naming neither the argument nor what it takes."""
    for name, value in (("input", input), ("output", output)):
        if not (isinstance(value, (str, os.PathLike)) or (name == "output" and value is None)):
            takes = "a file or folder path (str or pathlib.Path)" + (" or None" if name == "output" else "")
            raise ClrfaceError(f"restore_video: {name} must be {takes}, got {_kind(value)}")
    if progress is not None and not (callable(getattr(progress, "start", None))
                                     and callable(getattr(progress, "advance", None))):
        raise ClrfaceError("restore_video: progress must have start(total, unit) and advance(n) "
                           f"(clrface_video.report.Progress) or be None, got {_kind(progress)}")


def _kind(value: Any) -> str:
    """A wrong argument as an error line shows it: small values as written, others by their type."""
    return repr(value) if value is None or isinstance(value, (bool, int, float)) else type(value).__name__
