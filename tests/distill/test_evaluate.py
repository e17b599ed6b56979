"""Dataset-level Depth AnyEvent evaluation: hand-computed protocol values over a generated
two-sequence dataset, the recurrent state restarting at each sequence, the CSV / JSON / table
outputs, a checkpoint's trainer section applied as the authors' test.py, and `anydepth events eval`
end to end. (The per-frame arithmetic is checked against the authors' code in test_metrics.py.)"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from anydepth.cli.main import main
from anydepth.distill.evaluate import EvaluationResult, evaluate_dataset, resize_depth
from anydepth.errors import InputError
from anydepth.eventdepth import load_model, save_model
from anydepth.eventdepth.base import EventDepthModel
from anydepth.events.container import EventArray
from anydepth.events.dataset import open_sequence
from anydepth.metrics import EventDepthProtocol
from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence

EPS = 1e-5
DAE_FLOAT64 = EventDepthProtocol("dae-mvsec-float64", precision="float64")  # dae-mvsec's steps in float64
SEQUENCES = {"seq_a": (0.3, 1), "seq_b": (0.5, 2)}  # seconds, seed: 3 and 5 ground truth maps at 10 Hz


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A DSEC-layout root and an E2Depth voxel-folder root of the same two 48x64 sequences."""
    root = tmp_path_factory.mktemp("events-dataset")
    for name, (seconds, seed) in SEQUENCES.items():
        sequence = generate_event_sequence(EventSequenceSpec(seconds=seconds, resolution=(48, 64), internal_fps=300,
                                                             frame_hz=20, depth_hz=10, seed=seed))
        write_event_sequence(sequence, root / "dsec" / "train" / name, "dsec")
        write_event_sequence(sequence, root / "voxels" / name, "e2depth")
    return root


def ground_truths(root) -> dict[str, list[np.ndarray]]:
    found = {}
    for name in SEQUENCES:
        with open_sequence(root / name) as sequence:
            found[name] = [sample.depth_m.astype(np.float64) for sample in sequence]
    return found


class OracleModel(EventDepthModel):
    """Returns the given maps one after another (in the evaluation's order); records its inputs."""

    output_kind = "relative"

    def __init__(self, maps, recurrent=False):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.maps = list(maps)
        self.recurrent = recurrent
        self.inputs = []
        self.states = []

    def prepare(self, window, representation=None, input_size=None):
        self.inputs.append(window)
        return torch.zeros(1, 1, 1, 1)

    def forward(self, x, state):
        self.states.append(state)
        raw = torch.as_tensor(self.maps.pop(0), dtype=torch.float32)[None, None]
        return raw, ((0 if state is None else state + 1) if self.recurrent else None)

    def to_depth(self, raw, size):
        return raw[:, 0]


def hand_metrics(prediction: np.ndarray, gt: np.ndarray, clip: float = 80.0) -> dict[str, float]:
    """The dae-mvsec protocol written out: clip and stretch the ground truth, least-squares scale
    and shift over gt > 0 (singular -> 0, 0), clip, strict valid mask, metrics with eps 1e-5."""
    target = np.clip(gt, 0, clip)
    target = target / np.nanmax(target) * clip
    fit = target > 0
    if np.unique(prediction[fit]).size < 2:
        return dict.fromkeys(("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "delta1", "delta2", "delta3"), np.nan)
    design = np.stack([prediction[fit], np.ones(fit.sum())], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, target[fit], rcond=None)
    aligned = np.clip(scale * prediction + shift, 0, clip)
    peak = target.max()
    valid = (target > 0) & (target < peak) & (aligned > 0) & (aligned < peak)
    d, t = aligned[valid], target[valid]
    log_diff = np.log(t + EPS) - np.log(d + EPS)
    ratio = np.maximum(t / (d + EPS), d / (t + EPS))
    return {
        "abs_rel": np.mean(np.abs(d - t) / (t + EPS)),
        "sq_rel": np.mean((d - t) ** 2 / (t**2 + EPS)),
        "rmse": np.sqrt(np.mean((d - t) ** 2)),
        "rmse_log": np.sqrt(np.mean(log_diff**2)),
        "silog": np.mean(log_diff**2) - np.mean(log_diff) ** 2,
        "delta1": np.mean(ratio <= 1.25),
        "delta2": np.mean(ratio <= 1.25**2),
        "delta3": np.mean(ratio <= 1.25**3),
    }


def test_affine_prediction_is_exact_after_alignment(generated):
    gts = ground_truths(generated / "dsec" / "train")
    model = OracleModel([2 * gt + 1 for name in SEQUENCES for gt in gts[name]])
    result = evaluate_dataset(model, generated / "dsec", protocol="dae-mvsec")
    assert result.frames == {"train/seq_a": 3, "train/seq_b": 5}
    assert not model.maps  # every sample predicted once
    assert all(isinstance(window, EventArray) for window in model.inputs)
    for name in ("train/seq_a", "train/seq_b", None):
        scores = result.summary if name is None else result.per_sequence[name]
        assert scores["abs_rel"] == pytest.approx(0, abs=1e-5)
        assert scores["rmse"] == pytest.approx(0, abs=1e-4)
        assert scores["delta1"] == 1.0 and scores["delta3"] == 1.0


def test_nontrivial_error_matches_hand_computation(generated):
    gts = ground_truths(generated / "dsec" / "train")
    rng = np.random.default_rng(0)
    predictions = {}
    for name in SEQUENCES:
        predictions[name] = []
        for index, gt in enumerate(gts[name]):
            if name == "seq_b" and index == 1:  # constant: singular fit -> no valid pixel -> NaN frame
                predictions[name].append(np.full(gt.shape, 5.0))
            else:
                noise = rng.uniform(0.7, 1.3, gt.shape)
                predictions[name].append((np.sqrt(gt) * noise).astype(np.float32).astype(np.float64))
    maps = [p for name in SEQUENCES for p in predictions[name]]
    result = evaluate_dataset(OracleModel(maps), generated / "dsec", protocol=DAE_FLOAT64)
    official = evaluate_dataset(OracleModel(maps), generated / "dsec", protocol="dae-mvsec")  # float32, as theirs

    expected = {}
    for name in SEQUENCES:
        rows = [hand_metrics(p, gt) for p, gt in zip(predictions[name], gts[name])]
        expected[name] = {key: np.nanmean([row[key] for row in rows]) for key in rows[0]}
    assert np.isnan(hand_metrics(predictions["seq_b"][1], gts["seq_b"][1])["abs_rel"])
    for name in SEQUENCES:
        for key, value in expected[name].items():
            assert result.per_sequence[f"train/{name}"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (name, key)
    for key in expected["seq_a"]:
        over_sequences = (expected["seq_a"][key] + expected["seq_b"][key]) / 2
        assert result.summary[key] == pytest.approx(over_sequences, rel=1e-6, abs=1e-9)
        assert official.summary[key] == pytest.approx(over_sequences, rel=5e-4), key  # float32 rounding only
    assert official.summary["silog"].dtype == np.float32 and result.summary["silog"].dtype == np.float64
    # the mean over sequences is not the mean over frames (3 and 4 valid frames)
    frames = [hand_metrics(p, gt)["abs_rel"] for name in SEQUENCES for p, gt in zip(predictions[name], gts[name])]
    assert result.summary["abs_rel"] != pytest.approx(np.nanmean(frames), rel=1e-4)
    assert result.per_sequence["train/seq_a"]["abs_rel"] > 0.01


def test_recurrent_state_restarts_at_each_sequence(generated, tmp_path):
    gts = ground_truths(generated / "dsec" / "train")
    model = OracleModel([2 * gt + 1 for name in SEQUENCES for gt in gts[name]], recurrent=True)
    evaluate_dataset(model, generated / "dsec")
    assert model.states == [None, 0, 1, None, 0, 1, 2, 3]

    # voxel folders: the precomputed grids are the input; limit and saved predictions
    model = OracleModel([2 * gt + 1 for name in SEQUENCES for gt in gts[name]], recurrent=True)
    ticks = []
    result = evaluate_dataset(model, generated / "voxels", limit=2, progress=ticks.append,
                              predictions_out=tmp_path / "pred")
    assert model.states == [None, 0, None, 0]
    assert result.frames == {"seq_a": 2, "seq_b": 2} and sum(ticks) == 4
    assert all(isinstance(v, np.ndarray) and v.shape == (5, 48, 64) for v in model.inputs)
    saved = sorted(p.relative_to(tmp_path / "pred").as_posix() for p in (tmp_path / "pred").rglob("*.npy"))
    assert saved == ["seq_a/000000.npy", "seq_a/000001.npy", "seq_b/000000.npy", "seq_b/000001.npy"]
    assert np.load(tmp_path / "pred" / "seq_a" / "000000.npy").shape == (48, 64)


def test_prediction_resized_to_ground_truth(generated):
    gts = ground_truths(generated / "dsec" / "train")
    small = [np.asarray(resize_depth(2 * gt + 1, (24, 32)), np.float64) for name in SEQUENCES for gt in gts[name]]
    result = evaluate_dataset(OracleModel(small), generated / "dsec" / "train" / "seq_a", limit=1)
    expected = hand_metrics(resize_depth(small[0], (48, 64)).astype(np.float64), gts["seq_a"][0])
    assert result.frames == {"seq_a": 1}
    assert result.summary["rmse"] == pytest.approx(expected["rmse"], rel=1e-5)
    with pytest.raises(InputError):
        evaluate_dataset(OracleModel(small), generated / "dsec", limit=0)


def test_trainer_section_of_the_run_config_is_honoured(generated):
    gts = ground_truths(generated / "dsec" / "train")
    maps = [2 * gt + 1 for name in SEQUENCES for gt in gts[name]]
    model = OracleModel(maps)
    model.run_config = {"model": {}, "trainer": {"use_scaleshift": False, "clip_distance": 40.0, "lr": 1e-4}}
    result = evaluate_dataset(model, generated / "dsec", protocol="dae-mvsec")
    assert result.trainer == {"use_scaleshift": False, "clip_distance": 40.0}
    assert not result.settings.align and result.settings.clip == 40.0 and result.settings.name == "dae-mvsec"
    data = result.to_dict()
    assert data["protocol"]["clip"] == 40.0 and data["protocol"]["align"] is False and data["trainer"] == result.trainer
    # not aligned: 2 d + 1 against the ground truth stretched to 40 m is far off
    assert result.summary["abs_rel"] > 0.3
    model = OracleModel(maps)
    model.run_config = {"trainer": {"use_scaleshift": False}}
    ignored = evaluate_dataset(model, generated / "dsec", protocol="dae-mvsec", use_trainer=False)
    assert ignored.trainer == {} and ignored.settings.align and ignored.summary["abs_rel"] == pytest.approx(0, abs=1e-5)


def test_log_depth_output_from_the_trainer_section(generated):
    # p = 1 + log(d / 80) / a: test.py's exp(a (p - 1)), divided by its max, times 80, is the
    # ground truth stretched by its own max, i.e. exactly the protocol's target
    gts = ground_truths(generated / "dsec" / "train")
    logs = []
    for name in SEQUENCES:
        for gt in gts[name]:
            clean = np.clip(np.nan_to_num(gt), 1e-3, 80.0)
            logs.append(1 + np.log(clean / 80.0) / 3.70378)
    model = OracleModel(logs)
    model.run_config = {"trainer": {"use_scaleshift": False, "use_logdepth": True, "reg_factor": 3.70378}}
    result = evaluate_dataset(model, generated / "dsec", protocol="dae-mvsec")
    assert result.settings.log_depth and not result.settings.align
    assert result.summary["abs_rel"] == pytest.approx(0, abs=1e-5) and result.summary["delta1"] == 1.0


def test_table_csv_json_round_trip(tmp_path):
    per_sequence = {"train/seq_a": {"abs_rel": 0.125, "delta1": 0.5}, "train/seq_b": {"abs_rel": float("nan"), "delta1": 1.0}}
    result = EvaluationResult("dae-dsec", "e2depth", per_sequence, {"abs_rel": 0.125, "delta1": 0.75},
                              {"train/seq_a": 3, "train/seq_b": 5}, weights="w.pth")
    table = result.table(("abs_rel", "delta1"))
    assert "train/seq_a" in table and "train/seq_b" in table and "mean" in table.splitlines()[-1]
    assert "0.125" in table and "0.750" in table and "nan" in table
    with open(result.to_csv(tmp_path / "m.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["sequence"] for row in rows] == ["train/seq_a", "train/seq_b", "mean"]
    assert float(rows[0]["abs_rel"]) == 0.125 and rows[1]["abs_rel"] == "" and rows[2]["frames"] == "8"
    data = json.loads(result.to_json(tmp_path / "m.json").read_text())
    assert data["protocol"]["name"] == "dae-dsec" and data["protocol"]["crop"] == [320, 640]
    assert data["protocol"]["stretch_gt"] is True and data["protocol"]["window_ms"] == 50.0
    assert data["model"] == "e2depth" and data["weights"] == "w.pth"
    assert data["per_sequence"]["train/seq_b"]["abs_rel"] is None
    assert data["summary"] == {"abs_rel": 0.125, "delta1": 0.75}
    assert data["frames"] == {"train/seq_a": 3, "train/seq_b": 5}


@pytest.fixture(scope="module")
def tiny_e2depth(tmp_path_factory):
    torch.manual_seed(0)
    model = load_model("e2depth", base_num_channels=8, num_encoders=2, num_residual_blocks=1)
    path = tmp_path_factory.mktemp("weights") / "e2depth_tiny.pth.tar"
    save_model("e2depth", model, path)
    return path


def test_cli_eval_end_to_end(generated, tiny_e2depth, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["events", "eval", str(generated / "dsec"), "--model", "e2depth", "--weights", str(tiny_e2depth),
                 "--protocol", "dae-mvsec", "--out", str(out), "--device", "cpu", "--save-predictions"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "train/seq_a" in printed and "train/seq_b" in printed and "mean" in printed and "abs_rel" in printed
    data = json.loads((out / "metrics.json").read_text())
    assert data["frames"] == {"train/seq_a": 3, "train/seq_b": 5} and data["model"] == "e2depth"
    assert data["weights"] == str(tiny_e2depth) and data["protocol"]["name"] == "dae-mvsec"
    assert 0 <= data["summary"]["delta1"] <= 1
    with open(out / "metrics.csv", newline="") as handle:
        assert [row["sequence"] for row in csv.DictReader(handle)][-1] == "mean"
    assert len(list((out / "predictions").rglob("*.npy"))) == 8


def test_cli_eval_says_what_it_takes_from_the_trainer_section(generated, tiny_e2depth, tmp_path, capsys, monkeypatch):
    import anydepth.eventdepth as eventdepth

    real_load = eventdepth.load_model

    def load_with_run_config(name, weights):
        model = real_load(name, weights)
        model.run_config = {"trainer": {"use_scaleshift": False, "clip_distance": 40.0}}
        return model

    monkeypatch.setattr(eventdepth, "load_model", load_with_run_config)
    base = [str(generated / "dsec"), "--model", "e2depth", "--weights", str(tiny_e2depth), "--device", "cpu", "--limit", "1"]
    assert main(["events", "eval", *base, "--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().out.splitlines()
    said = [line for line in lines if "trainer section" in line]
    assert said == ["from the checkpoint's trainer section (as the authors' test.py): use_scaleshift=False, clip_distance=40.0"]
    data = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert data["protocol"]["clip"] == 40.0 and data["protocol"]["align"] is False
    assert main(["events", "eval", *base, "--out", str(tmp_path / "b"), "--ignore-trainer"]) == 0
    assert "trainer section" not in capsys.readouterr().out
    data = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert data["protocol"]["clip"] == 80.0 and data["protocol"]["align"] is True and data["trainer"] == {}


def test_cli_eval_bad_inputs(generated, tiny_e2depth, tmp_path, capsys):
    base = ["--model", "e2depth", "--weights", str(tiny_e2depth), "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert main(["events", "eval", str(tmp_path / "missing"), *base]) == 1
    error = capsys.readouterr().err
    assert error.startswith("anydepth events eval: error:") and "missing" in error and error.count("\n") == 1

    with pytest.raises(SystemExit) as exit_info:
        main(["events", "eval", str(generated / "dsec"), *base, "--protocol", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    assert main(["events", "eval", str(generated / "dsec"), "--model", "e2depth", "--weights", str(junk),
                 "--out", str(tmp_path / "o")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("anydepth events eval: error:") and "junk.pth" in error and error.count("\n") == 1
    assert not (tmp_path / "o").exists()
