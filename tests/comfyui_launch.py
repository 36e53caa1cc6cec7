"""Run ComfyUI's main.py (argv: COMFYUI_DIR, then its options) with torchvision's nms op defined in pure torch."""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
from collections.abc import Sequence
from typing import Any

# torchvision has no CPU wheel on PyPI; its CUDA wheel imports on a CPU-only torch but its C ops do
# not load, and `import torchvision` then fails with "operator torchvision::nms does not exist".
# An import hook runs just before torchvision's first import (after ComfyUI has set up and imported
# torch itself): when the compiled ops cannot be loaded it defines `torchvision::nms` (and `qnms`,
# for which torchvision 0.28 also registers a fake kernel) with torch.library. The Library object
# stays referenced for the life of the process.
_LIBRARY: Any = None  # the torch.library.Library holding the ops; must outlive torchvision's import


def nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy non-maximum suppression: indices of the kept boxes (x1, y1, x2, y2), by decreasing score."""
    import torch

    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in scores.argsort(descending=True).tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2, x2[i]) - torch.maximum(x1, x1[i])).clamp(min=0)
        h = (torch.minimum(y2, y2[i]) - torch.maximum(y1, y1[i])).clamp(min=0)
        inter = w * h
        suppressed |= inter / (areas + areas[i] - inter).clamp(min=1e-12) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def qnms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """nms on quantized boxes and scores."""
    return nms(boxes.dequantize(), scores.dequantize(), iou_threshold)


def define_nms_if_missing() -> Any:
    """Load torchvision's compiled ops; when they do not load, define torchvision::nms/qnms in torch instead."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return None
    folder = os.path.dirname(spec.origin)
    for name in sorted(os.listdir(folder)):
        if name.startswith("_C.") and name.endswith((".so", ".pyd")):
            try:
                torch.ops.load_library(os.path.join(folder, name))
            except OSError:
                break
            if hasattr(torch.ops.torchvision, "nms"):
                return None
    library = torch.library.Library("torchvision", "DEF")
    for op, kernel in (("nms", nms), ("qnms", qnms)):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.impl(op, kernel, "CompositeExplicitAutograd")
    return library


class DefineNmsFirst(importlib.abc.MetaPathFinder):
    """Finds nothing itself; on the first `import torchvision` it defines the ops, then steps aside."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        global _LIBRARY
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            _LIBRARY = define_nms_if_missing()
        return None


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python tests/comfyui_launch.py COMFYUI_DIR [main.py options]")
    comfy_dir = os.path.abspath(sys.argv[1])
    sys.meta_path.insert(0, DefineNmsFirst())
    os.chdir(comfy_dir)
    sys.path[0] = comfy_dir  # instead of this script's folder, as when main.py is run directly
    sys.argv = [os.path.join(comfy_dir, "main.py"), *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
