"""torchrun helpers: the process group, gradient averaging and weight broadcast across ranks."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    """rank / world size of a torchrun launch (world 1 when not distributed)."""


    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # init_distributed opened the process group (and finish_distributed closes it)


    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """init_process_group when launched by torchrun with WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU, and on CUDA
    where torch has no NCCL: its Windows builds)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    opened = not dist.is_initialized()
    if opened:
        dist.init_process_group("nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), opened)


def finish_distributed(world: Dist) -> None:
    """Wait for every rank, then close the process group init_distributed opened, so no rank leaves while
    another still talks to it (a gloo rank whose peer has exited can abort at shutdown)."""
    if world.world > 1 and dist.is_initialized():
        dist.barrier()
        if world.owns_group:
            dist.destroy_process_group()


def barrier(world: Dist) -> None:
    """Wait for every rank (no-op in a single process)."""
    if world.world > 1:
        dist.barrier()


def any_rank(flag: bool, world: Dist, device: torch.device) -> bool:
    """Whether `flag` holds on any rank (the flag itself in a single process), so that every rank takes a decision
    made on its own clock together; the flag travels on `device`, as nccl needs a GPU tensor."""
    if world.world <= 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sync_gradients(params: list[nn.Parameter], world: Dist) -> None:
    """Average gradients over ranks (data-parallel); no-op in a single process.


    Every rank runs the same graph, so the set of parameters with a gradient is the same everywhere.
    """
    if world.world <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: nn.Module, world: Dist) -> None:
    """Start every rank from rank 0's weights."""
    if world.world > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)
