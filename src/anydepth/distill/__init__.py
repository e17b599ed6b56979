"""Cross-modal distillation (Depth AnyEvent's training and evaluation): DAv2 pseudo-labels on the frames beside
the events, the training losses, the trainer for every student and regime, and the evaluation
protocol run over datasets.

    from anydepth.distill import load_config, train
    result = train(load_config("train.yaml"))          # OUT/student.pth, history.jsonl, loss.png

The end-to-end experiment of `benchmarks/distillation.py` is `anydepth.distill.experiment`."""

from anydepth.distill.config import TrainConfig, config_from_dict, load_config
from anydepth.distill.distributed import close_distributed, setup_distributed
from anydepth.distill.evaluate import EvaluationResult, count_samples, evaluate_dataset
from anydepth.distill.losses import DistillationLoss, distillation_loss, e2depth_loss, scale_shift_invariant_loss, silog_loss
from anydepth.distill.pseudolabels import (
    PseudoLabel,
    generate_pseudolabels,
    pseudolabel_path,
    read_pseudolabel,
    write_pseudolabel,
)
from anydepth.distill.sequences import find_sequences
from anydepth.distill.trainer import Trainer, TrainResult, train

__all__ = [
    "DistillationLoss", "EvaluationResult", "PseudoLabel", "TrainConfig", "TrainResult", "Trainer", "close_distributed",
    "config_from_dict", "count_samples", "distillation_loss", "e2depth_loss", "evaluate_dataset", "find_sequences",
    "generate_pseudolabels", "load_config", "pseudolabel_path", "read_pseudolabel", "scale_shift_invariant_loss",
    "setup_distributed", "silog_loss", "train", "write_pseudolabel",
]
