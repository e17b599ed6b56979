"""Bad inputs to `anydepth events pseudolabel | train | eval` (issue 13): every case is a mistake a
user can make; each must exit non-zero, print no traceback, and name the offending file, key or
option in its one-line message. Run in-process through `anydepth.cli.main.main`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from anydepth.cli.main import main
from anydepth.distill.pseudolabels import generate_pseudolabels, pseudolabel_path, read_pseudolabel, write_pseudolabel
from anydepth.foundation import load_depth_anything_file, save_checkpoint
from tests.support.weights import random_state_dict
from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence

SEQUENCE = "train/a"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one torch thread (see conftest.one_thread)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A one-sequence DSEC dataset with frames, the same without frames, an empty folder, a vitp
    teacher (official layout and anydepth container) and its pseudo-labels."""
    root = tmp_path_factory.mktemp("bad")
    spec = EventSequenceSpec(seconds=0.3, resolution=(48, 64), internal_fps=300, frame_hz=20, depth_hz=20, seed=0)
    sequence = generate_event_sequence(spec)
    write_event_sequence(sequence, root / "ds" / SEQUENCE, "dsec")
    write_event_sequence(sequence, root / "frameless" / SEQUENCE, "dsec")
    shutil.rmtree(root / "frameless" / SEQUENCE / "images")
    (root / "empty").mkdir()
    torch.save(random_state_dict("vitp", seed=3), root / "official.pth")
    teacher = load_depth_anything_file(root / "official.pth")
    save_checkpoint(teacher, root / "teacher_vitp.pth")
    generate_pseudolabels(root / "ds", teacher, root / "labels", input_size=56)
    (root / "garbage.pth").write_bytes(b"not a checkpoint at all")
    return {"root": root, "ds": root / "ds", "frameless": root / "frameless", "empty": root / "empty",
            "weights": root / "official.pth", "teacher": root / "teacher_vitp.pth", "labels": root / "labels",
            "garbage": root / "garbage.pth"}


def good_config(world: dict, out: Path, labels: Path | None = None) -> dict:
    return {
        "model": {"name": "depthanyevent-r", "init_dav2": str(world["teacher"]),
                  "config": {"encoder": "vitp", "activation": "relu", "inv_prediction": True, "input_size": [84, 112]}},
        "data": {"sources": [{"path": str(world["ds"]), "labels": "pseudo", "pseudolabels": str(labels or world["labels"])}],
                 "sequence_length": 2, "crop": [40, 56]},
        "regime": "distilled", "loss": {"name": "ssi"}, "optim": {"lr": 1e-4},
        "steps": 1, "batch_size": 1, "checkpoint_every": 1, "device": "cpu", "out": str(out),
    }


def write_config(tmp_path: Path, values, name: str = "train.yaml") -> Path:
    path = tmp_path / name
    path.write_text(values if isinstance(values, str) else yaml.safe_dump(values))
    return path


def edited(world, tmp_path, edit, labels: Path | None = None) -> Path:
    values = good_config(world, tmp_path / "run", labels)
    edit(values)
    return write_config(tmp_path, values)


def copied_labels(world, tmp_path) -> Path:
    labels = tmp_path / "labels"
    shutil.copytree(world["labels"], labels)
    return labels


# ---- cases: (id, builder(world, tmp_path) -> (argv, [substrings the message must hold])) ---------
def train(path: Path, *extra) -> list[str]:
    return ["events", "train", str(path), *extra]


def case_lr_not_a_number(w, t):
    path = edited(w, t, lambda v: v["optim"].update(lr="fast"))
    return train(path), [str(path), "optim.lr: expected a number, got 'fast'"]


def case_unknown_key(w, t):
    path = edited(w, t, lambda v: v["optim"].update(learning_rate=1e-3))
    return train(path), [str(path), "optim.learning_rate: unknown key"]


def case_missing_source_path(w, t):
    path = edited(w, t, lambda v: v["data"]["sources"][0].pop("path"))
    return train(path), [str(path), "data.sources[0].path: missing"]


def case_sources_not_a_list(w, t):
    path = edited(w, t, lambda v: v["data"].update(sources=str(w["ds"])))
    return train(path), [str(path), "data.sources: expected a list"]


def case_steps_zero(w, t):
    path = edited(w, t, lambda v: v.update(steps=0))
    return train(path), [str(path), "steps: expected a value of at least 1, got 0"]


def case_steps_float(w, t):
    path = edited(w, t, lambda v: v.update(steps=2.5))
    return train(path), [str(path), "steps: expected an integer, got 2.5"]


def case_misspelt_regime(w, t):
    path = edited(w, t, lambda v: v.update(regime="distiled"))
    return train(path), [str(path), "regime: expected one of synth, distilled"]


def case_crop_one_number(w, t):
    path = edited(w, t, lambda v: v["data"].update(crop=[32]))
    return train(path), [str(path), "data.crop: expected a list of 2 integers"]


def case_flip_not_boolean(w, t):
    path = edited(w, t, lambda v: v["data"].update(flip="maybe"))
    return train(path), [str(path), "data.flip: expected true or false"]


def case_config_device_misspelt(w, t):
    path = edited(w, t, lambda v: v.update(device="gpu"))
    return train(path), [str(path), "device 'gpu': not a device"]


def case_config_out_is_a_file(w, t):
    (t / "run").write_text("my notes")
    path = edited(w, t, lambda v: None)
    return train(path), [str(path), "out: is a file", str(t / "run")]


def case_section_not_a_mapping(w, t):
    path = edited(w, t, lambda v: v.update(optim=[1, 2]))
    return train(path), [str(path), "optim: expected a mapping"]


def case_unknown_student(w, t):
    path = edited(w, t, lambda v: v["model"].update(name="depthanyevent-x"))
    return train(path), [str(path), "model.name: expected one of"]


def case_unknown_model_config_key(w, t):
    path = edited(w, t, lambda v: v["model"]["config"].update(encodr="vitp"))
    return train(path), [str(path), "model.config.encodr: unknown key for depthanyevent-r"]


def case_dataset_missing(w, t):
    path = edited(w, t, lambda v: v["data"]["sources"][0].update(path=str(t / "nowhere")))
    return train(path), [str(path), "data.sources[0].path: no such file or folder", str(t / "nowhere")]


def case_labels_folder_missing(w, t):
    path = edited(w, t, lambda v: v["data"]["sources"][0].update(pseudolabels=str(t / "no_labels")))
    return train(path), [str(path), "data.sources[0].pseudolabels: no such labels folder", str(t / "no_labels")]


def case_init_weights_missing(w, t):
    path = edited(w, t, lambda v: v["model"].update(init_dav2=str(t / "teacher.pth")))
    return train(path), [str(path), "model.init_dav2", str(t / "teacher.pth")]


def case_student_weights_wrong_checkpoint(w, t):
    path = edited(w, t, lambda v: v["model"].update(weights=str(w["garbage"]), init_dav2=None))
    return train(path), [str(w["garbage"])]


def case_config_missing(w, t):
    return train(t / "missing.yaml"), [str(t / "missing.yaml"), "no such config file"]


def case_config_not_yaml(w, t):
    path = write_config(t, "model: [unclosed\n  steps: {\n")
    return train(path), [str(path), "not valid YAML"]


def case_config_binary(w, t):
    path = t / "train.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    return train(path), [str(path)]


def case_config_a_list(w, t):
    path = write_config(t, "- a\n- b\n")
    return train(path), [str(path), "mapping"]


def case_set_without_value(w, t):
    return train(edited(w, t, lambda v: None), "--set", "steps"), ["--set", "KEY=VALUE"]


def case_set_bad_yaml(w, t):
    return train(edited(w, t, lambda v: None), "--set", "data.crop=[1,"), ["--set", "data.crop=[1,"]


def case_set_wrong_type(w, t):
    path = edited(w, t, lambda v: None)
    return train(path, "--set", "optim.lr=fast"), [str(path), "optim.lr: expected a number, got 'fast'",
                                                  "set on the command line"]


def case_set_into_a_value(w, t):
    path = edited(w, t, lambda v: None)
    return train(path, "--set", "steps.x=1"), [str(path), "cannot set steps.x", "set on the command line"]


def case_set_unknown_key(w, t):
    path = edited(w, t, lambda v: None)
    return train(path, "--set", "optim.lrr=1"), [str(path), "optim.lrr: unknown key", "set on the command line"]


def case_labels_of_another_recording(w, t):
    """Each label's frame checksum is compared with the frame of the sample it is used for."""
    labels = copied_labels(w, t)
    for index in range(6):  # the labels of the reversed recording: right timestamps, wrong frames
        source = read_pseudolabel(pseudolabel_path(w["labels"], SEQUENCE, 5 - index))
        mine = read_pseudolabel(pseudolabel_path(w["labels"], SEQUENCE, index))
        write_pseudolabel(pseudolabel_path(labels, SEQUENCE, index), source.depth, mine.timestamp_us, source.teacher,
                          source.input_size, source.frame_sha1, source.weights_sha1)
    return train(edited(w, t, lambda v: None, labels)), [str(labels), f"sequence {SEQUENCE}", "another recording"]


def case_labels_of_another_frame_rate(w, t):
    labels = copied_labels(w, t)
    for index in range(6):  # the same frames, labelled at twice the rate
        label = read_pseudolabel(pseudolabel_path(w["labels"], SEQUENCE, index))
        write_pseudolabel(pseudolabel_path(labels, SEQUENCE, index), label.depth, label.timestamp_us // 2,
                          label.teacher, label.input_size, label.frame_sha1, label.weights_sha1)
    return train(edited(w, t, lambda v: None, labels)), [str(labels), f"sequence {SEQUENCE}", "another frame rate"]


def case_labels_of_another_dataset(w, t):
    labels = copied_labels(w, t)
    manifest = json.loads((labels / "manifest.json").read_text())
    manifest["sequences"] = {"zurich_city_00_a": {"samples": 6, "labels": 6}}
    (labels / "manifest.json").write_text(json.dumps(manifest))
    return train(edited(w, t, lambda v: None, labels)), [str(labels), "another dataset", SEQUENCE]


def case_labels_folder_empty(w, t):
    labels = t / "labels"
    labels.mkdir()
    return train(edited(w, t, lambda v: None, labels)), [str(labels), "labelled samples"]


def case_corrupt_label(w, t):
    labels = copied_labels(w, t)
    broken = pseudolabel_path(labels, SEQUENCE, 0)
    broken.write_bytes(broken.read_bytes()[:100])
    return train(edited(w, t, lambda v: None, labels)), [str(broken)]


def case_foreign_resume_checkpoint(w, t):
    last = t / "run" / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"\x00" * 64)
    return train(edited(w, t, lambda v: None)), [str(last), "cannot resume"]


def case_resume_under_another_config(w, t):
    """A run resumed with other labels (or any other training value) would mix two runs in one."""
    assert main(train(edited(w, t, lambda v: None))) == 0
    labels = copied_labels(w, t)
    path = edited(w, t, lambda v: v.update(steps=2), labels)
    return train(path), [str(t / "run" / "checkpoints" / "last.pt"), "data.sources[0].pseudolabels",
                         "cannot resume"]


def case_train_empty_dataset(w, t):
    path = edited(w, t, lambda v: v["data"]["sources"][0].update(path=str(w["empty"])))
    return train(path), [str(w["empty"]), "no event sequences"]


def pseudolabel(dataset, *extra, w=None) -> list[str]:
    return ["events", "pseudolabel", str(dataset), "--weights", str(w["weights"]), "--input-size", "56",
            "--device", "cpu", *extra]


def case_pseudolabel_dataset_missing(w, t):
    return pseudolabel(t / "nowhere", w=w), [str(t / "nowhere"), "no such file or folder"]


def case_pseudolabel_empty_dataset(w, t):
    return pseudolabel(w["empty"], w=w), [str(w["empty"]), "no event sequences"]


def case_pseudolabel_no_frames(w, t):
    return pseudolabel(w["frameless"], "--out", str(t / "labels"), w=w), [str(w["frameless"]), "no frames to label"]


def case_pseudolabel_limit_zero(w, t):
    return pseudolabel(w["ds"], "--limit", "0", "--out", str(t / "labels"), w=w), ["--limit"]


def case_pseudolabel_input_size(w, t):
    return pseudolabel(w["ds"], "--input-size", "5", "--out", str(t / "labels"), w=w), ["--input-size"]


def case_pseudolabel_weights_not_a_checkpoint(w, t):
    return (["events", "pseudolabel", str(w["ds"]), "--weights", str(w["garbage"]), "--device", "cpu",
             "--out", str(t / "labels")], [str(w["garbage"])])


def case_eval_weights_missing(w, t):
    return (["events", "eval", str(w["ds"]), "--model", "e2depth", "--weights", str(t / "student.pth"),
             "--device", "cpu", "--out", str(t / "eval")], [str(t / "student.pth")])


def case_eval_teacher_as_student(w, t):
    return (["events", "eval", str(w["ds"]), "--model", "e2depth", "--weights", str(w["teacher"]),
             "--device", "cpu", "--out", str(t / "eval")], [str(w["teacher"])])


def case_eval_dataset_missing(w, t):
    return (["events", "eval", str(t / "nowhere"), "--model", "e2depth", "--weights", str(w["teacher"]),
             "--device", "cpu", "--out", str(t / "eval")], [str(t / "nowhere")])


def case_eval_window_zero(w, t):
    return (["events", "eval", str(w["ds"]), "--model", "e2depth", "--weights", str(w["teacher"]), "--window-ms", "0",
             "--device", "cpu", "--out", str(t / "eval")], ["--window-ms", "0"])


def case_eval_limit_zero(w, t):
    return (["events", "eval", str(w["ds"]), "--model", "e2depth", "--weights", str(w["teacher"]), "--limit", "0",
             "--out", str(t / "eval")], ["--limit"])


CASES = {name[len("case_"):]: function for name, function in sorted(globals().items()) if name.startswith("case_")}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line(name, world, tmp_path, capsys):
    argv, expected = CASES[name](world, tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse: usage and one error line, exit 2
        code = exit.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code not in (0, None), (name, captured.out[-500:])
    assert "Traceback" not in captured.err + captured.out
    message = err.splitlines()[-1] if err else ""
    for text in expected:
        assert text in message, (name, text, message)
    if code == 1:  # the CLI's boundary: exactly one line
        assert err.count("\n") == 0, err


def test_the_catalogue_is_big_enough():
    assert len(CASES) >= 20
    assert {name.split("_")[0] for name in CASES} >= {"pseudolabel", "eval"}
