"""bench on a tiny generated clip: every figure is filled in (end to end, restorer alone, memory growth)."""
from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest


def test_bench_command_fills_every_field_on_a_tiny_clip(tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the restore subprocesses: faster on a busy 2-core machine
    from clrface_video.eval.commands import bench_command

    out = tmp_path / "bench"
    result = CliRunner().invoke(bench_command, ["--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                                "--batch-sizes", "1,2", "--clip-frames", "2",
                                                "--memory", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "result.json").read_text())
    e2e = data["end_to_end"]
    for key, value in e2e.items():
        assert value is not None or key == "peak_gpu_mib", key  # GPU memory only on CUDA
    assert e2e["frames"] == 2 and e2e["faces"] >= 2 and e2e["fps"] > 0 and e2e["plain_fps"] > 0
    assert e2e["ratio_to_plain"] > 0 and e2e["peak_rss_mib"] > 50
    assert {"decode", "detect", "track", "restore", "paste", "encode"} <= set(e2e["stages"])
    assert [(r["batch_size"], r["precision"]) for r in data["restorer"]] == [(1, "fp32"), (2, "fp32")]
    assert all(r["faces_per_s"] > 0 for r in data["restorer"])
    assert [m["frames"] for m in data["memory"]] == [2, 20]
    assert math.isfinite(data["memory_growth_mib"])
    assert (out / "report.md").is_file()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "speed.png").is_file()


def test_bench_rejects_bad_batch_sizes():
    from click.testing import CliRunner

    from clrface_video.eval.commands import bench_command

    result = CliRunner().invoke(bench_command, ["--batch-sizes", "1,x"])
    assert result.exit_code == 2 and "comma-separated integers" in result.output


def test_bench_and_eval_refuse_bad_inputs_in_one_line_before_any_work(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from clrface_video.cli import cli
    from tests.media import make_audio_only, make_clip

    notes, photo = tmp_path / "notes.txt", tmp_path / "face.jpg"
    sound = make_audio_only(tmp_path / "sound.m4a")
    notes.write_text("not a video")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
    clip = make_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48), audio=False)
    faces = tmp_path / "faces"
    faces.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, words in [
        (["bench", notes, "--model", "baseline-bicubic-sharpen", "--device", "cpu"], ["notes.txt", "Invalid data"]),
        (["bench", clip, "--model", "nosuch"], ["--model must be one of", "got 'nosuch'"]),
        (["bench", photo], ["is a photo"]),
        (["bench", sound, "--model", "baseline-bicubic-sharpen", "--device", "cpu"], ["has no video stream"]),
        (["eval", clip, "--degrade-video", "--compare", tmp_path / "side.txt"], ["--compare", ".mp4"]),
        (["eval", faces, "--out", faces / "report"], ["--out", "inside the input"]),
    ]:
        result = CliRunner().invoke(cli, [str(a) for a in args])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert "av.error" not in lines[0] and "clrface_video." not in lines[0], lines[0]
        assert all(word in lines[0] for word in words), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_eval_without_dlib_names_the_extra_in_one_line_before_any_work(tmp_path, astronaut, monkeypatch):
    """The set-up command installs no dlib: eval restored every face, then stopped in a ModuleNotFoundError."""
    import sys

    from click.testing import CliRunner
    from PIL import Image

    from clrface_video.cli import cli
    from clrface_video.errors import ModelError
    from clrface_video.eval import judge, paired

    faces = tmp_path / "faces"
    faces.mkdir()
    Image.fromarray(astronaut[25:205, 135:315]).resize((128, 128)).save(faces / "a.png")
    monkeypatch.setitem(sys.modules, "dlib", None)  # import and find_spec both see no dlib
    judge._load.cache_clear()
    paired._shape68.cache_clear()
    result = CliRunner().invoke(cli, ["eval", str(faces), "--models", "baseline-bicubic-sharpen", "--limit", "1",
                                      "--device", "cpu", "--out", str(tmp_path / "out")])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and '".[eval]"' in lines[0], lines[0]
    assert not (tmp_path / "out").exists()
    face = np.zeros((1, 128, 128, 3), np.uint8)
    for call in (judge.judge_embeddings, paired.landmarks68):  # the library's callers get the same line
        with pytest.raises(ModelError, match=r"\.\[eval\]"):
            call(face)


@pytest.mark.parametrize("precision", ["fp16"])
def test_reduced_precision_is_skipped_on_the_cpu(precision):
    from clrface_video.eval.bench import restorer_speed

    rows, notes = restorer_speed("baseline-bicubic-sharpen", "cpu", [1], ["fp32", precision], min_seconds=0.01)
    assert [r.precision for r in rows] == ["fp32"] and precision in notes[0]


def test_bench_compile_reaches_the_restorer_alone_and_the_end_to_end_run(tmp_path, monkeypatch):
    """bench --compile times what restore --compile runs: torch.compile wraps the score network both in the
    restorer-alone timing and in the end-to-end child (here in-process, with torch.compile recorded, not run)."""
    import torch
    from tiny_models import randomised_model

    from clrface_video.eval import bench
    from clrface_video.restore import restorer as restorer_mod

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module, *a, **k: compiled.append(type(module).__name__) or module)
    monkeypatch.setattr(restorer_mod, "default_identity_net", lambda device: None)
    path = tmp_path / "tiny.safetensors"
    randomised_model().save(path)

    bench.restorer_speed(str(path), "cpu", [1], ["fp32"], min_seconds=0.01, compile=False)
    assert compiled == []
    rows, _ = bench.restorer_speed(str(path), "cpu", [1], ["fp32"], min_seconds=0.01, compile=True)
    assert compiled == ["Denoiser"] and rows[0].faces_per_s > 0

    clip = bench.make_clip(tmp_path / "clip.mp4", frames=2)
    args = {"video": str(clip), "work": str(tmp_path), "model": str(path), "device": "cpu", "batch_size": 2,
            "plain": False, "compile": True, "identity_guidance": True}
    done = bench._child(args)
    assert compiled == ["Denoiser", "Denoiser"] and done["frames"] == 2


def test_bench_identity_guidance_reaches_the_restorer_alone_and_the_end_to_end_run(tmp_path):
    """bench --no-identity-guidance times what restore --no-identity-guidance runs, in both timings."""
    from tiny_models import register_guidance_recorder

    from clrface_video.eval import bench

    asked = register_guidance_recorder("test-bench-guidance")
    for guidance in (True, False):
        asked.clear()
        bench.restorer_speed("test-bench-guidance", "cpu", [1], ["fp32"], min_seconds=0.01, identity_guidance=guidance)
        assert asked and set(asked) == {guidance}
    clip = bench.make_clip(tmp_path / "clip.mp4", frames=2)
    args = {"video": str(clip), "work": str(tmp_path), "model": "test-bench-guidance", "device": "cpu",
            "batch_size": 2, "plain": False, "compile": False, "identity_guidance": False}
    asked.clear()
    assert bench._child(args)["frames"] == 2 and asked == [False]


def test_bench_reads_the_peak_gpu_memory_of_the_gpu_the_job_runs_on(tmp_path, monkeypatch):
    """bench --device cuda:1 measured cuda:0 (torch's current device), which the job never touched. No GPU here:
    the end-to-end child is told it runs on cuda:1 and the peak-memory calls are recorded (the restore itself
    runs on the CPU)."""
    import torch

    from clrface_video import device as device_mod
    from clrface_video.eval import bench

    asked: list[object] = []
    monkeypatch.setattr(device_mod, "pick_device", lambda name="auto": torch.device("cuda", 1))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: asked.append(device))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: asked.append(device) or 2**20)
    clip = bench.make_clip(tmp_path / "clip.mp4", frames=2)
    args = {"video": str(clip), "work": str(tmp_path), "model": "baseline-bicubic-sharpen", "device": "cpu",
            "batch_size": 2, "plain": False, "compile": False, "identity_guidance": False}
    done = bench._child(args)
    assert asked == [torch.device("cuda", 1)] * 2 and done["peak_gpu_mib"] == 1.0


def test_bench_and_eval_import_without_the_resource_module():
    """Windows has no `resource` module: bench imported it at the top, and eval's report imports bench, so both
    commands stopped with ModuleNotFoundError there. Here `resource` is made unimportable, as on Windows."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['resource'] = None\n"
            "import clrface_video.eval.bench, clrface_video.eval.report, clrface_video.eval.run\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_peak_rss_is_in_mib_on_macos_and_windows(monkeypatch):
    """ru_maxrss is bytes on macOS (KiB on Linux): bench reported macOS figures 1024 times too large. Windows reads
    the peak working set from psapi (faked here: ctypes has no windll on Linux)."""
    import ctypes
    import resource
    import sys
    from types import SimpleNamespace

    from clrface_video.eval import bench

    usage = SimpleNamespace(ru_maxrss=3 * 2**30)  # 3 GiB, in bytes as macOS counts it
    monkeypatch.setattr(resource, "getrusage", lambda who: usage)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert bench.peak_rss_mib() == 3072
    usage.ru_maxrss = 3 * 2**20  # the same 3 GiB in KiB, as Linux counts it
    monkeypatch.setattr(sys, "platform", "linux")
    assert bench.peak_rss_mib() == 3072

    asked = []

    def memory_info(process, counters, size):
        asked.append((process.value, size == ctypes.sizeof(counters._obj)))
        counters._obj.PeakWorkingSetSize = 3 * 2**30
        return 1

    windll = SimpleNamespace(psapi=SimpleNamespace(GetProcessMemoryInfo=memory_info))
    monkeypatch.setattr(ctypes, "windll", windll, raising=False)
    monkeypatch.setattr(sys, "platform", "win32")
    assert bench.peak_rss_mib() == 3072
    assert asked == [(ctypes.c_void_p(-1).value, True)]  # this process (GetCurrentProcess's pseudo handle)


def test_bench_says_how_many_threads_torch_ran_on(tmp_path, monkeypatch):
    """README's advice on a shared CPU is OMP_NUM_THREADS=1; a bench run so said '2 CPU threads' and nothing of the
    one that torch used, so its figures read as the whole machine's."""
    import torch
    from click.testing import CliRunner

    from clrface_video.eval.commands import bench_command

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the end-to-end child's threads
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the restorer alone runs in this process
    try:
        result = CliRunner().invoke(bench_command, ["--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                                    "--batch-sizes", "1", "--clip-frames", "2", "--out",
                                                    str(tmp_path / "bench")])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    machine = json.loads((tmp_path / "bench" / "result.json").read_text())["machine"]
    assert machine.endswith(" on 1 of them"), machine
    assert "on 1 of them" in (tmp_path / "bench" / "report.md").read_text()
