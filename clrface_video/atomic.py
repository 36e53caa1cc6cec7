"""Files written whole or not at all: under a hidden name of this run beside them, renamed into place at the end."""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path


@cache
def _umask() -> int:
    mask = os.umask(0o022)  # read by setting it; put back at once
    os.umask(mask)
    return mask


def file_mode(like: Path | None = None) -> int:
    """The permission bits a new file gets: those of a plainly created file (0o666 less the umask), or with
    `like`, that file's (a private photo's restored copy stays private), less the umask, as cp gives them, but
    writable by its owner: a copy is the user's to change, and an output without a write bit is one the user
    protected (paths.read_only), not a read-only original's (an archive's, a CD's) copy."""
    bits = 0o666 if like is None else stat.S_IMODE(os.stat(like).st_mode) | stat.S_IWUSR
    return bits & ~_umask()


def keep_date_and_mode(source: Path, target: Path) -> None:
    """A restored photo's or video's (or a photo's sidecar's) date and permissions are its source's: albums and
    backups sort by the date, and a private file's copy stays private (file_mode)."""
    found = source.stat()
    os.utime(target, ns=(found.st_atime_ns, found.st_mtime_ns))
    os.chmod(target, file_mode(source))


def write_whole(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to a new file at `path`, every byte of it or an OSError. A write may take only part of what it
    is given and say so by its count, as a disk with room for part of the file does; a writer that took one
    write for done (Pillow's encoders writing to the file descriptor) left a cut-short photo, counted as
    restored. Here the rest is written again until it is all in; a write that gets nothing in is a full disk."""
    left = memoryview(data).cast("B")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
    try:
        while left:
            written = os.write(fd, left)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            left = left[written:]
    finally:
        os.close(fd)


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
    return path.with_name(_fitted(path.parent, path.name, path.stem, f".{tag}{path.suffix}"))


def _fitted(folder: Path, whole: str, stem: str, tail: str) -> str:
    """.STEM+TAIL, or where that passes `folder`'s name limit, the stem cut to fit and marked with a hash of
    `whole` (the name it stands for)."""
    name = f".{stem}{tail}"
    limit = name_max(folder)
    if name_size(name) <= limit:
        return name
    mark = hashlib.sha1(os.fsencode(whole)).hexdigest()[:8]
    room = limit - name_size(f".~{mark}{tail}")
    cut = ""
    for char in stem:
        if name_size(cut + char) > room:
            break
        cut += char
    return f".{cut}~{mark}{tail}"


PARTIAL = "partial"
LEFTOVER = re.compile(r"^\..*\.(\d+)\.partial(\.[^.]*)?$")  # .STEM.PID.partial.SUFFIX: a run's temporary name
STALE_S = 24 * 3600  # where no process can be asked about (Windows): a temporary file this old is a leftover


def partial_name(path: Path, pid: int | None = None) -> Path:
    """The hidden name this process (or process `pid`) writes `path` under: hidden_name with the process id in
    its tag, so that two runs writing one output at once each write their own file; with one shared name, the
    run that finished first renamed both runs' writing into place and the other failed ('No such file or
    directory: .same.partial.mp4 -> same.mp4')."""
    return hidden_name(path, f"{os.getpid() if pid is None else pid}.{PARTIAL}")


def partial_folder(folder: Path, stem: str, whole: str, pid: int | None = None) -> Path:
    """The hidden folder in `folder` this process (or process `pid`) writes an image sequence into before its
    frames are moved into place: .STEM.PID.partial, where `stem` is the pattern's name without its counter and
    extension, cut to fit like hidden_name's (a pattern near the name limit failed with 'File name too
    long'); `whole` is the pattern's name, whose hash marks a cut one."""
    return folder / _fitted(folder, whole, stem, f".{os.getpid() if pid is None else pid}.{PARTIAL}")


def _gone(pid: int, entry: Path) -> bool:
    """Whether the run that wrote the temporary `entry` has ended: no process `pid` on this machine (a killed run;
    an unrelated process that took its number keeps it for now). Windows cannot be asked without ending the
    process (os.kill): there an entry untouched for STALE_S is taken for a leftover."""
    if pid == os.getpid():
        return False
    if os.name == "nt":
        return time.time() - entry.stat().st_mtime > STALE_S
    try:
        os.kill(pid, 0)  # signal 0: asks whether it exists, sends nothing
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: another user's process, alive
        return False
    return False


_FOUND: dict[Path, dict[str, int]] = {}  # per folder: the temporary names in it when first looked (name -> pid)
_FOUND_LOCK = threading.Lock()


def _temporaries(folder: Path) -> dict[str, int]:
    """The temporary names (partial_name) in `folder` and their process ids, listed once a process: a folder run
    writes thousands of photos into one folder, and listing it for each made the run quadratic. A run killed later
    than the listing is a live one then, whose file a later run finds."""
    with _FOUND_LOCK:
        found = _FOUND.get(folder)
        if found is None:
            try:
                with os.scandir(folder) as entries:
                    found = {entry.name: int(match.group(1)) for entry in entries
                             if (match := LEFTOVER.match(entry.name)) is not None}
            except OSError:  # not there yet, or not readable: nothing to clean
                return {}
            _FOUND[folder] = found
        return found


def remove_leftovers(folder: Path, name_for: Callable[[int], str] | None = None) -> None:
    """Remove the temporary files (and a sequence's hidden folders) in `folder` of runs killed before they could
    remove them (SIGKILL, a power cut): those whose process id in the name (partial_name) is no live process.
    With `name_for` only those of one output, named `name_for(pid)`. A live run's are never touched, whoever's;
    a run on another machine writing into a shared folder at the same time is not seen, and the folder is
    assumed to be written from one machine at a time. The folder is listed once a process (_temporaries)."""
    found = _temporaries(folder)
    for name, pid in list(found.items()):
        path = folder / name
        if name_for is not None and name_for(pid) != name:
            continue
        if not path.exists() and not path.is_symlink():
            found.pop(name, None)
            continue
        if not _gone(pid, path):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        found.pop(name, None)


def discard(temp: Path) -> None:
    """Remove a failed write's temporary file, if it is there, without hiding why the write failed: on a
    read-only file system (a locked card, an archive mounted read-only) removing a file that is not there fails
    too (EROFS, not ENOENT), and that error, naming the hidden temporary file, replaced the write's own."""
    with suppress(OSError):
        temp.unlink()


@contextmanager
def atomic(path: Path | str) -> Iterator[Path]:
    """The name to write `path`'s content to: hidden, beside it, with its extension (so that writers that go
    by the extension pick the right format). Renamed to `path` when the block ends, with a new file's
    permissions (writers such as safetensors' make theirs private); removed if it fails. A killed run's
    temporary file for the same path is removed first (remove_leftovers)."""
    path = Path(path)
    remove_leftovers(path.parent, lambda pid: partial_name(path, pid).name)
    temp = partial_name(path)
    try:
        yield temp
        os.chmod(temp, file_mode())
        os.replace(temp, path)
    finally:
        discard(temp)
