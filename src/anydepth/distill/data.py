"""Training clips: consecutive aligned samples of one sequence, as event images at sensor
resolution with their labels in the loss's space, augmented identically (scale, crop, flip).

Every random choice of a clip (source, sequence, start, augmentation) is drawn from a generator
seeded by (seed, step, rank, slot), so the data position of a run is its step number: resuming at
step k gives exactly the batches an uninterrupted run would have seen, with no iterator state.

Pseudo-labels are checked against the samples they are used for (`pseudolabels.check_label`): the
first label of every sequence when the clips are set up (so a folder of another recording or frame
rate is refused before the first step), then every label when a clip uses it, by timestamp each
time and by frame checksum once per label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import json

import cv2
import numpy as np
import torch

from anydepth.distill.config import DataConfig, DataSource
from anydepth.distill.pseudolabels import MANIFEST, check_label, pseudolabel_path, read_pseudolabel
from anydepth.distill.sequences import find_sequences, sequence_name
from anydepth.errors import InputError
from anydepth.eventdepth.base import EventDepthModel
from anydepth.events.dataset import AlignedSequence, open_sequence


@dataclass
class SequenceEntry:
    """A sequence of one source with the sample indices that carry a label."""

    source: DataSource
    path: Path
    name: str
    indices: np.ndarray

    def clip_starts(self, length: int) -> int:
        return max(0, len(self.indices) - length + 1)


def open_for_training(path: Path, window_ms: float) -> AlignedSequence:
    """Open a sequence without decoding frames when its layout allows it."""
    try:
        return open_sequence(path, window_ms=window_ms, frames=False)
    except TypeError:
        return open_sequence(path, window_ms=window_ms)


def label_to_space(depth_m: np.ndarray, space: str, model: EventDepthModel) -> np.ndarray:
    """Ground-truth metres (NaN/<=0 invalid) -> the loss space (`model.depth_to_space`), NaN where
    invalid."""
    valid = np.isfinite(depth_m) & (depth_m > 0)
    return model.depth_to_space(np.where(valid, depth_m, np.nan).astype(np.float32), space)


class TrainingClips:
    """Clips of `config.sequence_length` consecutive labelled samples from the sources of `config`.

    `clip(step, slot, rank)` -> {"images": (L, C, h, w) float32, "labels": (L, h, w) float32 in
    `space` (NaN = invalid), "sequence": name, "start": first sample index}.
    """

    def __init__(self, model: EventDepthModel, config: DataConfig, space: str, seed: int = 0):
        self.model = model
        self.config = config
        self.space = space
        self.seed = int(seed)
        self.length = max(1, int(config.sequence_length))
        self._open: dict[Path, AlignedSequence] = {}
        self._with_frames: dict[Path, AlignedSequence] = {}
        self._checked: set[tuple[Path, int]] = set()  # (sequence, index) whose label's frame checksum matched
        self.entries: list[SequenceEntry] = []
        for source in config.sources:
            for path in find_sequences(source.path):
                indices = self._labelled_indices(source, path)
                entry = SequenceEntry(source, path, sequence_name(path, source.path), indices)
                if source.labels == "pseudo" and len(indices):
                    self.label(entry, int(indices[0]), self.sequence(path)[int(indices[0])])
                if entry.clip_starts(self.length):
                    self.entries.append(entry)
        if not self.entries:
            labels = [f"labels in {s.pseudolabels}" for s in config.sources if s.labels == "pseudo"]
            raise InputError(f"no sequence of the training sources has {self.length} consecutive labelled samples "
                             f"({', '.join([s.path for s in config.sources] + labels)})")
        self.source_weights = np.array([s.weight for s in config.sources], dtype=np.float64)

    def _labelled_indices(self, source: DataSource, path: Path) -> np.ndarray:
        count = len(self.sequence(path))
        if source.labels == "gt":
            return np.arange(count)
        if source.pseudolabels is None:
            raise InputError(f"data source {source.path}: labels: pseudo needs `pseudolabels: FOLDER`")
        folder = Path(source.pseudolabels)
        if not folder.is_dir():
            raise InputError(f"no such labels folder (the pseudo-labels of {source.path}; make them with "
                             "anydepth events pseudolabel)", folder)
        name = sequence_name(path, source.path)
        listed = self._manifest_sequences(folder)
        if listed is not None and name not in listed:
            raise InputError(f"labels of another dataset: its manifest.json has no sequence {name} "
                             f"(it has {', '.join(sorted(listed)[:5]) or 'none'})", folder)
        present = [i for i in range(count) if pseudolabel_path(source.pseudolabels, name, i).is_file()]
        return np.asarray(present, dtype=np.int64)

    @staticmethod
    def _manifest_sequences(folder: Path) -> set[str] | None:
        """The sequence names a labels folder's manifest lists (None without a readable manifest: a
        run still under way or killed; the labels themselves are still checked)."""
        try:
            return set(json.loads((folder / MANIFEST).read_text())["sequences"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def sequence(self, path: Path) -> AlignedSequence:
        if path not in self._open:
            self._open[path] = open_for_training(path, self.config.window_ms)
        return self._open[path]

    def frame(self, path: Path, index: int) -> np.ndarray | None:
        """The frame of sample `index` (the sequence opened a second time, with frames)."""
        if path not in self._with_frames:
            self._with_frames[path] = open_sequence(path, window_ms=self.config.window_ms)
        return self._with_frames[path][index].frame

    def close(self) -> None:
        for sequence in [*self._open.values(), *self._with_frames.values()]:
            sequence.close()
        self._open.clear()
        self._with_frames.clear()

    def __getstate__(self):  # sequences hold open files: reopen them in each worker
        return {**self.__dict__, "_open": {}, "_with_frames": {}}

    # ---- one clip ------------------------------------------------------------------------------
    def choose(self, rng: np.random.Generator) -> tuple[SequenceEntry, int]:
        sources = list(self.config.sources)
        source = sources[rng.choice(len(sources), p=self.source_weights / self.source_weights.sum())]
        entries = [e for e in self.entries if e.source is source] or self.entries
        starts = np.array([e.clip_starts(self.length) for e in entries], dtype=np.float64)
        entry = entries[rng.choice(len(entries), p=starts / starts.sum())]
        return entry, int(rng.integers(entry.clip_starts(self.length)))

    def label(self, entry: SequenceEntry, index: int, sample) -> np.ndarray:
        if entry.source.labels == "pseudo":
            label = read_pseudolabel(pseudolabel_path(entry.source.pseudolabels, entry.name, index))
            unchecked = (entry.path, index) not in self._checked
            frame = self.frame(entry.path, index) if unchecked else None
            check_label(label, sample.timestamp_us, frame, entry.source.pseudolabels, entry.name, index)
            self._checked.add((entry.path, index))
            return label.depth.astype(np.float32)
        if sample.depth_m is None:
            return None
        return label_to_space(sample.depth_m, self.space, self.model)

    def clip(self, step: int, slot: int, rank: int = 0) -> dict:
        rng = np.random.default_rng([self.seed, int(step), int(rank), int(slot)])
        entry, start = self.choose(rng)
        sequence = self.sequence(entry.path)
        images, labels = [], []
        for index in entry.indices[start:start + self.length]:
            sample = sequence[int(index)]
            image = self.model.event_image(*sample.event_window())
            label = self.label(entry, int(index), sample)
            height, width = image.shape[-2:]
            if label is None:
                label = np.full((height, width), np.nan, np.float32)
            elif label.shape != (height, width):
                interpolation = cv2.INTER_LINEAR if entry.source.labels == "pseudo" else cv2.INTER_NEAREST_EXACT
                label = cv2.resize(label, (width, height), interpolation=interpolation)
            images.append(image)
            labels.append(label)
        images, labels = augment(np.stack(images), np.stack(labels), self.config, rng)
        return {"images": torch.from_numpy(images), "labels": torch.from_numpy(labels),
                "sequence": entry.name, "start": start}

    def batch(self, step: int, batch_size: int, rank: int = 0) -> dict:
        """`batch_size` clips stacked: images (B, L, C, h, w), labels (B, L, h, w)."""
        clips = [self.clip(step, slot, rank) for slot in range(batch_size)]
        return {"images": torch.stack([c["images"] for c in clips]), "labels": torch.stack([c["labels"] for c in clips]),
                "sequences": [c["sequence"] for c in clips], "starts": [c["start"] for c in clips]}


def augment(images: np.ndarray, labels: np.ndarray, config: DataConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same zoom, crop and flip for every frame of a clip. images (L, C, H, W), labels (L, H, W)
    -> (L, C, h, w), (L, h, w) contiguous float32. Labels are resized nearest-neighbour (invalid
    pixels stay invalid, no blending across depth edges)."""
    length, channels, height, width = images.shape
    low, high = config.scale
    factor = float(rng.uniform(low, high)) if high > low else float(low)
    crop = config.crop
    if crop is not None:
        factor = max(factor, crop[0] / height, crop[1] / width)  # zoom in until the crop fits
    if factor != 1.0:
        size = (int(round(width * factor)), int(round(height * factor)))
        images = np.stack([np.stack([cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in frame]) for frame in images])
        labels = np.stack([cv2.resize(label, size, interpolation=cv2.INTER_NEAREST_EXACT) for label in labels])  # pixel-centre aligned like INTER_LINEAR
        height, width = labels.shape[-2:]
    if crop is not None:
        top = int(rng.integers(height - crop[0] + 1))
        left = int(rng.integers(width - crop[1] + 1))
        images = images[..., top:top + crop[0], left:left + crop[1]]
        labels = labels[..., top:top + crop[0], left:left + crop[1]]
    if config.flip and rng.random() < 0.5:
        images = images[..., ::-1]
        labels = labels[..., ::-1]
    return np.ascontiguousarray(images, dtype=np.float32), np.ascontiguousarray(labels, dtype=np.float32)
