"""Where outputs go: the default name beside the input, and the checks that the input is never overwritten."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ClrfaceError, InputError

SUFFIX = "_restored"


def default_output(path: Path) -> Path:
    """Beside the input with a _restored suffix: movie_restored.mp4, photo_restored.jpg, folder_restored/."""
    if path.is_dir():
        return path.with_name(path.name + SUFFIX)
    return path.with_name(path.stem + SUFFIX + path.suffix)


def resolve_paths(input: str | Path, output: str | Path | None) -> tuple[Path, Path]:
    """Check INPUT exists and OUTPUT is not INPUT (nor inside an input folder); fill in the default OUTPUT."""
    source = Path(input).expanduser()
    if not source.exists():
        raise InputError(f"input not found: {source}")
    target = default_output(source) if output is None else Path(output).expanduser()
    if not source.is_dir() and target.is_dir():
        target = target / source.name
    if not source.is_dir() and not target.suffix:
        target = target.with_name(target.name + source.suffix)  # -o result  ->  result.mp4
    real_source, real_target = source.resolve(), target.resolve()
    if real_target == real_source or (target.exists() and os.path.samefile(source, target)):
        raise ClrfaceError(f"output {target} is the input; choose another -o OUTPUT (the input is never changed)")
    if source.is_dir():
        if real_target.is_relative_to(real_source):
            raise ClrfaceError(f"output folder {target} is inside the input folder {source}; choose one outside it")
        if target.exists() and not target.is_dir():
            raise ClrfaceError(f"output {target} is a file but the input is a folder; give a folder for -o")
    return source, target
