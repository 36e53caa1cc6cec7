"""The Ray backend: restore_path on a Ray cluster (or a private local Ray), with the local backend's results."""
from __future__ import annotations

from pathlib import Path

from ..config import RestoreConfig
from ..device import pick_device
from ..errors import ClrfaceError, InputError, backend_name, option_name
from ..io.decode import is_image_path, probe_video
from ..io.palette import is_gif
from ..io.sequence import is_sequence
from ..io.webp_anim import is_animated_webp
from ..paths import check_files_only, check_writable, gif_as_photo, resolve_paths
from ..photos import interrupted
from ..pipeline import already_done, photo_done
from ..report import Interrupted, Progress, RestoreReport, finished, reports_warnings
from ..reruns import protected, up_to_date
from ..restore.base import check_model_name
from .cluster import ray_session, run_all, say_warnings, start_workers
from .photos import list_folder, nothing_to_do, restore_folder_ray
from .video import ray_codec, restore_video_ray

__all__ = ["ray_session", "restore_folder_ray", "restore_path_ray", "restore_video_ray", "start_workers"]


@reports_warnings
def restore_path_ray(input: str | Path, output: str | Path | None = None, config: RestoreConfig | None = None, *,
                     address: str | None = None, workers: int | None = None,
                     progress: Progress | None = None) -> RestoreReport:
    """Restore a video, a photo or a folder of photos on Ray; joins `address`, else starts a local Ray.

    workers: actors to start (default: one per GPU, or one per CPU on a CPU-only cluster).
    """
    config = config or RestoreConfig()
    check_files_only(input, output)
    source = Path(input).expanduser()
    check_model_name(config.model)  # before Ray starts: a bad name failed in every worker, retried, as a traceback
    if address is None:  # a private Ray on this machine: its workers have this machine's devices
        pick_device(config.device)
    if config.span() is not None:
        raise ClrfaceError(f"{option_name('start')} and {option_name('duration')} are for {backend_name('local')} "
                           "(a stretch is one worker's job)")
    if is_sequence(source) or (output is not None and is_sequence(Path(output))):
        raise ClrfaceError(f"{backend_name('ray')} restores video files, photos and folders; restore an image "
                           f"sequence with {backend_name('local')}")
    if not source.exists():
        raise InputError(f"input not found: {source}")
    video = not source.is_dir() and not is_image_path(source)
    if video and is_gif(source) and gif_as_photo(*resolve_paths(source, output)):
        video = False  # a still GIF written as a photo (still.gif -o still.png), as restore_path has it
    if video and is_animated_webp(source):
        raise ClrfaceError(f"{source.name}: {backend_name('ray')} restores video files in keyframe segments, which "
                           f"an animated WebP (read by Pillow) has none of; restore it with {backend_name('local')}")
    if video:  # check the input before starting Ray
        source, target = resolve_paths(source, output)
        info = probe_video(source)
        if not config.overwrite and up_to_date(source, target):  # a stale one is said by restore_video_ray
            return already_done(source, target, "video", config, local=False)
        _check_redo(source, target, config)
        ray_codec(target, info, config)  # what segments cannot carry, said before Ray starts (15 s on a CPU)
    listing = list_folder(source, output, config) if source.is_dir() else None  # as a local run, before any work
    if listing is not None and not listing.todo:  # every photo done: said as a local rerun says it, no Ray started
        return nothing_to_do(listing)
    if not video and listing is None:  # a photo: one done is said as locally too, no Ray started
        photo, target = resolve_paths(source, output)
        if not config.overwrite and up_to_date(photo, target):  # a stale one is said by its worker
            return photo_done(photo, target, config, local=False)
        _check_redo(photo, target, config)
    done = None  # the job's report, once its output is in place
    try:
        with ray_session(address) as ray:
            actors = start_workers(ray, config, video=video, workers=workers if video or source.is_dir() else 1)
            try:
                if listing is not None:
                    done = restore_folder_ray(ray, actors, source, output, config, progress=progress,
                                              listing=listing)
                elif video:
                    done = restore_video_ray(ray, actors, source, output, config, progress=progress)
                else:
                    (done,) = run_all(ray, actors[:1], "restore_one", [(source, output)])
                    say_warnings(done.warnings, set())  # the worker's, said here (this job's report lists them again)
            finally:
                for actor in actors:
                    ray.kill(actor)
        return done
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM while Ray starts, its workers load their models, or after
        if isinstance(stop, Interrupted):
            raise
        if done is not None:  # while Ray shuts down (1-2.5 s): the output is whole
            raise finished(done) from stop
        if listing is None:  # a video or photo: no output, no report, as locally
            raise
        raise interrupted(listing.report, listing.start, listing.todo) from stop  # nothing restored yet, as locally


def _check_redo(source: Path, target: Path, config: RestoreConfig) -> None:
    """Refuse, before Ray starts, an output to redo (--overwrite, or stale) that the user made read-only, or whose
    folder cannot be written, as a local run refuses it: a stale read-only photo started Ray (8 s) to be refused
    by its worker. A no-op rerun is answered before this, so it passes in a read-only folder."""
    if (why := protected(source, target, config)) is not None:
        raise ClrfaceError(why)
    check_writable(target.parent, target.name)
