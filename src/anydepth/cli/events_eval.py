"""`anydepth events eval`: an event depth student over a dataset under a published protocol."""

from __future__ import annotations

import argparse
from pathlib import Path

from anydepth.cli.common import (add_limit, add_network, add_out, add_weights, check_network, check_output_dir,
                                 positive_float, progress)
from anydepth.errors import InputError
from anydepth.fileio import first_line
from anydepth.metrics.protocols import PROTOCOLS


def add_action(actions) -> None:
    """Add `eval` to the ACTION subparsers of `anydepth events`."""
    from anydepth.eventdepth import MODELS

    protocols = "\n".join(f"  {name:<22} {protocol.description}" for name, protocol in PROTOCOLS.items())
    parser = actions.add_parser(
        "eval", help="evaluate an event depth model over a dataset (Depth AnyEvent protocol)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score an event depth student on every sequence of a dataset (a DSEC root, a folder of MVSEC "
                    "pairs or of voxel folders, or one sequence): the recurrent state restarts at each sequence and "
                    "is carried frame to frame, each frame with ground truth is scored, a sequence scores the "
                    "mean of its frames and the dataset the mean of its sequences. Prints the table and writes "
                    "metrics.csv and metrics.json.\n\nprotocols:\n" + protocols)
    parser.add_argument("dataset", help="dataset root or one sequence")
    parser.add_argument("--model", required=True, choices=list(MODELS), help="student")
    add_weights(parser, "checkpoint of that model", required=True)
    parser.add_argument("--protocol", default="dae-mvsec", choices=list(PROTOCOLS),
                        help="evaluation protocol (default dae-mvsec; listed below)")
    parser.add_argument("--window-ms", type=positive_float, default=50.0,
                        help="event window before each ground truth (default 50)")
    add_out(parser, "events-eval")
    add_network(parser)
    add_limit(parser, "score at most N frames per sequence")
    parser.add_argument("--ignore-trainer", action="store_true",
                        help="ignore the checkpoint's trainer section (use_scaleshift, use_logdepth, clip_distance, "
                             "reg_factor), which otherwise replaces the protocol's settings as in the authors' test.py "
                             "(their --discard_train_args)")
    parser.add_argument("--save-predictions", action="store_true",
                        help="also save each scored prediction as OUT/predictions/<sequence>/<index>.npy")
    parser.set_defaults(run=run)


def run(args) -> int:
    from anydepth.distill.evaluate import count_samples, evaluate_dataset
    from anydepth.eventdepth import load_model
    from anydepth.metrics.protocols import apply_trainer

    if not Path(args.dataset).exists():
        raise InputError("no such file or folder", args.dataset)
    check_output_dir(args.out, "--out")
    device = check_network(args)
    model = load_model(args.model, args.weights)
    try:
        model = model.to(device).eval()
    except (RuntimeError, ValueError) as error:
        raise InputError(f"cannot use device {device!r} ({first_line(error)})") from None
    if not args.ignore_trainer:
        _, taken = apply_trainer(args.protocol, model.run_config)
        if taken:
            print("from the checkpoint's trainer section (as the authors' test.py): "
                  + ", ".join(f"{key}={value}" for key, value in taken.items()))
    out = Path(args.out)
    total = count_samples(args.dataset, args.window_ms, args.limit)
    with progress(total=total, desc="eval", unit="frame") as bar:
        result = evaluate_dataset(model, args.dataset, protocol=args.protocol, window_ms=args.window_ms,
                                  progress=bar.update, limit=args.limit,
                                  predictions_out=out / "predictions" if args.save_predictions else None,
                                  model_name=args.model, weights=args.weights, use_trainer=not args.ignore_trainer,
                                  precision=args.precision)
    print(f"{args.model} on {args.dataset}, protocol {args.protocol} ({sum(result.frames.values())} frames, "
          f"{len(result.frames)} sequences)")
    print(result.table())
    print(f"metrics: {result.to_csv(out / 'metrics.csv')}, {result.to_json(out / 'metrics.json')}")
    return 0
