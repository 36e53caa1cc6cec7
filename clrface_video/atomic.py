"""Files written whole or not at all: a hidden temporary name beside the file, renamed into place at the end."""
from __future__ import annotations

import hashlib
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


NAME_MAX = 255  # the longest name most file systems take (bytes on Linux and macOS, UTF-16 units on NTFS)


def name_size(name: str) -> int:
    """A file name's length as its file system counts it against NAME_MAX: UTF-16 units on Windows, bytes
    elsewhere (a 100-character Chinese name is 300 bytes on Linux)."""
    if os.name == "nt":
        return len(name.encode("utf-16-le", "surrogatepass")) // 2
    return len(os.fsencode(name))


def name_max(folder: Path) -> int:
    """The longest file name `folder`'s file system takes (NAME_MAX where it cannot say: Windows)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return NAME_MAX


def hidden_name(path: Path, tag: str = "partial") -> Path:
    """The hidden name `path` is written under before it is renamed into place: .STEM.TAG.SUFFIX beside it,
    keeping the extension that writers go by. A legal name near the limit would pass it with the dot and the
    tag added: its stem is then cut to fit and marked with a hash of the whole name, so that two long names
    that begin alike still get two temporary names."""
    name = f".{path.stem}.{tag}{path.suffix}"
    limit = name_max(path.parent)
    if name_size(name) <= limit:
        return path.with_name(name)
    mark = hashlib.sha1(os.fsencode(path.name)).hexdigest()[:8]
    room = limit - name_size(f".~{mark}.{tag}{path.suffix}")
    stem = ""
    for char in path.stem:
        if name_size(stem + char) > room:
            break
        stem += char
    return path.with_name(f".{stem}~{mark}.{tag}{path.suffix}")


@contextmanager
def atomic(path: Path | str) -> Iterator[Path]:
    """The name to write `path`'s content to: hidden, beside it, with its extension (so that writers that go
    by the extension pick the right format). Renamed to `path` when the block ends, with a new file's
    permissions (writers such as safetensors' make theirs private); removed if it fails."""
    path = Path(path)
    temp = hidden_name(path, f"{os.getpid()}.partial")
    try:
        yield temp
        os.chmod(temp, file_mode())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
