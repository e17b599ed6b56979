"""The trainer of event depth students: exact resume, learning, augmentation, step-seeded data,
config validation, the distilled regime end to end, the CLI and the paper's recipes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from anydepth.cli.main import main
from anydepth.distill.config import DataConfig, config_from_dict, load_config
from anydepth.distill.data import TrainingClips, augment
from anydepth.distill.distributed import Distributed
from anydepth.distill.evaluate import evaluate_dataset
from anydepth.distill.pseudolabels import generate_pseudolabels
from anydepth.distill.trainer import Trainer
from anydepth.errors import InputError
from anydepth.eventdepth.registry import MODELS, load_model
from anydepth.foundation import load_depth_anything_file, save_checkpoint
from tests.support.weights import random_state_dict
from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence
from tests.support import REPO

CONFIGS = REPO / "configs" / "train"
SMALL_E2DEPTH = {"name": "e2depth", "config": {"base_num_channels": 8, "num_encoders": 2}}
SMALL_DAE_R = {"encoder": "vitp", "activation": "relu", "inv_prediction": True, "input_size": [84, 112]}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one torch thread (see conftest.one_thread)."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two DSEC-layout sequences of 48x64 frames with ground truth."""
    root = tmp_path_factory.mktemp("train") / "ds"
    for seed, name in enumerate(("train/a", "train/b")):
        spec = EventSequenceSpec(seconds=0.3, resolution=(48, 64), internal_fps=300, frame_hz=20, depth_hz=20, seed=seed)
        write_event_sequence(generate_event_sequence(spec), root / name, "dsec")
    return root


def e2depth_config(dataset: Path, out: Path, **values) -> dict:
    config = {
        "model": SMALL_E2DEPTH,
        "data": {"sources": [{"path": str(dataset), "labels": "gt"}], "sequence_length": 2, "detach_every": 1,
                 "crop": [32, 48], "flip": True, "scale": [1.0, 1.3]},
        "regime": "supervised", "loss": {"name": "e2depth"}, "optim": {"lr": 1e-3},
        "steps": 4, "batch_size": 2, "checkpoint_every": 2, "device": "cpu", "out": str(out),
    }
    config.update(values)
    return config


# ---- resume -------------------------------------------------------------------------------------
def test_interrupted_run_resumes_exactly(dataset, tmp_path):
    straight = Trainer(config_from_dict(e2depth_config(dataset, tmp_path / "straight")), progress=False).run()

    config = config_from_dict(e2depth_config(dataset, tmp_path / "resumed"))
    first = Trainer(config, progress=False, stop_after=2).run()
    assert [r["step"] for r in first.history] == [1, 2] and first.student_path is None
    checkpoints = tmp_path / "resumed" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.pt", "step_0000002.pt"]  # no temporaries
    assert not (tmp_path / "resumed" / "student.pth").exists()

    resumed = Trainer(config, progress=False).run()
    assert resumed.resumed_from == 2
    assert resumed.history == straight.history
    assert [r["step"] for r in resumed.history] == [1, 2, 3, 4]
    ours, theirs = resumed.student.state_dict(), straight.student.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert resumed.student_path.is_file()
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.pt", "step_0000002.pt", "step_0000004.pt"]
    assert (tmp_path / "resumed" / "history.jsonl").read_text().count("\n") == 4
    assert (tmp_path / "resumed" / "loss.png").is_file()


def test_resume_removes_its_stale_temporaries_only(dataset, tmp_path):
    """SIGKILL during a checkpoint write leaves an atomic_write temporary as large as the model; the
    next run in the same folder removes those of its own outputs (by atomic_write's naming rule) and
    nothing else."""
    out = tmp_path / "run"
    config = config_from_dict(e2depth_config(dataset, out))
    Trainer(config, progress=False, stop_after=2).run()
    checkpoints = out / "checkpoints"
    stale = [checkpoints / ".last.pt.abcd_123.partial.pt", checkpoints / ".step_0000003.pt.zz9yy8xx.partial.pt",
             out / ".student.pth.q1w2e3r4.partial.pth", out / ".history.jsonl.a1b2c3d4.partial.jsonl"]
    kept = [checkpoints / ".last.pt.backup", checkpoints / ".mine.pt.abcd_123.partial.pt", out / "notes.partial.pt",
            out / ".student.pth.q1w2e3r4.partial", out / "tensorboard" / ".last.pt.abcd_123.partial.pt"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a checkpoint")
    resumed = Trainer(config, progress=False).run()
    assert resumed.resumed_from == 2
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


def test_every_config_field_type_is_understood():
    """The validation is driven by the field types: each field's default, written as YAML would
    give it, converts back to itself (a field of a type the converter does not know fails here)."""
    import dataclasses
    import typing

    from anydepth.distill import config as config_module

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return [plain(v) for v in value] if isinstance(value, tuple) else value

    for cls in (config_module.ModelSpec, config_module.DataConfig, config_module.OptimConfig,
                config_module.LossConfig, config_module.DataSource):
        hints = typing.get_type_hints(cls)
        for spec in dataclasses.fields(cls):
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                continue
            default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
            assert config_module._convert(plain(default), hints[spec.name], spec.name) == default, (cls, spec.name)
            with pytest.raises(config_module._Mismatch):
                config_module._convert(object(), hints[spec.name], spec.name)


# ---- learning -----------------------------------------------------------------------------------
def test_loss_decreases(dataset, tmp_path):
    values = e2depth_config(dataset, tmp_path / "run", steps=30, checkpoint_every=1000, batch_size=2,
                            optim={"lr": 1e-3, "schedule": "constant", "clip_grad": 0.0})
    values["data"] = {"sources": [{"path": str(dataset / "train" / "a"), "labels": "gt"}], "sequence_length": 1,
                      "crop": None, "flip": False}
    history = Trainer(config_from_dict(values), progress=False).run().history
    losses = [r["loss"] for r in history]
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < losses[0]


# ---- augmentation -------------------------------------------------------------------------------
def labelled_image(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """labels (2, 40, 56): blocks of 8 px with distinct values and a NaN block; images (2, 3, 40, 56)
    whose channel 0 is the label (NaN included), channel 1 the column and channel 2 the row."""
    rng = np.random.default_rng(seed)
    blocks = rng.permutation(5 * 7).reshape(5, 7).astype(np.float32) + 1.0
    label = np.kron(blocks, np.ones((8, 8), np.float32))
    label[8:16, 16:24] = np.nan
    labels = np.stack([label, label + 100.0])
    rows, columns = np.mgrid[0:40, 0:56].astype(np.float32)
    images = np.stack([np.stack([frame, columns, rows]) for frame in labels])
    return images, labels


def test_augment_crops_and_flips_images_and_labels_alike():
    images, labels = labelled_image()
    flips = set()
    for seed in range(12):
        config = DataConfig(crop=(24, 32), flip=True, scale=(1.0, 1.0))
        out_images, out_labels = augment(images, labels, config, np.random.default_rng(seed))
        assert out_images.shape == (2, 3, 24, 32) and out_labels.shape == (2, 24, 32)
        assert out_images.dtype == out_labels.dtype == np.float32 and out_images.flags.c_contiguous
        np.testing.assert_array_equal(out_images[:, 0], out_labels)  # NaN where NaN, equal elsewhere
        flips.add(bool(out_images[0, 1, 0, 0] > out_images[0, 1, 0, -1]))
    assert flips == {True, False}


def test_augment_scales_labels_without_blending():
    """Channels 1 and 2 (column, row) interpolate exactly under the bilinear zoom, so they say which
    original pixel each output pixel shows: the label there must be the original label of the nearest
    pixel (either one on a tie), never a blend, NaN where that pixel is NaN."""
    images, labels = labelled_image()
    flips, nan_seen = set(), False
    for scale, crop in (((1.5, 1.5), (40, 56)), ((1.5, 1.5), None), ((0.75, 0.75), None), ((1.3, 1.3), (24, 24))):
        for seed in range(8):
            config = DataConfig(crop=crop, flip=True, scale=scale)
            out_images, out_labels = augment(images, labels, config, np.random.default_rng(seed))
            if crop is not None:
                assert out_labels.shape == (2, *crop)
            else:
                assert out_labels.shape == (2, round(40 * scale[0]), round(56 * scale[0]))
            assert out_images.shape == (2, 3, *out_labels.shape[1:])
            columns, rows = out_images[0, 1], out_images[0, 2]
            inside = (rows > 0.01) & (rows < 38.99) & (columns > 0.01) & (columns < 54.99)  # clamped borders
            step = np.median(np.diff(columns, axis=1))
            assert abs(abs(step) - 1 / scale[0]) < 0.01
            flips.add(bool(step < 0))
            for lower_row in (True, False):
                for lower_column in (True, False):
                    row = np.floor(rows + 0.5 - 1e-3) if lower_row else np.floor(rows + 0.5 + 1e-3)
                    column = np.floor(columns + 0.5 - 1e-3) if lower_column else np.floor(columns + 0.5 + 1e-3)
                    expected = labels[:, np.clip(row, 0, 39).astype(int), np.clip(column, 0, 55).astype(int)]
                    same = (expected == out_labels) | (np.isnan(expected) & np.isnan(out_labels))
                    if lower_row and lower_column:
                        matches = same
                    else:
                        matches |= same
            assert matches[:, inside].all(), (scale, crop, seed, int((~matches[:, inside]).sum()))
            nan_seen |= bool(np.isnan(out_labels).any())
    assert nan_seen and flips == {True, False}


# ---- step-seeded data ---------------------------------------------------------------------------
def test_clips_are_seeded_by_step(dataset):
    config = config_from_dict(e2depth_config(dataset, "unused"))
    model = load_model("e2depth", **SMALL_E2DEPTH["config"])
    clips = TrainingClips(model, config.data, config.loss.resolved_space, seed=0)
    again = TrainingClips(model, config.data, config.loss.resolved_space, seed=0)
    first = clips.clip(5, 1)
    assert first["images"].shape[:1] == first["labels"].shape[:1] == (2,)
    assert first["images"].shape[-2:] == first["labels"].shape[-2:] == (32, 48)
    for other in (clips.clip(5, 1), again.clip(5, 1)):
        np.testing.assert_array_equal(other["images"].numpy(), first["images"].numpy())
        np.testing.assert_array_equal(other["labels"].numpy(), first["labels"].numpy())
        assert (other["sequence"], other["start"]) == (first["sequence"], first["start"])
    others = [clips.clip(step, 1) for step in (6, 7, 8)] + [clips.clip(5, 0)]
    assert any(not np.array_equal(o["images"].numpy(), first["images"].numpy()) for o in others)
    assert all(not np.array_equal(o["images"].numpy(), first["images"].numpy()) for o in others[:3])
    clips.close()
    again.close()


# ---- config validation --------------------------------------------------------------------------
def test_regime_must_match_sources(dataset):
    with pytest.raises(InputError, match="regime 'distilled'"):
        config_from_dict(e2depth_config(dataset, "unused", regime="distilled"))
    with pytest.raises(InputError, match="regime 'synth'"):
        config_from_dict(e2depth_config(dataset, "unused", regime="synth"))


def test_metric_loss_refuses_pseudo_labels(dataset):
    values = e2depth_config(dataset, "unused", regime="distilled")
    values["data"]["sources"] = [{"path": str(dataset), "labels": "pseudo", "pseudolabels": str(dataset)}]
    with pytest.raises(InputError, match="e2depth"):
        config_from_dict(values)


def test_unknown_key_names_key_and_file(dataset, tmp_path):
    values = e2depth_config(dataset, tmp_path / "run")
    values["optim"]["learning_rate"] = 1e-3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert "learning_rate" in str(caught.value) and str(path) in str(caught.value)


def test_yaml_exponent_without_dot_is_a_float(dataset, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(e2depth_config(dataset, tmp_path / "run")).replace("lr: 0.001", "lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text()
    assert load_config(path).optim.lr == 1e-3
    assert load_config(path, {"optim.weight_decay": 0.5}).optim.weight_decay == 0.5


def test_cli_set_overrides(dataset, tmp_path, monkeypatch, capsys):
    import anydepth.distill.trainer as trainer_module

    seen = {}

    class Recorder:
        def __init__(self, config, *args, **kwargs):
            seen["config"] = config
            self.distributed = Distributed()

        def run(self):
            return trainer_module.TrainResult(student=None, history=[], out=Path(seen["config"].out))

    monkeypatch.setattr(trainer_module, "Trainer", Recorder)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(e2depth_config(dataset, tmp_path / "run", regime="synth")))  # wrong regime
    code = main(["events", "train", str(path), "--set", "regime=supervised", "--set", "optim.lr=2e-4",
                 "--set", "data.crop=[16,16]", "--set", "model.config.base_num_channels=4", "--steps", "7",
                 "--out", str(tmp_path / "elsewhere")])
    assert code == 0
    config = seen["config"]
    assert config.regime == "supervised" and config.optim.lr == 2e-4 and config.data.crop == (16, 16)
    assert config.model.config == {"base_num_channels": 4, "num_encoders": 2}
    assert config.steps == 7 and config.out == str(tmp_path / "elsewhere")
    assert main(["events", "train", str(path)]) == 1  # without the override, the regime is refused
    assert "regime 'synth'" in capsys.readouterr().err
    assert main(["events", "train", str(path), "--set", "steps"]) == 1


def test_cli_missing_config(tmp_path, capsys):
    assert main(["events", "train", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.yaml" in err and "Traceback" not in err


# ---- the distilled regime end to end ------------------------------------------------------------
@pytest.fixture(scope="module")
def distilled(dataset, tmp_path_factory) -> dict:
    """Pseudo-labels of a random-weights vitp teacher and the teacher saved in anydepth's container."""
    folder = tmp_path_factory.mktemp("distilled")
    torch.save(random_state_dict("vitp", seed=3), folder / "official.pth")
    teacher = load_depth_anything_file(folder / "official.pth")
    save_checkpoint(teacher, folder / "teacher_vitp.pth")
    labels = folder / "pseudolabels_vitp"
    summary = generate_pseudolabels(dataset, teacher, labels, input_size=56)
    assert summary.computed > 0
    return {"teacher": folder / "teacher_vitp.pth", "labels": labels}


def dae_r_config(dataset: Path, distilled: dict, out: Path) -> dict:
    return {
        "model": {"name": "depthanyevent-r", "config": dict(SMALL_DAE_R), "init_dav2": str(distilled["teacher"])},
        "data": {"sources": [{"path": str(dataset), "labels": "pseudo", "pseudolabels": str(distilled["labels"])}],
                 "sequence_length": 2, "crop": [40, 56]},
        "regime": "distilled", "loss": {"name": "ssi"}, "optim": {"lr": 5e-6},
        "steps": 3, "batch_size": 2, "checkpoint_every": 2, "device": "cpu", "out": str(out),
    }


def test_distilled_regime_trains_and_evaluates(dataset, distilled, tmp_path):
    result = Trainer(config_from_dict(dae_r_config(dataset, distilled, tmp_path / "run")), progress=False).run()
    assert len(result.history) == 3 and all(math.isfinite(r["loss"]) for r in result.history)
    evaluation = evaluate_dataset(result.student, dataset, limit=2)
    assert math.isfinite(evaluation.summary["abs_rel"])


def test_cli_distilled_student_loads_and_evaluates(dataset, distilled, tmp_path):
    path = tmp_path / "dae_r.yaml"
    path.write_text(yaml.safe_dump(dae_r_config(dataset, distilled, tmp_path / "run")))
    assert main(["events", "train", str(path), "--steps", "2"]) == 0
    student = tmp_path / "run" / "student.pth"
    model = load_model("depthanyevent-r", student)
    assert model.config.encoder == "vitp" and model.config.recurrent
    code = main(["events", "eval", str(dataset), "--model", "depthanyevent-r", "--weights", str(student),
                 "--out", str(tmp_path / "eval"), "--device", "cpu", "--limit", "2"])
    assert code == 0


# ---- the paper's recipes ------------------------------------------------------------------------
RECIPES = sorted(CONFIGS.glob("*.yaml"))


def test_recipes_are_all_there():
    names = {path.name for path in RECIPES}
    assert names >= {f"{name}.yaml" for name in (
        "e2depth_distilled", "e2depth_supervised", "ereformer_distilled", "depthanyevent_distilled",
        "depthanyevent-r_distilled", "depthanyevent-r_supervised", "depthanyevent-r_mixed", "depthanyevent-r_synth")}


@pytest.mark.parametrize("path", RECIPES, ids=[path.stem for path in RECIPES])
def test_recipe_loads(path):
    config = load_config(path)
    assert config.model.name in MODELS
    assert config.model.name == path.stem.split("_")[0]
    assert config.regime == path.stem.split("_")[1]
    assert config.steps == 75000 and config.data.window_ms == 50.0
    assert path.read_text().startswith("#")  # the header naming the paper row and the paths to edit


def test_config_that_is_not_a_mapping_is_one_line(tmp_path, capsys):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    assert main(["events", "train", str(path)]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "list.yaml" in error and "mapping" in error


# ---- DDP ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_one_process_runs_the_ddp_path_and_equals_a_plain_run(dataset, distilled, tmp_path):
    """Under torchrun the process group is set up even for one process, so the DDP wrapper runs
    (gloo here, NCCL on a GPU); the DAv2-based student has parameters no forward uses, which DDP
    must accept. Averaging over one process changes nothing: the students are equal."""
    import subprocess
    import sys

    config = dae_r_config(dataset, distilled, tmp_path / "ddp")
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "-m", "anydepth",
                             "events", "train", str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    plain = Trainer(config_from_dict({**config, "out": str(tmp_path / "plain")}), progress=False).run()
    ddp = load_model("depthanyevent-r", tmp_path / "ddp" / "student.pth")
    for name, tensor in plain.student.state_dict().items():
        assert torch.equal(ddp.state_dict()[name], tensor.cpu()), name
