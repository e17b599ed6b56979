"""`anydepth events train CONFIG.yaml`: train an event depth student (any model, any regime)."""

from __future__ import annotations

import yaml

from anydepth.cli.common import PRECISIONS, add_device
from anydepth.errors import InputError


def _override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise InputError(f"--set expects KEY=VALUE (e.g. optim.lr=1e-4), got {text!r}")
    key, value = text.split("=", 1)
    from anydepth.distill.config import load_yaml

    try:
        return key.strip(), load_yaml(value)
    except yaml.YAMLError:
        raise InputError(f"--set {text!r}: the value is not valid YAML") from None


def add_action(actions) -> None:
    """Add `train` to the ACTION subparsers of `anydepth events`."""
    parser = actions.add_parser(
        "train", help="train a student (synth / distilled / supervised / mixed) from a YAML config",
        description="Train an event depth student from a YAML config (see configs/ for the paper's recipes). "
                    "Resumes from OUT/checkpoints/last.pt when it exists (a run killed at any moment resumes "
                    "exactly and leaves no partial file); every config value is checked against its type. Writes OUT/student.pth (the model's "
                    "official container), history.jsonl, loss.png and TensorBoard logs. Multi-GPU: "
                    "torchrun --nproc_per_node N -m anydepth events train CONFIG.yaml")
    parser.add_argument("config", help="YAML training config")
    parser.add_argument("--out", help="output folder (overrides the config's `out`)")
    parser.add_argument("--steps", type=int, help="number of steps (overrides the config)")
    add_device(parser, "; overrides the config's device", None)
    parser.add_argument("--precision", choices=("auto", *PRECISIONS),
                        help="the student's arithmetic, overrides the config's precision (auto: bf16 autocast on "
                             "CUDA, fp32 on the CPU; fp16 on CUDA only, with loss scaling)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config value, dotted (e.g. --set optim.lr=1e-4 --set data.crop=[112,112])")
    parser.set_defaults(run=run)


def run(args) -> int:
    from anydepth.distill.config import load_config
    from anydepth.distill.trainer import Trainer

    from anydepth.cli.common import check_output_dir, resolve_device
    from anydepth.precision import check_precision

    if args.out is not None:
        check_output_dir(args.out, "--out")
    if args.device is not None:
        resolve_device(args.device)
    overrides = dict(_override(text) for text in args.overrides)
    for key in ("out", "steps", "device", "precision"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    config = load_config(args.config, overrides, check=True)
    device = resolve_device(config.device, f"{args.config}: device")  # the config's device, checked like --device
    if config.precision != "auto":
        check_precision(config.precision, device, "--precision" if args.precision else f"{args.config}: precision")
    trainer = Trainer(config)
    result = trainer.run()
    if not trainer.distributed.is_main:
        return 0
    if result.resumed_from:
        print(f"resumed from step {result.resumed_from}")
    last = result.history[-1] if result.history else None
    if last is not None:
        print(f"step {last['step']}: loss {last['loss']:.4f}")
    if result.student_path is not None:
        print(f"student: {result.student_path}  (anydepth events eval DATASET --model {config.model.name} "
              f"--weights {result.student_path})")
    print(f"logs: {result.out / 'history.jsonl'}, {result.out / 'loss.png'}, {result.out / 'tensorboard'}")
    return 0
