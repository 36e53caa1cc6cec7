"""The calling thread's CPU scheduling kept as it was across an encoder call that changes it (SVT-AV1 as root)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scheduled_as_before() -> Iterator[None]:
    """Put the calling thread's scheduling policy and priority back where the block changed them.

    SVT-AV1 (libsvtav1), run by root as in most containers, moves the thread that first encodes with it to
    real-time SCHED_FIFO at priority 99, and it stays so after the encoder is closed (measured: os.sched_getscheduler
    gave 1 after one frame). A real-time thread is never preempted by ordinary ones: the model's OpenMP threads
    then spun waiting on it, and the test suite, whose process had written an AVIF, ran a 1-second training
    phase for over 20 CPU minutes and starved every other process on the machine."""
    if not hasattr(os, "sched_getscheduler"):  # Linux and a few Unixes have it; macOS and Windows do not
        yield
        return
    policy, priority = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) != (policy, priority):
            os.sched_setscheduler(0, policy, os.sched_param(priority))
