"""The trainer of every student in every regime (synth, distilled, supervised, mixed).

One step: `batch_size` clips of `sequence_length` consecutive samples (per process); a recurrent
student runs through each clip from a zero state (truncated BPTT: the state is detached every
`detach_every` frames), a stateless one sees each frame alone; the loss of each frame is taken in
the loss's space over the label's valid pixels and averaged over the clip; AdamW, a learning-rate
schedule, gradient-norm clipping, bf16 autocast on GPU (`precision`).

Checkpoints (`OUT/checkpoints/step_XXXXXXX.pt` and `last.pt`, written atomically every
`checkpoint_every` steps and at the end) hold the model, optimiser, scheduler, step, loss history,
RNG states and the config; the data position is the step (see `data.py`), so a resumed run
continues exactly where the interrupted one would have been. A checkpoint resumes only under the
config it was trained with (its `steps`, `out`, `device` and logging intervals may change). A run
killed at any moment (even SIGKILL in the middle of a write) leaves at most `atomic_write`
temporaries of its own outputs; the next run in the same OUT removes them before it resumes
(`clean_stale_temporaries`). The trained student is written in its official container
(`OUT/student.pth`), with `history.jsonl`, `loss.png` and TensorBoard logs (`OUT/tensorboard`:
losses, learning rate, sample depth images; on resume the steps logged after the last checkpoint
are purged).

Multi-GPU: `torchrun --nproc_per_node N -m anydepth events train CONFIG.yaml` (DDP, one process per
GPU, each with its own clips; rank 0 writes).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from anydepth import fileio, viz
from anydepth.atomic import atomic_write, json_ready, remove_stale_temporaries
from anydepth.distill.config import TrainConfig
from anydepth.distill.data import TrainingClips
from anydepth.distill.distributed import setup_distributed
from anydepth.distill.losses import DistillationLoss, e2depth_loss, silog_loss
from anydepth.errors import CheckpointError, InputError
from anydepth.eventdepth.base import EventDepthModel
from anydepth.eventdepth.registry import load_model, save_model
from anydepth.foundation.checkpoint import atomic_torch_save, read_state_dict
from anydepth.foundation.config import ENCODERS
from anydepth.foundation.weights import resolve_weights
from anydepth.metrics.align import align_scale_shift
from anydepth.precision import autocast, check_precision

CHECKPOINT_FORMAT = "anydepth-train-v1"
OUTPUTS = ("student.pth", "history.jsonl", "loss.png")  # written in OUT at the end of a run
CHECKPOINT_NAME = re.compile(r"^(last|step_\d{7})\.pt$")  # written in OUT/checkpoints


RESUMABLE_CHANGES = ("steps", "out", "device", "log_every", "image_every", "checkpoint_every", "data.num_workers")


def first_difference(saved, now, key: str = "") -> tuple[str, object, object] | None:
    """(dotted key, saved value, current value) of the first difference between two plain configs,
    ignoring RESUMABLE_CHANGES; None when they agree."""
    if key in RESUMABLE_CHANGES:
        return None
    if isinstance(saved, dict) and isinstance(now, dict):
        for name in sorted(set(saved) | set(now), key=str):
            found = first_difference(saved.get(name), now.get(name), f"{key}.{name}" if key else str(name))
            if found:
                return found
        return None
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        for index, (a, b) in enumerate(zip(saved, now)):
            found = first_difference(a, b, f"{key}[{index}]")
            if found:
                return found
        return None
    return None if saved == now else (key, saved, now)


def clean_stale_temporaries(out: str | Path) -> list[Path]:
    """Remove the `atomic_write` temporaries a killed run left for the trainer's own outputs in
    `out` and `out/checkpoints` (nothing else: other files keep their place). Returns them."""
    out = Path(out)
    return (remove_stale_temporaries(out, OUTPUTS.__contains__)
            + remove_stale_temporaries(out / "checkpoints", lambda name: CHECKPOINT_NAME.match(name) is not None))


# ---- pieces ---------------------------------------------------------------------------------------
def build_student(config: TrainConfig) -> EventDepthModel:
    """The student of `config.model`: from its weights, or fresh (a DepthAnyEvent student
    optionally with DAv2 weights in its encoder and head; otherwise `init_for_training`)."""
    spec = config.model
    model = load_model(spec.name, spec.weights, **spec.config)
    if spec.init_dav2 is not None:
        if not model.takes_dav2_weights:
            raise InputError(f"model.init_dav2 applies to DepthAnyEvent students, not {spec.name}")
        path = resolve_weights(spec.init_dav2) if spec.init_dav2 in ENCODERS else resolve_weights(weights=spec.init_dav2)
        state_dict, _ = read_state_dict(path)
        model.init_from_dav2(state_dict)
    elif spec.weights is None:
        model.init_for_training()
    return model


def make_loss(config: TrainConfig) -> Callable:
    """(prediction, target, mask) -> (total, parts) for the configured loss."""
    loss = config.loss
    if loss.name == "ssi":
        return DistillationLoss(loss.gradient_weight, loss.scales)
    if loss.name == "e2depth":
        return lambda p, t, m: e2depth_loss(p, t, m, loss.gradient_weight, loss.scales)
    if loss.name == "silog":
        return lambda p, t, m: (lambda value: (value, {"silog": value}))(silog_loss(p, t, m))
    raise InputError(f"unknown loss {loss.name!r}; choose ssi, e2depth or silog")


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    optim = config.optim
    if optim.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=optim.lr, total_steps=config.steps,
                                                   pct_start=0.05, anneal_strategy="cos")
    warmup = max(0, optim.warmup_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if optim.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, config.steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_network(model: EventDepthModel, images: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
    """images (N, C, H, W) event images -> (raw output (N, H, W) at the image size, state)."""
    raw, state = model(model.prepare_images(images), state)
    return model.raw_at_size(raw, images.shape[-2:]), state


def detach_state(state):
    """The recurrent state with every tensor detached (truncated BPTT)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


class ClipRunner(nn.Module):
    """Runs a student over clips, so that one DDP forward covers a whole clip.

    forward(images (B, L, C, h, w)) -> raw outputs (B, L, h, w); recurrent students carry the
    state through the clip from zero, detached every `detach_every` frames (0 = never)."""

    def __init__(self, student: EventDepthModel, detach_every: int = 0):
        super().__init__()
        self.student = student
        self.detach_every = int(detach_every)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        state, outputs = None, []
        for t in range(images.shape[1]):
            raw, state = run_network(self.student, images[:, t], state if self.student.recurrent else None)
            outputs.append(raw)
            if self.detach_every and (t + 1) % self.detach_every == 0:
                state = detach_state(state)
        return torch.stack(outputs, dim=1)


# ---- the run ----------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    student: EventDepthModel
    history: list[dict] = field(default_factory=list)
    out: Path | None = None
    student_path: Path | None = None
    resumed_from: int = 0


def rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Trainer:
    """`Trainer(config).run()`; `stop_after` ends the run early after that many steps of this
    call (used to simulate an interruption), `progress` shows a tqdm bar."""

    def __init__(self, config: TrainConfig, progress: bool = True, stop_after: int | None = None):
        self.config = config
        self.progress = progress
        self.stop_after = stop_after
        self.out = Path(config.out)
        self.distributed = setup_distributed(config.device)
        self.device = self.distributed.device

    def checkpoint_path(self, step: int | None = None) -> Path:
        folder = self.out / "checkpoints"
        return folder / ("last.pt" if step is None else f"step_{step:07d}.pt")

    def save_checkpoint(self, student, optimizer, scheduler, step: int, history: list[dict], scaler=None) -> None:
        if not self.distributed.is_main:
            return
        payload = {
            "format": CHECKPOINT_FORMAT, "step": step, "model": self.config.model.name,
            "model_config": dataclasses.asdict(student.config), "state_dict": student.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_states(),
            "history": history, "config": json_ready(self.config.to_dict()),
        }
        if scaler is not None and scaler.is_enabled():  # fp16: the loss scale is part of an exact resume
            payload["scaler"] = scaler.state_dict()
        atomic_torch_save(payload, self.checkpoint_path(step))
        atomic_torch_save(payload, self.checkpoint_path())

    def load_checkpoint(self, student, optimizer, scheduler, scaler=None) -> tuple[int, list[dict]]:
        path = self.checkpoint_path()
        if not path.is_file():
            return 0, []
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:
            raise CheckpointError(f"cannot resume, unreadable training checkpoint ({type(error).__name__})", path) from None
        if payload.get("format") != CHECKPOINT_FORMAT or payload.get("model") != self.config.model.name:
            raise CheckpointError(f"not a training checkpoint of {self.config.model.name}; use another out folder", path)
        changed = first_difference(payload.get("config", {}), json_ready(self.config.to_dict()))
        if changed is not None:  # resuming under another config would mix two runs in one
            key, before, now = changed
            raise CheckpointError(f"cannot resume: this run was trained with {key} = {before!r}, the config now says "
                                  f"{now!r} (put the value back, or train into another out folder)", path)
        student.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        set_rng_states(payload["rng"])
        if scaler is not None and scaler.is_enabled() and "scaler" in payload:
            scaler.load_state_dict(payload["scaler"])
        return int(payload["step"]), list(payload["history"])

    def run(self) -> TrainResult:
        config = self.config
        torch.manual_seed(config.seed + self.distributed.rank)
        student = build_student(config).to(self.device)
        space = config.loss.resolved_space
        student.to_space(torch.ones(1, 2, 2, device=self.device), space)  # fails early on a bad pairing
        clips = TrainingClips(student, config.data, space, seed=config.seed)
        runner = ClipRunner(student, config.data.detach_every)
        network = runner
        if self.distributed.grouped:
            # find_unused_parameters: the DAv2-based students hold parameters no forward uses (DINOv2's
            # mask_token, refinenet4's first residual unit), as the official architecture does
            network = nn.parallel.DistributedDataParallel(
                runner, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        optimizer = torch.optim.AdamW(student.parameters(), lr=config.optim.lr, betas=config.optim.betas,
                                      weight_decay=config.optim.weight_decay)
        scheduler = make_scheduler(optimizer, config)
        loss_fn = make_loss(config)
        if self.distributed.is_main:
            clean_stale_temporaries(self.out)
        precision = config.precision
        if precision == "auto":
            precision = "bf16" if config.amp and self.device.type == "cuda" else "fp32"
        check_precision(precision, self.device, "precision")
        scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")  # fp16 gradients underflow unscaled
        start, history = self.load_checkpoint(student, optimizer, scheduler, scaler)
        writer = self._writer(start) if self.distributed.is_main else None
        end = config.steps if self.stop_after is None else min(config.steps, start + self.stop_after)
        bar = None
        if self.progress and self.distributed.is_main:
            from tqdm import tqdm

            bar = tqdm(total=config.steps, initial=start, desc=f"train {config.model.name} ({config.regime})",
                       unit="step", disable=None)
        student.train()
        for step in range(start, end):
            batch = clips.batch(step, config.batch_size, self.distributed.rank)
            images = batch["images"].to(self.device, non_blocking=True)
            labels = batch["labels"].to(self.device, non_blocking=True)
            with autocast(self.device, precision):
                raw = network(images)
            prediction = student.to_space(raw.float().flatten(0, 1), space)
            target = labels.flatten(0, 1)
            mask = torch.isfinite(target)
            loss, parts = loss_fn(prediction, torch.nan_to_num(target), mask)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.optim.clip_grad > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(student.parameters(), config.optim.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            record = {"step": step + 1, "loss": float(loss.detach()), "lr": optimizer.param_groups[0]["lr"],
                      **{k: float(v.detach()) for k, v in parts.items()}}
            history.append(record)
            if writer is not None:
                self._log(writer, record, step + 1, prediction, target, mask)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
                self.save_checkpoint(student, optimizer, scheduler, step + 1, history, scaler)
        if bar is not None:
            bar.close()
        if end > start and (end % config.checkpoint_every) and end != config.steps:
            self.save_checkpoint(student, optimizer, scheduler, end, history, scaler)
        if writer is not None:
            writer.close()
        clips.close()
        student.eval()
        result = TrainResult(student, history, self.out, resumed_from=start)
        if self.distributed.is_main and end == config.steps:
            result.student_path = self.out / "student.pth"
            save_model(config.model.name, student, result.student_path)
            self._write_history(history)
        return result

    # ---- logs ---------------------------------------------------------------------------------
    def _writer(self, start: int = 0):
        """TensorBoard writer; on resume (start > 0) it purges what an interrupted run logged after
        its last checkpoint, so the logs read as one run."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: history.jsonl and loss.png still written
            return None
        return SummaryWriter(str(self.out / "tensorboard"), purge_step=start + 1 if start else None)

    def _log(self, writer, record: dict, step: int, prediction, target, mask) -> None:
        config = self.config
        if step % config.log_every == 0 or step == 1:
            for key, value in record.items():
                if key != "step":
                    writer.add_scalar(f"train/{key}", value, step)
        if step % config.image_every == 0 or step == 1:
            shown_prediction = prediction[0].detach().float().cpu().numpy()
            shown_target = np.where(mask[0].cpu().numpy(), target[0].cpu().numpy(), np.nan)
            aligned = align_scale_shift(shown_prediction, shown_target)
            image = np.concatenate([viz.colorize_like(aligned, shown_target), viz.colorize_like(shown_target, shown_target)], axis=1)
            writer.add_image("train/prediction_vs_label", image, step, dataformats="HWC")

    def _write_history(self, history: list[dict]) -> None:
        atomic_write(self.out / "history.jsonl", lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in history)))
        plot_losses(history, self.out / "loss.png", title=f"{self.config.model.name} ({self.config.regime})")


def plot_losses(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss curves (total and parts, smoothed over ~1/30 of the run, log scale) as a PNG, written
    atomically (`viz.plot_curves`)."""
    keys = [k for k in history[0] if k not in ("step", "lr")] if history else []
    window = max(1, len(history) // 30)
    series = {key: np.convolve([r[key] for r in history], np.ones(window) / window, mode="valid") for key in keys}
    steps = [r["step"] for r in history][window - 1:]
    return fileio.write_image(path, viz.plot_curves(series, title=title, logy=True, x=steps, size=(6, 3.2), dpi=110))


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train (or resume) the run described by `config`."""
    return Trainer(config, progress=progress).run()
