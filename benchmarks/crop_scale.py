"""Where a CLR-Face checkpoint loses on a video's faces, measured at the crop's scale (before any paste).

    python benchmarks/crop_scale.py VIDEO [--seed 0] [--frames 8] [--weights W.safetensors]

The first frames of a clean VIDEO are degraded with the video eval's recipe (train.degrade.degrade_sequence,
EVAL_DEGRADE, default_rng(seed)); the first face of each frame is aligned, from the clean frame's landmarks,
in both. Prints the mean PSNR against the clean crop of: the degraded crop; the autoencoder alone on the
clean crop (unquantised and snapped: the ceiling of anything the decoder draws); the IRN estimate; and the
restorer at fidelity 0, 0.5 and 1 (unsnapped, as for videos, with the model's blend gate). The autoencoder
line bounds what the decoder draws; the restorer's output can pass it, as its colour and shading below the
anchor scale come from the IRN estimate and its gate blends it with the degraded crop.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over faces of the PSNR of uint8 (N, S, S, 3) `a` against `b`."""
    errors = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(errors, 1e-12))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--weights", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from clrface_video.eval.paired import EVAL_DEGRADE
    from clrface_video.eval.temporal import read_clip
    from clrface_video.faces.align import align_face
    from clrface_video.faces.detect import make_detector
    from clrface_video.restore.base import RestoreBatch
    from clrface_video.restore.model import CLRFaceModel
    from clrface_video.restore.restorer import SHIPPED_WEIGHTS, CLRFaceRestorer, default_identity_net
    from clrface_video.train.degrade import degrade_sequence

    torch.set_num_threads(args.threads)
    frames = [frame.image for frame in read_clip(args.video, args.frames)]
    degraded = degrade_sequence(frames, np.random.default_rng(args.seed), EVAL_DEGRADE)
    detector = make_detector()
    model = CLRFaceModel.load(args.weights or SHIPPED_WEIGHTS).eval()
    size = model.cfg.resolution
    clean, lq = [], []
    for image, bad in zip(frames, degraded, strict=True):
        faces = detector.detect(image)
        if faces:
            clean.append(align_face(image, faces[0].landmarks, size).image)
            lq.append(align_face(bad, faces[0].landmarks, size).image)
    if not clean:
        raise SystemExit(f"no face found in the first {args.frames} frames of {args.video}")
    clean_faces, lq_faces = np.stack(clean), np.stack(lq)

    def to_tensor(faces: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def to_uint8(x: torch.Tensor) -> np.ndarray:
        return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()

    print(f"{args.video.name}, seed {args.seed}: {len(clean_faces)} faces at {size} px; PSNR (dB) against the clean crops")
    print(f"  degraded crop                        {psnr(lq_faces, clean_faces):6.2f}")
    with torch.no_grad():
        z = model.vqgan.encode(to_tensor(clean_faces))
        print(f"  autoencoder on the clean crop        {psnr(to_uint8(model.vqgan.decode(z)), clean_faces):6.2f}")
        snapped = model.vqgan.decode(model.vqgan.quantize(z).z_q)
        print(f"  ... snapped to the codebook          {psnr(to_uint8(snapped), clean_faces):6.2f}")
        print(f"  IRN estimate                         {psnr(to_uint8(model.irn(to_tensor(lq_faces))), clean_faces):6.2f}")
    identity_net = default_identity_net(torch.device("cpu"))
    for fidelity in (0.0, 0.5, 1.0):
        restorer = CLRFaceRestorer(model, "cpu", fidelity, identity_net=identity_net)
        out = restorer.restore(RestoreBatch(crops=lq_faces, seeds=np.arange(len(lq_faces)), snap=False))
        print(f"  restorer, fidelity {fidelity:<3}               {psnr(out, clean_faces):6.2f}")


if __name__ == "__main__":
    main()
