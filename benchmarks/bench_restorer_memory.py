"""Resident memory of the shipped CLR-Face restorer over many equal batches: does it grow, or level off?

    python benchmarks/bench_restorer_memory.py [--batches 15] [--batch-size 16] [--device cpu]

Restores the same kind of batch again and again (sample astronaut crops, fresh seeds each batch, identity
guidance on as in a video) and prints the process's current RSS after each batch and its peak. Memory
that keeps rising batch after batch would be a leak; a rise over the first batches that then stays flat
is the allocator and the kernels' caches warming up.
"""
from __future__ import annotations

import argparse
import os
import resource

import numpy as np
import torch


def rss_mib() -> float:
    """Current resident set size of this process, MiB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from clrface_video.device import pick_device
    from clrface_video.eval.bench import sample_crops
    from clrface_video.restore.base import RestoreBatch, make_restorer

    restorer = make_restorer("auto", device=pick_device(args.device))
    crops = sample_crops(args.batch_size, int(restorer.resolution))
    print(f"model {restorer.name}, batch {args.batch_size}, after loading: {rss_mib():.1f} MiB")
    for i in range(args.batches):
        seeds = np.arange(i * args.batch_size, (i + 1) * args.batch_size, dtype=np.int64)
        restorer.restore(RestoreBatch(crops, seeds=seeds))
        print(f"batch {i + 1:3d}: rss {rss_mib():.1f} MiB", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak rss {peak:.1f} MiB; torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
