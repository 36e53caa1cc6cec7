"""Peak memory and time of io.webp_frames.WebpWriter writing an animated WebP of N frames.

    python benchmarks/webp_writer.py [--frames 300] [--flat]

The frames are scikit-image's astronaut (public domain, 512 x 512) with an alpha ramp, moved 3 px a frame,
written lossless as from a lossless source; --flat posterises them (few colours: a small output). The peak
resident set (Linux) is read after the writer closes, in this process, which does nothing else. To compare with
another version of the project, run this file with PYTHONPATH set to a checkout of that version.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from clrface_video.io.webp_frames import WebpWriter, probe_webp
from clrface_video.types import Frame


def peak_rss_mib() -> float:
    """ru_maxrss, in KiB on Linux (as benchmarks/bench_memory.py reads it); the project's own eval.bench.peak_rss_mib
    is not used, so that versions from before it can run this file too."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--flat", action="store_true", help="posterised frames instead of the photo's")
    args = parser.parse_args()
    rgb = data.astronaut() // 64 * 64 if args.flat else data.astronaut()
    base = np.dstack([rgb, np.tile(np.linspace(64, 255, 512).astype(np.uint8), (512, 1))])
    with tempfile.TemporaryDirectory() as folder:
        source, output = Path(folder) / "source.webp", Path(folder) / "restored.webp"
        two = [Image.fromarray(np.roll(base, i, axis=1)) for i in range(2)]
        two[0].save(source, save_all=True, append_images=two[1:], duration=[40, 40], lossless=True, loop=0)
        del two
        before = peak_rss_mib()
        start = time.perf_counter()
        with WebpWriter(output, source, probe_webp(source)) as writer:
            for index in range(args.frames):
                frame = np.roll(base, 3 * index, axis=1)
                writer.write(Frame(image=frame[..., :3], index=index, pts=40 * index, time_base=Fraction(1, 1000),
                                   alpha=frame[..., 3]))
        seconds = time.perf_counter() - start
        size = output.stat().st_size
    print(f"{args.frames} frames 512x512 RGBA{' (flat)' if args.flat else ''}: peak RSS {peak_rss_mib():.0f} MiB "
          f"({before:.0f} before writing), {seconds:.1f} s, output {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
