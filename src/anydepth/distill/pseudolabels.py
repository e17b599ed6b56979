"""Depth Anything V2 pseudo-labels on the frames beside the events (Depth AnyEvent's distillation labels).

The teacher runs on the frame of every aligned sample of every sequence of a dataset and one label
is stored per sample, as the official Depth AnyEvent release does (one `.npz` per frame, key
`depth`):

    <out>/<sequence name>/<index:06d>.npz      index = the aligned sample's index in its sequence
    <out>/manifest.json                        teacher, input size, counts per sequence

Keys of each `.npz` (plain arrays, readable with `allow_pickle=False`):
    depth          (H, W) float32 relative inverse depth (the relative head's affine-invariant
                   disparity, resized to the frame size exactly as `infer_image` does)
    timestamp_us   int64, the sample's timestamp
    teacher        str, the teacher's encoder ('vitl', ...)
    input_size     int, the network's shorter side
    frame_sha1     SHA-1 of the frame's bytes (the array as the dataset returns it)
    label_sha1     SHA-1 of the depth's bytes (float32, C order): detects corrupt files
    weights_sha1   short hash of the teacher's config and state dict: labels of other weights
                   are never reused
    precision      str, the teacher's arithmetic ('fp32', 'bf16', 'fp16'; absent in older labels
                   = 'fp32'): labels of another precision are recomputed, never mixed

Every frame runs through the teacher alone (a batch of one): batched matrix products round
differently with the batch size and even with a frame's position in a padded batch (measured on CPU
and on an H200, `benchmarks/pseudolabel_batching.py`), so a label depends only on its frame and the
teacher, and a resumed run writes exactly the labels an uninterrupted one would. The cost of giving
up batching is about 1.3x on an H200 at 518 and none on a CPU.

Runs are resumable: a sample whose label exists, reads back with a valid checksum and matches the
teacher, weights, input size and frame is skipped; every label is written atomically, and a run
first removes the temporaries a killed run left (`anydepth.atomic.remove_stale_temporaries`), so no
partial file remains. With `torchrun`, sample k of the global order (all sequences, sorted) goes to
rank k % world_size.

Training checks each label against the sample it is used for (`check_label`): its timestamp and
the checksum of its frame, so labels of another recording or another frame rate are refused.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from anydepth.atomic import atomic_write, remove_stale_temporaries
from anydepth.distill.sequences import find_sequences, sequence_name
from anydepth.errors import FormatError, InputError
from anydepth.events.dataset import open_sequence
from anydepth.fileio import first_line, open_npz
from anydepth.foundation.transform import as_bgr_uint8, image_to_tensor, resize_prediction
from anydepth.precision import autocast

MANIFEST = "manifest.json"
FORMAT = "anydepth.pseudolabels"
_KEYS = ("depth", "timestamp_us", "teacher", "input_size", "frame_sha1", "label_sha1", "weights_sha1")


@dataclass
class PseudoLabel:
    """One stored label: depth (H, W) float32 relative inverse depth and its metadata."""

    depth: np.ndarray
    timestamp_us: int
    teacher: str
    input_size: int
    frame_sha1: str
    weights_sha1: str = ""
    path: Path | None = None
    precision: str = "fp32"  # the teacher's arithmetic (labels before this key existed: fp32)


@dataclass
class PseudoLabelSummary:
    """What one run (one rank) did. sequences: name -> {"samples", "computed", "skipped", "no_frame"}
    for the samples of this rank."""

    out: Path
    teacher: str
    input_size: int
    weights_sha1: str
    computed: int = 0
    skipped: int = 0
    no_frame: int = 0
    rank: int = 0
    world_size: int = 1
    sequences: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.computed + self.skipped + self.no_frame


def pseudolabel_path(out: str | Path, sequence: str, index: int) -> Path:
    """Where the label of sample `index` of the sequence named `sequence` lives."""
    return Path(out) / sequence / f"{int(index):06d}.npz"


def default_out(dataset: str | Path, teacher: str) -> Path:
    """`<dataset>/pseudolabels_<teacher>` for a folder, `<its folder>/pseudolabels_<teacher>` for a file."""
    dataset = Path(dataset)
    return (dataset if dataset.is_dir() else dataset.parent) / f"pseudolabels_{teacher}"


def sha1_bytes(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def teacher_fingerprint(model: torch.nn.Module) -> str:
    """Short hash (16 hex digits) of a model's config (when it has one) and state dict."""
    digest = hashlib.sha1()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for key, value in sorted(model.state_dict().items()):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def read_pseudolabel(path: str | Path) -> PseudoLabel:
    """Read and verify one label; FormatError (one line naming the file) when it is unreadable,
    truncated, lacks a key, or its depth does not match its checksum."""
    path = Path(path)
    if not path.is_file():
        raise FormatError("no such pseudo-label", path)
    try:
        with open_npz(path) as data:
            missing = [key for key in _KEYS if key not in data.files]
            if missing:
                raise FormatError(f"not a pseudo-label (missing {', '.join(missing)})", path)
            values = {key: data[key] for key in _KEYS}
            precision = str(data["precision"]) if "precision" in data.files else "fp32"
    except FormatError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        reason = first_line(error)
        raise FormatError(f"cannot read pseudo-label ({reason})", path) from None
    depth = values["depth"]
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise FormatError(f"pseudo-label depth must be (H, W) float32, got {depth.shape} {depth.dtype}", path)
    if sha1_bytes(depth) != str(values["label_sha1"]):
        raise FormatError("corrupt pseudo-label (checksum mismatch)", path)
    return PseudoLabel(
        depth=depth,
        timestamp_us=int(values["timestamp_us"]),
        teacher=str(values["teacher"]),
        input_size=int(values["input_size"]),
        frame_sha1=str(values["frame_sha1"]),
        weights_sha1=str(values["weights_sha1"]),
        path=path,
        precision=precision,
    )


def write_pseudolabel(path: str | Path, depth: np.ndarray, timestamp_us: int, teacher: str, input_size: int,
                      frame_sha1: str, weights_sha1: str, precision: str = "fp32") -> Path:
    """Write one label atomically (see the module docstring for the keys)."""
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    arrays = {
        "depth": depth,
        "timestamp_us": np.int64(timestamp_us),
        "teacher": np.str_(teacher),
        "input_size": np.int64(input_size),
        "frame_sha1": np.str_(frame_sha1),
        "label_sha1": np.str_(sha1_bytes(depth)),
        "weights_sha1": np.str_(weights_sha1),
        "precision": np.str_(precision),
    }

    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:  # a file object: np.savez appends no suffix
            np.savez(handle, **arrays)

    return atomic_write(path, write)


def _is_done(path: Path, teacher: str, weights_sha1: str, input_size: int, frame_sha1: str, precision: str) -> bool:
    if not path.is_file():
        return False
    try:
        label = read_pseudolabel(path)
    except FormatError:
        return False
    return ((label.teacher, label.weights_sha1, label.input_size, label.frame_sha1, label.precision)
            == (teacher, weights_sha1, input_size, frame_sha1, precision))


@torch.inference_mode()
def predict_label(model: torch.nn.Module, frame: np.ndarray, input_size: int = 518, precision: str = "fp32") -> np.ndarray:
    """`infer_image` on one frame, alone: BGR (or grey) uint8 (H, W[, 3]) -> float32 (H, W) relative
    inverse depth at the frame's resolution. Never batched, so the result does not depend on which
    other frames were being labelled (see the module docstring)."""
    height, width = frame.shape[:2]
    parameter = next(model.parameters())
    x = image_to_tensor(as_bgr_uint8(frame), input_size).to(device=parameter.device, dtype=parameter.dtype)
    with autocast(parameter.device, precision):
        raw = model(x)
    return resize_prediction(raw.float(), height, width)[0].float().cpu().numpy()


def check_label(label: PseudoLabel, timestamp_us: int, frame: np.ndarray | None, labels: str | Path, sequence: str,
                index: int) -> None:
    """InputError (one line naming the labels folder and the sequence) unless `label` was made for
    the sample at `timestamp_us` with this `frame` (checked when given)."""
    if label.timestamp_us != int(timestamp_us):
        raise InputError(f"labels of sequence {sequence} do not belong to it: sample {index} is at "
                         f"{int(timestamp_us)} us, its label at {label.timestamp_us} us (labels of another recording "
                         "or another frame rate?)", labels)
    if frame is not None and label.frame_sha1 != sha1_bytes(np.asarray(frame)):
        raise InputError(f"labels of sequence {sequence} do not belong to it: the label of sample {index} was made "
                         "from another frame (labels of another recording?)", labels)


def _sequence_lengths(sequences: list[Path]) -> list[int]:
    lengths = []
    for path in sequences:
        with open_sequence(path) as sequence:
            lengths.append(len(sequence))
    return lengths


def generate_pseudolabels(
    dataset: str | Path,
    teacher_model: torch.nn.Module,
    out: str | Path | None = None,
    teacher_name: str | None = None,
    input_size: int = 518,
    progress: Callable[[int], object] | None = None,
    rank: int = 0,
    world_size: int = 1,
    limit: int | None = None,
    weights_sha1: str | None = None,
    on_start: Callable[[int], object] | None = None,
    precision: str = "fp32",
) -> PseudoLabelSummary:
    """Label every aligned sample with a frame in the sequences of `dataset` (see the module docstring).

    teacher_model: a relative `DepthAnythingV2` (in eval mode, on the device to run on).
    out: default `default_out(dataset, teacher_name)`. teacher_name: default the model's encoder.
    progress: called with 1 after each sample of this rank (computed, skipped or without a frame).
    limit: only the first `limit` samples of the global order. weights_sha1: default `teacher_fingerprint(teacher_model)`. on_start: called
    once, before any work, with the number of samples of this rank (e.g. a progress bar's total).
    rank / world_size: this process's shard (sample k goes to rank k % world_size); with
    torch.distributed initialised (torchrun), all ranks meet at a barrier before rank 0
    writes the manifest. InputError when there is nothing to label (no aligned sample, or no
    sample with a frame).
    """
    if input_size < 14:
        raise InputError(f"input size must be at least 14, got {input_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"rank {rank} outside world size {world_size}")
    if limit is not None and limit < 0:
        raise InputError(f"limit must be >= 0, got {limit}")
    config = getattr(teacher_model, "config", None)
    if getattr(config, "head", "relative") != "relative":
        raise InputError("pseudo-labels need the relative Depth Anything V2 model, got a metric one")
    teacher_name = teacher_name or getattr(config, "encoder", None) or "teacher"
    dataset = Path(dataset)
    out = Path(out) if out is not None else default_out(dataset, teacher_name)
    weights_sha1 = weights_sha1 or teacher_fingerprint(teacher_model)
    teacher_model.eval()

    sequences = find_sequences(dataset)
    names = [sequence_name(path, dataset) for path in sequences]
    lengths = _sequence_lengths(sequences)
    summary = PseudoLabelSummary(out, teacher_name, input_size, weights_sha1, rank=rank, world_size=world_size)
    remaining = sum(lengths) if limit is None else min(limit, sum(lengths))

    if remaining == 0:
        raise InputError("nothing to label: no aligned samples" + (" (limit 0)" if limit == 0 else ""), dataset)
    if rank == 0:
        remove_stale_temporaries(out, lambda target: target == MANIFEST)
    if on_start is not None:
        on_start(sum(1 for k in range(remaining) if k % world_size == rank))

    start = 0  # global position of the sequence's first sample
    for path, name, length in zip(sequences, names, lengths):
        count = max(0, min(length, remaining - start))
        mine = [index for index in range(count) if (start + index) % world_size == rank]
        start += length
        counts = summary.sequences.setdefault(name, {"samples": len(mine), "computed": 0, "skipped": 0, "no_frame": 0})
        if not mine:
            continue
        owned = {pseudolabel_path(out, name, index).name for index in mine}
        remove_stale_temporaries(out / name, owned.__contains__)
        with open_sequence(path) as sequence:
            for index in mine:
                sample = sequence[index]
                kind = "no_frame"
                if sample.frame is not None:
                    frame = np.asarray(sample.frame)
                    frame_sha1 = sha1_bytes(frame)
                    target = pseudolabel_path(out, name, sample.index)
                    kind = "skipped"
                    if not _is_done(target, teacher_name, weights_sha1, input_size, frame_sha1, precision):
                        depth = predict_label(teacher_model, frame, input_size, precision)
                        write_pseudolabel(target, depth, int(sample.timestamp_us), teacher_name, input_size,
                                          frame_sha1, weights_sha1, precision)
                        kind = "computed"
                setattr(summary, kind, getattr(summary, kind) + 1)
                counts[kind] += 1
                if progress is not None:
                    progress(1)
    if summary.total and summary.computed + summary.skipped == 0:
        raise InputError(f"no frames to label: none of the {summary.no_frame} samples has a frame beside its events "
                         "(pseudo-labels need the frames, e.g. DSEC images/left/rectified, MVSEC image_raw)", dataset)

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    if rank == 0:
        write_manifest(out, summary, names, lengths, limit)
    return summary


def write_manifest(out: Path, summary: PseudoLabelSummary, names: list[str], lengths: list[int], limit: int | None) -> Path:
    """`<out>/manifest.json` (atomic): teacher, input size, weights hash, and per sequence the
    number of aligned samples and of label files present (all ranks' work)."""
    sequences = {}
    for name, length in zip(names, lengths):
        folder = out / name
        labels = sum(1 for path in folder.glob("[0-9]*.npz")) if folder.is_dir() else 0
        sequences[name] = {"samples": int(length), "labels": int(labels)}
    manifest = {
        "format": FORMAT,
        "teacher": summary.teacher,
        "input_size": int(summary.input_size),
        "weights_sha1": summary.weights_sha1,
        "world_size": int(summary.world_size),
        "limit": limit,
        "samples": int(sum(lengths)),
        "labels": int(sum(entry["labels"] for entry in sequences.values())),
        "sequences": sequences,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    return atomic_write(out / MANIFEST, lambda temporary: Path(temporary).write_text(text))


__all__ = [
    "PseudoLabel",
    "PseudoLabelSummary",
    "default_out",
    "generate_pseudolabels",
    "check_label",
    "predict_label",
    "pseudolabel_path",
    "read_pseudolabel",
    "teacher_fingerprint",
    "write_pseudolabel",
]
