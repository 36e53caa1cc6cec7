"""Connect to Ray (join a cluster, or start a local one on 127.0.0.1); the pool of worker actors and their warnings."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..config import RestoreConfig
from ..errors import ClrfaceError, backend_name, one_line, option_name, option_names
from .worker import CRASH_ONCE, RestoreWorker

RETRIES = 3  # restarts of a dead worker process, and retries of the segment or shard it was running
LOCAL_SETTINGS = {  # a local Ray bound to loopback, without token auth files; Ray reads them when imported
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
}
# Joining a cluster: Ray's defaults retry an address where no head answers 20 times, 41 s each (about 14 minutes).
REACH_SECONDS = 5  # the head's port must accept a TCP connection within this
JOIN_SETTINGS = {"RAY_py_gcs_connect_timeout_s": "10"}  # each try's wait for an answer; read when Ray is imported
JOIN_TRIES = {"RAY_gcs_server_port_wait_time_s": "1"}  # one try; read by ray.init (a local head's start reads it too)
# The driver without Ray's C++ failure signal handler, read when Ray is imported (not set for the processes that
# ray.init starts): ray.shutdown uninstalls it by setting SIGTERM to SIG_DFL under Python's handler, and a kill in
# the second it then takes ended the command with no line (exit -15) after its output was written.
DRIVER_SETTINGS = {"RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}
# what an HTTP/2 client sends first: the fixed preface, then an empty SETTINGS frame (RFC 9113, section 3.4)
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
ADDRESS_HINT = "give HOST:PORT of a running Ray cluster's head, or leave it out for a Ray on this machine"

log = logging.getLogger(__name__)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClrfaceError(f"{backend_name('ray')} needs Ray: pip install -c constraints.txt \"ray[data]\"") from None
    return ray


def reach_head(address: str) -> None:
    """Fail in seconds where nothing at HOST:PORT accepts a connection, or nothing there speaks gRPC as a Ray
    head's GCS does, before Ray's own longer tries (which also print Ray's C++ warnings for the second).

    'auto' and malformed addresses are left to Ray, which reads the one and explains the other; so is a cluster
    with TLS on (RAY_USE_TLS), whose handshake comes before any gRPC.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS) as connection:
            speaks = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true") or answers_grpc(connection)
    except OSError as error:  # refused, timed out, no route, unknown host
        raise ClrfaceError(f"{option_name('address')} {address}: cannot connect ({error.strerror or error}) "
                           f"({ADDRESS_HINT})") from None
    if not speaks:
        raise ClrfaceError(f"{option_name('address')} {address}: something listens there but it is not a Ray head "
                           f"(no gRPC answer within {REACH_SECONDS} s) ({ADDRESS_HINT})")


def answers_grpc(connection: socket.socket) -> bool:
    """Whether the server on `connection` answers an HTTP/2 client preface with its SETTINGS frame, as every
    gRPC server (a Ray head's GCS among them) does at once; False on silence, another protocol or a close."""
    connection.sendall(HTTP2_PREFACE)
    header = b""
    try:
        while len(header) < 9:  # a frame header: 3 bytes of length, its type, flags, 4 bytes of stream id
            chunk = connection.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except TimeoutError:
        return False
    return header[3] == 0x04 and header[4] & 0x01 == 0  # SETTINGS, not an ACK


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables the user has not set, for the block only (Ray reads some at each call)."""
    added = {name: value for name, value in values.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield the ray module connected to `address`, or to a new local Ray on 127.0.0.1; shut it down after.

    A Ray that this process already initialised is used as it is and left running. The local Ray
    listens on loopback only if LOCAL_SETTINGS are in the environment when Ray is first imported,
    which this function arranges unless the program imported Ray before (it then warns).
    Joining `address` fails with one line within 5 s where nothing there answers in gRPC as a Ray head
    does; a gRPC server that is not one is left to Ray's single try (JOIN_SETTINGS, which come too late
    where the program imported Ray before).
    """
    if not address:
        too_late = "ray" in sys.modules and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0"
    for name, value in (JOIN_SETTINGS if address else LOCAL_SETTINGS).items():
        os.environ.setdefault(name, value)
    with environment(DRIVER_SETTINGS):
        ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    temp_dir = None
    on_term = signal.getsignal(signal.SIGTERM)  # the command's (cli: Terminated), which Ray's core worker replaces
    if address:
        reach_head(address)
    elif too_late:
        log.warning("Ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set; "
                    "the local Ray may listen on every interface")
    try:  # a stop while Ray starts shuts down what it started too
        with _killed_as_the_command_is(on_term):
            if address:
                try:
                    with environment(JOIN_TRIES):
                        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                except (ValueError, ConnectionError) as error:  # a malformed address, or no Ray cluster there
                    raise ClrfaceError(f"{option_name('address')} {address}: {one_line(error)} ({ADDRESS_HINT})") \
                        from error
            else:
                # short: Ray's socket paths must stay under 107 bytes (103 on macOS, whose per-user temp folder,
                # /var/folders/xx/.../T/, leaves too little of them: Ray itself uses /tmp there)
                temp_dir = tempfile.mkdtemp(prefix="clrray-", dir="/tmp" if sys.platform == "darwin" else None)
                ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                         _temp_dir=temp_dir, object_store_memory=1 << 30, log_to_driver=False,
                         logging_level=logging.WARNING)
        yield ray
    finally:
        try:
            with _killed_as_the_command_is(on_term):  # where Ray was imported before DRIVER_SETTINGS, too late
                ray.shutdown()
        finally:  # a stop while it shuts down (the atexit shutdown finishes it) leaves no temp folder either
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)


@contextmanager
def _killed_as_the_command_is(on_term: Any) -> Iterator[None]:
    """Ray's start (ray.init) or shutdown with the command's SIGTERM handler `on_term` (cli: Terminated, exit 143,
    --report written) put back after it: kill, timeout or systemd are then met as locally. While it starts, Ray's
    own handler, set first thing, answers with sys.exit(15): a folder killed then ended silently with exit 15 and
    no report. That exit is handed to `on_term`, as the signal itself would have been. Ray's shutdown sets SIGTERM
    to SIG_DFL where its C++ failure signal handler was installed (DRIVER_SETTINGS came too late)."""
    main = callable(on_term) and threading.current_thread() is threading.main_thread()
    try:
        yield
    except SystemExit as stop:
        if main and stop.code == signal.SIGTERM and signal.getsignal(signal.SIGTERM) is not on_term:
            signal.signal(signal.SIGTERM, on_term)
            on_term(signal.SIGTERM, None)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, on_term)  # kill, timeout, systemd: cleaned up and exit 143, as locally


def start_workers(ray: Any, config: RestoreConfig, *, video: bool, workers: int | None) -> list[Any]:
    """Actors that each load the models once: one GPU each when the cluster has GPUs, else a share of the CPUs.

    A worker process that dies is restarted (its models reloaded) and the call it was running is
    retried, up to RETRIES times. workers=None: one per GPU, or one per CPU on a CPU-only cluster.
    """
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    count = workers or (gpus if gpus else max(1, int(cpus)))
    if gpus and count > gpus:
        raise ClrfaceError(f"{option_name('workers')} {count} asks for more workers than the cluster's {gpus} GPUs "
                           "(one each)")
    if gpus:
        options: dict[str, Any] = {"num_gpus": 1, "num_cpus": min(1.0, cpus / count)}
    else:
        options = {"num_cpus": min(1.0, cpus / count)}
    if not video:  # threaded: a photo worker answers shard_so_far while it restores a shard (one job at a time)
        options["max_concurrency"] = 2
    env = {CRASH_ONCE: os.environ[CRASH_ONCE]} if os.environ.get(CRASH_ONCE) else {}
    if env:
        options["runtime_env"] = {"env_vars": env}
    remote = ray.remote(RestoreWorker).options(max_restarts=RETRIES, max_task_retries=RETRIES, **options)
    return [remote.remote(config, video, option_names()) for _ in range(count)]


def run_all(ray: Any, actors: list[Any], method: str, jobs: list[tuple], on_done: Any = None, *,
            stop: Callable[[], bool] | None = None) -> list[Any]:
    """Call `method(*job)` for every job on the actors, a job per idle actor; results in job order.

    on_done(position, result) is called on the driver as each job finishes (to save or count it).
    stop() true after a job's on_done: no job is started after it, and those running are waited for (a folder
    stopped by a full disk counts what its other workers finish meanwhile); the jobs never started get None.
    """
    results: list[Any] = [None] * len(jobs)
    pending: dict[Any, tuple[int, Any]] = {}
    idle = list(actors)
    queue = list(enumerate(jobs))
    with cancelled(ray, pending):  # a stop, or one job's error, ends the others before their actors are killed
        while True:
            if stop is not None and stop():
                queue.clear()
            while queue and idle:
                position, job = queue.pop(0)
                actor = idle.pop()
                pending[getattr(actor, method).remote(*job)] = (position, actor)
            if not pending:  # every job done (or stopped)
                return results
            done, _ = ray.wait(list(pending), num_returns=1)
            position, actor = pending.pop(done[0])
            try:
                results[position] = ray.get(done[0])
            except ray.exceptions.RayTaskError as error:  # a user error on a worker: one line, as locally
                if isinstance(error.cause, ClrfaceError):
                    raise error.cause from None
                raise
            idle.append(actor)
            if on_done is not None:
                on_done(position, results[position])


def ask(ray: Any, call: Any, *args: Any) -> Any:
    """One actor call's result (call: actor.method), the call cancelled where the driver is stopped meanwhile, as
    run_all's are (a worker still loading its models answers it only then)."""
    ref = call.remote(*args)
    with cancelled(ray, [ref]):
        return ray.get(ref)


@contextmanager
def cancelled(ray: Any, calls: Collection[Any]) -> Iterator[None]:
    """The actor calls still running in `calls` cancelled where the block ends in an error or a stop (Ctrl-C,
    SIGTERM), before their actors are killed. Ray retries a call whose actor is killed under it (max_task_retries,
    for a worker process that dies), and its driver printed '(raylet) Task RestoreWorker.detect failed. There are
    3 retries remaining, so the task will be retried' for each on stdout, after the command's own last line; a
    cancelled call is not retried, and nothing is said (one running goes on until its actor is killed)."""
    try:
        yield
    except BaseException:
        for ref in list(calls):
            ray.cancel(ref)
        raise


def say_warnings(lines: Iterable[str], said: set[str]) -> None:
    """Log on the driver the warning lines a worker's job gathered (Ray does not bring a worker's log here), each
    line not in `said` (a job's lines so far) once: the CLI prints them and the job's report lists them, as when
    the job runs locally, where a video's encoder warns once and not once per segment."""
    for line in lines:
        if line not in said:
            said.add(line)
            log.warning("%s", line)
