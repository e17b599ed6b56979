"""The Depth AnyEvent claim, scaled down (issue 6): does distilling a frame model on the target
domain beat training on synthetic ground truth of another domain, and how close does it come to
supervision on the target?

    python benchmarks/distillation.py                      # ~15 min on a 2-core CPU
    python benchmarks/distillation.py --size demo          # smaller
    python benchmarks/distillation.py --weights depth_anything_v2_vits.pth   # the real DAv2 as teacher
    python benchmarks/distillation.py --set student_steps=3000 --set resolution=[192,256] --device cuda

Stages (cached in --out, so a rerun continues): two synthetic domains in the DSEC layout (source:
streets 2-30 m, 70° lens, clean sensor; target: rooms 0.8-8 m, 90° lens, noisy high-threshold
sensor), a teacher (a small DAv2-architecture model trained on rendered RGB-D unless --weights),
its pseudo-labels on the target training frames, one DepthAnyEvent-R student trained three ways
with the same recipe (Synth, Distilled, Supervised), all scored on held-out target sequences with
the Depth AnyEvent protocol (dae-mvsec-corrected: per-frame scale-and-shift alignment in depth).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import yaml

from anydepth.atomic import write_json
from anydepth.distill.experiment import SIZES, ExperimentSize, run_experiment

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="claim", choices=list(SIZES))
    parser.add_argument("--set", dest="changes", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a field of the size (ExperimentSize), e.g. student_steps=600")
    parser.add_argument("--weights", help="official DAv2 weights for the teacher (default: a small synthetic teacher)")
    parser.add_argument("--out", default="runs/distillation", help="work folder (cached stages)")
    parser.add_argument("--name", default="distillation_cpu", help="results file stem in benchmarks/results")
    parser.add_argument("--device", default="cpu", help="where the teacher labels and the students run (cpu, cuda, ...)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                        help="their arithmetic (default: fp32 labels and scores, the trainer's auto)")
    args = parser.parse_args()
    changes = {}
    for text in args.changes:
        if "=" not in text:
            parser.error(f"--set expects FIELD=VALUE, got {text!r}")
        key, value = text.split("=", 1)
        value = yaml.safe_load(value)
        changes[key] = tuple(value) if isinstance(value, list) else value
    unknown = set(changes) - {f.name for f in dataclasses.fields(ExperimentSize)}
    if unknown:
        parser.error(f"unknown size field(s): {', '.join(sorted(unknown))}")
    size = dataclasses.replace(SIZES[args.size], **changes)
    started = time.perf_counter()
    result = run_experiment(args.out, size, teacher_weights=args.weights, device=args.device, precision=args.precision)
    seconds = time.perf_counter() - started
    text = (f"Depth AnyEvent claim, scaled down ({args.size}{', ' + ', '.join(args.changes) if args.changes else ''}); "
            f"teacher: {result.teacher}; protocol {size.protocol}; {seconds / 60:.1f} min\n{result.table()}\n"
            f"stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()))
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.txt").write_text(text + "\n")
    write_json(RESULTS / f"{args.name}.json", {**result.to_dict(), "total_seconds": seconds})


if __name__ == "__main__":
    main()
