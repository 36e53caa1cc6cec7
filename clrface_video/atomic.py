"""Files written whole or not at all: a hidden temporary name beside the file, renamed into place at the end."""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path


@cache
def _umask() -> int:
    mask = os.umask(0o022)  # read by setting it; put back at once
    os.umask(mask)
    return mask


def file_mode(like: Path | None = None) -> int:
    """The permission bits a new file gets: those of a plainly created file (0o666 less the umask), or with
    `like`, that file's (a private photo's restored copy stays private), less the umask, as cp gives them."""
    bits = 0o666 if like is None else stat.S_IMODE(os.stat(like).st_mode)
    return bits & ~_umask()


@contextmanager
def atomic(path: Path | str) -> Iterator[Path]:
    """The name to write `path`'s content to: hidden, beside it, with its extension (so that writers that go
    by the extension pick the right format). Renamed to `path` when the block ends, with a new file's
    permissions (writers such as safetensors' make theirs private); removed if it fails."""
    path = Path(path)
    temp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield temp
        os.chmod(temp, file_mode())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
