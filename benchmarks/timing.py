"""Best-of-N timing (wall clock, or the process's CPU time) shared by the benchmark scripts."""
from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(call: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.perf_counter) -> float:
    """The shortest of `repeats` timed calls of `call()`, after one untimed warm-up call; `sync` runs after
    each call inside the timing (torch.cuda.synchronize on a GPU, so queued kernels are counted). clock:
    time.process_time counts the CPU seconds of all the process's threads, the work a call does, which other
    jobs on a shared machine do not stretch as they do the wall clock's."""
    call()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        call()
        sync()
        best = min(best, clock() - start)
    return best
