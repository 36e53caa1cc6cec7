"""Throughput of the Ray backend with 1 and 2 workers (and the local backend) on a generated clip and photo folder.

    python benchmarks/bench_ray.py                          # local Ray on this machine, 2 CPUs
    python benchmarks/bench_ray.py --address auto --workers 1 2 4 8   # an existing cluster

Every run starts its workers afresh: "start s" is starting them and loading their models, "job s"
the restore itself (items/s is over the job seconds).
The clip is the test suite's generated astronaut clip (with audio), re-encoded with a keyframe
every --gop frames so that it splits into segments; the folder holds copies of the astronaut at
a few sizes. Needs ray (`pip install -c constraints.txt "ray[data]"`).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, frames: int, size: tuple[int, int], gop: int, photos: int) -> tuple[Path, Path]:
    """A short-GOP clip and a folder of photos, generated (no data is shipped)."""
    sys.path.insert(0, str(REPO))
    from PIL import Image

    from tests.media import astronaut, make_clip
    from tests.ray_local import short_gop

    clip = short_gop(make_clip(folder / "src.mp4", frames=frames, size=size), folder / "clip.mp4", gop=gop)
    album = folder / "album"
    album.mkdir()
    for i in range(photos):
        side = 256 + 32 * (i % 4)
        Image.fromarray(astronaut()).resize((side, side)).save(album / f"photo_{i:03d}.png")
    return clip, album


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=None, help="Ray cluster to join [default: start a local Ray]")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (without --address)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="256x192", help="WxH of the generated clip")
    parser.add_argument("--gop", type=int, default=6, help="frames between keyframes of the clip")
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--model", default="baseline-bicubic-sharpen")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))

    from clrface_video.config import RestoreConfig
    from clrface_video.distributed import ray_session, restore_folder_ray, restore_video_ray, start_workers
    from clrface_video.photos import restore_folder
    from clrface_video.pipeline import restore_video

    config = RestoreConfig(model=args.model, device=args.device, quiet=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip, album = make_inputs(Path(tmp), args.frames, size, args.gop, args.photos)  # type: ignore[arg-type]
        start = time.perf_counter()
        frames = restore_video(clip, Path(tmp) / "local.mp4", config).frames
        rows.append(("video", "local", "-", frames, 0.0, time.perf_counter() - start))
        start = time.perf_counter()
        images = restore_folder(album, Path(tmp) / "local_album", config).images
        rows.append(("photos", "local", "-", images, 0.0, time.perf_counter() - start))
        with ray_session(args.address, num_cpus=None if args.address else args.cpus) as ray:
            for workers in args.workers:
                for kind in ("video", "photos"):
                    start = time.perf_counter()
                    actors = start_workers(ray, config, video=kind == "video", workers=workers)
                    ray.get([actor.describe.remote() for actor in actors])  # models loaded
                    started = time.perf_counter()
                    try:
                        if kind == "video":
                            done = restore_video_ray(ray, actors, clip, Path(tmp) / f"ray{workers}.mp4", config).frames
                        else:
                            done = restore_folder_ray(ray, actors, album, Path(tmp) / f"album{workers}", config).images
                    finally:
                        for actor in actors:
                            ray.kill(actor)
                    rows.append((kind, "ray", str(workers), done, started - start, time.perf_counter() - started))
    print(f"{'job':<7} {'backend':<8} {'workers':>7} {'items':>6} {'start s':>8} {'job s':>8} {'items/s':>8}")
    for kind, backend, workers, items, startup, seconds in rows:
        print(f"{kind:<7} {backend:<8} {workers:>7} {items:>6} {startup:>8.2f} {seconds:>8.2f} {items / seconds:>8.2f}")
    print(f"video: {args.frames} frames {args.size}, keyframe every {args.gop}; photos: {args.photos}; "
          f"model {args.model}; local rows load their models inside the job seconds")


if __name__ == "__main__":
    main()
