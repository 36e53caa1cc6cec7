"""ComfyUI node package for clrface-video (CLR-Face face restoration for image batches and video frames)."""
import sys
from pathlib import Path

try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ModuleNotFoundError as error:
    if error.name != "clrface_video":
        raise
    # ComfyUI says "Cannot import ... for custom nodes: <this message>": a bare "No module named 'clrface_video'"
    # did not say that the package goes into ComfyUI's own Python (the embedded one on Windows), nor how.
    repo = Path(__file__).resolve().parents[2]  # the clrface-video checkout, where this folder is a link into it
    source = str(repo) if (repo / "clrface_video").is_dir() else "<your clrface-video checkout>"
    raise ModuleNotFoundError(f"the CLR-Face nodes need the clrface-video package in ComfyUI's Python, which lacks it: "
                              f"{sys.executable} -m pip install -c {Path(source) / 'constraints.txt'} -e {source}",
                              name=error.name) from None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
