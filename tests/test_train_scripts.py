"""scripts/: the WebP packer and the GPU training recipe, run end to end on the CPU with tiny budgets."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from clrface_video.restore.model import CLRFaceModel
from clrface_video.train.manifest import read_manifest
from tests.test_train_stages import make_prepared

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture()
def packed(tmp_path: Path, astronaut: np.ndarray) -> tuple[Path, Path]:
    source = make_prepared(tmp_path / "data", astronaut, size=128, count=8)
    out = tmp_path / "webp"
    subprocess.run([sys.executable, str(ROOT / "scripts/pack_faces.py"), str(source), str(out), "--quality", "85"],
                   check=True, capture_output=True, cwd=ROOT)
    return source, out


def test_pack_faces_keeps_every_row_and_the_pixels(packed: tuple[Path, Path]) -> None:
    source, out = packed
    before, after = read_manifest(source / "manifest.csv"), read_manifest(out / "manifest.csv")
    assert [r.split for r in before] == [r.split for r in after] and len(after) == 8
    for old, new in zip(before, after):
        assert new.file == str(Path(old.file).with_suffix(".webp")) and new.source == old.source
        a = cv2.imread(str(source / old.file)).astype(float)
        b = cv2.imread(str(out / new.file)).astype(float)
        assert 10 * np.log10(255**2 / ((a - b) ** 2).mean()) > 35  # a faithful copy, not a re-degradation


def test_pack_faces_max_train_keeps_every_held_out_face_and_spreads_the_rest(tmp_path: Path,
                                                                           astronaut: np.ndarray) -> None:
    source = make_prepared(tmp_path / "data", astronaut, size=32, count=8)  # faces 0-4 train, 5-7 held out
    out = tmp_path / "webp"
    subprocess.run([sys.executable, str(ROOT / "scripts/pack_faces.py"), str(source), str(out), "--max-train", "2"],
                   check=True, capture_output=True, cwd=ROOT)
    rows = read_manifest(out / "manifest.csv")
    assert [Path(r.file).stem for r in rows] == ["face_00", "face_02", "face_05", "face_06", "face_07"]
    assert sorted(p.name for p in (out / "train").iterdir()) == ["face_00.webp", "face_02.webp"]


def test_pack_facenet_int8_unpacks_to_weights_that_embed_as_fp32_does(tmp_path: Path, astronaut: np.ndarray) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from clrface_video.faces.identity import CACHE_NAME, IdentityEncoder

    faces = make_prepared(tmp_path / "data", astronaut, size=128, count=8) / "train"
    packed, unpacked = tmp_path / "fn8", tmp_path / "fn"
    script = [sys.executable, str(ROOT / "scripts/pack_facenet.py")]
    said = subprocess.run([*script, str(packed), "--int8", "--check", str(faces)], check=True, capture_output=True,
                          text=True, cwd=ROOT).stdout
    small = packed / CACHE_NAME.replace(".safetensors", ".int8.safetensors")
    assert small.stat().st_size < 25e6  # fits a 64 MiB upload beside 30 MiB of faces and the working tree
    with safe_open(str(small), "pt") as f:
        assert f.get_tensor("bottleneck.weight").dtype == torch.int8
    assert float(re.search(r"cosine to the fp32 embeddings min ([0-9.]+)", said).group(1)) > 0.999
    subprocess.run([*script, str(unpacked), "--unpack", str(small)], check=True, capture_output=True, cwd=ROOT)
    state = load_file(str(unpacked / CACHE_NAME))
    assert all(v.dtype == torch.float16 for v in state.values())
    reference = IdentityEncoder()
    crops = np.stack([cv2.imread(str(p))[..., ::-1] for p in sorted(faces.iterdir())])
    a, b = reference.embed(crops), IdentityEncoder(state).embed(crops)
    assert (a * b).sum(axis=1).min() > 0.999
    assert state.keys() == reference.net.state_dict().keys()


def test_pack_facenet_check_without_int8_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "fn"
    said = subprocess.run([sys.executable, str(ROOT / "scripts/pack_facenet.py"), str(out), "--check", str(tmp_path)],
                          check=False, capture_output=True, text=True, cwd=ROOT)
    assert said.returncode == 2 and "give it with --int8" in said.stderr.splitlines()[-1]
    assert not out.exists()  # no fp16 copy written while the asked-for check silently never ran


def run_recipe(data: Path, run: Path, **env: str) -> subprocess.CompletedProcess:
    """scripts/train_gpu_128.sh on the CPU with phases of about a second and `env` added; it must succeed."""
    tiny = {"PYTHON": sys.executable, "DEVICE": "cpu", "P1": "0.02", "P2": "0.02", "P3": "0.02", "P4": "0.02",
            "BATCH": "2", "WORKERS": "0", "CODEC_PROB": "0", "FACENET": "0", "LOG_EVERY": "1"}
    done = subprocess.run(["bash", str(ROOT / "scripts/train_gpu_128.sh"), str(data), str(run)],
                          env={**os.environ, **tiny, **env}, check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_gpu_recipe_runs_its_phases_and_exports(packed: tuple[Path, Path], tmp_path: Path) -> None:
    """As on a lent GPU machine, which has neither FaceNet's package nor PyAV: `import av` fails there."""
    run, out, no_av = tmp_path / "run", tmp_path / "out", tmp_path / "no_av"
    (no_av / "av").mkdir(parents=True)
    (no_av / "av" / "__init__.py").write_text("raise ImportError('PyAV is not installed on this machine')\n")
    done = run_recipe(packed[1], run, OUT_DIR=str(out),
                      PYTHONPATH=os.pathsep.join(filter(None, (str(no_av), os.environ.get("PYTHONPATH")))))
    assert "phase 3 skipped: FaceNet not available" in done.stdout
    for stage in ("autoencoder", "irn", "prior"):
        assert (run / stage / "weights.safetensors").is_file() and (run / f"{stage}.log").is_file()
    starts = [int(m) for m in re.findall(r"from step (\d+)", (run / "irn.log").read_text())]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] >= 1  # phase 2 resumed the IRN of phase 1
    model = CLRFaceModel.load(run / "clrface-128.safetensors")
    assert model.cfg.resolution == 128
    assert model.gate is not None and model.cfg.gate.inputs == "degraded"  # phase 4 fitted a gate to these weights
    # ... restored with the shipped file's fidelity mappings, which the exported file carries
    assert model.cfg.anchor_range == (0.5, 1.5) and model.cfg.t_star_range == (0.4, 0.8)
    assert (run / "gated" / "gate" / "weights.safetensors").is_file()
    # what comes back from a lent machine's $OUT: the export and one log per stage run (no mask without FaceNet)
    assert sorted(p.name for p in out.iterdir()) == ["autoencoder.log", "clrface-128.safetensors", "gate.log",
                                                      "irn.log", "prior.log"]
    assert (out / "clrface-128.safetensors").read_bytes() == (run / "clrface-128.safetensors").read_bytes()
    with torch.inference_mode():
        assert torch.isfinite(model.irn(torch.zeros(1, 3, 128, 128))).all()


def test_gpu_recipe_continues_every_stage_of_an_init_from_file(packed: tuple[Path, Path], tmp_path: Path) -> None:
    """INIT_FROM: the run starts from the shipped file's weights, each stage from the file's step count;
    IRN_ARGS reaches both IRN runs (here the adversarial IRN, its new discriminator warmed up one step)."""
    from clrface_video.restore.model import read_metadata
    from clrface_video.restore.restorer import SHIPPED_WEIGHTS

    if not SHIPPED_WEIGHTS.is_file():
        pytest.skip(f"shipped weights absent: {SHIPPED_WEIGHTS}")
    trained = {s: v["step"] for s, v in json.loads(read_metadata(SHIPPED_WEIGHTS)["training"]).items()}
    run = tmp_path / "run"
    run_recipe(packed[1], run, INIT_FROM=str(SHIPPED_WEIGHTS),
               IRN_ARGS="--irn-adversarial --gan-weight 0.02 --feature-matching-weight 0.5 --disc-warmup 1")
    assert f"already at step {trained['autoencoder']} of its 1: nothing to train" in (run / "autoencoder.log").read_text()
    for stage, runs in (("autoencoder", 1), ("irn", 2), ("prior", 1)):  # phase 2 resumes the IRN of phase 1
        starts = [int(m) for m in re.findall(r"from step (\d+)", (run / f"{stage}.log").read_text())]
        assert len(starts) == runs and starts[0] == trained[stage] and starts[-1] > starts[0] - (runs == 1), \
            (stage, starts)
    irn_steps = re.findall(r"\[irn\] step \d+ .*", (run / "irn.log").read_text())
    assert " d=" in irn_steps[0] and " g=" not in irn_steps[0]  # the discriminator's step alone first
    assert " g=" in irn_steps[-1] and (run / "irn" / "disc.safetensors").is_file()  # then the adversarial IRN
    first = re.search(r"\[autoencoder\] step \d+ .*", (run / "autoencoder.log").read_text())
    assert first and " g=" in first.group(0)  # the adversarial terms on from the first step: DISC_START 0
    model, shipped = CLRFaceModel.load(run / "clrface-128.safetensors"), CLRFaceModel.load(SHIPPED_WEIGHTS)
    moved = [not torch.equal(a.float(), b.float()) for a, b in zip(model.vqgan.parameters(), shipped.vqgan.parameters())]
    assert any(moved)  # trained on, not just copied
    assert json.loads(read_metadata(run / "clrface-128.safetensors")["training"])["irn"]["step"] > trained["irn"]
