"""`clrface-video eval` and `clrface-video bench`: click commands that parse options and call eval/."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from ..errors import ClrfaceError, OptionError

DEFAULT_MODELS = "baseline-bicubic-sharpen,clrface"


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        sizes = [int(v) for v in _names(value)]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,4,16, got {value!r}") from None
    if not sizes or any(not 1 <= s <= 4096 for s in sizes):
        raise click.BadParameter("batch sizes must be between 1 and 4096")
    return sizes


def _command_line(name: str) -> str:
    """The command as a user types it, for the report (the README quotes it next to the numbers)."""
    args = sys.argv[1:]
    args = args[args.index(name) + 1:] if name in args else args
    return " ".join(["clrface-video", name, *(shlex.quote(a) for a in args)])


def _fail(error: ClrfaceError) -> None:
    """The error's one line, an option named by its flag (--model, --device) as `restore` names it."""
    from ..cli import FLAGS  # cli adds these commands to its group as it loads

    click.echo(f"error: {error.named(FLAGS) if isinstance(error, OptionError) else error}", err=True)
    sys.exit(2)


COMPARE_SUFFIXES = (".mp4", ".mkv", ".mov")  # containers that hold the H.264 side-by-side video


@click.command("eval")
@click.argument("source", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--clean", type=click.Path(exists=True, path_type=Path),
              help="Clean faces folder (with --degraded), or the clean video of a degraded SOURCE video.")
@click.option("--degraded", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Degraded faces folder matching --clean by file name (an existing pair of folders).")
@click.option("--unpaired", is_flag=True, help="SOURCE is a folder of real degraded faces (no ground truth).")
@click.option("--degrade-video", is_flag=True,
              help="SOURCE is a clean video: degrade it with the seeded recipe (--seed) and score against it.")
@click.option("--models", default=DEFAULT_MODELS, show_default=True,
              help="Comma-separated restorers to compare with the input; unavailable ones are skipped.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use the first N faces (by file name).")
@click.option("--blurriest", type=click.IntRange(1), default=None,
              help="With --unpaired: only the N faces whose input is least sharp, where softness shows most.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the degradation recipe.")
@click.option("--size", type=click.IntRange(16, 1024), default=128, show_default=True,
              help="Side the faces are evaluated at (resized; restorers at other sizes are resized to and from).")
@click.option("--max-frames", type=click.IntRange(2), default=24, show_default=True,
              help="Videos: evaluate the first N frames.")
@click.option("--fidelity", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="The model's --fidelity, as in restore: 0 trusts the face prior, 1 stays close to the input.")
@click.option("--identity-guidance/--no-identity-guidance", default=True, show_default=True,
              help="The model's identity guidance, as in restore.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("eval-out"),
              show_default=True, help="Folder for result.json, report.md and the pictures.")
@click.option("--compare", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a side-by-side (input | output) video here (last model; one face per frame for "
                   "image sets).")
def eval_command(source: Path | None, clean: Path | None, degraded: Path | None, unpaired: bool,
                 degrade_video: bool, models: str,
                 limit: int | None, blurriest: int | None, seed: int, size: int, max_frames: int, fidelity: float,
                 identity_guidance: bool, device: str,
                 out_dir: Path, compare: Path | None) -> None:
    """Quality, identity and temporal figures of the input, the baseline and the model, side by side.

    SOURCE is a folder of clean aligned faces (degraded with the seeded training recipe), a folder of
    real degraded faces with --unpaired, or a video (with --clean CLEAN.mp4, or --degrade-video for a clean
    one, for PSNR/SSIM in face regions).
    """
    from ..paths import check_outside, check_side_output
    from . import judge, report, run

    try:
        judge.check_installed()  # every evaluation scores identity with dlib's judge
        inputs = [p for p in (source, clean, degraded) if p is not None]
        if compare is not None:  # before the evaluation: never over an input, in a writable folder, an H.264 file
            check_side_output(compare, "--compare", inputs)
            if compare.suffix.lower() not in COMPARE_SUFFIXES:
                raise ClrfaceError(f"--compare {compare.name}: name the side-by-side video .mp4, .mkv or .mov")
        for given in (p for p in inputs if p.is_dir()):  # an --out that is a file click refuses itself
            check_outside(out_dir, given, "--out")
        result = run.evaluate(source, _names(models), clean=clean, degraded=degraded, unpaired=unpaired,
                              degrade_video=degrade_video, limit=limit, blurriest=blurriest, seed=seed, size=size,
                              max_frames=max_frames, fidelity=fidelity, identity_guidance=identity_guidance,
                              device=device)
        for skipped in result.skipped_models:
            click.echo(f"warning: skipped {skipped}", err=True)
        files = report.write_report(result, out_dir, _command_line("eval"))
        if compare is not None:
            _write_compare(result, compare)
            click.echo(f"side by side: {compare}")
    except ClrfaceError as error:
        _fail(error)
    click.echo(f"wrote {files.markdown} and {files.json}")


def _write_compare(result, path: Path) -> None:
    from . import report
    from .paired import INPUT
    from .temporal import TemporalResult

    if isinstance(result, TemporalResult):
        assert result.outputs is not None
        shown = [m for m in result.outputs if "per-frame" not in m][-1]  # the last model, with track identity
        report.write_compare(result.outputs[INPUT], result.outputs[shown], path)
    elif result.grid is not None:
        cols = [c for c in result.grid.columns if c != "clean"]
        report.write_compare(list(result.grid.columns[cols[0]]), list(result.grid.columns[cols[-1]]), path, fps=1)


@click.command("bench")
@click.argument("video", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", default="auto", show_default=True,
              help="Restorer to time: a registered name or .safetensors; auto = the default model.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-sizes", callback=_batch_sizes, default=None,
              help="Restorer batch sizes  [default: 1,4,16 on the CPU; 1,4,16,64,256 on CUDA]")
@click.option("--precisions", default=None, help="fp32,bf16,fp16  [default: fp32 on the CPU; all three on CUDA]")
@click.option("--memory", is_flag=True, help="Also measure peak RSS on a short and a 10x longer generated clip.")
@click.option("--clip-frames", type=click.IntRange(2), default=12, show_default=True,
              help="Frames of the generated clip (used when VIDEO is not given, and for --memory).")
@click.option("--compile", "compile_", is_flag=True,
              help="Time the restorer under torch.compile, as restore --compile runs it.")
@click.option("--identity-guidance/--no-identity-guidance", default=True, show_default=True,
              help="Time the restorer with or without its identity guidance, as restore does.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-out"),
              show_default=True, help="Folder for result.json, report.md and the plot.")
def bench_command(video: Path | None, model: str, device: str, batch_sizes: list[int] | None,
                  precisions: str | None, memory: bool, clip_frames: int, compile_: bool, identity_guidance: bool,
                  out_dir: Path) -> None:
    """Speed and memory: end to end against plain PyAV decode+encode, the restorer alone, memory growth."""
    from ..device import pick_device
    from . import bench, report

    try:
        cuda = pick_device(device).type == "cuda"
        sizes = batch_sizes or ([1, 4, 16, 64, 256] if cuda else [1, 4, 16])
        precs = _names(precisions) if precisions else (["fp32", "bf16", "fp16"] if cuda else ["fp32"])
        result = bench.run_bench(video, model=model, device=device, batch_sizes=sizes, precisions=precs,
                                 memory=memory, clip_frames=clip_frames, compile=compile_,
                                 identity_guidance=identity_guidance)
        files = report.write_report(result, out_dir, _command_line("bench"))
    except ClrfaceError as error:
        _fail(error)
    e = result.end_to_end
    if e is not None:
        click.echo(f"{e.frames} frames at {e.fps:.2f} frames/s ({e.ratio_to_plain:.1f}x a plain decode+encode), "
                   f"peak RSS {e.peak_rss_mib:.0f} MiB")
    click.echo(f"wrote {files.markdown} and {files.json}")
