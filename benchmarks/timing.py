"""Best-of-N wall-clock timing shared by the benchmark scripts."""
from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(call: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """The shortest of `repeats` timed calls of `call()`, after one untimed warm-up call; `sync` runs after
    each call inside the timing (torch.cuda.synchronize on a GPU, so queued kernels are counted)."""
    call()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        best = min(best, time.perf_counter() - start)
    return best
