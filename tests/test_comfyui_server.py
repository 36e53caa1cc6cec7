"""A real ComfyUI server (headless, CPU, 127.0.0.1) runs LoadImage -> CLR-Face -> SaveImage, and the shipped
video workflow, from POST /prompt."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.media import make_clip

# Runs only when CLRFACE_COMFYUI_DIR points at a ComfyUI checkout (v0.8.0 is tested) and this Python
# has ComfyUI's requirements; otherwise it is skipped with a message. See README, "Tests and research data".
REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "tests" / "comfyui_launch.py"
FACE = (slice(60, 190), slice(150, 290))  # rows, columns around the astronaut's face
FAR = (slice(330, 512), slice(0, 512))  # far below the face
STARTUP_SECONDS = 240
RUN_SECONDS = 300
COMFY_MODULES = ("aiohttp", "sqlalchemy", "alembic", "torchsde", "comfyui_frontend_package")


def comfy_dir() -> Path:
    """The ComfyUI checkout from CLRFACE_COMFYUI_DIR, or skip with what to do."""
    value = os.environ.get("CLRFACE_COMFYUI_DIR")
    if not value:
        pytest.skip("set CLRFACE_COMFYUI_DIR to a ComfyUI checkout (v0.8.0) and run with a Python that has "
                    "ComfyUI's requirements to test the nodes inside a real ComfyUI server (README, \"Tests and research data\")")
    folder = Path(value).expanduser()
    if not (folder / "main.py").is_file() or not (folder / "folder_paths.py").is_file():
        pytest.fail(f"CLRFACE_COMFYUI_DIR={value} is not a ComfyUI checkout (no main.py / folder_paths.py)")
    missing = [name for name in COMFY_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"this Python ({sys.executable}) lacks ComfyUI's requirements ({', '.join(missing)}); "
                    f"pip install -c constraints.txt -r {folder / 'requirements.txt'} in a separate environment")
    return folder


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A ComfyUI process on 127.0.0.1:port with its own base directory."""

    def __init__(self, base: Path, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base, self.port, self.process, self.log = base, port, process, log
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **query: str) -> bytes:
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"ComfyUI exited with {self.process.returncode} while starting:\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"ComfyUI did not answer on {self.url} within {STARTUP_SECONDS} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray) -> Iterator[Server]:
    """Start ComfyUI headless on the CPU with this package linked into custom_nodes; always stop it."""
    folder = comfy_dir()
    base = tmp_path_factory.mktemp("comfyui_base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "clrface-video").symlink_to(REPO / "plugins" / "comfyui", target_is_directory=True)
    (base / "input").mkdir()
    Image.fromarray(astronaut_rgb).save(base / "input" / "astronaut.png")
    make_clip(base / "input" / "talk.mp4", frames=12, size=(256, 192))  # the astronaut, with an aac track
    for sub, name in (("clrface", "my-clrface.safetensors"), ("facerestore_models", "other.safetensors")):
        (base / "models" / sub).mkdir(parents=True)
        (base / "models" / sub / name).write_bytes(b"")  # only listed, never loaded
    port = free_port()
    log = base / "comfyui.log"
    command = [os.environ.get("CLRFACE_COMFYUI_PYTHON", sys.executable), str(LAUNCHER), str(folder),
               "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
               "--base-directory", str(base), "--disable-api-nodes", "--database-url", "sqlite:///:memory:"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=folder)
    running = Server(base, port, process, log)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def run_prompt(server: Server, prompt: dict[str, Any]) -> dict[str, Any]:
    """POST /prompt, check there are no node errors, wait for /history and return the prompt's entry."""
    answer = server.post_json("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
    assert answer.get("node_errors") == {}, answer
    prompt_id = answer["prompt_id"]
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        history = server.get_json(f"/history/{prompt_id}")
        entry = history.get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            status = entry["status"]
            assert status["status_str"] == "success", f"{status}\n{server.log_tail()}"
            return entry
        if server.process.poll() is not None:
            pytest.fail(f"ComfyUI exited during the prompt:\n{server.log_tail()}")
        time.sleep(0.5)
    pytest.fail(f"prompt {prompt_id} did not finish within {RUN_SECONDS} s:\n{server.log_tail()}")


def saved_image(server: Server, entry: dict[str, Any], node: str) -> np.ndarray:
    (image,) = saved_images(server, entry, node)
    return image


def saved_images(server: Server, entry: dict[str, Any], node: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(server.get("/view", filename=i["filename"], subfolder=i["subfolder"],
                                                        type=i["type"]))).convert("RGB"))
            for i in entry["outputs"][node]["images"]]


def test_nodes_are_registered_with_their_model_folders(server):
    info = server.get_json("/object_info")
    assert info["CLRFaceModelLoader"]["display_name"] == "Load CLR-Face Model"
    assert info["CLRFaceRestore"]["display_name"] == "CLR-Face Restore"
    assert info["CLRFaceRestore"]["output"] == ["IMAGE", "MASK"]
    assert len(info["CLRFaceRestore"]["output_tooltips"]) == 2 and info["CLRFaceModelLoader"]["output_tooltips"]
    assert info["CLRFaceRestore"]["input"]["required"]["images"][1]["tooltip"]
    choices = info["CLRFaceModelLoader"]["input"]["required"]["model_name"][0]
    assert choices == ["shipped", "baseline-bicubic-sharpen", "my-clrface.safetensors",
                       "facerestore_models/other.safetensors"]


def test_workflow_restores_the_face_and_keeps_the_background(server, astronaut_rgb):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "2": {"class_type": "CLRFaceModelLoader", "inputs": {"model_name": "baseline-bicubic-sharpen"}},
        "3": {"class_type": "CLRFaceRestore", "inputs": {
            "clrface_model": ["2", 0], "images": ["1", 0], "fidelity": 0.5, "detector": "retinaface",
            "min_face": 16, "max_upscale": 4.0, "batch_is_video": True}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "clrface_test"}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 1]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "clrface_mask"}},
    }
    entry = run_prompt(server, prompt)
    restored = saved_image(server, entry, "4")
    assert restored.shape == astronaut_rgb.shape
    diff = np.abs(restored.astype(np.int16) - astronaut_rgb.astype(np.int16))
    assert diff[FACE].mean() > 2.0, "the face did not change"
    assert diff[FAR].max() <= 1 and diff[FAR].mean() < 0.5, "the background changed beyond the PNG round trip"
    mask = saved_image(server, entry, "6")[..., 0]
    assert mask.shape == astronaut_rgb.shape[:2] and mask[FACE].max() == 255 and mask[FAR].max() == 0


def test_video_batch_is_tracked_and_every_frame_saved(server, astronaut_rgb):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}},
        "3": {"class_type": "CLRFaceModelLoader", "inputs": {"model_name": "baseline-bicubic-sharpen"}},
        "4": {"class_type": "CLRFaceRestore", "inputs": {
            "clrface_model": ["3", 0], "images": ["2", 0], "fidelity": 0.3, "detector": "retinaface",
            "min_face": 16, "max_upscale": 4.0, "batch_is_video": True,
            "identity_guidance": False, "detection_threshold": 0.7}},  # optional inputs pass ComfyUI's checks
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "clrface_video"}},
    }
    entry = run_prompt(server, prompt)
    frames = saved_images(server, entry, "5")
    assert len(frames) == 3
    assert all(f.shape == astronaut_rgb.shape for f in frames)
    assert not np.array_equal(frames[0][FACE], astronaut_rgb[FACE])
    assert np.array_equal(frames[1], frames[0]) and np.array_equal(frames[2], frames[0])  # one track, one seed
    assert "clrface: loaded" in server.log_tail(200) and server.log.read_text().count("clrface: loaded") == 1


def test_shipped_video_workflow_keeps_the_frames_rate_and_audio(server):
    """plugins/comfyui/workflows/restore_video_api.json as shipped: Load Video -> Get Video Components ->
    CLR-Face Restore (the shipped model) -> Create Video with the source's audio and rate -> Save Video."""
    from clrface_video.io.decode import probe_video, read_frames

    prompt = json.loads((REPO / "plugins" / "comfyui" / "workflows" / "restore_video_api.json").read_text())
    assert prompt["1"]["inputs"]["file"] == "movie.mp4" and prompt["3"]["inputs"]["model_name"] == "shipped"
    prompt["1"]["inputs"]["file"] = "talk.mp4"
    prompt["7"] = {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "frames_in"}}
    prompt["8"] = {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "frames_out"}}
    entry = run_prompt(server, prompt)
    frames_in, frames_out = saved_images(server, entry, "7"), saved_images(server, entry, "8")
    assert len(frames_in) == len(frames_out) == 12
    face, far = (slice(30, 100), slice(100, 170)), (slice(130, 192), slice(0, 60))  # rows, columns
    for a, b in zip(frames_in, frames_out, strict=True):
        diff = np.abs(a.astype(np.int16) - b)
        assert diff[face].mean() > 2.0 and diff[far].max() == 0  # the face restored, the rest bit for bit
    saved = saved_video(server, entry, "6")
    source = server.base / "input" / "talk.mp4"
    src, out = probe_video(source), probe_video(saved)
    assert (out.width, out.height, out.fps) == (src.width, src.height, src.fps)
    assert len(list(read_frames(saved))) == len(list(read_frames(source))) == 12
    assert audio_seconds(saved) == pytest.approx(audio_seconds(source), abs=0.05), "the audio was lost or cut"


def saved_video(server: Server, entry: dict[str, Any], node: str) -> Path:
    (info,) = entry["outputs"][node]["images"]
    return server.base / "output" / info["subfolder"] / info["filename"]


def audio_seconds(path: Path) -> float:
    """Decoded length of the first audio stream (ComfyUI re-encodes the audio, so its bytes differ)."""
    import av

    with av.open(str(path)) as container:
        (stream,) = container.streams.audio
        return sum(frame.samples for frame in container.decode(stream)) / stream.sample_rate


@pytest.mark.slow
def test_cancel_stops_the_restore_node_mid_batch_and_the_next_run_is_whole(server):
    """POST /interrupt (ComfyUI's Cancel) while CLR-Face Restore runs the shipped model over one batch of faces: the
    node checked it only between the frames it returns, which come a whole batch at a time, so the run went on to
    its end (3 s in, 32 s after Cancel on a 2-core CPU). Cancel 40% into the run now ends it well before the time
    a whole run takes; the run after it finishes, with the frames an uncancelled run gives."""
    def prompt(min_face: int) -> dict[str, Any]:  # 15, 16 and 17 restore this face alike; ComfyUI caches each
        return {
            "1": {"class_type": "LoadVideo", "inputs": {"file": "talk.mp4"}},
            "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
            "3": {"class_type": "CLRFaceModelLoader", "inputs": {"model_name": "shipped"}},
            "4": {"class_type": "CLRFaceRestore", "inputs": {
                "clrface_model": ["3", 0], "images": ["2", 0], "fidelity": 0.5, "detector": "retinaface",
                "min_face": min_face, "max_upscale": 4.0, "batch_is_video": True}},
            "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "clrface_cancel"}},
        }

    run_prompt(server, prompt(16))  # the model loaded, and how long a whole run takes now
    start = time.monotonic()
    whole = saved_images(server, run_prompt(server, prompt(17)), "5")
    seconds = time.monotonic() - start
    answer = server.post_json("/prompt", {"prompt": prompt(15), "client_id": uuid.uuid4().hex})
    start = time.monotonic()
    time.sleep(0.4 * seconds)
    request = urllib.request.Request(f"{server.url}/interrupt", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()
    while (entry := server.get_json(f"/history/{answer['prompt_id']}").get(answer["prompt_id"])) is None \
            or entry["status"].get("completed") is None:
        assert time.monotonic() - start < RUN_SECONDS, server.log_tail()
        time.sleep(0.1)
    took = time.monotonic() - start
    assert entry["status"]["status_str"] == "error" and "5" not in entry["outputs"]
    assert [kind for kind, _ in entry["status"]["messages"]][-1] == "execution_interrupted"
    assert took < 0.75 * seconds, f"the run ended {took:.1f} s after it started and {took - 0.4 * seconds:.1f} s " \
                                  f"after Cancel; a whole run takes {seconds:.1f} s"
    again = saved_images(server, run_prompt(server, prompt(15)), "5")
    assert len(again) == 12 and all(np.array_equal(a, b) for a, b in zip(again, whole, strict=True))


def test_the_restore_nodes_progress_bar_moves_within_a_batch_and_ends_full(server):
    """The progress ComfyUI sends its browser for CLR-Face Restore over a 12-frame video (one batch of faces with
    the shipped model): it moved once per frame returned, so it sat at 0 through the batch, then jumped to 12. It
    now counts hundredths of a frame, moving as frames are read in and at each sampler step, never back, to full."""
    import asyncio

    import aiohttp

    client = uuid.uuid4().hex
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "talk.mp4"}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "CLRFaceModelLoader", "inputs": {"model_name": "shipped"}},
        "4": {"class_type": "CLRFaceRestore", "inputs": {
            "clrface_model": ["3", 0], "images": ["2", 0], "fidelity": 0.5, "detector": "retinaface",
            "min_face": 18, "max_upscale": 4.0, "batch_is_video": True}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "clrface_progress"}},
    }

    async def watch() -> list[tuple[int, int]]:
        told = []
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client}") as socket_:
            answer = server.post_json("/prompt", {"prompt": prompt, "client_id": client})
            async with asyncio.timeout(RUN_SECONDS):
                async for message in socket_:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue  # previews
                    kind, data = json.loads(message.data).values()
                    if kind == "progress" and data["node"] == "4":
                        told.append((data["value"], data["max"]))
                    if kind in ("executing", "execution_error") and data.get("prompt_id") == answer["prompt_id"] \
                            and (kind == "execution_error" or data["node"] is None):
                        assert kind == "executing", f"{data}\n{server.log_tail()}"
                        return told
        return told

    told = asyncio.run(watch())
    values = [value for value, _ in told]
    assert {total for _, total in told} == {1200}, told
    assert values == sorted(values) and values[-1] == 1200, values
    assert len([value for value in values if value % 100]) >= 5, f"no parts of a frame told: {values}"
