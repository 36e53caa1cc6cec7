"""CLRFaceRestorer.restore speed in faces/s by batch size, with and without identity guidance.

    python benchmarks/bench_restorer.py 1 16 [--device cpu] [--fidelity 0.5] [--weights PATH] [--repeats 2]
    OMP_NUM_THREADS=1 python benchmarks/bench_restorer.py 16 --cpu-time

--cpu-time times each call by the process's CPU seconds instead of the wall clock: on a CPU shared with
other jobs, the work a call does (with one thread, as no thread then spins waiting for another).

Uses the shipped weights when present, else a randomly initialised small_128 model (same architecture,
same cost); on CUDA also the peak GPU memory allocated by torch in each row. Guidance uses
faces.identity's FaceNet when it can be loaded, else the row says n/a.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from timing import best_seconds

from clrface_video.device import pick_device
from clrface_video.restore.base import RestoreBatch
from clrface_video.restore.model import CLRFaceConfig, CLRFaceModel, Knobs
from clrface_video.restore.restorer import SHIPPED_WEIGHTS, CLRFaceRestorer, default_identity_net
from clrface_video.restore.schedules import karras_sigmas, truncate_sigmas


def timed(restorer: CLRFaceRestorer, crops: np.ndarray, repeats: int, cpu_time: bool = False) -> float:
    """Best wall time (or CPU time) of `repeats` calls (after one warm-up call), seconds."""
    batch = RestoreBatch(crops, seeds=np.arange(len(crops)))
    sync = torch.cuda.synchronize if restorer.device.type == "cuda" else (lambda: None)
    clock = time.process_time if cpu_time else time.perf_counter
    return best_seconds(lambda: restorer.restore(batch), repeats, sync, clock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[1, 16], help="batch sizes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fidelity", type=float, default=0.5)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--cpu-time", action="store_true", help="CPU seconds of the process, not wall seconds")
    args = parser.parse_args()

    device = pick_device(args.device)
    path = args.weights or (SHIPPED_WEIGHTS if SHIPPED_WEIGHTS.is_file() else None)
    model = CLRFaceModel.load(path) if path else CLRFaceModel(CLRFaceConfig.small_128())
    knobs = model.fidelity_to_knobs(args.fidelity)
    cfg = model.cfg
    runs = len(truncate_sigmas(karras_sigmas(knobs.steps, cfg.sigma_min, cfg.sigma_max), knobs.t_star)) - 1
    ident = default_identity_net(device)
    guided_weight = max(knobs.guidance_weight, 1e-3)
    print(f"model: {path or 'random small_128 (no shipped weights)'}; device {device}, "
          f"{torch.get_num_threads()} threads; fidelity {args.fidelity}: t*={knobs.t_star:.2f} "
          f"({runs} of {knobs.steps} {cfg.sampler} steps), guidance weight {guided_weight:.3g}")
    restorers = {
        "off": CLRFaceRestorer(model, device, knobs=Knobs(knobs.t_star, 0.0, knobs.steps), compile=args.compile),
        "on": CLRFaceRestorer(model, device, identity_net=ident, knobs=Knobs(knobs.t_star, guided_weight, knobs.steps),
                              compile=args.compile) if ident is not None else None,
    }
    rng = np.random.default_rng(0)
    cuda = device.type == "cuda"
    unit = "cpu s/call" if args.cpu_time else "s/call"
    print(f"{'batch':>5}  {'guidance':>8}  {unit:>10}  {'faces/s':>8}" + ("  peak GPU MiB" if cuda else ""))
    for n in args.sizes:
        crops = rng.integers(0, 256, (n, cfg.resolution, cfg.resolution, 3), dtype=np.uint8)
        for name, restorer in restorers.items():
            if restorer is None:
                print(f"{n:>5}  {name:>8}  {'n/a':>10}  {'n/a':>8}")
                continue
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            seconds = timed(restorer, crops, args.repeats, args.cpu_time)
            peak = f"  {torch.cuda.max_memory_allocated(device) / 2**20:>12.0f}" if cuda else ""
            print(f"{n:>5}  {name:>8}  {seconds:>10.2f}  {n / seconds:>8.2f}{peak}", flush=True)


if __name__ == "__main__":
    main()
