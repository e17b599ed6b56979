"""`kill -9` at random moments: `anydepth events pseudolabel` and `anydepth events train` run as
subprocesses, are killed with SIGKILL at seeded random moments, resumed, and must end with no
temporary or partial file anywhere and with labels and student weights bit-identical to an
uninterrupted run (made in this process with one thread, as the subprocesses run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from anydepth.atomic import temporary_target
from anydepth.cli.main import main
from anydepth.distill.pseudolabels import read_pseudolabel
from anydepth.eventdepth.registry import load_model
from anydepth.foundation import load_depth_anything_file, save_checkpoint
from tests.support.weights import random_state_dict
from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence

pytestmark = pytest.mark.slow
INPUT_SIZE = 154  # a few tens of ms a label on one thread: the kills land while labelling
KILLS = 3


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one torch thread (see conftest.one_thread)."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("kill")
    dataset = root / "ds"
    spec = EventSequenceSpec(seconds=0.3, resolution=(48, 64), internal_fps=300, frame_hz=40, depth_hz=40, seed=0)
    write_event_sequence(generate_event_sequence(spec), dataset / "train" / "a", "dsec")  # 12 samples
    torch.save(random_state_dict("vitp", seed=3), root / "official.pth")
    save_checkpoint(load_depth_anything_file(root / "official.pth"), root / "teacher_vitp.pth")
    return {"root": root, "dataset": dataset, "weights": root / "official.pth", "teacher": root / "teacher_vitp.pth"}


def files_under(folder: Path, skip: str | None = None) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and not (skip and p.relative_to(folder).parts[0] == skip)}


def assert_no_leftovers(*folders: Path) -> None:
    for folder in folders:
        for path in folder.rglob("*"):
            assert temporary_target(path.name) is None and ".partial" not in path.name, path


def killed_then_resumed(command: list[str], progress, total: int, unit_s: float, seed: int) -> list[tuple[str, int]]:
    """Run `command` KILLS times, each killed with SIGKILL at a random moment of its work: once
    `progress()` (units of work done: labels, checkpoints) reaches a random count below `total`,
    plus a random fraction of the time one unit takes (`unit_s`); then once to the end. Returns how
    each killed run ended, with the progress after it."""
    rng = np.random.default_rng(seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    ends = []
    for _ in range(KILLS):
        done = progress()  # each kill lands in the first half of the work left, after some of it
        target = done + 1 + int(rng.integers(0, max(1, (total - done) // 2))) if done + 1 < total else done
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while progress() < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(float(rng.uniform(0.0, unit_s)))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            end = "killed"
        else:
            end = f"finished {process.returncode}"
        process.wait()
        process.stderr.close()
        ends.append((end, progress()))
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return ends


def unit_time(files: list[Path]) -> float:
    """Seconds between consecutive files of a reference run (one label, one training step)."""
    times = sorted(path.stat().st_mtime for path in files)
    return (times[-1] - times[0]) / max(1, len(times) - 1)


def test_pseudolabel_and_train_killed_at_random_moments_resume_exactly(setup, tmp_path):
    dataset, weights = setup["dataset"], setup["weights"]
    before = files_under(dataset)

    # ---- pseudo-labels ----------------------------------------------------------------------
    label_args = ["--weights", str(weights), "--input-size", str(INPUT_SIZE), "--device", "cpu"]
    reference = tmp_path / "labels_reference"
    assert main(["events", "pseudolabel", str(dataset), "--out", str(reference), *label_args]) == 0
    labels = tmp_path / "labels"
    command = [sys.executable, "-m", "anydepth", "events", "pseudolabel", str(dataset), "--out", str(labels), *label_args]
    ends = killed_then_resumed(command, lambda: len(list(labels.rglob("??????.npz"))), 12, unit_time(list(reference.rglob("??????.npz"))), seed=13)
    assert any(end == "killed" and 0 < count < 12 for end, count in ends), ends  # killed while labelling
    assert_no_leftovers(labels, dataset)
    assert files_under(labels) == files_under(reference)
    for name in files_under(reference) - {"manifest.json"}:
        ours, theirs = read_pseudolabel(labels / name), read_pseudolabel(reference / name)
        assert ours.depth.tobytes() == theirs.depth.tobytes(), name
        assert (ours.timestamp_us, ours.frame_sha1) == (theirs.timestamp_us, theirs.frame_sha1)

    # ---- training on them ------------------------------------------------------------------
    def config(out: Path) -> Path:
        values = {
            "model": {"name": "depthanyevent-r", "init_dav2": str(setup["teacher"]),
                      "config": {"encoder": "vitp", "activation": "relu", "inv_prediction": True, "input_size": [84, 112]}},
            "data": {"sources": [{"path": str(dataset), "labels": "pseudo", "pseudolabels": str(labels)}],
                     "sequence_length": 2, "crop": [40, 56]},
            "regime": "distilled", "loss": {"name": "ssi"}, "optim": {"lr": 1e-4},
            "steps": 6, "batch_size": 2, "checkpoint_every": 1, "device": "cpu", "out": str(out),
        }
        path = tmp_path / f"{out.name}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    straight = tmp_path / "straight"
    assert main(["events", "train", str(config(straight))]) == 0
    resumed = tmp_path / "resumed"
    command = [sys.executable, "-m", "anydepth", "events", "train", str(config(resumed))]
    steps_done = lambda: len(list((resumed / "checkpoints").glob("step_*.pt")))  # noqa: E731
    ends = killed_then_resumed(command, steps_done, 6, unit_time(list((straight / "checkpoints").glob("step_*.pt"))), seed=7)
    assert any(end == "killed" and 0 < count < 6 for end, count in ends), ends  # killed while training
    assert_no_leftovers(resumed, labels, dataset)
    assert files_under(resumed, skip="tensorboard") == files_under(straight, skip="tensorboard")
    ours = load_model("depthanyevent-r", resumed / "student.pth").state_dict()
    theirs = load_model("depthanyevent-r", straight / "student.pth").state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert (resumed / "history.jsonl").read_text() == (straight / "history.jsonl").read_text()
    assert files_under(dataset) == before  # nothing written into the dataset
