"""`anydepth focus`: metric depth from focal stacks; `anydepth focus eval`: the DDFF-12 protocol."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from anydepth.errors import AnydepthError, InputError, WeightsNotFoundError

# The keys of anydepth.focus.pipeline.TTO_MODES, spelt out so that --help does not import torch.
TTO_RECIPES = ["paper", "fast", "fastest"]

VOLUMES = ["laplacian", "sml", "tenengrad", "variance", "dfv"]
SPLITS = ["val", "train", "test"]  # DDFF-12; the official test file has no ground truth
PRIORS = ["dav2", "none"]  # dav2: Depth Anything V2 on the AiF, then the fit / TTO; none: DFF alone


def _common(parser) -> None:
    parser.add_argument("--focus-volume", default="laplacian", choices=VOLUMES, help="focus measure or the DFV network")
    parser.add_argument("--weights", help="Depth Anything V2 weights (default: the official release from the cache/hub)")
    parser.add_argument("--encoder", help="DAv2 encoder (default: from --weights, else vits)")
    parser.add_argument("--dfv-weights", help="DFV checkpoint (DFF-DFV.tar) for --focus-volume dfv")
    parser.add_argument("--input-size", type=int, help="DAv2 input size (default: the TTO mode's)")


def add_parser(commands) -> None:
    parser = commands.add_parser("focus", help="metric depth from a focal stack (DFF + DAv2 + test-time optimisation)",
                                 description="A folder of image_<k>_<metres>.<ext> slices (or with a focus.csv/json "
                                 "sidecar), a FoD500 folder or a DDFF-12 .h5 file. Writes depth (npy metres, 16-bit "
                                 "PNG millimetres, colour), the AiF image, the confidence, the TTO loss curve and a "
                                 "summary figure. `anydepth focus eval FILE.h5` runs the DDFF-12 protocol.")
    parser.add_argument("path", nargs="+",
                        help="focal stack folders or files (a folder of stack folders: one stack each)")
    _common(parser)
    parser.add_argument("--prior", default="dav2", choices=PRIORS,
                        help="dav2 (default): Depth Anything V2 prior, linear fit and TTO; none: the focus volume and "
                        "DFF alone (no weights needed; depth_m.npy = dff_m.npy)")
    parser.add_argument("--tto", choices=[*TTO_RECIPES, "off"],
                        help="test-time optimisation (default fast; off with --prior none)")
    parser.add_argument("--confidence", default="stack", choices=["stack", "volume"])
    parser.add_argument("--align", action="store_true", help="align slices first (ECC; for hand-held phone stacks)")
    parser.add_argument("--reduce", type=int, default=1, choices=[1, 2, 4, 8], help="read JPEG slices at 1/reduce size")
    parser.add_argument("--split", default="val", choices=SPLITS,
                        help="DDFF-12 split of an .h5 file (default val; test: the official test file, no GT)")
    parser.add_argument("--limit", type=int, help="at most this many stacks")
    parser.add_argument("--out", default="focus-out")
    parser.set_defaults(run=run_focus)

    evaluate = commands.add_parser("focus-eval", prog="anydepth focus eval",
                                   help="(anydepth focus eval) DDFF-12 protocol: DFF, linear, TTO")
    evaluate.add_argument("path", help="DDFF-12 HDF5 file (original or DFV repack)")
    _common(evaluate)
    evaluate.add_argument("--split", default="val", choices=SPLITS, help="a split with ground truth (default val)")
    evaluate.add_argument("--samples", type=int, help="evaluate the first N samples")
    evaluate.add_argument("--tto", default="fast", choices=TTO_RECIPES, help="TTO recipe for the TTO rows")
    evaluate.add_argument("--json", help="also write the table here")
    evaluate.set_defaults(run=run_eval)


def _models(args):
    """(DAv2 model, or None with --prior none; DFV network or None)."""
    from anydepth.focus.dfv import load_dfv
    from anydepth.foundation import load_depth_anything

    if args.focus_volume == "dfv" and not args.dfv_weights:
        raise InputError("--focus-volume dfv needs --dfv-weights DFF-DFV.tar")
    dfv = load_dfv(args.dfv_weights) if args.dfv_weights else None
    if getattr(args, "prior", "dav2") == "none":
        return None, dfv
    try:
        model = load_depth_anything(args.encoder, args.weights)
    except WeightsNotFoundError as error:
        if not hasattr(args, "prior"):  # focus eval: its rows need the prior
            raise
        raise WeightsNotFoundError(f"{error}; or run with --prior none for depth from focus alone") from None
    return model, dfv


def _prior_options(args) -> None:
    """--prior none takes no DAv2 option; --tto defaults to fast with the prior, off without."""
    if args.prior == "none":
        given = [flag for flag, value in (("--weights", args.weights), ("--encoder", args.encoder),
                                          ("--input-size", args.input_size)) if value is not None]
        if args.tto not in (None, "off"):
            given.append(f"--tto {args.tto}")
        if given:
            raise InputError(f"{', '.join(given)}: needs the Depth Anything prior; drop it or use --prior dav2")
        args.tto = "off"
    elif args.tto is None:
        args.tto = "fast"


def run_focus(args) -> int:
    from anydepth.focus.pipeline import TTO_MODES, estimate_depth, write_focus_outputs
    from anydepth.focus.readers import DDFF12Samples, align_slices, check_focal_stacks

    from anydepth.cli.checks import check_output_dir

    check_output_dir(args.out, "--out")
    _prior_options(args)
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    checked = check_focal_stacks(args.path, split=args.split, reduce=args.reduce, limit=args.limit)
    failures = 0
    for entry in checked:  # every stack is read and checked before any weights load
        if entry.error is not None:
            failures += 1
            print(f"anydepth focus: error: {entry.error}", file=sys.stderr)
    usable = [entry for entry in checked if entry.error is None]
    if not usable:
        return 1
    model, dfv = _models(args)
    no_truth = {id(e.collection): e.collection for e in usable
                if isinstance(e.collection, DDFF12Samples) and not e.collection.has_ground_truth}
    for samples in no_truth.values():
        print(f"DDFF-12 {samples.split} split has no ground truth: writing depth maps, no scores")
    iterations = 0 if args.tto == "off" else TTO_MODES[args.tto].iterations
    done = 0
    for entry in usable:  # a stack failing here (alignment, an unreadable slice) does not stop the others
        try:
            stack = entry.load()
            if args.align:
                stack, _ = align_slices(stack)
            with tqdm(total=iterations, desc=f"TTO {entry.name}", unit="it", disable=None if iterations else True) as bar:
                result = estimate_depth(stack, model, args.focus_volume, dfv, args.tto, args.confidence,
                                        args.input_size, bar.update)
            written = write_focus_outputs(result, args.out, entry.name, stack.disparity_scale)
        except AnydepthError as error:
            failures += 1
            tqdm.write(f"anydepth focus: error: {error}", file=sys.stderr)
            continue
        done += 1
        extra = f", TTO {result.tto.iterations} iterations in {result.tto.seconds:.1f} s" if result.tto else ""
        print(f"{entry.name}: {len(written)} files in {written[0].parent}{extra}")
    if len(checked) > 1 or failures:
        print(f"{done} of {len(checked)} stacks done; outputs in {args.out}")
    return 1 if failures else 0


def run_eval(args) -> int:
    import json

    from anydepth.focus.pipeline import estimate_depth
    from anydepth.focus.readers import read_ddff12
    from anydepth.metrics import evaluate_ddff12

    from anydepth.cli.checks import check_output_file

    if args.json:
        check_output_file(args.json, "--json")
    samples = read_ddff12(args.path, split=args.split)
    if not samples.has_ground_truth:
        raise InputError(f"the DDFF-12 {args.split} split has no ground truth (no disp_{args.split}) to score "
                         f"against; evaluate train or val, or write its depth maps with `anydepth focus FILE "
                         f"--split {args.split}`", args.path)
    count = len(samples) if args.samples is None else min(args.samples, len(samples))
    if count == 0:
        raise InputError(f"no {args.split} samples", args.path)
    model, dfv = _models(args)
    rows = {"DFF": [], "linear": [], "TTO (volume confidence)": [], "TTO (stack confidence)": []}
    for index in tqdm(range(count), desc="DDFF-12", unit="stack", disable=None):
        stack = samples[index]
        truth = stack.ground_truth
        volume_run = estimate_depth(stack, model, args.focus_volume, dfv, args.tto, "volume", args.input_size)
        stack_run = estimate_depth(stack, model, args.focus_volume, dfv, args.tto, "stack", args.input_size)
        rows["DFF"].append((volume_run.dff, truth))
        rows["linear"].append((stack_run.linear, truth))
        rows["TTO (volume confidence)"].append((volume_run.depth, truth))
        rows["TTO (stack confidence)"].append((stack_run.depth, truth))
    table = {name: evaluate_ddff12(pairs) for name, pairs in rows.items()}
    print(f"DDFF-12 {args.split}, {count} samples, metrics in disparity (GT > 0); focus volume {args.focus_volume}, TTO {args.tto}")
    print(f"{'method':>24} | {'MSE':>9} | {'RMS':>7} | {'AbsRel':>7} | {'δ1 %':>6} | {'δ2 %':>6} | {'δ3 %':>6} | {'badpix %':>8} | {'bump':>6}")
    for name, scores in table.items():
        print(f"{name:>24} | {scores['mse']:9.6f} | {scores['rms']:7.4f} | {scores['abs_rel']:7.3f} | {scores['delta1']:6.1f} | "
              f"{scores['delta2']:6.1f} | {scores['delta3']:6.1f} | {scores['badpix']:8.2f} | {scores['bumpiness']:6.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": count, "table": table}, indent=2))
    return 0
