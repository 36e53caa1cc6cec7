"""User-facing errors: one clear line for the CLI, never a traceback."""
from __future__ import annotations

import errno
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType

FFMPEG_ERRNO = re.compile(r"\[Errno -?\d+\] ")  # PyAV's prefix to FFmpeg's messages: a number users cannot use


def one_line(error: BaseException) -> str:
    """An exception's message on one line (FFmpeg and Pillow messages may carry newlines), else its type's name."""
    return FFMPEG_ERRNO.sub("", " ".join(str(error).split())) or type(error).__name__


def reason(error: BaseException) -> str:
    """What an OS or FFmpeg error says went wrong, without the file it names (often a run's hidden temporary
    file, whose name means nothing to the user): its strerror ('No space left on device'), else its one line."""
    return getattr(error, "strerror", None) or one_line(error)


def failure_line(relative: Path, error: BaseException) -> str:
    """'path: reason' for a folder's file that failed (its `failed` entry and its 'skipped' line), the file named
    once, by the line's lead: the reason's own mention of it is dropped where it leads ('IMG.heic: picture 2 cannot
    be read'), dropped where quoted whole as a path inside a library's parenthesis (Pillow's 'cannot identify
    image file 'G/bad.jpg''), and after "the sequence" ('the sequence stopped there'), and said as "it" elsewhere:
    the subject, or mid-sentence ('cut.mp4 has no video frames', 'cannot read bad.jpg as an image', 'writing
    clip.mp4 failed', 'b.png is read-only'). A line said 'skipped cut.mp4: cut.mp4 has no video frames'. A single
    file's error (the CLI's) keeps its name: it has no lead to name it."""
    name = re.escape(relative.name)
    said = one_line(error).removeprefix(f"{relative.name}: ")
    said = re.sub(rf":?\s*(['\"])(?:[^'\"]*[/\\])?{name}\1", "", said)  # a quoted path to the file, whole
    said = re.sub(rf"(?<=the sequence) {name}(?=[ ,;:)]|$)", "", said)  # 'the sequence' names it enough
    said = re.sub(rf"(?:^|(?<= )){name}(?=[ ,;:)]|$)", "it", said)  # its subject, or any other mention
    return f"{relative}: {said}"


class ClrfaceError(Exception):
    """An error caused by the user's input or set-up; its message is one line that says what to do."""


class OptionError(ClrfaceError):
    """An option's value is wrong. `option` is its RestoreConfig name, `problem` what is wrong with the value; the
    message names the option as a Python caller passes it (fidelity=...), and named() words it for a front end
    whose user knows it by another name (a ComfyUI node's input), so that the value is checked in one place."""

    def __init__(self, option: str, problem: str, name: str | None = None) -> None:
        super().__init__(f"{name or option} {problem}")
        self.option, self.problem, self.name = option, problem, name

    def __reduce__(self) -> tuple[type[OptionError], tuple[str, str, str | None]]:
        return type(self), (self.option, self.problem, self.name)  # pickled whole (Ray), not by its message

    def named(self, names: Mapping[str, str]) -> OptionError:
        """The same error with the option named as `names` has it (an option not in `names` keeps its own name)."""
        return type(self)(self.option, self.problem, names.get(self.option))


_OPTION_NAMES: ContextVar[Mapping[str, str]] = ContextVar("option_names", default=MappingProxyType({}))


def listed(names: Sequence[str]) -> str:
    """Names for a message: 'a', 'a and b', 'a, b and c'."""
    return " and ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def option_name(option: str) -> str:
    """`option` (a RestoreConfig field, or `output`) as the front end running the job names it, for a message that
    names it where it is raised: a warning, or advice inside an error (choose another -o OUTPUT), which a front end
    cannot reword as it rewords an OptionError's lead (named). A Python caller's keyword unless named_as says
    otherwise: a script was told to 'choose another -o OUTPUT' and that '--preset is for libx264'."""
    return _OPTION_NAMES.get().get(option, option)


BACKEND_FUNCTIONS = {"local": "restore_video", "ray": "restore_path_ray"}  # how a script picks a backend


def backend_name(backend: str) -> str:
    """A backend ("local", "ray") as the front end running the job picks it, for advice such as 'restore it with
    ...': the CLI's `--backend ray` where named_as names `backend`, else the function a Python caller calls for it
    (restore_path_ray; restore_video, the local one), which has no backend keyword to name."""
    flag = _OPTION_NAMES.get().get("backend")
    return f"{flag} {backend}" if flag else BACKEND_FUNCTIONS[backend]


def option_names() -> Mapping[str, str]:
    """The names in effect (named_as), for a worker process to word its messages as the driver's front end does."""
    return dict(_OPTION_NAMES.get())


@contextmanager
def named_as(names: Mapping[str, str]) -> Iterator[None]:
    """Inside the block, messages name options as `names` has them (the CLI's flags); in this thread's context only,
    and only until the block ends, so that a script that ran the CLI in its process (a test) is not told of flags."""
    token = _OPTION_NAMES.set(names)
    try:
        yield
    finally:
        _OPTION_NAMES.reset(token)


class InputError(ClrfaceError):
    """The input file or folder cannot be read as the media it claims to be."""


class ModelError(ClrfaceError):
    """A model or weights file is missing, unknown or does not match."""


class ModelOptionError(OptionError, ModelError):
    """A model option is wrong (an unknown `model`, the insightface detector without `insightface_root`): a
    ModelError, named as each front end names the option, as any OptionError."""


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})  # no room left: the disk, or the user's quota on it


def disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from, says the disk (or the quota) is full: every file after it
    would fail the same way, so a folder stops there instead of failing each one."""
    seen = 0
    while error is not None and seen < 16:
        if getattr(error, "errno", None) in FULL_ERRNOS:
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False
