"""Files written whole or not at all: a hidden temporary name beside the file, renamed into place at the end."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic(path: Path | str) -> Iterator[Path]:
    """The name to write `path`'s content to: hidden, beside it, with its extension (so that writers that go
    by the extension pick the right format). Renamed to `path` when the block ends; removed if it fails."""
    path = Path(path)
    temp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
