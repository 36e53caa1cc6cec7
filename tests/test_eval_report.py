"""Reports: the Markdown renders with its pictures, JSON is strict, and the side-by-side video has both halves."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clrface_video.eval.bench import BenchResult, EndToEnd, MemoryPoint, RestorerSpeed
from clrface_video.eval.paired import Grid, ImageScore, PairedResult, summarise
from clrface_video.eval.report import write_compare, write_report

pytest.importorskip("matplotlib", reason="eval reports need matplotlib (pip install .[eval])")


def _paired(astronaut: np.ndarray) -> PairedResult:
    face = astronaut[20:240, 105:325:2][::2]  # 110 x 110
    rows = (ImageScore("a", "input", float("inf"), 1.0, 1.0, 1.0, 0.0, 50.0),
            ImageScore("a", "baseline", 30.0, 0.9, 0.95, 0.8, 0.01, 80.0))
    grid = Grid(("a",), {"clean": face[None], "input": face[None], "baseline": face[None]})
    return PairedResult("paired", "faces/", 110, 0, {"blur_prob": 0.9}, ("input", "baseline"), rows,
                        summarise(rows, ("input", "baseline")), ("clrface: no weights",), {"score": 1.0},
                        "test", grid=grid)


def test_markdown_report_renders_with_its_images(tmp_path, astronaut):
    from PIL import Image

    files = write_report(_paired(astronaut), tmp_path / "out", "clrface-video eval faces/ --limit 1")
    md = files.markdown.read_text()
    assert "clrface-video eval faces/ --limit 1" in md
    assert "| input | 1 | inf | 1 |" in md and "| baseline | 1 | 30 | 0.9 |" in md
    assert "skipped clrface: no weights" in md
    for image in files.images:
        assert f"]({image.name})" in md
        with Image.open(image) as png:
            assert png.format == "PNG" and png.size[0] > 100
    grid = Image.open(tmp_path / "out" / "grid.png")
    assert grid.size == (3 * 160, 18 + 160)  # three labelled columns, one face
    data = json.loads(files.json.read_text())  # strict JSON: inf is a string, not Infinity
    assert data["rows"][0]["psnr"] == "inf" and data["summary"][1]["psnr"] == 30.0
    assert "grid" not in data


def test_bench_report_renders_with_its_plot(tmp_path):
    e2e = EndToEnd("clip.mp4", "baseline", "cpu", 10, 64, 64, 10, 1, 2.0, 5.0, {"decode": 0.1, "restore": 1.0},
                   0.5, 20.0, 4.0, 300.0, None)
    speed = (RestorerSpeed(1, "fp32", 100.0, 0.01, 50), RestorerSpeed(4, "fp32", 300.0, 0.013, 40))
    result = BenchResult("bench", "baseline", "cpu", "test", e2e, speed,
                         (MemoryPoint(10, 1.0, 300.0), MemoryPoint(100, 9.0, 302.0)), 2.0)
    files = write_report(result, tmp_path, "clrface-video bench")
    md = files.markdown.read_text()
    assert "![Restorer speed](speed.png)" in md and (tmp_path / "speed.png").is_file()
    assert "| decode | restore |" in md and "Growth: 2 MiB" in md
    assert json.loads(files.json.read_text())["end_to_end"]["peak_gpu_mib"] is None


def test_side_by_side_video_holds_input_and_output(tmp_path):
    import av

    left = [np.full((48, 65, 3), 30, np.uint8) for _ in range(3)]
    right = [np.full((48, 65, 3), 220, np.uint8) for _ in range(3)]
    path = write_compare(left, right, tmp_path / "cmp.mp4", fps=10)
    with av.open(str(path)) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (48, 130, 3)
    assert abs(float(frames[1][:, :60].mean()) - 30) < 6 and abs(float(frames[1][:, 70:].mean()) - 220) < 6
