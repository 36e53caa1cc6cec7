"""User-facing errors: one clear line for the CLI, never a traceback."""
import re

FFMPEG_ERRNO = re.compile(r"\[Errno -?\d+\] ")  # PyAV's prefix to FFmpeg's messages: a number users cannot use


def one_line(error: BaseException) -> str:
    """An exception's message on one line (FFmpeg and Pillow messages may carry newlines), else its type's name."""
    return FFMPEG_ERRNO.sub("", " ".join(str(error).split())) or type(error).__name__


class ClrfaceError(Exception):
    """An error caused by the user's input or set-up; its message is one line that says what to do."""


class InputError(ClrfaceError):
    """The input file or folder cannot be read as the media it claims to be."""


class ModelError(ClrfaceError):
    """A model or weights file is missing, unknown or does not match."""
