"""Data-parallel training on the CPU (gloo): gradient averaging, weight broadcast, and a torchrun launch."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from clrface_video.train.ddp import Dist, broadcast_module, sync_gradients
from tests.test_train_stages import make_prepared


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    world = Dist(rank, 2, rank)
    torch.manual_seed(rank)  # different initial weights on each rank
    layer = nn.Linear(3, 2)
    broadcast_module(layer, world)
    layer.weight.grad = torch.full_like(layer.weight, float(rank + 1))  # rank 0: 1, rank 1: 2
    layer.bias.grad = torch.arange(2.0) * (rank + 1)
    sync_gradients(list(layer.parameters()), world)
    torch.save({"weight": layer.weight.detach(), "wgrad": layer.weight.grad, "bgrad": layer.bias.grad},
               f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_gradients_are_averaged_and_weights_start_equal(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(r0["weight"], r1["weight"])  # rank 1 took rank 0's weights
    torch.manual_seed(0)
    assert torch.equal(r0["weight"], nn.Linear(3, 2).weight.detach())
    for r in (r0, r1):
        assert torch.allclose(r["wgrad"], torch.full((2, 3), 1.5))
        assert torch.allclose(r["bgrad"], torch.tensor([0.0, 1.5]))


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_and_rank_0_writes(tmp_path: Path, astronaut: np.ndarray) -> None:
    data = make_prepared(tmp_path / "data", astronaut)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "clrface_video", "train", str(data), "--stage", "irn", "--run-dir", str(run), "--config", "tiny",
           "--steps", "3", "--batch-size", "2", "--device", "cpu", "--threads", "1", "--identity-weight", "0",
           "--codec-prob", "0", "--log-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 0, errors or proc.stderr[:3000] + "\n...\n" + proc.stderr[-1500:]  # the ranks' own lines first
    assert "batch 2 x 2" in proc.stdout  # two ranks, one announcement
    steps = [json.loads(line)["step"] for line in (run / "irn" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # rank 0 alone logs
    assert json.loads((run / "irn" / "state.json").read_text())["step"] == 3
    from safetensors.torch import load_file

    weights = load_file(str(run / "irn" / "weights.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_every_rank_waits_for_a_stage_to_be_written_before_loading_it_for_the_next(
        tmp_path: Path, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 0 alone writes a stage's weights when the stage ends; the next stage loads every finished stage on every
    rank. Without a barrier in between, rank 1 loaded the autoencoder before (or while) rank 0 wrote it, and trained
    the next stage over other frozen weights than rank 0's. Two ranks are stood in for by one process that records
    the order of the calls."""
    from clrface_video.train import runner
    from clrface_video.train.checkpoint import StageState
    from clrface_video.train.options import TrainOptions

    calls: list[str] = []
    monkeypatch.setattr(runner, "init_distributed", lambda device: Dist(0, 2, 0))
    monkeypatch.setattr(runner, "barrier", lambda world: calls.append("barrier"))
    monkeypatch.setattr(runner, "finish_distributed", lambda world: calls.append("finish"))
    monkeypatch.setattr(runner, "load_finished_stages", lambda model, run_dir, training=(): calls.append("load") or [])
    monkeypatch.setattr(runner, "run_stage", lambda ctx, name: calls.append(f"run {name}") or StageState(name, 1))
    data = make_prepared(tmp_path / "data", astronaut)
    options = TrainOptions(config="tiny", steps=1, batch_size=2, device="cpu", threads=1)
    runner.train_stages(data, tmp_path / "run", ("autoencoder", "irn"), options, echo=None)
    second = calls.index("run autoencoder") + 1
    assert "barrier" in calls[second:calls.index("load", second)], calls


def _stop_worker(rank: int, port: int, data: str, run: str, out: str) -> None:
    from datetime import timedelta

    from clrface_video.train import loop
    from clrface_video.train.options import LossWeights, TrainOptions
    from clrface_video.train.runner import train_stages

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=30))
    # --max-minutes runs out on rank 0's clock after step 2, and not yet on rank 1's
    over = loop.Budget.over
    loop.Budget.over = lambda self, step, started: over(self, step, started) or (rank == 0 and step >= 2)
    options = TrainOptions(config="tiny", steps=5, batch_size=2, device="cpu", threads=1, codec_prob=0.0,
                           max_minutes=60.0)
    states = train_stages(Path(data), Path(run), ("irn",), options, echo=None, weights=LossWeights(identity=0.0))
    Path(out, f"rank{rank}.json").write_text(json.dumps(states["irn"].step))
    dist.destroy_process_group()


def test_a_time_budget_that_runs_out_on_one_rank_stops_every_rank_at_the_same_step(
        tmp_path: Path, astronaut: np.ndarray) -> None:
    """--max-minutes is read off each rank's own clock; a rank that stopped alone left the others in a gradient
    all_reduce no rank answered (a hang with nccl, a timeout with gloo)."""
    data = make_prepared(tmp_path / "data", astronaut)
    mp.spawn(_stop_worker, args=(_free_port(), str(data), str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=True)
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [2, 2]
    assert json.loads((tmp_path / "run" / "irn" / "state.json").read_text())["step"] == 2


def test_torchrun_on_gpus_without_nccl_uses_gloo(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's Windows builds have no NCCL: train under torchrun on CUDA asked for it and stopped with 'Distributed
    package doesn't have NCCL built in'. Gloo (which takes CUDA tensors too) is used there; NCCL where it exists."""
    from clrface_video.train import ddp

    asked: list[str] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: asked.append(backend))
    monkeypatch.setattr(dist, "get_rank", lambda *args: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda *args: 2)
    for nccl in (False, True):
        monkeypatch.setattr(dist, "is_nccl_available", lambda nccl=nccl: nccl)
        assert ddp.init_distributed(torch.device("cuda", 0)).world == 2
    ddp.init_distributed(torch.device("cpu"))
    assert asked == ["gloo", "nccl", "gloo"]
