"""Staged training on a tiny config: one step per stage stays finite and moves weights; resume; export."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clrface_video.restore.gate import GateConfig
from clrface_video.restore.model import CLRFaceModel
from clrface_video.train.manifest import PreparedFace, read_manifest, write_manifest
from clrface_video.train.options import LossWeights, TrainOptions
from clrface_video.train.run_folder import STAGE_ORDER, export_model, preset_config
from clrface_video.train.runner import train_stages


class TinyIdentity(nn.Module):
    """A stand-in for FaceNet: (N, 3, S, S) in [0, 1] -> (N, 16) unit vectors, differentiable, frozen."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 5, stride=2)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.conv(x).mean(dim=(2, 3)), dim=1)


def make_prepared(folder: Path, astronaut: np.ndarray, size: int = 32, count: int = 12) -> Path:
    """A prepared-faces folder made of shifted crops of the astronaut (public domain)."""
    rows = []
    for i in range(count):
        split = "heldout" if i >= count - 3 else "train"
        (folder / split).mkdir(parents=True, exist_ok=True)
        crop = cv2.resize(astronaut[10 + 4 * i:230 + 4 * i, 140:360], (size, size), interpolation=cv2.INTER_AREA)
        rel = f"{split}/face_{i:02d}.jpg"
        cv2.imwrite(str(folder / rel), crop[..., ::-1])
        rows.append(PreparedFace(rel, f"astronaut#{i}", f"test/p{i // 2}", "test", split, 0.99, 1.0))
    write_manifest(folder / "manifest.csv", rows)
    return folder


@pytest.fixture()
def data_dir(tmp_path: Path, astronaut: np.ndarray) -> Path:
    return make_prepared(tmp_path / "data", astronaut)


WEIGHTS = LossWeights(disc_start=0, mask_unroll=2, prior_draws=2, identity_samples=1)


def run(data_dir: Path, run_dir: Path, stages: tuple[str, ...], steps: int, resume: bool = False,
        echo: Callable[[str], None] | None = None) -> dict:
    options = TrainOptions(config="tiny", steps=steps, batch_size=2, device="cpu", log_every=1, resume=resume,
                           threads=1)
    return train_stages(data_dir, run_dir, stages, options, echo=echo, weights=WEIGHTS, identity_net=TinyIdentity())


def stage_weights(run_dir: Path, stage: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / stage / "weights.safetensors"))


def test_one_step_per_stage_changes_weights_and_stays_finite(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    fresh = CLRFaceModel(replace(preset_config("tiny"), gate=GateConfig.tiny()))
    torch.manual_seed(0)
    states = run(data_dir, run_dir, STAGE_ORDER, steps=1)
    for stage in STAGE_ORDER:
        assert states[stage].step == 1 and states[stage].done
        lines = (run_dir / stage / "log.jsonl").read_text().splitlines()
        record = json.loads(lines[-1])
        assert all(np.isfinite(v) for k, v in record.items() if isinstance(v, float)), record
        assert (run_dir / stage / "preview_000001.png").is_file()
        after = stage_weights(run_dir, stage)
        module = {"autoencoder": "vqgan", "decoder": "vqgan", "irn": "irn", "prior": "denoiser", "mask": "mask",
                  "gate": "gate"}[stage]
        before = getattr(fresh, module).state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point()), stage
        assert all(torch.isfinite(v).all() for v in after.values())
    assert "g" in json.loads((run_dir / "autoencoder" / "log.jsonl").read_text().splitlines()[-1])
    # the decoder fine-tune leaves the encoder and codebook (the prior's latents) exactly as trained
    ae, dec = stage_weights(run_dir, "autoencoder"), stage_weights(run_dir, "decoder")
    assert all(torch.equal(ae[k], dec[k]) for k in ae if not k.startswith("decoder."))
    assert any(not torch.equal(ae[k], dec[k]) for k in ae if k.startswith("decoder."))
    out = tmp_path / "model.safetensors"
    assert export_model(run_dir, out, fp16=True) > 0
    model = CLRFaceModel.load(out)
    assert torch.allclose(model.vqgan.decoder.conv_out.weight, dec["decoder.conv_out.weight"].float(), atol=1e-3)
    assert torch.allclose(model.irn.conv_out.weight, stage_weights(run_dir, "irn")["conv_out.weight"].float(),
                          atol=1e-3)
    assert model.gate is not None and torch.allclose(model.gate.head.bias, stage_weights(run_dir, "gate")["head.bias"],
                                                     atol=1e-3)
    assert model.cfg.anchor_range == (0.0, 0.0)  # anchoring is off unless export is asked for it
    export_model(run_dir, out, anchor_range=(1.0, 2.5), t_star_range=(0.1, 0.3))
    anchored = CLRFaceModel.load(out)
    assert anchored.cfg.anchor_range == (1.0, 2.5) and anchored.fidelity_to_knobs(1.0).anchor_sigma == 1.0
    assert anchored.cfg.t_star_range == (0.1, 0.3) and anchored.fidelity_to_knobs(0.0).t_star == 0.3
    assert torch.equal(anchored.irn.conv_out.weight, model.irn.conv_out.weight)


def test_every_stage_trains_under_the_bf16_autocast_a_gpu_gets(data_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU with bf16, device.training_autocast runs the stages' forward passes in bf16; no GPU has run
    them yet, so the CPU's bf16 autocast stands in: every stage's losses stay finite and its weights, kept
    in fp32, move."""
    from clrface_video.train import adversarial, loop, stages

    entered: list[torch.dtype] = []
    started: list[dict[str, torch.Tensor]] = []  # each stage's trained weights as it starts, in STAGE_ORDER
    broadcast = loop.broadcast_module

    def recorded(module: torch.nn.Module, world) -> None:
        broadcast(module, world)
        started.append({k: v.detach().clone() for k, v in module.state_dict().items()})

    def bf16_autocast(device: torch.device) -> torch.autocast:
        entered.append(torch.bfloat16)
        return torch.autocast("cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(stages, "training_autocast", bf16_autocast)
    monkeypatch.setattr(adversarial, "training_autocast", bf16_autocast)
    monkeypatch.setattr(loop, "broadcast_module", recorded)
    run_dir = tmp_path / "run"
    run(data_dir, run_dir, STAGE_ORDER, steps=2)
    assert len(entered) >= 8  # autoencoder, decoder, irn and prior steps, and the discriminator's
    assert len(started) == len(STAGE_ORDER)
    for stage, before in zip(STAGE_ORDER, started):
        record = json.loads((run_dir / stage / "log.jsonl").read_text().splitlines()[-1])
        assert record["step"] == 2 and all(np.isfinite(v) for v in record.values() if isinstance(v, float)), record
        after = stage_weights(run_dir, stage)
        floats = [k for k in before if before[k].is_floating_point()]
        assert all(after[k].dtype == torch.float32 and torch.isfinite(after[k]).all() for k in floats), stage
        assert any(not torch.equal(before[k], after[k]) for k in floats), stage


def test_data_that_cannot_train_is_refused_before_the_run_folder_is_made(tmp_path: Path, astronaut: np.ndarray) -> None:
    from clrface_video.errors import ClrfaceError

    def refused(data: Path, match: str, *, resume: bool = False, batch: int = 2,
                stages: tuple[str, ...] = ("autoencoder",)) -> None:
        options = TrainOptions(config="tiny", steps=1, batch_size=batch, device="cpu", resume=resume, threads=1)
        with pytest.raises(ClrfaceError, match=match):
            train_stages(data, tmp_path / "run", stages, options, echo=None, weights=WEIGHTS,
                         identity_net=TinyIdentity())
        assert not (tmp_path / "run").exists()

    (tmp_path / "photos").mkdir()
    refused(tmp_path / "photos", "not a prepare-faces folder")
    refused(make_prepared(tmp_path / "few", astronaut, count=6), "3 training faces, fewer than one batch of 8", batch=8)
    refused(make_prepared(tmp_path / "big", astronaut, size=64), "are 64 px and this --config trains at 32 px")
    refused(make_prepared(tmp_path / "ok", astronaut), "not a run folder", resume=True)
    refused(tmp_path / "ok", "--stage prior builds on autoencoder, not trained", stages=("prior",))
    refused(tmp_path / "ok", "--stage mask builds on prior", stages=("autoencoder", "irn", "mask"))


def test_batches_of_a_dataset_smaller_than_one_batch_stop_with_an_error_instead_of_looping() -> None:
    from torch.utils.data import TensorDataset

    from clrface_video.errors import ClrfaceError
    from clrface_video.train.ddp import Dist
    from clrface_video.train.loop import endless_batches

    batches = endless_batches(TensorDataset(torch.zeros(3, 1)), 4, seed=0, start_epoch=0, world=Dist(), workers=0)
    with pytest.raises(ClrfaceError, match="3 training faces give no full batch of 4"):
        next(batches)


class WhoMadeIt(torch.utils.data.Dataset):
    """Item (epoch, i) -> (epoch, i, the id of the process that made it)."""

    def __len__(self) -> int:
        return 6

    def item_at(self, epoch: int, index: int) -> torch.Tensor:
        import os

        return torch.tensor([epoch, index, os.getpid()])


def test_one_set_of_loader_workers_serves_every_epoch_with_the_same_batches_as_none() -> None:
    """The loader was rebuilt each epoch, so its workers started again each epoch (and, where workers are
    spawned, copied the whole in-memory dataset again). Now items are asked for as (epoch, index)."""
    import os
    from itertools import islice

    from clrface_video.train.ddp import Dist
    from clrface_video.train.loop import endless_batches

    def first(n: int, workers: int, start_epoch: int = 0, skip: int = 0) -> list:
        batches = endless_batches(WhoMadeIt(), 2, seed=5, start_epoch=start_epoch, world=Dist(), workers=workers,
                                  skip_batches=skip)
        return list(islice(batches, n))

    made = first(9, workers=2)  # three epochs of three batches
    assert [(e, n) for e, n, _ in made] == [(e, n) for e in range(3) for n in (1, 2, 3)]
    items = torch.cat([b for _, _, b in made])
    assert (items[:, 0] == torch.tensor([e for e, _, _ in made]).repeat_interleave(2)).all()  # each epoch's items
    for e in range(3):  # each epoch: every face once, in an order of its own
        assert sorted(items[items[:, 0] == e, 1].tolist()) == list(range(6))
    assert items[:6, 1].tolist() != items[6:12, 1].tolist()
    makers = set(items[:, 2].tolist())
    assert len(makers) <= 2 and os.getpid() not in makers  # two workers for all three epochs
    alone = torch.cat([b for _, _, b in first(9, workers=0)])
    assert torch.equal(alone[:, :2], items[:, :2])  # the same batches, with or without workers
    resumed = torch.cat([b for _, _, b in first(4, workers=0, start_epoch=1, skip=2)])
    assert torch.equal(resumed[:, :2], items[10:18, :2])  # resume mid-epoch: the rest of epoch 1, then epoch 2


def test_export_writes_only_a_safetensors_file_outside_the_checkpoints(data_dir: Path, tmp_path: Path,
                                                                     warnings_logged) -> None:
    from clrface_video.errors import ClrfaceError

    run_dir = tmp_path / "run"
    run(data_dir, run_dir, ("autoencoder",), steps=1)
    config = (run_dir / "config.json").read_bytes()
    for out, match in [(run_dir / "config.json", "NAME.safetensors"), (tmp_path / "notes.txt", "NAME.safetensors"),
                       (run_dir / "autoencoder" / "weights.safetensors", "inside a stage folder")]:
        with pytest.raises(ClrfaceError, match=match):
            export_model(run_dir, out)
    with pytest.raises(ClrfaceError, match="not a run folder"):
        export_model(data_dir, tmp_path / "x.safetensors")
    assert (run_dir / "config.json").read_bytes() == config and not (tmp_path / "notes.txt").exists()
    export_model(run_dir, run_dir / "model.safetensors")  # beside the stage folders, as the GPU recipe does
    assert "irn, prior, mask never trained" in warnings_logged.text
    from clrface_video.restore.restorer import make_clrface

    warnings_logged.clear()
    make_clrface(torch.device("cpu"), path=str(run_dir / "model.safetensors"))  # restore says so too
    assert "model.safetensors was exported with stages never trained (irn, prior, mask)" in warnings_logged.text
    said = warnings_logged.text
    make_clrface(torch.device("cpu"))
    assert warnings_logged.text == said  # the shipped file: nothing to say


def test_a_folder_without_held_out_faces_previews_training_faces(tmp_path: Path, astronaut: np.ndarray) -> None:
    """Your own faces (no LFW person folders): nothing is held out, and training still runs and draws previews."""
    data = make_prepared(tmp_path / "mine", astronaut)
    rows = read_manifest(data / "manifest.csv")
    for r in rows:
        if r.split == "heldout":
            (data / r.file).rename(data / r.file.replace("heldout/", "train/"))
    write_manifest(data / "manifest.csv", [replace(r, split="train", file=r.file.replace("heldout/", "train/"))
                                           for r in rows])
    results = run(data, tmp_path / "run", ("autoencoder",), steps=1)
    assert results["autoencoder"].step == 1
    assert list((tmp_path / "run" / "autoencoder").glob("preview_*.png"))


def test_resume_continues_from_saved_step(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert run(data_dir, run_dir, ("irn",), steps=2)["irn"].step == 2
    with pytest.raises(Exception, match="--resume"):
        run(data_dir, run_dir, ("irn",), steps=4)
    state = run(data_dir, run_dir, ("irn",), steps=4, resume=True)["irn"]
    assert state.step == 4
    steps = [json.loads(line)["step"] for line in (run_dir / "irn" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert (run_dir / "irn" / "optim.pt").is_file()
    said: list[str] = []
    # already done: no step taken, and the user is told why
    assert run(data_dir, run_dir, ("irn",), steps=4, resume=True, echo=said.append)["irn"].step == 4
    assert said == ["[irn] already at step 4 of its 4: nothing to train (raise --steps to go on)"]


def test_resume_sees_the_same_batches_as_one_run(data_dir: Path, tmp_path: Path) -> None:
    """3 steps + 3 resumed steps (crossing an epoch of 4 batches) give the weights of 6 steps in one call."""
    run(data_dir, tmp_path / "once", ("irn",), steps=6)
    run(data_dir, tmp_path / "twice", ("irn",), steps=3)
    state = run(data_dir, tmp_path / "twice", ("irn",), steps=6, resume=True)["irn"]
    assert (state.step, state.epoch) == (6, 1)
    once, twice = stage_weights(tmp_path / "once", "irn"), stage_weights(tmp_path / "twice", "irn")
    assert all(torch.allclose(once[k], twice[k], atol=1e-6) for k in once)


def test_dataset_pairs_are_seeded_and_in_range(data_dir: Path) -> None:
    from clrface_video.train.data import FaceDataset

    data = FaceDataset(data_dir, "train", seed=3)
    assert len(data) == 9 and len(FaceDataset(data_dir, "heldout")) == 3
    hq, lq = data[4]
    assert hq.shape == lq.shape == (3, 32, 32) and hq.dtype == torch.float32
    assert hq.min() >= -1 and hq.max() <= 1 and lq.min() >= -1 and lq.max() <= 1
    again = FaceDataset(data_dir, "train", seed=3)[4]
    assert torch.equal(hq, again[0]) and torch.equal(lq, again[1])
    data.set_epoch(1)
    assert not torch.equal(lq, data[4][1])
    clean = FaceDataset(data_dir, "train", degrade=False)[0]
    assert torch.equal(clean[0], clean[1])


def test_dataset_flat_regions_go_into_both_faces_and_leave_other_pairs_as_they_were(data_dir: Path) -> None:
    from clrface_video.train.data import FaceDataset

    plain = FaceDataset(data_dir, "train", seed=3)
    flat = FaceDataset(data_dir, "train", seed=3, flat_prob=1.0)
    unpainted = FaceDataset(data_dir, "train", seed=3, degrade=False)
    for i in range(len(plain)):
        (hq, lq), (hq2, lq2) = plain[i], flat[i]
        assert torch.equal(hq, unpainted[i][0])
        changed_hq, changed_lq = (hq2 != hq).any(0), (lq2 != lq).any(0)
        # the painted pixels are the same in the clean and the degraded face (but for the edge's one-pixel ramp)
        both = changed_hq & changed_lq
        same = (hq2 - lq2).abs().amax(0) <= 2 / 255
        assert both.sum() > 0 and same[both].float().mean() > 0.6
    # the degradation itself is drawn before the region: the degraded faces differ only where painted
    hq, lq = plain[4]
    hq2, lq2 = flat[4]
    untouched = ~(hq2 != hq).any(0)
    assert torch.equal(lq2[:, untouched], lq[:, untouched])


def test_decoder_adversarial_terms_start_at_disc_start_from_the_autoencoder_discriminator(
        data_dir: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    options = TrainOptions(config="tiny", steps=1, batch_size=2, device="cpu", log_every=1, threads=1)
    train_stages(data_dir, run_dir, ("autoencoder",), options, echo=None, weights=WEIGHTS)
    late = replace(WEIGHTS, disc_start=2)
    train_stages(data_dir, run_dir, ("decoder",), options, echo=None, weights=late)
    record = json.loads((run_dir / "decoder" / "log.jsonl").read_text().splitlines()[-1])
    assert "g" not in record and "d" not in record  # L1 only before disc_start
    ae_disc = load_file(str(run_dir / "autoencoder" / "disc.safetensors"))
    dec_disc = load_file(str(run_dir / "decoder" / "disc.safetensors"))
    assert ae_disc.keys() == dec_disc.keys() and all(torch.equal(ae_disc[k], dec_disc[k]) for k in ae_disc)
    train_stages(data_dir, run_dir, ("decoder",), replace(options, steps=3, resume=True), echo=None, weights=late)
    records = [json.loads(line) for line in (run_dir / "decoder" / "log.jsonl").read_text().splitlines()]
    assert [("g" in r, "d" in r) for r in records] == [(False, False), (False, False), (True, True)]
    trained = load_file(str(run_dir / "decoder" / "disc.safetensors"))
    assert any(not torch.equal(ae_disc[k], trained[k]) for k in ae_disc if trained[k].is_floating_point())


def test_an_adversarial_irn_trains_against_its_own_discriminator_from_disc_start(data_dir: Path,
                                                                                   tmp_path: Path) -> None:
    from safetensors.torch import load_file

    options = TrainOptions(config="tiny", steps=1, batch_size=2, device="cpu", log_every=1, threads=1)
    plain = replace(WEIGHTS, identity=0.0)
    adversarial = replace(plain, irn_adversarial=True, disc_start=1)
    for run_dir, weights in ((tmp_path / "plain", plain), (tmp_path / "adversarial", adversarial)):
        torch.manual_seed(0)
        train_stages(data_dir, run_dir, ("irn",), options, echo=None, weights=weights)
    # before disc_start the step is the plain L1 one, and only the adversarial run has a discriminator
    first = stage_weights(tmp_path / "plain", "irn"), stage_weights(tmp_path / "adversarial", "irn")
    assert all(torch.equal(first[0][k], first[1][k]) for k in first[0])
    assert not (tmp_path / "plain" / "irn" / "disc.safetensors").exists()
    disc = load_file(str(tmp_path / "adversarial" / "irn" / "disc.safetensors"))
    for run_dir, weights in ((tmp_path / "plain", plain), (tmp_path / "adversarial", adversarial)):
        train_stages(data_dir, run_dir, ("irn",), replace(options, steps=3, resume=True), echo=None, weights=weights)
    records = [json.loads(line) for line in (tmp_path / "adversarial" / "irn" / "log.jsonl").read_text().splitlines()]
    assert [("g" in r, "fm" in r, "d" in r) for r in records] == [(False, False, False)] + [(True, True, True)] * 2
    assert all("g" not in json.loads(line) for line in (tmp_path / "plain" / "irn" / "log.jsonl").read_text().splitlines())
    trained = load_file(str(tmp_path / "adversarial" / "irn" / "disc.safetensors"))
    assert any(not torch.equal(disc[k], trained[k]) for k in disc if disc[k].is_floating_point())
    # from disc_start the discriminator's terms move the IRN away from where L1 alone takes it
    last = stage_weights(tmp_path / "plain", "irn"), stage_weights(tmp_path / "adversarial", "irn")
    assert any(not torch.equal(last[0][k], last[1][k]) for k in last[0] if last[0][k].is_floating_point())


def test_a_new_discriminator_warms_up_alone_over_the_frozen_irn_from_where_the_run_resumes(data_dir: Path,
                                                                                            tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    options = TrainOptions(config="tiny", steps=1, batch_size=2, device="cpu", log_every=1, threads=1)
    plain = replace(WEIGHTS, identity=0.0)
    train_stages(data_dir, run_dir, ("irn",), options, echo=None, weights=plain)
    before = stage_weights(run_dir, "irn")
    # resumed with a discriminator it never had: disc_start (0) is past, so the discriminator starts here and
    # trains alone for disc_warmup steps while the IRN stays exactly as it was
    warm = replace(plain, irn_adversarial=True, disc_start=0, disc_warmup=2)
    train_stages(data_dir, run_dir, ("irn",), replace(options, steps=3, resume=True), echo=None, weights=warm)
    frozen = stage_weights(run_dir, "irn")
    assert all(torch.equal(before[k], frozen[k]) for k in before)
    disc = load_file(str(run_dir / "irn" / "disc.safetensors"))
    # resumed again mid-run: the discriminator's own checkpoint carries on, and the adversarial terms start
    train_stages(data_dir, run_dir, ("irn",), replace(options, steps=5, resume=True), echo=None, weights=warm)
    records = [json.loads(line) for line in (run_dir / "irn" / "log.jsonl").read_text().splitlines()]
    assert [("g" in r, "fm" in r, "d" in r) for r in records] == [(False, False, False)] + \
        [(False, False, True)] * 2 + [(True, True, True)] * 2
    after, trained = stage_weights(run_dir, "irn"), load_file(str(run_dir / "irn" / "disc.safetensors"))
    assert any(not torch.equal(frozen[k], after[k]) for k in frozen if frozen[k].is_floating_point())
    assert any(not torch.equal(disc[k], trained[k]) for k in disc if disc[k].is_floating_point())


def test_init_from_an_exported_model_continues_each_stage_with_a_fresh_warm_up(data_dir: Path,
                                                                                tmp_path: Path) -> None:
    from dataclasses import replace

    from clrface_video.errors import ClrfaceError

    first = tmp_path / "first"
    run(data_dir, first, ("autoencoder", "irn"), steps=2)
    model_file = tmp_path / "model.safetensors"
    export_model(first, model_file, fp16=False)
    exported = CLRFaceModel.load(model_file)

    options = TrainOptions(config="tiny", steps=3, batch_size=2, device="cpu", log_every=1, threads=1, lr=1e-3,
                           init_from=model_file)
    second = tmp_path / "second"
    state = train_stages(data_dir, second, ("irn",), options, echo=None, weights=WEIGHTS,
                         identity_net=TinyIdentity())["irn"]
    assert state.step == 3  # the file's 2 steps, then one more
    assert [json.loads(line)["step"] for line in (second / "irn" / "log.jsonl").read_text().splitlines()] == [3]
    # stages the file was not trained in are not seeded; the autoencoder is, exactly
    assert not (second / "prior").exists() and not (second / "mask").exists()
    ae = stage_weights(second, "autoencoder")
    assert all(torch.equal(ae[k], v) for k, v in exported.vqgan.state_dict().items())
    # one Adam step from fresh state moves each weight by about the learning rate: the first warm-up rate
    # (1e-3 / 25), not the full one, so a trained network is not jolted
    before, after = exported.irn.state_dict(), stage_weights(second, "irn")
    moved = max(float((after[k] - before[k]).abs().max()) for k in before if before[k].is_floating_point())
    assert 0 < moved <= 1.5e-3 / 25

    with pytest.raises(ClrfaceError, match="already a run folder"):
        train_stages(data_dir, second, ("irn",), options, echo=None, weights=WEIGHTS, identity_net=TinyIdentity())
    with pytest.raises(ClrfaceError, match="not a --config small_128 model"):
        train_stages(data_dir, tmp_path / "third", ("irn",), replace(options, config="small_128"), echo=None,
                     weights=WEIGHTS, identity_net=TinyIdentity())
    assert not (tmp_path / "third" / "config.json").exists()
    shipped = Path(__file__).parents[1] / "clrface_video" / "weights" / "clrface-128.safetensors"
    with pytest.raises(ClrfaceError, match="not a --config tiny model \\(a 128 px model"):  # not: "prepare --size 128"
        train_stages(data_dir, tmp_path / "fourth", ("irn",), replace(options, init_from=shipped), echo=None,
                     weights=WEIGHTS, identity_net=TinyIdentity())


def test_decoder_on_restored_latents_trains_only_the_decoder_on_what_the_sampler_makes_of_the_degraded_face(
        data_dir: Path, tmp_path: Path) -> None:
    from clrface_video.train.ddp import Dist
    from clrface_video.train.run_folder import load_finished_stages, load_run_config
    from clrface_video.train.stage_context import Context
    from clrface_video.train.stages import STAGES

    run_dir = tmp_path / "run"
    run(data_dir, run_dir, ("autoencoder", "irn", "prior"), steps=1)
    before = {stage: stage_weights(run_dir, stage) for stage in ("autoencoder", "irn", "prior")}
    options = TrainOptions(config="tiny", steps=2, batch_size=2, device="cpu", log_every=1, threads=1,
                           decoder_input="restored")
    state = train_stages(data_dir, run_dir, ("decoder",), options, echo=None, weights=WEIGHTS,
                         identity_net=TinyIdentity())["decoder"]
    assert state.step == 2
    dec, ae = stage_weights(run_dir, "decoder"), before["autoencoder"]
    assert all(torch.equal(ae[k], dec[k]) for k in ae if not k.startswith("decoder."))
    assert any(not torch.equal(ae[k], dec[k]) for k in ae if k.startswith("decoder."))
    for stage in ("irn", "prior"):  # the stages that make the latents are left as they were
        after = stage_weights(run_dir, stage)
        assert all(torch.equal(before[stage][k], after[k]) for k in after)
    record = json.loads((run_dir / "decoder" / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["l1"]) and "g" in record  # disc_start 0: adversarial terms on

    # what is decoded comes from the degraded face alone in "restored" mode, from the clean face in "clean"
    cfg = load_run_config(run_dir, "tiny")
    model = CLRFaceModel(cfg)
    load_finished_stages(model, run_dir)
    hq_a, hq_b = torch.rand(2, 2, 3, 32, 32) * 2 - 1
    lq = torch.rand(2, 3, 32, 32) * 2 - 1
    for mode in ("restored", "clean"):
        ctx = Context(run_dir, data_dir, cfg, model, torch.device("cpu"), Dist(),
                      TrainOptions(config="tiny", decoder_input=mode), WEIGHTS, None, TinyIdentity())
        stage = STAGES["decoder"](ctx, 1e-4)
        z_a = stage.latents(hq_a, lq, torch.Generator().manual_seed(3))
        z_b = stage.latents(hq_b, lq, torch.Generator().manual_seed(3))
        assert torch.equal(z_a, z_b) == (mode == "restored"), mode
        assert stage.needs_lq == (mode == "restored")


def test_a_gate_is_added_to_a_model_trained_without_one_and_exported_only_once_trained(
        data_dir: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    run(data_dir, first, ("autoencoder", "irn", "prior", "mask"), steps=1)
    plain = tmp_path / "plain.safetensors"
    export_model(first, plain, fp16=False)
    assert CLRFaceModel.load(plain).gate is None  # a run without the gate stage has none
    options = TrainOptions(config="tiny", steps=2, batch_size=2, device="cpu", log_every=1, threads=1, init_from=plain)
    second = tmp_path / "second"
    state = train_stages(data_dir, second, ("gate",), options, echo=None, weights=WEIGHTS,
                         identity_net=TinyIdentity())["gate"]
    assert state.step == 2
    record = json.loads((second / "gate" / "log.jsonl").read_text().splitlines()[-1])
    assert 0 <= record["share"] <= 1 and 0 <= record["best_share"] <= 1 and np.isfinite(record["bce"])
    gated = tmp_path / "gated.safetensors"
    export_model(second, gated, fp16=False)
    model, before = CLRFaceModel.load(gated), CLRFaceModel.load(plain)
    assert model.gate is not None and model.cfg.gate == GateConfig.tiny()
    assert torch.equal(model.gate.head.bias, stage_weights(second, "gate")["head.bias"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.state_dict().items())  # nothing else moved
    # a stage trained after the gate changes the restorations it learnt: the export leaves that gate out
    assert json.loads((second / "gate" / "state.json").read_text())["over"] == {s: 1 for s in ("autoencoder", "irn", "prior", "mask")}
    train_stages(data_dir, second, ("irn",), replace(options, steps=2, init_from=None, resume=True), echo=None,
                 weights=WEIGHTS, identity_net=TinyIdentity())
    export_model(second, tmp_path / "stale.safetensors", fp16=False)
    assert CLRFaceModel.load(tmp_path / "stale.safetensors").gate is None
    # the gate stage started in a run folder but never trained leaves no gate in the export
    third = tmp_path / "third"
    train_stages(data_dir, third, ("gate",), replace(options, steps=1, max_minutes=0.0), echo=None,
                 weights=WEIGHTS, identity_net=TinyIdentity())
    export_model(third, tmp_path / "untrained.safetensors", fp16=False)
    assert CLRFaceModel.load(tmp_path / "untrained.safetensors").gate is None


def test_a_gate_past_its_default_steps_is_fitted_again_over_stages_trained_since(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's fine-tune ends with train --stage gate --resume and no --steps: the shipped gate, at step 6460
    of its default 3000, was refused as done ('nothing to train') and the export then left it out."""
    from clrface_video.train import options as train_options

    monkeypatch.setitem(train_options.DEFAULTS, "gate", replace(train_options.DEFAULTS["gate"], steps=2))
    folder = tmp_path / "run"
    run(data_dir, folder, ("autoencoder", "irn", "prior", "mask", "gate"), steps=2)
    run(data_dir, folder, ("irn",), steps=3, resume=True)  # the gate is now over an irn that moved
    export_model(folder, tmp_path / "stale.safetensors", fp16=False)
    assert CLRFaceModel.load(tmp_path / "stale.safetensors").gate is None
    lines: list[str] = []
    options = TrainOptions(config="tiny", batch_size=2, device="cpu", log_every=1, resume=True, threads=1)
    state = train_stages(data_dir, folder, ("gate",), options, echo=lines.append, weights=WEIGHTS,
                         identity_net=TinyIdentity())["gate"]
    assert state.step == 4 and not any("nothing to train" in line for line in lines), lines
    export_model(folder, tmp_path / "fitted.safetensors", fp16=False)
    model = CLRFaceModel.load(tmp_path / "fitted.safetensors")
    assert model.gate is not None
    assert torch.equal(model.gate.head.bias, stage_weights(folder, "gate")["head.bias"])
    # a gate not trained over anything that moved stays done at its default, as before
    again = train_stages(data_dir, folder, ("gate",), options, echo=lines.append, weights=WEIGHTS,
                         identity_net=TinyIdentity())["gate"]
    assert again.step == 4 and "nothing to train" in lines[-1]


def test_gate_inputs_fits_a_new_gate_over_a_file_whose_gate_looks_at_the_restoration(
        data_dir: Path, tmp_path: Path) -> None:
    """train --stage gate --gate-inputs degraded --init-from FILE: the file's 'both' gate is not seeded; a new
    gate on the degraded face alone is trained from step 0 and exported with every other weight unchanged.
    A run whose gate is trained already refuses to switch kinds."""
    first = tmp_path / "first"
    run(data_dir, first, ("autoencoder", "irn", "prior", "mask"), steps=1)
    both = TrainOptions(config="tiny", steps=1, batch_size=2, device="cpu", log_every=1, threads=1,
                        gate_inputs="both")
    train_stages(data_dir, first, ("gate",), replace(both, steps=3), echo=None, weights=WEIGHTS,
                 identity_net=TinyIdentity())
    shipped = tmp_path / "shipped.safetensors"
    export_model(first, shipped, fp16=False)
    assert CLRFaceModel.load(shipped).cfg.gate.inputs == "both"
    options = replace(both, steps=2, init_from=shipped, gate_inputs="degraded")
    second = tmp_path / "second"
    state = train_stages(data_dir, second, ("gate",), options, echo=None, weights=WEIGHTS,
                         identity_net=TinyIdentity())["gate"]
    assert state.step == 2  # from 0: the file's gate, at step 3, was not seeded
    out = tmp_path / "degraded.safetensors"
    export_model(second, out, fp16=False)
    model, before = CLRFaceModel.load(out), CLRFaceModel.load(shipped)
    assert model.cfg.gate == replace(GateConfig.tiny(), inputs="degraded") and model.gate.features[0].in_channels == 3
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.state_dict().items() if not k.startswith("gate."))
    from clrface_video.errors import ClrfaceError

    with pytest.raises(ClrfaceError, match="holds a blend gate trained on --gate-inputs degraded"):
        train_stages(data_dir, second, ("gate",), replace(options, init_from=None, resume=True, gate_inputs="both"),
                     echo=None, weights=WEIGHTS, identity_net=TinyIdentity())


def test_an_autoencoder_trained_on_after_its_decoder_fine_tune_is_what_later_stages_and_export_use(
        data_dir: Path, tmp_path: Path, warnings_logged) -> None:
    """The decoder stage stores the whole autoencoder and overrode it: an autoencoder trained on after a decoder
    fine-tune (as a run started from the shipped file and given more GPU steps is) was silently replaced by the
    older copy, in the export and under the prior. A fine-tune resumed after that tunes the new autoencoder."""
    from clrface_video.train.run_folder import load_finished_stages, load_run_config

    run_dir = tmp_path / "run"
    run(data_dir, run_dir, ("autoencoder", "decoder"), steps=2)
    tuned = stage_weights(run_dir, "decoder")
    assert json.loads((run_dir / "decoder" / "state.json").read_text())["over"] == {"autoencoder": 2}
    run(data_dir, run_dir, ("autoencoder",), steps=3, resume=True)
    newer = stage_weights(run_dir, "autoencoder")
    assert not all(torch.equal(newer[k], tuned[k]) for k in newer)
    model = CLRFaceModel(load_run_config(run_dir, "tiny"))
    assert load_finished_stages(model, run_dir) == ["autoencoder"]
    assert all(torch.equal(v, newer[k]) for k, v in model.vqgan.state_dict().items())
    warnings_logged.clear()
    export_model(run_dir, tmp_path / "m.safetensors", fp16=False)
    exported = CLRFaceModel.load(tmp_path / "m.safetensors").vqgan.state_dict()
    assert all(torch.equal(v, newer[k]) for k, v in exported.items())
    assert any("decoder fine-tune was trained over an earlier" in r.getMessage() for r in warnings_logged.records)
    # the fine-tune resumed starts from the new autoencoder (its encoder and codebook stay as they are); the
    # stage it is tuning is not warned about
    lines: list[str] = []
    warnings_logged.clear()
    run(data_dir, run_dir, ("decoder",), steps=3, resume=True, echo=lines.append)
    assert any("autoencoder trained on since" in line for line in lines)
    assert not [r for r in warnings_logged.records if "decoder fine-tune" in r.getMessage()]
    retuned = stage_weights(run_dir, "decoder")
    assert all(torch.equal(retuned[k], newer[k]) for k in newer if not k.startswith("decoder."))
    assert load_finished_stages(CLRFaceModel(load_run_config(run_dir, "tiny")), run_dir) == ["autoencoder", "decoder"]


def test_export_after_a_resumed_autoencoder_names_the_stages_trained_over_the_earlier_one(
        data_dir: Path, tmp_path: Path, warnings_logged) -> None:
    """train --stage all, then the autoencoder resumed: the prior learnt the earlier autoencoder's latents and the
    mask unrolled that prior, so export says, in one line, which stages to train again (the IRN, on pixels
    alone, is not among them); the stages retrained in that order leave nothing to warn of."""
    run_dir = tmp_path / "run"
    run(data_dir, run_dir, ("autoencoder", "irn", "prior", "mask", "gate"), steps=1)
    assert json.loads((run_dir / "prior" / "state.json").read_text())["over"] == {"autoencoder": 1}
    assert json.loads((run_dir / "mask" / "state.json").read_text())["over"] == {"autoencoder": 1, "irn": 1, "prior": 1}
    out = tmp_path / "m.safetensors"

    def exported_after(stages: tuple[str, ...]) -> list[str]:
        """The warnings of an export after `stages` are trained on to step 2."""
        run(data_dir, run_dir, stages, steps=2, resume=True)
        warnings_logged.clear()
        export_model(run_dir, out, fp16=False)
        return [r.getMessage() for r in warnings_logged.records]

    assert exported_after(("autoencoder",)) == [(
        f"{run_dir}: autoencoder trained on after prior, mask and gate were trained over it (the gate is left out "
        "of the export); train --stage prior, --stage mask and --stage gate again, in that order, each with "
        "--resume (without --steps, its default steps more)")]
    assert exported_after(("prior",)) == [(
        f"{run_dir}: autoencoder and prior trained on after mask and gate were trained over them (the gate is left "
        "out of the export); train --stage mask and --stage gate again, in that order, each with --resume "
        "(without --steps, its default steps more)")]
    assert exported_after(("mask", "gate")) == []
    assert CLRFaceModel.load(out).gate is not None
