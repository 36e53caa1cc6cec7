"""User-facing errors: one clear line for the CLI, never a traceback."""


class ClrfaceError(Exception):
    """An error caused by the user's input or set-up; its message is one line that says what to do."""


class InputError(ClrfaceError):
    """The input file or folder cannot be read as the media it claims to be."""


class ModelError(ClrfaceError):
    """A model or weights file is missing, unknown or does not match."""
