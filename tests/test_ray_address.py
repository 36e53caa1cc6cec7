"""--ray-address where no Ray head answers: the command ends with one line, in bounded time, and writes nothing."""
from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clrface_video.distributed.cluster import reach_head
from clrface_video.errors import ClrfaceError
from tests.media import make_clip

# Ray is looked for, not imported: imported here, at collection, it would read its settings before tests.ray_local
# sets them, and the tests' own local Ray would listen on every interface (test_ray_photos checks it does not)
if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray backend tests need ray: pip install -c constraints.txt \"ray[data]\"", allow_module_level=True)


def restore_at(address: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run the command (Ray imported afresh, as a user's run does) against `address`; its result and seconds."""
    clip = make_clip(tmp_path / "in.mp4", frames=6, audio=False)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "clrface_video", "restore", str(clip), "-o", str(tmp_path / "out.mp4"),
                           "--backend", "ray", "--ray-address", address, "--model", "baseline-bicubic-sharpen",
                           "--device", "cpu"], check=False, capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - start


def refused_within(address: str, tmp_path: Path, seconds: float) -> str:
    """The command's stderr against `address`, having asserted that it ended with status 2 in under `seconds`
    and wrote nothing beside its input."""
    done, took = restore_at(address, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert took < seconds and sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    return done.stderr.strip()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (not a Ray head); on every interface, as Ray
    replaces 127.0.0.1 with this machine's address."""
    server = socket.create_server(("", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for connection in held:
            connection.close()


def closed_port() -> int:
    """A loopback port that nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_address_that_refuses_connections_fails_in_seconds(tmp_path):
    """An address where nothing listens was retried by Ray 20 times, 41 s each (about 14 minutes)."""
    port = closed_port()
    assert refused_within(f"127.0.0.1:{port}", tmp_path, 30) == (
        f"error: --ray-address 127.0.0.1:{port}: cannot connect (Connection refused) (give HOST:PORT of a running "
        "Ray cluster's head, or leave it out for a Ray on this machine)")


def test_a_port_that_is_not_ray_fails_in_seconds_with_our_line_only(tmp_path, silent_port):
    """A listening port that is not a Ray head took Ray's 20 tries of 41 s, then one try of about 21 s that printed
    Ray's C++ warnings and named the address as Ray had rewritten it; now our own line, in seconds."""
    assert refused_within(f"127.0.0.1:{silent_port}", tmp_path, 20) == (
        f"error: --ray-address 127.0.0.1:{silent_port}: something listens there but it is not a Ray head (no gRPC "
        "answer within 5 s) (give HOST:PORT of a running Ray cluster's head, or leave it out for a Ray on this "
        "machine)")


def test_a_server_of_another_protocol_is_told_apart_at_once():
    """An HTTP/1 server answers the HTTP/2 preface with its own error; that is no Ray head either."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        connection = server.accept()[0]
        connection.recv(64)
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        connection.close()

    threading.Thread(target=answer, daemon=True).start()
    start = time.monotonic()
    with server, pytest.raises(ClrfaceError, match="something listens there but it is not a Ray head"):
        reach_head(f"127.0.0.1:{server.getsockname()[1]}")
    assert time.monotonic() - start < 2
