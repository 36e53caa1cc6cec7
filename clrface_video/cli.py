"""The clrface-video command line: parses options, calls the library, prints one-line errors."""
from __future__ import annotations

import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import (
    DEFAULT_CRF,
    DEINTERLACE,
    DETECTORS,
    MAX_SMOOTHING,
    PHOTO_THRESHOLD,
    PRESETS,
    VIDEO_THRESHOLD,
    RestoreConfig,
)

DEFAULT = RestoreConfig()  # the options' defaults are the library's
from .errors import ClrfaceError, OptionError, named_as, one_line

# the library's options as the command line names them, for its errors about their values (errors.OptionError) and
# the messages that name them (errors.option_name)
FLAGS = {field.name: "--" + field.name.replace("_", "-") for field in fields(RestoreConfig)} \
    | {"det_threshold": "--detection-threshold", "output": "-o OUTPUT",
       "backend": "--backend", "workers": "--workers", "address": "--ray-address"}  # restore_path_ray's (and -o's)

log = logging.getLogger(__name__)
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_SOME_FAILED = 3  # a folder was restored except for files that could not be read (listed, and in the report)
EXIT_TERMINATED = 128 + 15  # what a shell reports for a process ended by SIGTERM
STOPPED = {"restore": "; no partial output was left",  # what a stopped command leaves, by command
           "train": "; the run folder keeps its last checkpoint (continue with --resume)"}


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, timeout, systemd, docker stop), raised where the job is, so that it cleans up as for Ctrl-C."""


AGAIN_AFTER = 0.05  # seconds after a stop Python swallowed that it is sent again (_stop_again)
_SIGTERM_SEEN: list[int] = []  # set by the handler: Ray's get() turns the Terminated it meets into a plain interrupt


def _raise_terminated(signum: int, frame: object) -> None:
    _SIGTERM_SEEN.append(signum)
    raise Terminated()


def _stop_again(unraisable: Any) -> None:
    """sys.unraisablehook: a Ctrl-C or SIGTERM that Python had to swallow, sent again to the main thread from
    another, to be raised wherever the command then is; any other exception printed as Python prints it. A stop
    that came while Ray forked its processes (its preexec_fn runs the os.register_at_fork hooks, logging's
    _releaseLock among them) was raised in a hook, printed as 'Exception ignored in', and lost: the command
    restored the whole video and ended with exit 0 (SIGTERM too, as Ray's handler's sys.exit(15)). Sent at once
    (from the hook, or from a thread the hook waits to start), it was raised, and swallowed, in the hook again: it
    is sent AGAIN_AFTER later, and again should it land in such a hook once more."""
    import signal
    import threading

    lost = unraisable.exc_value
    if isinstance(lost, KeyboardInterrupt):
        sent = signal.SIGTERM if isinstance(lost, Terminated) else signal.SIGINT
    elif isinstance(lost, SystemExit) and lost.code == signal.SIGTERM:  # Ray's own SIGTERM handler's, while it starts
        sent = signal.SIGTERM  # (cluster._killed_as_the_command_is)
    else:
        sys.__unraisablehook__(unraisable)
        return
    again = threading.Timer(AGAIN_AFTER, signal.pthread_kill, (threading.main_thread().ident, sent))
    again.daemon = True
    again.start()


def _media_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean 'this file is not what it claims to be' rather than a bug."""
    import av
    from PIL import UnidentifiedImageError

    return (av.error.FFmpegError, UnidentifiedImageError, OSError, EOFError)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Stopped(BaseException):
    """Ctrl-C or SIGTERM (its KeyboardInterrupt the cause) carried past click's main, which answers a
    KeyboardInterrupt with an empty line on stderr before its Abort: the stop is said in one line."""


class _EndOfData(Exception):
    """An EOFError out of a command (PyAV's end of data in a damaged file; its cause) carried past click's main,
    which takes every EOFError for Ctrl-D at a prompt and said 'interrupted', exit 130."""


class ClrfaceGroup(click.Group):
    """A click group whose errors are one line on stderr: exit 2 for user errors, 130 for Ctrl-C."""

    def invoke(self, ctx: click.Context) -> Any:
        """The command; Ctrl-C or SIGTERM leaves it as _Stopped, for main's one line, an EOFError as _EndOfData."""
        try:
            with named_as(FLAGS):  # the library's messages name the command line's flags
                return super().invoke(ctx)
        except KeyboardInterrupt as error:
            raise _Stopped() from error
        except EOFError as error:
            raise _EndOfData() from error

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        if not argv:
            args = ["--help"]  # no command: the whole help, as click printed it before 8.2 (not an error line)
        command = next((a for a in argv if not a.startswith("-")), "")
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (_Stopped, click.exceptions.Abort, KeyboardInterrupt) as error:  # each with the interrupt its cause
            killed = isinstance(error, Terminated) or isinstance(error.__cause__, Terminated) or bool(_SIGTERM_SEEN)
            click.echo(f"{'terminated' if killed else 'interrupted'}{_left_by(error, command)}", err=True)
            sys.exit(EXIT_TERMINATED if killed else EXIT_INTERRUPTED)
        except click.ClickException as error:
            where = error.ctx.command_path if isinstance(error, click.UsageError) and error.ctx else ""
            hint = f" (see {where} --help)" if where else ""
            _fail(one_line(click.unstyle(error.format_message())) + hint, error.exit_code)
        except ClrfaceError as error:
            _fail(one_line(error.named(FLAGS) if isinstance(error, OptionError) else error), EXIT_USER_ERROR)
        except _media_errors() as error:
            _fail(one_line(error), EXIT_USER_ERROR)
        except _EndOfData as carried:  # a media error (_media_errors), as it is without click's main between
            _fail(one_line(carried.__cause__), EXIT_USER_ERROR)
        except Exception as error:  # a bug: still one line, traceback on request
            if _debug():
                raise
            _fail(f"unexpected {type(error).__name__}: {one_line(error)} (set CLRFACE_DEBUG=1 for a traceback)", 1)
        code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _left_by(error: BaseException, command: str) -> str:
    """What a stopped command leaves, for its last line: a folder's own count of the files it finished
    (report.Interrupted, which click's Abort carries as its cause), else the command's STOPPED words."""
    from .report import Interrupted

    stopped = next((e for e in (error, error.__cause__) if isinstance(e, Interrupted)), None)
    return stopped.left if stopped is not None else STOPPED.get(command, "")


def _debug() -> bool:
    import os

    return os.environ.get("CLRFACE_DEBUG", "") not in ("", "0")


class TqdmProgress:
    """The terminal progress bar (frames or images, rate, ETA); silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def start(self, total: int | None, unit: str) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit.rstrip("s"), file=sys.stderr, dynamic_ncols=True,
                            smoothing=0.1, desc="restoring")

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _WarningLine(logging.Handler):
    """Library warnings as `warning: <message>` lines that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(f"warning: {one_line(Exception(record.getMessage()))}", file=sys.stderr)


def _show_warnings(quiet: bool) -> None:
    logger = logging.getLogger("clrface_video")
    logger.handlers = [handler for handler in logger.handlers if not isinstance(handler, _WarningLine)]
    shown = _WarningLine()
    # -q hides warnings here (--report still lists them), not a folder's files that failed (photos.say_failed)
    shown.setLevel(logging.ERROR if quiet else logging.WARNING)
    logger.addHandler(shown)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def _strength(ctx: click.Context, param: click.Parameter, value: str) -> float | None:
    """--strength: "auto" (None: the model's blend gate decides) or a share in (0, 1]."""
    if value == "auto":
        return None
    try:
        share = float(value)
    except ValueError:
        share = float("nan")
    if not 0.0 < share <= 1.0:
        raise click.BadParameter(f"{value!r} is neither auto nor a share above 0 and at most 1")
    return share


@click.group(cls=ClrfaceGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="clrface-video")
def cli() -> None:
    """Restore faces in videos, photos, film scans and folders (CLR-Face).

    \b
    clrface-video restore movie.mp4            -> movie_restored.mp4
    clrface-video restore photo.jpg -o out.jpg
    clrface-video restore ~/Pictures/2009      -> ~/Pictures/2009_restored/
    clrface-video restore "reel1/r_%06d.dpx"   -> reel1_restored/r_%06d.dpx
    """
    _show_warnings(quiet=False)  # library warnings as `warning:` lines, for every command (restore -q hides them)


@cli.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(), default=None,  # a str: "new/" keeps the slash that makes it a folder
              help="Output file or folder.  [default: INPUT with a _restored suffix, beside it]")
@click.option("--model", default="auto", show_default=True, metavar="NAME_OR_PATH",
              help="Restorer name (see `clrface-video models`) or CLR-Face .safetensors weights.")
@click.option("--fidelity", type=click.FloatRange(0.0, 1.0), default=DEFAULT.fidelity, show_default=True,
              help="0 trusts the face prior (quality), 1 stays close to the input.")
@click.option("--strength", default="auto", show_default=True, metavar="auto|SHARE", callback=_strength,
              help="Share of each restored face pasted over the input: auto lets the model's blend gate choose per "
                   "face (little for faces already clean or sharp, most for badly degraded ones); 1 = all of it.")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
              help="Where the restorer runs; auto takes a CUDA GPU when there is one.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT.batch_size, show_default=True,
              help="Face crops per restorer call (frames wait for their batch).")
@click.option("--compile", "compile_model", is_flag=True,
              help="torch.compile the CLR-Face network: a slow first batch, faster later ones (GPU, long videos).")
@click.option("--detector", type=click.Choice(DETECTORS), default="retinaface", show_default=True,
              help="Face detector: retinaface ships with the package; insightface needs --insightface-root.")
@click.option("--insightface-root", type=click.Path(path_type=Path), default=None,
              help="Folder with an InsightFace model pack (e.g. buffalo_l) for --detector insightface.")
@click.option("--detection-threshold", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=DEFAULT.det_threshold,
              show_default=f"{PHOTO_THRESHOLD} for photos, {VIDEO_THRESHOLD} for video", metavar="SCORE",
              help="Faces the detector scores below this are left alone: raise it when hands or patterns are "
                   "restored as faces, lower it for small or blurred faces it misses (`clrface-video detect` "
                   "prints the scores). In video a face that continues a track counts down to 0.25 below it, "
                   "fading out, so that its restoration does not blink.")
@click.option("--min-face", type=click.IntRange(min=0), default=DEFAULT.min_face, show_default=True, metavar="PIXELS",
              help="Faces whose eye-to-mouth span is under this fade out of restoration (left alone below 75% of it).")
@click.option("--max-upscale", type=click.FloatRange(min=0.0, min_open=True), default=DEFAULT.max_upscale, show_default=True,
              metavar="FACTOR",
              help="Faces larger than FACTOR x the model's crop (128 px for the shipped model) fade out of "
                   "restoration (left alone above 1.25 x it).")
@click.option("--start", type=click.FloatRange(min=0.0), default=0.0, show_default=True, metavar="SECONDS",
              help="Video: restore from this time on (with --duration: a preview of the settings on a short stretch).")
@click.option("--duration", type=click.FloatRange(min=0.0, min_open=True), default=None, metavar="SECONDS",
              help="Video: restore only this many seconds; the output starts at 0 with that stretch's audio.  "
                   "[default: to the end]")
@click.option("--fps", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Frame rate of an image-sequence INPUT (frames named like scan_%06d.dpx).  [default: 24]")
@click.option("--codec", default="auto", show_default=True, help="Video encoder (libx264, libx265, ffv1, prores_ks, "
              "...); auto: the source's own where it is an intra or lossless codec the output holds (ProRes, FFV1, "
              "...), what the output's format takes (.mpg/.vob/.mxf: mpeg2video, .avi: mpeg4, .wmv: wmv2, .webm: libvpx-vp9, "
              ".dv, .gif, image sequences), libx265 for an HDR source, else libx264 (README: --codec).")
@click.option("--crf", type=click.IntRange(0, 63), default=None,
              help=f"Video quality for the encoder (lower is better and bigger); an encoder that takes none (ffv1, "
                   f"prores_ks, ...) says so.  [default: {DEFAULT_CRF}]")
@click.option("--preset", type=click.Choice(PRESETS), default=None, metavar="NAME",  # the choices, in the help:
              # as the metavar they made an 81-column line that click does not wrap
              help=f"libx264/libx265 speed preset ({', '.join(PRESETS)}): faster ones encode faster, into larger or "
                   "slightly worse files at the same --crf (docs/results.md, Encoding presets).  [default: the "
                   "encoder's, medium]")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (kept otherwise, unless their "
              "original changed since it was restored).")
@click.option("--identity-guidance/--no-identity-guidance", default=True, show_default=True,
              help="The method's identity guidance (a face-recognition gradient at each sampler step); off is "
                   "about 5x faster on a CPU and keeps a little less of the person's identity at low fidelity "
                   "and along a video.")
@click.option("--track-identity/--no-track-identity", default=True, show_default=True,
              help="One identity target per tracked person (video) instead of one per frame.")
@click.option("--temporal-smoothing", type=click.FloatRange(0.0, MAX_SMOOTHING), default=DEFAULT.temporal_smoothing, show_default=True,
              help="Video: blend each face's latent with the same person's previous frames (0 = off; "
                   "0.3-0.6 steadies still faces, more smears moving mouths).")
@click.option("--keep-detail", type=click.FloatRange(0.0, 1.0), default=DEFAULT.keep_detail, show_default=True,
              help="Faces larger in the frame than the model's crop: share of the input's detail finer than the "
                   "crop's pixels kept over the restored face (0 = the model's face alone).")
@click.option("--deinterlace", type=click.Choice(DEINTERLACE), default="auto", show_default=True,
              help="Video: turn interlaced frames (DV, VHS, broadcast captures) into progressive ones before the "
                   "faces are found; auto does it when the decoder flags them as interlaced, on for captures "
                   "that lost the flag.")
@click.option("--snap-to-codebook/--no-snap-to-codebook", default=None,
              help="Quantise each face's final latent against the codebook (the CLR-Face paper's last step)  "
                   "[default: yes for photos; no for videos, where the unquantised latent flickers less]")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write a JSON report (counts, model, device, seconds per stage, the settings used, the warnings) to "
                   "this file.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no warnings (a folder's files that failed are still named).")
@click.option("--backend", type=click.Choice(("local", "ray")), default="local", show_default=True,
              help="local: this machine; ray: workers on a Ray cluster (needs `pip install \"ray[data]\"`).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Ray cluster to join (e.g. 10.0.0.5:6379 or auto) [default: start a local Ray on 127.0.0.1].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray workers, each loading the models once  [default: one per GPU, else one per CPU].")
def restore(input: Path, output: str | None, model: str, fidelity: float, strength: float | None, device: str,
            batch_size: int,
            compile_model: bool, detector: str, insightface_root: Path | None, detection_threshold: float,
            min_face: int, max_upscale: float,
            start: float, duration: float | None, fps: float | None, codec: str, crf: int | None, preset: str | None,
            overwrite: bool,
            identity_guidance: bool, track_identity: bool, temporal_smoothing: float, keep_detail: float, deinterlace: str,
            snap_to_codebook: bool | None, report_path: Path | None, quiet: bool, backend: str, ray_address: str | None, workers: int | None) -> None:
    """Restore the faces in INPUT: a video, an image sequence (scan_%06d.dpx), a photo, or a folder of photos
    and videos (recursive)."""
    from .api import make_config, restore_video
    from .paths import check_side_output, resolve_paths
    from .report import Interrupted, Stopped, kept_when_stopped

    if backend == "local" and (ray_address is not None or workers is not None):
        raise click.UsageError("--ray-address and --workers need --backend ray")
    config = make_config(model=model, fidelity=fidelity, strength=strength, device=device, batch_size=batch_size,
                         compile=compile_model, detector=detector, insightface_root=insightface_root,
                         det_threshold=detection_threshold, min_face=min_face, max_upscale=max_upscale,
                         start=start, duration=duration, fps=fps, codec=codec, crf=crf, preset=preset, overwrite=overwrite,
                         identity_guidance=identity_guidance, track_identity=track_identity,
                         temporal_smoothing=temporal_smoothing, keep_detail=keep_detail, deinterlace=deinterlace,
                         snap_to_codebook=snap_to_codebook, quiet=quiet)
    if report_path is not None:  # before hours of work: never over the input or the output, in a writable folder
        source, target = resolve_paths(input, output, config.span())
        check_side_output(report_path, "--report", [source], target)
    _show_warnings(quiet)
    progress = TqdmProgress(enabled=not quiet and sys.stderr.isatty())
    try:
        if backend == "ray":
            from .distributed import restore_path_ray

            report = restore_path_ray(input, output, config, address=ray_address, workers=workers,
                                      progress=progress)
        else:
            report = restore_video(input, output, progress=progress, config=config)
    except (Stopped, Interrupted) as stopped:  # a folder stopped part way (the disk full, Ctrl-C, SIGTERM): its
        if report_path is not None:  # report says what was done
            try:
                stopped.report.write(report_path)
            except ClrfaceError as error:  # the stop's own line still ends the command; -q shows it too (an error:
                log.error("%s", error)  # what was done is not written down where the user asked)
        raise
    finally:
        progress.close()
    with kept_when_stopped(report):  # a stop while the summary is said: the output is whole all the same
        click.echo(report.summary())
        if report_path is not None:
            try:
                report.write(report_path)
            except ClrfaceError as error:
                raise ClrfaceError(f"{error}; what was restored is written (a rerun skips it)") from error
    if report.failed:  # a folder finished, but some of its files could not be restored (each named above)
        sys.exit(EXIT_SOME_FAILED)


@cli.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--detector", type=click.Choice(DETECTORS), default="retinaface", show_default=True)
@click.option("--insightface-root", type=click.Path(path_type=Path), default=None,
              help="Folder with an InsightFace model pack, for --detector insightface.")
@click.option("--threshold", "--detection-threshold", "threshold",
              type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=DEFAULT.det_threshold,
              show_default=f"{PHOTO_THRESHOLD}, as for photos",
              help="Detection score threshold (restore's --detection-threshold).")
@click.option("--draw", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also save a copy of IMAGE with boxes and landmarks drawn (debugging).")
def detect(image: Path, detector: str, insightface_root: Path | None, threshold: float, draw: Path | None) -> None:
    """Print the faces found in IMAGE: score, box and the 5 landmarks."""
    from .opencv import cv2
    from .paths import check_side_output
    from .photos import detect_faces, draw_faces

    if draw is not None:
        check_side_output(draw, "--draw", [image])
        if not cv2.haveImageWriter(str(draw)):
            raise ClrfaceError(f"--draw {draw}: not an image name OpenCV writes; use .png or .jpg")
    config = RestoreConfig(detector=detector, insightface_root=insightface_root, det_threshold=threshold)
    pixels, faces = detect_faces(image, config)
    click.echo(f"{len(faces)} face{'s' if len(faces) != 1 else ''} in {image}")
    for i, face in enumerate(faces, 1):
        box = ", ".join(f"{v:.1f}" for v in face.box)
        marks = " ".join(f"({x:.1f}, {y:.1f})" for x, y in face.landmarks)
        click.echo(f"  face {i}: score {face.score:.3f}  box [{box}]  landmarks {marks}")
    if draw is not None:
        draw_faces(pixels, faces, draw)
        click.echo(f"drawn -> {draw}")


@cli.command()
def models() -> None:
    """List the registered restorers and say which one `--model auto` uses."""
    from .restore.base import available_restorers, default_model_name

    specs = available_restorers()
    default = default_model_name()
    for name, spec in sorted(specs.items()):
        mark = "  (default: --model auto)" if name == default else ""
        click.echo(f"{name}: {spec.description}{mark}")


def _add_subcommands(group: click.Group) -> None:
    """Training, evaluation and benchmark verbs live beside their code; the group lists them."""
    from .eval.commands import bench_command, eval_command
    from .train.commands import export_command, prepare_faces_command, train_command

    for command in (prepare_faces_command, train_command, export_command, eval_command, bench_command):
        group.add_command(command)


_add_subcommands(cli)


def main() -> None:
    """Console-script entry point (`clrface-video`)."""
    import signal

    signal.signal(signal.SIGTERM, _raise_terminated)
    sys.unraisablehook = _stop_again
    # Python writes a redirected stdout (> log.txt, a pipe) in the locale's encoding, which on Windows is a code
    # page such as cp1252, and strictly: a path it cannot spell stopped the command after its work was done.
    # Such characters come out as \uXXXX escapes instead, as Python already writes them on stderr. Where stdout is
    # not strict (surrogateescape in Python's UTF-8 mode and C locale: a Linux name's own bytes), it is left so.
    if hasattr(sys.stdout, "reconfigure") and getattr(sys.stdout, "errors", None) == "strict":
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        cli(prog_name="clrface-video")
    except SystemExit as end:
        if end.code in (EXIT_INTERRUPTED, EXIT_TERMINATED) and "ray" in sys.modules:
            _exit_past_ray(end.code)
        raise


def _exit_past_ray(code: int) -> None:
    """End the process of a command that ran Ray (the Ray backend imported it) and was stopped by Ctrl-C or
    SIGTERM with os._exit, once Python's exit handlers have run and the output is flushed: Ray's driver, its
    ray.wait interrupted while its workers were still starting, is destroyed by a C++ exit handler
    (CoreWorkerProcess::HandleAtExit) while its IO thread still runs, which ended some such runs in SIGSEGV or an
    abort (exit -11, -6) after our last line, status and all lost.
    Everything the command writes (outputs, --report) is closed by then; only Ray's teardown is left out.
    Here in the console entry alone, never in a process that calls the click group (a test's CliRunner)."""
    import atexit
    import os

    atexit._run_exitfuncs()  # Ray's own ray.shutdown among them (done already: a no-op), logging's flush
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
