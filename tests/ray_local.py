"""Ray backend test helpers: a private Ray (2 CPUs on 127.0.0.1, no auth files, own temp folder) and short-GOP clips."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

SETTINGS = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
for _name, _value in SETTINGS.items():  # Ray reads them when it is imported: before any test module imports it
    os.environ.setdefault(_name, _value)


def local_ray() -> Iterator[object]:
    """Start the test Ray (skip when ray is not installed); the restore_*_ray calls join it."""
    ray = pytest.importorskip("ray", reason="Ray backend tests need ray: pip install -c constraints.txt \"ray[data]\"")
    temp_dir = tempfile.mkdtemp(prefix="clrray-test-")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=temp_dir,
             object_store_memory=256 << 20, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def short_gop(source: Path, target: Path, gop: int, interlaced: bool = False) -> Path:
    """Re-encode a clip's video with libx264 (B-frames on) and a keyframe every `gop` frames; audio copied.

    interlaced: code the frames as fields, top first (for a clip made with make_clip(interlaced=True))."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        video = out.add_stream("libx264", rate=vin.average_rate)
        video.width, video.height, video.pix_fmt = vin.width, vin.height, "yuv420p"
        video.time_base = video.codec_context.time_base = vin.time_base
        fields = ":interlaced=1:tff=1" if interlaced else ""
        video.options = {"preset": "veryfast", "threads": "1",
                         "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0{fields}"}
        audio = out.add_stream_from_template(ain)
        for packet in src.demux(vin, ain):
            if packet.dts is None:
                continue
            if packet.stream.type == "audio":
                packet.stream = audio
                out.mux(packet)
                continue
            for frame in packet.decode():
                frame.pict_type = av.video.frame.PictureType.NONE
                out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return target
