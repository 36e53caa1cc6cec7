"""Speed and memory: end-to-end frames/s against plain PyAV, restorer faces/s by batch and precision, RSS growth."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import ClrfaceError, one_line
from ..io.decode import is_image_path
from ..io.output_stream import crf_or_default
from ..restore.base import check_model_name

PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
MIN_SECONDS = 0.5  # each (batch size, precision) is timed for at least this long, after one warm-up call
ASTRONAUT_FACE = (215.0, 125.0)  # (x, y) of the face in scikit-image's astronaut (NASA, public domain)


@dataclass(frozen=True)
class EndToEnd:
    """restore_video on one file, in a fresh process, next to a plain PyAV decode+encode of the same file.

    stages: the pipeline report's seconds per stage; ratio_to_plain: restore seconds / plain seconds;
    peak_rss_mib: that process's peak resident memory (peak_rss_mib()); peak_gpu_mib: torch's peak allocation (None on the CPU).
    """

    video: str
    model: str
    device: str
    frames: int
    width: int
    height: int
    faces: int
    tracks: int
    seconds: float
    fps: float
    stages: dict[str, float]
    plain_seconds: float
    plain_fps: float
    ratio_to_plain: float
    peak_rss_mib: float
    peak_gpu_mib: float | None


@dataclass(frozen=True)
class RestorerSpeed:
    batch_size: int
    precision: str
    faces_per_s: float
    seconds_per_batch: float
    calls: int
    peak_gpu_mib: float | None = None  # torch's peak allocation during these calls (CUDA only)


@dataclass(frozen=True)
class MemoryPoint:
    frames: int
    seconds: float
    peak_rss_mib: float


@dataclass(frozen=True)
class BenchResult:
    kind: str  # "bench"
    model: str
    device: str
    machine: str
    end_to_end: EndToEnd | None
    restorer: tuple[RestorerSpeed, ...]
    memory: tuple[MemoryPoint, ...]
    memory_growth_mib: float | None  # peak RSS of the long clip minus the short one
    notes: tuple[str, ...] = ()
    compile: bool = False  # the restorer's network ran under torch.compile (restore --compile)
    identity_guidance: bool = True  # restore --identity-guidance / --no-identity-guidance

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- a clip to measure on


def make_clip(path: Path, frames: int = 12, size: tuple[int, int] = (192, 192), fps: int = 25) -> Path:
    """A slow pan over the public-domain astronaut, libx264 yuv420p: a face in every frame."""
    import av
    from skimage import data

    from ..opencv import cv2

    image = data.astronaut()
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "ultrafast", "threads": "1"}
        for i in range(frames):
            t = i / max(frames - 1, 1)
            span, cx, cy = 340.0 - 40.0 * t, ASTRONAUT_FACE[0] + 15 * np.sin(2 * np.pi * t), ASTRONAUT_FACE[1] + 45
            half_w, half_h = span * width / height / 2, span / 2
            src = np.float32([[cx - half_w, cy - half_h], [cx + half_w, cy - half_h], [cx - half_w, cy + half_h]])
            matrix = cv2.getAffineTransform(src, np.float32([[0, 0], [width, 0], [0, height]]))
            view = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
            frame = av.VideoFrame.from_ndarray(view, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


# ----------------------------------------------------------------------------- end to end (child process)


def plain_transcode(video: Path, output: Path, crf: int = 18) -> tuple[int, float]:
    """Decode every frame to RGB and encode it again with libx264 (PyAV only): (frames, seconds)."""
    import av

    start = time.perf_counter()
    frames = 0
    with av.open(str(video)) as src, av.open(str(output), "w") as out:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate or Fraction(25))
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.options = {"crf": str(crf)}
        for frame in src.decode(vin):
            rgb = frame.to_ndarray(format="rgb24")
            again = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            again.pts = frames
            out.mux(vout.encode(again))
            frames += 1
        out.mux(vout.encode(None))
    return frames, time.perf_counter() - start


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB. ru_maxrss counts KiB on Linux and bytes on macOS; Windows has no
    `resource` module, and gives its peak working set through psapi's GetProcessMemoryInfo."""
    if sys.platform == "win32":
        return _peak_working_set() / 2**20
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _peak_working_set() -> int:
    """PeakWorkingSetSize of this process, in bytes (Windows only)."""
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):  # PROCESS_MEMORY_COUNTERS
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
                    *((name, ctypes.c_size_t) for name in (
                        "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage", "QuotaPagedPoolUsage",
                        "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage"))]

    counters = Counters()
    counters.cb = ctypes.sizeof(counters)
    this_process = wintypes.HANDLE(-1)  # what GetCurrentProcess() returns
    if not ctypes.windll.psapi.GetProcessMemoryInfo(this_process, ctypes.byref(counters), counters.cb):
        raise OSError("GetProcessMemoryInfo failed")
    return int(counters.PeakWorkingSetSize)


def _child(args: dict) -> dict:
    """Run in a fresh interpreter: the plain transcode, then restore_video; print one JSON line."""
    import torch

    from ..config import RestoreConfig
    from ..device import pick_device
    from ..io.decode import probe_video
    from ..pipeline import restore_video

    video, work = Path(args["video"]), Path(args["work"])
    config = RestoreConfig(model=args["model"], device=args["device"], batch_size=args["batch_size"],
                           compile=args["compile"], identity_guidance=args["identity_guidance"],
                           overwrite=True, quiet=True)
    plain_frames, plain_seconds = plain_transcode(video, work / "plain.mp4", crf_or_default(config.crf)) if args["plain"] else (0, 0.0)
    device = pick_device(config.device)
    cuda = device.type == "cuda"
    if cuda:  # the device the job runs on (--device cuda:1), not the current one
        torch.cuda.reset_peak_memory_stats(device)
    report = restore_video(video, work / "restored.mp4", config)
    info = probe_video(video)
    return {"video": str(video), "model": report.model, "device": report.device, "frames": report.frames,
            "width": info.width, "height": info.height, "faces": report.faces, "tracks": report.tracks,
            "seconds": report.seconds, "stages": report.stages, "plain_frames": plain_frames,
            "plain_seconds": plain_seconds,
            "peak_rss_mib": peak_rss_mib(),
            "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None}


def run_child(video: Path, model: str, device: str, batch_size: int = 16, plain: bool = True,
              compile: bool = False, identity_guidance: bool = True) -> dict:
    """_child in a fresh `python -m clrface_video.eval.bench` process (so peak RSS is this job's alone)."""
    with tempfile.TemporaryDirectory(prefix="clrface-bench-") as work:
        args = {"video": str(video), "work": work, "model": model, "device": device, "batch_size": batch_size,
                "plain": plain, "compile": compile, "identity_guidance": identity_guidance}
        done = subprocess.run([sys.executable, "-m", "clrface_video.eval.bench", json.dumps(args)],
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines()[-1:] or ["no output"])[0].removeprefix("error: ")
        raise ClrfaceError(f"bench: restoring {video.name} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def end_to_end(video: Path, model: str, device: str, batch_size: int = 16, compile: bool = False,
               identity_guidance: bool = True) -> EndToEnd:
    """One timed restore_video of `video` (with compile, the compiler's waits are in the seconds)."""
    r = run_child(video, model, device, batch_size, compile=compile, identity_guidance=identity_guidance)
    fps = r["frames"] / r["seconds"] if r["seconds"] else float("nan")
    plain_fps = r["plain_frames"] / r["plain_seconds"] if r["plain_seconds"] else float("nan")
    return EndToEnd(r["video"], r["model"], r["device"], r["frames"], r["width"], r["height"], r["faces"],
                    r["tracks"], round(r["seconds"], 4), round(fps, 3), r["stages"], round(r["plain_seconds"], 4),
                    round(plain_fps, 3), round(r["seconds"] / r["plain_seconds"], 3) if r["plain_seconds"] else
                    float("nan"), round(r["peak_rss_mib"], 1),
                    None if r["peak_gpu_mib"] is None else round(r["peak_gpu_mib"], 1))


def memory_growth(model: str, device: str, frames: int = 12, factor: int = 10,
                  size: tuple[int, int] = (192, 192), compile: bool = False,
                  identity_guidance: bool = True) -> tuple[MemoryPoint, ...]:
    """Peak RSS of restoring a generated clip and one `factor` times longer, each in a fresh process."""
    points = []
    with tempfile.TemporaryDirectory(prefix="clrface-mem-") as tmp:
        for n in (frames, frames * factor):
            clip = make_clip(Path(tmp) / f"clip_{n}.mp4", n, size)
            r = run_child(clip, model, device, plain=False, compile=compile, identity_guidance=identity_guidance)
            points.append(MemoryPoint(r["frames"], round(r["seconds"], 3), round(r["peak_rss_mib"], 1)))
    return tuple(points)


# ----------------------------------------------------------------------------- the restorer alone


def sample_crops(count: int, size: int) -> np.ndarray:
    """`count` slightly different (S, S, 3) uint8 crops of the astronaut's face."""
    from skimage import data

    from ..opencv import cv2

    face = cv2.resize(data.astronaut()[20:240, 105:325], (size, size), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 3, (min(count, 8), size, size, 3))
    return np.stack([np.clip(face + noise[i % len(noise)], 0, 255).astype(np.uint8) for i in range(count)])


def restorer_speed(model: str, device: str, batch_sizes: Sequence[int], precisions: Sequence[str],
                   min_seconds: float = MIN_SECONDS, compile: bool = False, identity_guidance: bool = True,
                   ) -> tuple[tuple[RestorerSpeed, ...], tuple[str, ...]]:
    """faces/s of the restorer alone for each batch size and precision (autocast; fp32 only on the CPU);
    each size's warm-up call, untimed, also takes the compiler's wait when compile is on."""
    import torch

    from ..device import pick_device
    from ..restore.base import RestoreBatch, make_restorer

    dev = pick_device(device)
    restorer = make_restorer(model, device=dev, compile=compile)
    rows, notes = [], []
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ClrfaceError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        if precision != "fp32" and dev.type != "cuda":
            notes.append(f"{precision} skipped: reduced precision is measured on CUDA only")
            continue
        for bs in batch_sizes:
            batch = RestoreBatch(crops=sample_crops(bs, int(restorer.resolution)),
                                 seeds=np.arange(bs, dtype=np.int64), guidance=identity_guidance)
            dtype = getattr(torch, PRECISIONS[precision]) if PRECISIONS[precision] else None
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                restorer.restore(batch)  # warm-up
                calls, start = 0, time.perf_counter()
                while calls == 0 or time.perf_counter() - start < min_seconds:
                    restorer.restore(batch)
                    calls += 1
                elapsed = time.perf_counter() - start
            gpu = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if dev.type == "cuda" else None
            rows.append(RestorerSpeed(bs, precision, round(bs * calls / elapsed, 3), round(elapsed / calls, 5), calls,
                                      gpu))
    return tuple(rows), tuple(notes)


def run_bench(video: Path | None, *, model: str, device: str, batch_sizes: Sequence[int],
              precisions: Sequence[str], memory: bool, clip_frames: int = 12,
              clip_size: tuple[int, int] = (192, 192), compile: bool = False,
              identity_guidance: bool = True) -> BenchResult:
    """The whole bench: end to end on `video` (a generated clip when None), restorer alone, memory growth."""
    notes: list[str] = []
    check_model_name(model)  # before any timing
    if video is not None and is_image_path(video):
        raise ClrfaceError(f"bench times videos; {video.name} is a photo (leave VIDEO out to time a generated clip)")
    if video is not None:
        from ..io.decode import probe_video

        probe_video(video)  # a file with no video, or none readable, said in one line before any timing
    with tempfile.TemporaryDirectory(prefix="clrface-clip-") as tmp:
        if video is None:
            video = make_clip(Path(tmp) / "astronaut.mp4", clip_frames, clip_size)
            notes.append(f"generated clip: {clip_frames} frames, {clip_size[0]}x{clip_size[1]}, astronaut pan")
        e2e = end_to_end(video, model, device, compile=compile, identity_guidance=identity_guidance)
    speed, speed_notes = restorer_speed(model, device, batch_sizes, precisions, compile=compile,
                                        identity_guidance=identity_guidance)
    notes += speed_notes
    points = memory_growth(model, device, clip_frames, 10, clip_size, compile=compile,
                           identity_guidance=identity_guidance) if memory else ()
    growth = round(points[1].peak_rss_mib - points[0].peak_rss_mib, 1) if points else None
    torch = __import__("torch")  # its threads, not the machine's: OMP_NUM_THREADS=1 on a shared CPU ran on one of 2
    machine = f"{platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__} on " \
              f"{torch.get_num_threads()} of them"
    return BenchResult("bench", model, device, machine, e2e, speed, points, growth, tuple(notes), compile,
                       identity_guidance)


def _child_main() -> int:
    """The child process: its result as a JSON line, or a user error as one `error:` line (exit 2)."""
    import av

    try:
        print(json.dumps(_child(json.loads(sys.argv[1]))))
    except (ClrfaceError, av.error.FFmpegError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
