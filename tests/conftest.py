"""Shared test fixtures: where the research data lives, and public-domain sample images."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__import__("os").environ.get("CLRFACE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """A file from ../shared/data, or skip the test with a message saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"research data not found: {path} (set CLRFACE_SHARED_DATA to the shared/data folder)")
    return path


@pytest.fixture(autouse=True)
def _scheduled_as_before():
    """A test that encodes with libsvtav1 as root outside VideoWriter (which guards itself) would leave the test
    process real-time, and every test after it, the training scripts' above all, starved the machine."""
    from clrface_video.io.scheduling import scheduled_as_before

    with scheduled_as_before():
        yield


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use small tensors: one torch thread is as fast on 2 cores and never oversubscribes them."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut.png (NASA, public domain): (512, 512, 3) uint8 RGB, one face."""
    from skimage import data

    return data.astronaut()


@contextmanager
def _package_logged(caplog, level: int):
    """caplog's records of the package's messages at `level` and above, each once, even after a CLI test stopped
    its logger propagating: caplog's handler is on the package's logger, which propagates nothing meanwhile
    (caplog's handler is on the root logger too, so a message logged once was recorded twice)."""
    import logging

    logger = logging.getLogger("clrface_video")
    old_level, propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(old_level)
        logger.propagate = propagate


@pytest.fixture()
def warnings_logged(caplog):
    """The package's warnings, each once (_package_logged)."""
    import logging

    with _package_logged(caplog, logging.WARNING):
        yield caplog


@pytest.fixture()
def info_logged(caplog):
    """The package's info lines and warnings, each once (_package_logged): caplog.at_level alone records none
    once a CLI test in the same run stopped the package's logger propagating."""
    import logging

    with _package_logged(caplog, logging.INFO):
        yield caplog


@pytest.fixture()
def opencv_as_on_windows(monkeypatch):
    """cv2.imread and cv2.imwrite as OpenCV's Windows builds behave: they open a path in the ANSI code
    page, so one with another character (any non-ASCII one here) reads as missing and is not written."""
    import cv2

    def ascii_only(real, failed):
        return lambda path, *args, **kwargs: real(path, *args, **kwargs) if str(path).isascii() else failed

    monkeypatch.setattr(cv2, "imread", ascii_only(cv2.imread, None))
    monkeypatch.setattr(cv2, "imwrite", ascii_only(cv2.imwrite, False))


@pytest.fixture()
def unreadable(monkeypatch):
    """Make a folder one that cannot be listed, as a user's chmod 000 makes it: its modes taken off; where the
    tests run as root, whom modes do not stop, Path.iterdir made to refuse it as the file system would."""
    import errno
    import os

    refused: list[Path] = []
    iterdir = Path.iterdir

    def refusing(self):
        if self in refused:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", refusing)

    def lock(folder: Path) -> None:
        refused.append(folder)
        if os.name == "posix" and os.geteuid() != 0:
            os.chmod(folder, 0)

    yield lock
    for folder in refused:
        if os.name == "posix" and os.geteuid() != 0:
            os.chmod(folder, 0o755)
