"""A private Ray for the Ray backend tests: 2 CPUs on 127.0.0.1, no auth files, its own temp folder, shut down after."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

SETTINGS = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def local_ray() -> Iterator[object]:
    """Start the test Ray (skip when ray is not installed); the restore_*_ray calls join it."""
    ray = pytest.importorskip("ray", reason="Ray backend tests need ray: pip install -c constraints.txt \"ray[data]\"")
    saved = {name: os.environ.get(name) for name in SETTINGS}
    os.environ.update(SETTINGS)
    temp_dir = tempfile.mkdtemp(prefix="clrray-test-")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=temp_dir,
             object_store_memory=256 << 20, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
