"""Peak memory of `restore_video` on a short clip and a clip N times longer: it must not grow with length.

    python benchmarks/bench_memory.py                 # 48 and 480 frames, 256x256, baseline restorer
    python benchmarks/bench_memory.py --frames 48 --factor 10 --size 640x360

Each restore runs in a fresh Python process; its peak resident set (ru_maxrss) is read in that
process after the job, so model loading is counted the same way for both lengths.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from clrface_video.config import RestoreConfig
from clrface_video.pipeline import restore_video
src, dst, model, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
report = restore_video(src, dst, RestoreConfig(model=model, device="cpu", batch_size=batch))
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"frames": report.frames, "faces": report.faces, "seconds": time.perf_counter() - start,
                  "peak_mib": peak_kib / 1024}))
"""


def make_clip(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """The test suite's generated astronaut clip (with audio), so no data has to be shipped."""
    sys.path.insert(0, str(REPO / "tests"))
    from media import make_clip as generate  # tests/media.py

    return generate(path, frames=frames, size=size, audio=True)


def measure(clip: Path, out: Path, model: str, batch: int) -> dict:
    """Restore `clip` in a fresh interpreter and return its frames, faces, seconds and peak RSS."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(out), model, str(batch)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"restore of {clip.name} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="frames of the short clip")
    parser.add_argument("--factor", type=int, default=10, help="the long clip is this many times longer")
    parser.add_argument("--size", default="256x256", help="WxH of the generated clips")
    parser.add_argument("--model", default="baseline-bicubic-sharpen", help="restorer to run")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in (args.frames, args.frames * args.factor):
            clip = make_clip(Path(tmp) / f"clip_{frames}.mp4", frames, size)
            row = measure(clip, Path(tmp) / f"clip_{frames}_restored.mp4", args.model, args.batch_size)
            rows.append(row)
    print(f"{'frames':>7} {'faces':>6} {'seconds':>8} {'peak RSS MiB':>13}")
    for row in rows:
        print(f"{row['frames']:>7} {row['faces']:>6} {row['seconds']:>8.1f} {row['peak_mib']:>13.1f}")
    growth = rows[1]["peak_mib"] - rows[0]["peak_mib"]
    print(f"peak RSS grows by {growth:+.1f} MiB for {rows[1]['frames'] / rows[0]['frames']:.0f}x the frames "
          f"({args.size}, {args.model}, batch {args.batch_size})")


if __name__ == "__main__":
    main()
