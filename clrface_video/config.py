"""RestoreConfig: every option of a restore job, passed explicitly from the CLI or the API."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .types import TimeSpan

DETECTORS = ("retinaface", "insightface")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
DEINTERLACE = ("auto", "on", "off")
MAX_SMOOTHING = 0.95  # latent smoothing above this would freeze a face
DEFAULT_CRF = 18  # the encoders' quality where no --crf is given (config.crf None)


# Video: a face that continues a track counts down to this far below det_threshold (measured on
# face_recognition_hamilton.mp4 by benchmarks/track_scores.py: a singer's score hovered at 0.41-0.81, and her
# restoration blinked off in each frame under 0.6).
DETECTION_HYSTERESIS = 0.25
# The default thresholds (det_threshold None): in the 25 research photos every detection scoring 0.6-0.7 was a
# non-face (two hands, a pearl: benchmarks/detection_scores.py), while in video a face missed in some frames
# would flicker between restored and not (README, --detection-threshold).
PHOTO_THRESHOLD, VIDEO_THRESHOLD = 0.7, 0.6
MIN_DETECTION_FLOOR = 0.05
MAX_SEED = 2**32  # noise seeds are counted on from it per face and per track (numpy's SeedSequence, int64 arrays)


@dataclass(frozen=True)
class RestoreConfig:
    model: str = "auto"  # registered restorer name or a .safetensors path; "auto" = shipped CLR-Face, else baseline
    fidelity: float = 0.5  # 0 = trust the prior (quality), 1 = stay close to the input
    # share of each restored face pasted over the input: None (auto) = what the model's blend gate chooses
    # per face (all of it for models without one); a number = that share for every face
    strength: float | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 16  # aligned crops per restorer call
    detector: str = "retinaface"  # retinaface (ships offline) | insightface
    insightface_root: Path | None = None
    # faces the detector scores at or below this are left alone; in videos a face that continues a track counts
    # down to DETECTION_HYSTERESIS lower, pasted at a share that falls to 0 there (detection_floor).
    # None: PHOTO_THRESHOLD for photos, VIDEO_THRESHOLD for a video's frames (threshold())
    det_threshold: float | None = None
    # faces whose eye-to-mouth span is under min_face pixels, or whose footprint is over max_upscale x the
    # model resolution, fade out of restoration over the next 25% (faces.align.SIZE_FADE) and are then left alone
    min_face: int = 16
    max_upscale: float = 4.0
    # the method's identity guidance (a FaceNet gradient at every solver step); False skips it: about 5x faster
    # on a CPU; with the shipped model the same held-out figures at the default fidelity, a little lower
    # identity at fidelity 0 and a little less steady identity of whole faces along a video track (docs/results.md)
    identity_guidance: bool = True
    track_identity: bool = True  # per-track identity target (False: per-frame)
    temporal_smoothing: float = 0.0  # video: weight of a track's previous latent in each frame's (0 = off)
    # faces larger in the frame than the model's crop: share of the input's detail finer than the crop's
    # pixels laid back over the restored face (the model cannot draw it; docs/results.md, "Large faces")
    keep_detail: float = 1.0
    # video: run interlaced frames through bwdif before anything else (auto: when the first frame is flagged
    # interlaced; on: every frame, for captures that lost their flags; off: never)
    deinterlace: str = "auto"
    fps: float | None = None  # frame rate of an image-sequence input (scan_%06d.dpx); None = 24
    # video: restore only this stretch, in seconds from the first frame (a preview of the settings); the
    # output starts at 0 with the audio and subtitles of that stretch
    start: float = 0.0
    duration: float | None = None
    codec: str = "auto"
    crf: int | None = None  # encoder quality; None: not given, DEFAULT_CRF (an encoder that takes none says nothing)
    preset: str | None = None  # libx264/libx265 speed preset (ultrafast ... veryslow); None: the encoder's (medium)
    overwrite: bool = False
    seed: int = 0
    quiet: bool = False
    compile: bool = False  # torch.compile the CLR-Face score network (meant for long videos on a GPU; not on a CPU)
    # quantise each face's final latent against the codebook (the method's last step); None = yes for
    # photos, no for videos, where the unquantised latent flickers less (docs/results.md, "Real video")
    snap_to_codebook: bool | None = None

    def span(self) -> TimeSpan | None:
        """The stretch of each video to restore (--start, --duration), or None for all of it."""
        if self.start == 0 and self.duration is None:
            return None
        return TimeSpan(self.start, None if self.duration is None else self.start + self.duration)

    def span_option(self) -> str:
        """The option that asked for a stretch, for an error that names what the caller set: `start` (`--start`
        from the command line) where it is set, else `duration`."""
        return "start" if self.start != 0 else "duration"

    def threshold(self, video: bool) -> float:
        """The detection threshold of a job: det_threshold, or by default PHOTO_THRESHOLD for photos and
        VIDEO_THRESHOLD for a video's frames."""
        if self.det_threshold is not None:
            return self.det_threshold
        return VIDEO_THRESHOLD if video else PHOTO_THRESHOLD

    def detection_floor(self, video: bool) -> float:
        """The detector's own threshold for a job: the threshold for photos; for videos DETECTION_HYSTERESIS
        lower, so that a face whose score dips below the threshold for a few frames is not restored in one
        frame and left alone in the next, as long as it continues a track (faces.track.FaceTracker.update)."""
        threshold = self.threshold(video)
        if not video:
            return threshold
        return min(threshold, max(MIN_DETECTION_FLOOR, threshold - DETECTION_HYSTERESIS))

    def confidence_weight(self, score: float) -> float:
        """The share of a video's face pasted for its detector score: 1 above the threshold, falling linearly
        to 0 at the video floor (a track's face that is losing its score fades out instead of switching off)."""
        threshold, floor = self.threshold(video=True), self.detection_floor(video=True)
        if score > threshold:
            return 1.0
        return min(1.0, max(0.0, (score - floor) / max(threshold - floor, 1e-6)))

    def snaps(self, video: bool) -> bool:
        """Whether faces of a video (or of photos) are snapped to the codebook under this config."""
        return (not video) if self.snap_to_codebook is None else self.snap_to_codebook

    def __post_init__(self) -> None:
        from .errors import OptionError

        if not 0.0 <= self.fidelity <= 1.0:
            raise OptionError("fidelity", f"must be between 0 and 1, got {self.fidelity}")
        if self.strength is not None and not 0.0 < self.strength <= 1.0:
            raise OptionError("strength", f"must be auto or a share above 0 and at most 1, got {self.strength}")
        if self.batch_size < 1:
            raise OptionError("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise OptionError("crf", f"must be between 0 and 63, got {self.crf}")
        if self.preset is not None and self.preset not in PRESETS:
            raise OptionError("preset", f"must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.detector not in DETECTORS:
            raise OptionError("detector", f"must be one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if self.det_threshold is not None and not 0.0 < self.det_threshold < 1.0:
            raise OptionError("det_threshold", f"must be between 0 and 1, got {self.det_threshold}")
        if not 0 <= self.seed < MAX_SEED:
            raise OptionError("seed", f"must be a whole number from 0 to 2**32 - 1, got {self.seed}")
        if self.min_face < 0:
            raise OptionError("min_face", f"must be 0 or more pixels, got {self.min_face}")
        if not 0.0 <= self.temporal_smoothing <= MAX_SMOOTHING:
            raise OptionError("temporal_smoothing",
                              f"must be between 0 and {MAX_SMOOTHING}, got {self.temporal_smoothing}")
        if not 0.0 <= self.keep_detail <= 1.0:
            raise OptionError("keep_detail", f"must be between 0 and 1, got {self.keep_detail}")
        if not self.start >= 0:
            raise OptionError("start", f"must be 0 or more seconds, got {self.start}")
        if self.duration is not None and not self.duration > 0:
            raise OptionError("duration", f"must be above 0 seconds, got {self.duration}")
        if self.fps is not None and not self.fps > 0:
            raise OptionError("fps", f"must be above 0, got {self.fps}")
        if self.deinterlace not in DEINTERLACE:
            raise OptionError("deinterlace", f"must be one of {', '.join(DEINTERLACE)}, got {self.deinterlace!r}")
        if self.max_upscale <= 0:
            raise OptionError("max_upscale", f"must be above 0, got {self.max_upscale}")
