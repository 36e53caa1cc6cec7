"""The jobs: a video, a photo or whatever a path is, as decode -> the frame story (story.py) -> encode."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .atomic import discard, keep_date_and_mode
from .config import RestoreConfig
from .device import pick_device
from .errors import ClrfaceError, InputError, OptionError, option_name
from .faces.detect import FaceDetector, make_detector, visible_scale
from .faces.identity import identity_encoder_or_none
from .io.decode import FIELD_PROGRESSIVE, VideoInfo, is_image_path, probe_video, read_frames
from .io.deinterlace import bwdif_deint
from .io.encode import AUTO, VideoWriter, output_exists
from .io.multi_picture import PictureWriter, own_format, picture_count, read_pictures
from .io.output_stream import check_codec, encoder_settings
from .io.palette import is_gif
from .io.photo_read import Photo, read_photo
from .io.photo_write import copy_photo, fit_format, format_for, write_photo
from .io.sequence import is_sequence
from .io.sidecars import copy_sidecars
from .io.tiff_pages import PageWriter, first_full_page, full_pages, preview_of, read_pages, tiff_pages
from .io.webp_anim import is_animated_webp, is_webp_output
from .io.webp_frames import WebpWriter, probe_webp, read_webp_frames
from .paths import (
    check_files_only,
    check_writable,
    gif_as_photo,
    output_folder,
    resolve_paths,
    say_renamed,
)
from .report import JobSettings, Progress, RestoreReport, StageTimer, kept_when_stopped, reports_warnings
from .reruns import changed_since, left_as_is
from .restore.base import Restorer, check_model_name, default_model_name, make_restorer
from .story import FrameStory, Models, restore_photo_array
from .types import Frame, TimeSpan

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
DTYPES = (np.uint8, np.uint16, np.float32)  # the images the pipeline takes (float32 in 0..1)
FLOAT_MAX = 2.0  # a float32 image above this is on the 0..255 scale, not 0..1
FLOAT_MIN = -0.5  # one below this is on the -1..1 scale (a resize's overshoot stays above -0.2); its faces came
# back in 0..1 over a -1..1 background


# -- models -----------------------------------------------------------------------------------------
ModelsFor = Callable[[bool], Models]  # the loaded models for a video job (True) or a photo job (False)


def detector_for(config: RestoreConfig, device: torch.device, *, video: bool) -> FaceDetector:
    """The face detector a job's settings name (kind, threshold, insightface models), on `device`; a video's
    finds faces down to its floor (RestoreConfig.detection_floor), which tracking sorts out. A photo is scanned
    at 1280 px and, for its small faces, large enough to find faces down to config.min_face (a group photo of
    24 MP: also at 0.625 of its size); a video's frames at 1280 px only, where detection runs every frame."""
    return make_detector(config.detector, insightface_root=config.insightface_root,
                         threshold=config.detection_floor(video), device=str(device),
                         min_scale=0.0 if video else visible_scale(config.min_face))


def load_models(config: RestoreConfig, *, video: bool) -> Models:
    """Build detector, restorer and (for videos with track identity) the identity encoder."""
    device = pick_device(config.device)
    detector = detector_for(config, device, video=video)
    restorer = make_restorer(config.model, device=device, fidelity=config.fidelity, compile=config.compile)
    identity = identity_encoder_or_none(str(device)) if needs_identity_encoder(config, restorer, video=video) \
        else None
    return Models(device=device, detector=detector, restorer=restorer, identity=identity)


def needs_identity_encoder(config: RestoreConfig, restorer: Restorer, *, video: bool) -> bool:
    """Whether a job computes per-track identity targets: videos with track identity, for a restorer whose
    identity guidance runs (and so needs a target)."""
    guided = config.identity_guidance and getattr(restorer, "uses_identity", True)
    return video and config.track_identity and guided


def _new_report(source: Path, target: Path, kind: str, models: Models) -> RestoreReport:
    return RestoreReport(input=str(source), output=str(target), kind=kind,
                         model=getattr(models.restorer, "name", type(models.restorer).__name__),
                         device=str(models.device))


def job_settings(config: RestoreConfig, models: Models, *, video: bool, codec: str | None = None) -> JobSettings:
    """What a job with these models runs with, as it takes effect (its report's settings): the threshold and
    codebook snapping of photos or of a video's frames, identity guidance only where the restorer has it, and
    for a video the encoder the writer chose (`codec`) with the --crf and --preset it takes."""
    crf, preset = (None, None) if codec is None else encoder_settings(codec, config.crf, config.preset)
    return JobSettings(
        version=__version__, model=getattr(models.restorer, "name", type(models.restorer).__name__),
        device=str(models.device), fidelity=config.fidelity, strength=config.strength,
        identity_guidance=config.identity_guidance and getattr(models.restorer, "uses_identity", True),
        track_identity=video and config.track_identity, detector=config.detector,
        detection_threshold=config.threshold(video), min_face=config.min_face, max_upscale=config.max_upscale,
        keep_detail=config.keep_detail, temporal_smoothing=config.temporal_smoothing,
        snap_to_codebook=config.snaps(video), batch_size=config.batch_size, seed=config.seed,
        deinterlace=config.deinterlace, start=config.start, duration=config.duration, codec=codec, crf=crf,
        preset=preset)


def _frames_in(info: VideoInfo, span: TimeSpan | None) -> int | None:
    """How many frames a job will write (for the progress bar), or None when that is not known."""
    if span is None:
        return info.frames
    if info.fps is None or (span.end is None and info.duration_s is None):
        return None
    end = span.end if span.end is not None else info.duration_s
    if info.duration_s is not None:
        end = min(end, info.duration_s)
    return max(0, round((end - span.start) * float(info.fps)))


def _timed(frames: Iterable[Frame], timer: StageTimer, stage: str) -> Iterator[Frame]:
    """Yield from `frames`, adding the time spent producing each one to `stage`."""
    iterator = iter(frames)
    while True:
        with timer(stage):
            item = next(iterator, None)
        if item is None:
            return
        yield item


# -- the jobs ---------------------------------------------------------------------------------------
@reports_warnings
def restore_video(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                  progress: Progress | None = None, models: Models | None = None) -> RestoreReport:
    """Restore every face of a video into a new file with the same timing, streams and colour tags."""
    config = config or RestoreConfig()
    start = time.perf_counter()
    source, target = resolve_paths(input, output, config.span())  # 0 check the input before loading anything
    if output is None:
        say_renamed([source])  # a camcorder's MOV001.MOD into MOV001_restored.mpg
    if gif_as_photo(source, target):  # the video writer would write its frame without a photo's format handling
        raise ClrfaceError(f"{source.name} is one picture and {target.name} a photo: restore it with restore_path "
                           "(which restores whichever it is) or restore_image, not as a video")
    animated_webp = is_animated_webp(source)  # FFmpeg cannot decode it: Pillow reads (and writes) it
    info = probe_webp(source) if animated_webp else probe_video(source, config.fps)
    check_settings(config, video=True)
    if config.fps is not None and not is_sequence(source):
        log.warning("%s sets the rate of an image sequence; %s keeps its own timestamps", option_name("fps"), source.name)
    if left_as_is(source, target, config):
        return already_done(source, target, "video", config)
    check_writable(target.parent, target.name)  # one to redo: its folder is asked once it must be written
    models = models or load_models(config, video=True)
    timer = StageTimer()
    story = FrameStory(models, config, timer, video=True, pixel_aspect=info.pixel_aspect, rotation=info.rotation)
    report = _new_report(source, target, "video", models)
    span = config.span()
    if progress is not None:
        progress.start(_frames_in(info, span), "frames")
    deint = bwdif_deint(config.deinterlace, info.interlaced)
    report.deinterlaced = deint is not None
    # what the output holds: the source's fields as they are, or progressive frames once deinterlaced
    written = info if deint is None else replace(info, interlaced=False, field_order=FIELD_PROGRESSIVE)
    writer_type = WebpWriter if is_webp_output(target) else VideoWriter
    with output_folder(target.parent), \
            writer_type(target, source, written, codec=config.codec, crf=config.crf, span=span,
                        preset=config.preset) as writer:
        decoded = read_webp_frames(source, span, alpha=info.alpha) if animated_webp else \
            read_frames(source, deint, config.fps, span, alpha=info.alpha, samples=True)
        frames = _timed(decoded, timer, "decode")  # 1 decode
        for frame in story.run(frames):  # 2 detect, 3 track, 4 align, 5 restore, 6 paste
            with timer("encode"):
                writer.write(frame)  # 7 encode
            report.frames += 1
            if progress is not None:
                progress.advance()
        flushed_from = time.perf_counter()
    with kept_when_stopped(report):  # the output is in place: a stop from here on says that it is kept
        timer.add("encode", time.perf_counter() - flushed_from)  # the flush and atomic rename on close
        report.settings = job_settings(config, models, video=True, codec=writer.codec)
        if not is_sequence(source) and not is_sequence(target):  # one file from one file, as a photo's copy
            keep_date_and_mode(source, target)
        return finish_report(report, story, timer, start)


@reports_warnings
def restore_image(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                  progress: Progress | None = None, models: Models | None = None) -> RestoreReport:
    """Restore every face of one photo; EXIF, ICC profile and format are kept."""
    config = config or RestoreConfig()
    if config.span() is not None:
        raise OptionError(config.span_option(), "picks a stretch of a video; a photo is restored whole")
    start = time.perf_counter()
    source, target = resolve_paths(input, output)
    check_settings(config, video=False)
    if left_as_is(source, target, config):
        return photo_done(source, target, config)
    check_writable(target.parent, target.name)  # one to redo: its folder is asked once it must be written
    timer = StageTimer()
    pages = tiff_pages(source)
    one_of_pages = pages > 1 and format_for(target) != "TIFF"  # one picture and its previews: the picture
    if one_of_pages and (full := full_pages(source)) > 1:
        raise ClrfaceError(f"{source.name} holds {full} pages, which only a TIFF holds; name the output .tif")
    if pages == 1 and not several_pictures(source, target):
        pages = 0  # one picture, or an MPO's or a HEIF's several written as another format: its first
    with timer("decode"):  # 1 read (orientation applied)
        original = first_full_page(source) if one_of_pages else read_photo(source) if pages == 0 else None
        photo = output_format(original, target) if original is not None else None
    models = models or load_models(config, video=False)
    story = FrameStory(models, config, timer, video=False)
    report = _new_report(source, target, "image", models)
    if progress is not None:
        progress.start(1, "images")
    if photo is None:
        with output_folder(target.parent):
            restore_pages(story, source, target, timer)  # 1-7, page by page
    else:
        image = restore_photo_array(story, photo.image)  # 2-6
        with output_folder(target.parent), timer("encode"):
            save_photo(source, target, image, photo, unchanged=photo is original)  # 7 write (atomic)
    report.images = 1
    report.settings = job_settings(config, models, video=False)
    if progress is not None:
        progress.advance()
    return finish_report(report, story, timer, start)


def save_photo(source: Path, target: Path, image: np.ndarray, photo: Photo, *, unchanged: bool = True) -> None:
    """Write the restored photo with the source's modification time and permissions; one whose pixels nothing
    changed (no face, or none restored), in its own format (`unchanged`), is copied byte for byte instead of
    encoded again."""
    if unchanged and np.array_equal(image, photo.image):
        copy_photo(source, target)
    else:
        write_photo(target, image, like=photo)
    photo_written(source, target)


def photo_written(source: Path, target: Path) -> None:
    """A written photo's last step: its source's date and permissions, and its XMP sidecars copied beside it
    (io.sidecars). Where a sidecar cannot be written the photo goes too, so that a rerun, which passes over a
    photo that is there, does both again."""
    keep_date_and_mode(source, target)
    try:
        copy_sidecars(source, target)
    except ClrfaceError:
        discard(target)
        raise


def sidecars_brought_up_to_date(source: Path, target: Path) -> int:
    """For a photo left as it is (its output up to date), the copies of its XMP sidecars that are missing or
    stale by the photos' own rule (changed_since; a sidecar is not a video, whose length stale would read): a library restored before sidecars were copied, or a rating or
    keyword given since, would otherwise never get them. Cheap: a sidecar's and its copy's dates are all that is
    asked, the photo's header only for one to copy. The number written; ClrfaceError where one cannot be."""
    return copy_sidecars(source, target,
                         stale=lambda sidecar, copy: not output_exists(copy) or changed_since(sidecar, copy))


def several_pictures(source: Path, target: Path) -> bool:
    """Whether `source` is an MPO or a HEIF of several pictures (picture_count) that `target` keeps them in: one
    of its own kind (JPEG for an MPO). Where it does not, the first (a HEIF's primary) is restored, warned."""
    count = picture_count(source)
    if count == 1:  # before the output's format: a HEIC read without pillow-heif is said of the source, not the output
        return False
    wanted = format_for(target)
    if wanted not in (None, own_format(source)):
        log.warning("%s holds %d pictures, and %s %s output one: only its first (primary) picture is written (an "
                    "output named %s keeps them all)", source.name, count, "an" if wanted == "AVIF" else "a", wanted,
                    source.suffix)
    return wanted == own_format(source)


def restore_pages(story: FrameStory, source: Path, target: Path, timer: StageTimer, *,
                  restore: Callable[[FrameStory, np.ndarray], np.ndarray] = restore_photo_array) -> None:
    """A multi-page TIFF, page by page, or an MPO's or a HEIF's pictures (io.multi_picture) one by one: each
    full one restored as a photo (by `restore`, steps 2-6), each reduced-resolution preview scaled down from the
    restored page before it, all written into one file with the source's date and permissions; nothing is
    written when any page fails."""
    full: tuple[np.ndarray, np.ndarray] | None = None  # the last full page, as read and as restored
    pictures = tiff_pages(source) == 1
    with (PictureWriter if pictures else PageWriter)(target, source) as writer:
        for page in _timed((read_pictures if pictures else read_pages)(source), timer, "decode"):  # 1 read
            if page.reduced:
                image = preview_of(page, full)
            else:
                image = restore(story, page.photo.image)  # 2-6
                full = (page.photo.image, image)
            with timer("encode"):
                writer.write(image, page)  # 7 write (atomic, when the last page is done)
    photo_written(source, target)


def output_format(photo: Photo, target: Path) -> Photo:
    """The photo's write-back settings, in the format its output name asks for (photo.png -o out.jpg: JPEG),
    with what that format cannot hold converted (io.photo_write.fit_format)."""
    wanted = format_for(target)
    if wanted is None:
        raise ClrfaceError(f"a photo cannot be written as {target.suffix or target.name!r}; name the output "
                           ".jpg, .png, .tif, .webp or another image extension")
    return fit_format(photo, wanted, target.name) if wanted != photo.format else photo


def restore_frames(frames: Iterable[np.ndarray], config: RestoreConfig | None = None, *,
                   as_video: bool = True) -> Iterator[np.ndarray]:
    """For API users: RGB uint8/uint16/float32 (H, W, 3) arrays in, restored arrays out, in order.

    as_video=True tracks faces across the frames (one identity per person); False restores each
    array as an unrelated photo. Frames are consumed lazily, a bounded window at a time.
    """
    config = config or RestoreConfig()
    models = load_models(config, video=as_video)
    story = FrameStory(models, config, StageTimer(), video=as_video)
    wrapped = (Frame(image=check_image(image, "restore_frames"), index=i) for i, image in enumerate(frames))
    for frame in story.run(wrapped):
        yield frame.image


@reports_warnings
def restore_path(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                 progress: Progress | None = None, models_for: ModelsFor | None = None) -> RestoreReport:
    """Restore a video, an image sequence (scan_%06d.dpx), a photo or a folder, whichever INPUT is.

    `models_for(video)` gives models loaded once for many calls (a Session's); without it each job loads its own."""
    check_files_only(input, output)
    source = Path(input).expanduser()
    video = is_sequence(source) or (source.is_file() and not is_image_path(source))
    if not video and not source.exists():
        raise InputError(f"input not found: {source}")
    if source.is_dir():
        from .photos import restore_folder

        return restore_folder(source, output, config, progress=progress, models_for=models_for)
    if video and is_gif(source) and gif_as_photo(*resolve_paths(source, output)):
        video = False  # a still GIF written as a photo (still.gif -o still.png): a photo's job
    if video and models_for is not None:
        resolve_paths(source, output)  # check the paths before the identity encoder loads
    if not video:
        _say_video_only(source, config or RestoreConfig())
    models = None if models_for is None else models_for(video)
    job = restore_video if video else restore_image
    return job(source, output, config, progress=progress, models=models)


def _say_video_only(source: Path, config: RestoreConfig) -> None:
    """Warn that video encoder options given for a photo are not used (in a folder they are its videos')."""
    given = [option_name(name) for name, asked in (("codec", config.codec != RestoreConfig.codec),
                                                   ("crf", config.crf is not None),
                                                   ("preset", config.preset is not None)) if asked]
    if given:
        log.warning("%s: %s %s for video; a photo is written in its own format, or the one %s names", source.name,
                    ", ".join(given), "is" if len(given) == 1 else "are", option_name("output"))


def check_image(image: Any, where: str, dtypes: tuple[type, ...] = DTYPES) -> np.ndarray:
    """An (H, W, 3) RGB array of one of `dtypes` (floats in 0..1) with pixels, or a one-line InputError naming
    `where` and the dtype given (the API takes float64 too, and told a float64 caller of 'the float32 image')."""
    if isinstance(image, (str, Path)):
        raise InputError(f"{where} takes an RGB array; for a file (photo, video or folder) use "
                         "clrface_video.restore_video(path), which restores whichever it is")
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype not in dtypes:
        got = f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}".strip()
        hint = "; a single image given as the frames is read row by row: pass a list of frames" \
            if isinstance(image, np.ndarray) and image.ndim == 2 and image.shape[-1] == 3 else ""
        names = [np.dtype(dtype).name for dtype in dtypes]
        raise InputError(f"{where} takes RGB (H, W, 3) {', '.join(names[:-1])} or {names[-1]} (0..1) arrays, "
                         f"got {got}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{where}: the image is empty ({image.shape[0]} x {image.shape[1]} pixels)")
    if image.dtype.kind == "f":
        top, low = float(image.max(initial=0.0)), float(image.min(initial=0.0))  # NaN propagates
        if not math.isfinite(top) or not math.isfinite(low):
            raise InputError(f"{where}: the {image.dtype} image holds NaN or infinite values")
        if top > FLOAT_MAX:
            raise InputError(f"{where}: {image.dtype} images are 0..1 and this one reaches {top:g}; divide it by 255")
        if low < FLOAT_MIN:
            raise InputError(f"{where}: {image.dtype} images are 0..1 and this one goes down to {low:g}; "
                             "a -1..1 image is (x + 1) / 2 in 0..1")
    return np.ascontiguousarray(image)


def already_done(source: Path, target: Path, kind: str, config: RestoreConfig, *, local: bool = True) -> RestoreReport:
    """The report of a job whose output exists; the settings are still checked (a wrong --device is an error
    whether or not there is work to do), and name the model and device that would run."""
    model, device = would_run(config, local=local)
    log.info("%s already exists; left as is (pass %s to redo it)", target, option_name("overwrite"))  # the report says so
    return RestoreReport(input=str(source), output=str(target), kind=kind, model=model, device=device, skipped=1)


def photo_done(source: Path, target: Path, config: RestoreConfig, *, local: bool = True) -> RestoreReport:
    """The report of a photo whose output is left as is (reruns.left_as_is), its sidecars brought up to date. Not
    local: a Ray driver's, which then starts no Ray for a photo done (9 s here)."""
    done = already_done(source, target, "image", config, local=local)
    done.sidecars = sidecars_brought_up_to_date(source, target)
    return done


def would_run(config: RestoreConfig, *, local: bool = True) -> tuple[str, str]:
    """The model and device a job with these settings runs, found without loading either (for the report of
    a job with nothing left to do); a wrong --device or --model is an error here too (a mistyped --model on a
    rerun was reported as the model of outputs it never made). Not local (a Ray driver): the device, and the
    weights file, are the workers' to find, and the device stays as asked."""
    check_model_name(config.model, on_disk=local)
    model = default_model_name() if config.model == "auto" else config.model
    return model, str(pick_device(config.device)) if local else config.device


def check_settings(config: RestoreConfig, *, video: bool) -> None:
    """Refuse a wrong --device, and for videos an unknown --codec, before a rerun's check says anything: a
    "redoing a.mp4" warning came first, as if the work had begun, and then the refusal."""
    would_run(config)
    if video and config.codec != AUTO:
        check_codec(config.codec)


def finish_report(report: RestoreReport, story: FrameStory | None, timer: StageTimer,
                  start: float) -> RestoreReport:
    """Fill in the face counts (when any face work ran), the stage seconds and the wall-clock time."""
    if story is not None:
        report.faces = story.counts.faces
        report.faces_left_alone = story.counts.left_alone
        report.tracks = len(story.counts.track_ids)
        if report.kind == "image" and story.counts.photo_faces_left_alone:  # a folder names each photo's itself
            report.left_alone = {Path(report.input).name: [asdict(face) for face in story.counts.photo_faces_left_alone]}
    report.stages = timer.rounded()
    report.seconds = round(time.perf_counter() - start, 4)
    return report

