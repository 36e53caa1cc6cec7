"""clrface-video: restore faces in videos and photo collections with the CLR-Face method."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
# The Python API (clrface_video.api), imported on first use so `import clrface_video` stays fast.
__all__ = ["Session", "load_restorer", "restore_frames", "restore_image", "restore_video"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'clrface_video' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
