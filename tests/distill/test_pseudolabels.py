"""Pseudo-labels: one verified .npz per aligned sample, batched, resumable, sharded; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from anydepth.cli.main import main
from anydepth.distill.pseudolabels import (
    default_out,
    check_label,
    generate_pseudolabels,
    predict_label,
    pseudolabel_path,
    read_pseudolabel,
    teacher_fingerprint,
)
from anydepth.errors import FormatError, InputError
from anydepth.events.dataset import open_sequence
from anydepth.foundation import DepthAnythingV2, load_depth_anything_file, save_checkpoint
from tests.support.weights import random_state_dict
from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence

INPUT_SIZE = 56
NAMES = ("train/seq_a", "train/seq_b")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two DSEC-layout sequences of 6 aligned samples each, 48x64 frames."""
    root = tmp_path_factory.mktemp("pl") / "ds"
    for seed, name in enumerate(NAMES):
        spec = EventSequenceSpec(seconds=0.3, resolution=(48, 64), internal_fps=300, frame_hz=20, depth_hz=20, seed=seed)
        write_event_sequence(generate_event_sequence(spec), root / name, "dsec")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "teacher_vitp.pth"
    torch.save(random_state_dict("vitp", seed=3), path)  # official layout: the encoder is inferred
    return path


@pytest.fixture(scope="module")
def teacher(checkpoint) -> DepthAnythingV2:
    return load_depth_anything_file(checkpoint)


def frames_of(dataset: Path) -> dict[tuple[str, int], tuple[np.ndarray, int]]:
    found = {}
    for name in NAMES:
        with open_sequence(dataset / name) as sequence:
            for sample in sequence:
                found[(name, sample.index)] = (sample.frame, sample.timestamp_us)
    return found


def test_labels_for_every_sample_match_infer_image(dataset, teacher, tmp_path):
    out = tmp_path / "labels"
    summary = generate_pseudolabels(dataset, teacher, out, input_size=INPUT_SIZE)
    frames = frames_of(dataset)
    assert (summary.computed, summary.skipped, summary.no_frame) == (len(frames), 0, 0) == (12, 0, 0)
    assert summary.teacher == "vitp"
    for (name, index), (frame, timestamp_us) in frames.items():
        label = read_pseudolabel(pseudolabel_path(out, name, index))
        assert label.depth.shape == frame.shape[:2] and label.depth.dtype == np.float32
        assert np.isfinite(label.depth).all()
        assert (label.timestamp_us, label.teacher, label.input_size) == (timestamp_us, "vitp", INPUT_SIZE)
        assert label.weights_sha1 == teacher_fingerprint(teacher)
        np.testing.assert_allclose(label.depth, teacher.infer_image(frame, INPUT_SIZE), rtol=1e-4, atol=1e-5)
        with np.load(pseudolabel_path(out, name, index), allow_pickle=False) as data:  # the release's key
            assert data["depth"].shape == frame.shape[:2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"] == "vitp" and manifest["input_size"] == INPUT_SIZE
    assert manifest["sequences"] == {name: {"samples": 6, "labels": 6} for name in NAMES}
    assert not list(out.rglob(".*"))


def test_grey_frames_label_like_infer_image(teacher):
    rng = np.random.default_rng(0)
    for frame in [rng.integers(0, 256, (30, 40), dtype=np.uint8) for _ in range(3)]:
        np.testing.assert_allclose(predict_label(teacher, frame, INPUT_SIZE), teacher.infer_image(frame, INPUT_SIZE),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_labels_are_bit_identical_however_the_run_is_cut(dataset, teacher, tmp_path):
    """A label depends on its frame alone: labelling every sample in one run, in pieces (a limit,
    then the rest), one sample at a time, or with the samples split between two ranks gives the same
    bytes. (Batched forwards would not: a batch of 4 rounds differently from a frame alone.)"""
    whole = generate_pseudolabels(dataset, teacher, tmp_path / "whole", input_size=INPUT_SIZE).out
    pieces = tmp_path / "pieces"
    for limit in (1, 5, 12):
        generate_pseudolabels(dataset, teacher, pieces, input_size=INPUT_SIZE, limit=limit)
    ranks = tmp_path / "ranks"
    for rank in range(3):
        generate_pseudolabels(dataset, teacher, ranks, input_size=INPUT_SIZE, rank=rank, world_size=3)
    frame = frames_of(dataset)[(NAMES[1], 4)][0]
    alone = predict_label(teacher, frame, INPUT_SIZE)
    for name in NAMES:
        for index in range(6):
            depth = read_pseudolabel(pseudolabel_path(whole, name, index)).depth
            for other in (pieces, ranks):
                assert read_pseudolabel(pseudolabel_path(other, name, index)).depth.tobytes() == depth.tobytes()
    assert read_pseudolabel(pseudolabel_path(whole, NAMES[1], 4)).depth.tobytes() == alone.tobytes()


def test_check_label_refuses_another_recording_or_frame_rate(dataset, teacher, tmp_path):
    out = tmp_path / "labels"
    generate_pseudolabels(dataset, teacher, out, input_size=INPUT_SIZE, limit=2)
    frames = frames_of(dataset)
    label = read_pseudolabel(pseudolabel_path(out, NAMES[0], 1))
    frame, timestamp_us = frames[(NAMES[0], 1)]
    check_label(label, timestamp_us, frame, out, NAMES[0], 1)  # its own sample
    with pytest.raises(InputError, match="another frame rate") as error:
        check_label(label, timestamp_us + 25_000, frame, out, NAMES[0], 1)
    assert str(error.value).startswith(f"{out}: labels of sequence {NAMES[0]}") and "\n" not in str(error.value)
    other_frame = frames[(NAMES[1], 1)][0]
    with pytest.raises(InputError, match="another recording"):
        check_label(label, timestamp_us, other_frame, out, NAMES[0], 1)


def test_nothing_to_label_is_an_error(tmp_path, teacher):
    """A sequence without frames (events and depth only) has nothing for the teacher to see."""
    root = tmp_path / "ds"
    spec = EventSequenceSpec(seconds=0.2, resolution=(48, 64), internal_fps=300, frame_hz=20, depth_hz=20, seed=0)
    write_event_sequence(generate_event_sequence(spec), root / "train" / "a", "dsec")
    import shutil

    shutil.rmtree(root / "train" / "a" / "images")
    with pytest.raises(InputError, match="no frames to label") as error:
        generate_pseudolabels(root, teacher, tmp_path / "labels", input_size=INPUT_SIZE)
    assert str(root) in str(error.value)
    assert not (tmp_path / "labels").exists()
    with pytest.raises(InputError, match="nothing to label"):
        generate_pseudolabels(root, teacher, tmp_path / "labels", input_size=INPUT_SIZE, limit=0)


def test_resume_after_interrupt(dataset, teacher, tmp_path):
    out = tmp_path / "labels"
    written = []

    def killer(count):
        written.append(count)
        if len(written) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_pseudolabels(dataset, teacher, out, input_size=INPUT_SIZE, progress=killer)
    files = sorted(out.rglob("*.npz"))
    assert len(files) == 3 and not list(out.rglob(".*")) and not (out / "manifest.json").exists()
    mtimes = {path: path.stat().st_mtime_ns for path in files}

    summary = generate_pseudolabels(dataset, teacher, out, input_size=INPUT_SIZE)
    assert (summary.computed, summary.skipped) == (9, 3)
    assert {path: path.stat().st_mtime_ns for path in files} == mtimes
    assert len(list(out.rglob("*.npz"))) == 12

    # another input size (or other weights) is not reused
    other = generate_pseudolabels(dataset, teacher, out, input_size=70, limit=2)
    assert (other.computed, other.skipped) == (2, 0)


def test_limit_and_stale_temporaries(dataset, teacher, tmp_path):
    """Temporaries a killed run left (atomic_write's naming rule) for this run's samples and the
    manifest go; a user's files that merely look alike, and other ranks' temporaries, stay."""
    out = tmp_path / "labels"
    stale = [out / NAMES[0] / ".000001.npz.abcd_123.partial.npz", out / ".manifest.json.x1y2z3w4.partial.json"]
    kept = [out / NAMES[0] / ".000001.npz.notes", out / NAMES[0] / ".000007.npz.abcd_123.partial.npz",
            out / NAMES[0] / "000001.npz.abcd_123.partial.npz"]
    stale[0].parent.mkdir(parents=True)
    for path in stale + kept:
        path.write_bytes(b"half")
    summary = generate_pseudolabels(dataset, teacher, out, input_size=INPUT_SIZE, limit=2)
    assert summary.computed == 2 and not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)
    assert sorted(p.name for p in out.rglob("??????.npz")) == ["000000.npz", "000001.npz"]


def test_corrupt_label_detected_and_recomputed(dataset, teacher, tmp_path):
    out = tmp_path / "labels"
    generate_pseudolabels(dataset, teacher, out, input_size=INPUT_SIZE, limit=3)
    truncated = pseudolabel_path(out, NAMES[0], 0)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(FormatError, match="cannot read pseudo-label") as error:
        read_pseudolabel(truncated)
    assert str(truncated) in str(error.value) and "\n" not in str(error.value)

    flipped = pseudolabel_path(out, NAMES[0], 2)
    data = bytearray(flipped.read_bytes())
    data[300] ^= 0xFF  # inside the depth array: the zip's CRC (or our checksum) catches it
    flipped.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=str(flipped)):
        read_pseudolabel(flipped)

    tampered = pseudolabel_path(out, NAMES[0], 1)
    with np.load(tampered, allow_pickle=False) as data:
        values = {key: data[key] for key in data.files}
    values["depth"] = values["depth"] + 1.0
    with open(tampered, "wb") as handle:
        np.savez(handle, **values)
    with pytest.raises(FormatError, match="checksum mismatch") as error:
        read_pseudolabel(tampered)
    assert str(error.value) == f"{tampered}: corrupt pseudo-label (checksum mismatch)"

    summary = generate_pseudolabels(dataset, teacher, out, input_size=INPUT_SIZE, limit=3)
    assert (summary.computed, summary.skipped) == (3, 0)
    for path in (truncated, tampered, flipped):
        read_pseudolabel(path)


def test_sharding_covers_every_sample_once(dataset, teacher, tmp_path):
    outs = [tmp_path / f"rank{rank}" for rank in range(2)]
    totals = []
    summaries = [generate_pseudolabels(dataset, teacher, out, input_size=INPUT_SIZE, rank=rank, world_size=2,
                                       on_start=totals.append) for rank, out in enumerate(outs)]
    assert totals == [6, 6] and [s.computed for s in summaries] == [6, 6]
    shards = [{p.relative_to(out).as_posix() for p in out.rglob("*.npz")} for out in outs]
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == {f"{name}/{index:06d}.npz" for name in NAMES for index in range(6)}
    assert (outs[0] / "manifest.json").exists() and not (outs[1] / "manifest.json").exists()


def test_bad_arguments(dataset, teacher, tmp_path):
    with pytest.raises(InputError):
        generate_pseudolabels(dataset, teacher, tmp_path, input_size=INPUT_SIZE, rank=2, world_size=2)
    with pytest.raises(InputError, match="metric"):
        generate_pseudolabels(dataset, DepthAnythingV2(teacher.config.replace(head="metric")), tmp_path)
    assert default_out(dataset, "vitl") == dataset / "pseudolabels_vitl"
    assert default_out(dataset / "x_data.hdf5", "vitl") == dataset / "pseudolabels_vitl"


def test_cli(dataset, checkpoint, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["events", "pseudolabel", str(dataset), "--weights", str(checkpoint), "--out", str(out),
                 "--input-size", str(INPUT_SIZE), "--device", "cpu", "--limit", "8"]) == 0
    printed = capsys.readouterr().out
    assert "8 computed, 0 skipped" in printed and str(out) in printed
    assert len(list(out.rglob("*.npz"))) == 8
    assert json.loads((out / "manifest.json").read_text())["teacher"] == "vitp"


def test_cli_errors(dataset, tmp_path, capsys):
    assert main(["events", "pseudolabel", str(tmp_path / "missing"), "--weights", str(tmp_path / "w.pth")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("anydepth events pseudolabel: error:") and "missing" in error and "\n" not in error

    not_a_checkpoint = tmp_path / "w.pth"
    not_a_checkpoint.write_text("hello")
    assert main(["events", "pseudolabel", str(dataset), "--weights", str(not_a_checkpoint), "--device", "cpu"]) == 1
    error = capsys.readouterr().err.strip()
    assert str(not_a_checkpoint) in error and "\n" not in error

    other = tmp_path / "vitp.pth"
    save_checkpoint(DepthAnythingV2("vitp"), other)
    assert main(["events", "pseudolabel", str(dataset), "--encoder", "vitl", "--weights", str(other), "--device", "cpu"]) == 1
    assert "not the requested" in capsys.readouterr().err
