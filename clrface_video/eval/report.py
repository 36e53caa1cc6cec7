"""Eval and bench reports: JSON for machines, Markdown with image grids and plots for people, side-by-side video."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic
from ..paths import output_folder
from .bench import BenchResult
from .paired import Grid, PairedResult
from .temporal import TemporalResult

GRID_CELL = 160  # pixels per face in the before/after grid
LABEL_HEIGHT = 18
Result = PairedResult | TemporalResult | BenchResult


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    images: tuple[Path, ...]


# ----------------------------------------------------------------------------- JSON


def jsonable(value: object) -> object:
    """Plain JSON types; NaN -> null, +-inf -> "inf" / "-inf" (JSON has no such numbers)."""
    if is_dataclass(value):
        value = value.to_dict() if hasattr(value, "to_dict") else {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write(path: Path, data: bytes) -> None:
    with atomic(path) as temp:
        temp.write_bytes(data)


def provenance() -> dict[str, str | None]:
    """The package version and, in a git checkout, the commit: eval figures are comparable at one code version."""
    import subprocess

    from .. import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
        commit = done.stdout.strip() or None if done.returncode == 0 else None
        if commit:
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "clrface_video"],
                                   capture_output=True, text=True, timeout=10, check=False).stdout.strip()
            commit += "+uncommitted" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"version": __version__, "commit": commit}


def write_json(result: Result, path: Path, command: str = "") -> None:
    payload = {"command": command, "code": provenance(), **jsonable(result)}
    atomic_write(path, (json.dumps(payload, indent=2) + "\n").encode())


# ----------------------------------------------------------------------------- pictures


def save_grid(grid: Grid, path: Path, cell: int = GRID_CELL) -> Path:
    """A PNG with one row per image and one labelled column per method (clean, input, restorers)."""
    columns = list(grid.columns)
    first = next(iter(grid.columns.values()))[0]
    cell_w = round(cell * first.shape[1] / first.shape[0])
    canvas = Image.new("RGB", (cell_w * len(columns), LABEL_HEIGHT + cell * len(grid.names)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(columns):
        draw.text((c * cell_w + 4, 3), name[:28], fill="black")
        for r, image in enumerate(grid.columns[name]):
            tile = Image.fromarray(np.ascontiguousarray(image)).resize((cell_w, cell), Image.LANCZOS)
            canvas.paste(tile, (c * cell_w, LABEL_HEIGHT + r * cell))
    canvas.save(path)
    return path


def video_grid(result: TemporalResult, count: int = 3) -> Grid:
    """`count` evenly spaced frames (rows) of every method (columns), cropped to the faces when there are any."""
    assert result.outputs is not None
    picks = np.linspace(0, result.frames - 1, num=min(count, result.frames)).round().astype(int)
    x1, y1, x2, y2 = result.face_box or (0, 0, result.width, result.height)
    return Grid(tuple(f"frame {i}" for i in picks),
                {m: np.stack([frames[i][y1:y2, x1:x2] for i in picks]) for m, frames in result.outputs.items()})


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bars(summary: Sequence, names: Sequence[str], path: Path, title: str) -> Path:
    """One small bar chart per figure, one bar per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 3.0), squeeze=False)
    methods = [s.method for s in summary]
    colours = plt.cm.tab10(np.arange(len(methods)) % 10)
    for ax, name in zip(axes[0], names):
        values = [getattr(s, name) for s in summary]
        ax.bar(range(len(methods)), [v if math.isfinite(v) else 0 for v in values], color=colours)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(len(methods)), [m[:18] for m in methods], rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_warping(result: TemporalResult, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    for row in result.rows:
        ax.plot(range(1, len(row.warping_error_per_frame) + 1), row.warping_error_per_frame, label=row.method)
    ax.set_xlabel("frame")
    ax.set_ylabel("warping error (0..255)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_speed(result: BenchResult, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    for precision in dict.fromkeys(r.precision for r in result.restorer):
        rows = [r for r in result.restorer if r.precision == precision]
        ax.plot([r.batch_size for r in rows], [r.faces_per_s for r in rows], marker="o", label=precision)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("faces/s")
    ax.set_title(f"{result.model} on {result.device}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- Markdown


def fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "inf" if value == math.inf else "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def table(rows: Sequence, names: Sequence[str] | None = None) -> list[str]:
    """A Markdown table of dataclass rows (all fields, or `names`)."""
    if not rows:
        return ["(none)"]
    names = names or [f.name for f in fields(rows[0]) if not isinstance(getattr(rows[0], f.name), (tuple, dict))]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(fmt(getattr(r, n)) for n in names) + " |" for r in rows]
    return lines


def delta_table(deltas: Sequence) -> list[str]:
    """One row per restorer, one column per figure: mean ± half-width of (method - input)."""
    metrics = list(dict.fromkeys(d.metric for d in deltas))
    lines = ["| method | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 1)]
    for method in dict.fromkeys(d.method for d in deltas):
        cells = {d.metric: f"{fmt(d.mean)} ± {fmt(d.ci95)}" for d in deltas if d.method == method}
        lines.append(f"| {method} | " + " | ".join(cells.get(m, "") for m in metrics) + " |")
    return lines


def _markdown(result: Result, images: dict[str, Path], command: str) -> list[str]:
    out = ["# clrface-video bench" if isinstance(result, BenchResult) else f"# clrface-video eval: {result.kind}", ""]
    if command:
        out += ["Produced by:", "", "```", command, "```", ""]
    code = provenance()
    out += [f"Code: clrface-video {code['version']}" + (f", commit {code['commit']}" if code["commit"] else "") + ".",
            ""]
    if isinstance(result, PairedResult):
        out += [f"Source: `{result.source}`; faces at {result.size}x{result.size}; FaceNet: {result.facenet}.", ""]
        if result.degradation is not None:
            recipe = (f"Degradation: `train.degrade.degrade` with seed {result.seed} (face i draws from "
                      f"`default_rng((seed, i))`), DegradeConfig: `{json.dumps(result.degradation)}`.")
            out += [recipe, ""]
        out += ["## Means", ""] + table(result.summary) + [""]
        if result.deltas:
            out += ["## Difference to the input, image by image (mean ± 95% interval)", "", *delta_table(result.deltas),
                    ""]
    elif isinstance(result, TemporalResult):
        clean = f", clean: `{result.clean}`" if result.clean else ""
        what = (f"Source: `{result.source}`{clean}; {result.frames} frames of {result.width}x{result.height}, "
                f"{result.faces} faces in {result.tracks} tracks; restored by {result.restore_path}.")
        out += [what, ""]
        if result.degradation is not None:
            out += [f"Degraded here from the clean source: `{json.dumps(result.degradation)}`.", ""]
        out += ["## Temporal figures", ""]
        out += table(result.rows) + [""]
    else:
        compiled = ", its network under torch.compile" if result.compile else ""
        compiled += "" if result.identity_guidance else ", without identity guidance"
        out += [f"Model `{result.model}` on `{result.device}`{compiled} ({result.machine}).", ""]
        if result.end_to_end is not None:
            e = result.end_to_end
            out += ["## End to end", ""] + table([e]) + ["", "Seconds per stage:", ""]
            out += ["| " + " | ".join(e.stages) + " |", "|" + "---|" * len(e.stages),
                    "| " + " | ".join(fmt(v) for v in e.stages.values()) + " |", ""]
        out += ["## Restorer alone", ""] + table(result.restorer) + [""]
        if result.memory:
            growth = f"Growth: {fmt(result.memory_growth_mib)} MiB for 10x the frames."
            out += ["## Memory growth", "", *table(result.memory), "", growth, ""]
    for note in getattr(result, "notes", ()):
        out.append(f"- {note}")
    for skipped in getattr(result, "skipped_models", ()):
        out.append(f"- skipped {skipped}")
    out.append("")
    for title, path in images.items():
        out += [f"## {title}", "", f"![{title}]({path.name})", ""]
    if isinstance(result, PairedResult):
        out += ["## Per image", ""] + table(result.rows) + [""]
    return out


def has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_report(result: Result, out_dir: Path, command: str = "") -> ReportFiles:
    """Write result.json, report.md and its PNGs into `out_dir` (created if needed).

    Image grids need only Pillow; the plots need matplotlib (the `eval` extra) and are left out, with a
    line saying so, when it is not installed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, Path] = {}
    plots = has_matplotlib()
    if isinstance(result, PairedResult):
        if result.grid is not None:
            images["Before / after"] = save_grid(result.grid, out_dir / "grid.png")
        names = [f.name for f in fields(result.summary[0]) if f.name not in ("method", "images")]
        if plots:
            images["Means by method"] = plot_bars(result.summary, names, out_dir / "means.png", result.kind)
    elif isinstance(result, TemporalResult):
        if result.outputs:
            images["Faces by method"] = save_grid(video_grid(result), out_dir / "frames.png", cell=200)
        if plots:
            images["Warping error per frame"] = plot_warping(result, out_dir / "warping.png")
            chart = ["warping_error", "identity_spread_facenet", "landmark_jitter_added"]
            images["Temporal figures, chart"] = plot_bars(result.rows, chart, out_dir / "temporal.png", "video")
    elif result.restorer and plots:
        images["Restorer speed"] = plot_speed(result, out_dir / "speed.png")
    json_path, md_path = out_dir / "result.json", out_dir / "report.md"
    write_json(result, json_path, command)
    lines = _markdown(result, images, command)
    if not plots:
        lines.append("(Plots left out: pip install matplotlib, or clrface-video[eval].)")
    atomic_write(md_path, "\n".join(lines).encode())
    return ReportFiles(json_path, md_path, tuple(images.values()))


# ----------------------------------------------------------------------------- side by side


def write_compare(left: Sequence[np.ndarray], right: Sequence[np.ndarray], path: Path, fps: float = 25.0) -> Path:
    """An H.264 video of (left | right) frames side by side (input | output); written atomically, into its folder,
    made where missing (removed again if the write fails), as -o and --report make theirs."""
    import av

    if len(left) != len(right) or not left:
        raise ValueError("write_compare needs two equally long, non-empty frame lists")
    h, w = left[0].shape[:2]
    h2, w2 = h + h % 2, 2 * w + (2 * w) % 2
    with output_folder(path.parent), atomic(path) as temp, av.open(str(temp), "w") as out:
            stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
            stream.options = {"crf": "18"}
            for i, (a, b) in enumerate(zip(left, right)):
                canvas = np.zeros((h2, w2, 3), np.uint8)
                canvas[:h, :w], canvas[:h, w:2 * w] = a, b
                frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    return path
