"""`anydepth focus run`: metric depth from focal stacks; `anydepth focus eval`: the DDFF-12 table."""

from __future__ import annotations

from pathlib import Path

from anydepth.cli.common import (PRECISIONS, add_device, add_encoder, add_input_size, add_limit, add_out, add_weights,
                                 check_network, check_output_dir, check_output_file, positive_int, print_error, progress)
from anydepth.errors import AnydepthError, InputError, WeightsNotFoundError

# The keys of anydepth.focus.pipeline.TTO_MODES (a test keeps them equal), spelt out so that building the
# parser does not import the focus pipeline.
TTO_RECIPES = ["paper", "fast", "fastest"]

VOLUMES = ["laplacian", "sml", "tenengrad", "variance", "dfv"]
SPLITS = ["val", "train", "test"]  # DDFF-12; the official test file has no ground truth
PRIORS = ["dav2", "none"]  # dav2: Depth Anything V2 on the AiF, then the fit / TTO; none: DFF alone


def _common(parser) -> None:
    parser.add_argument("--focus-volume", default="laplacian", choices=VOLUMES, help="focus measure or the DFV network")
    add_weights(parser)
    add_encoder(parser)
    parser.add_argument("--dfv-weights", help="DFV checkpoint (DFF-DFV.tar) for --focus-volume dfv")
    add_input_size(parser, None, "DAv2 input size (default: the TTO recipe's)")
    add_device(parser, "; the DAv2 prior, DFV and test-time optimisation run there")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="network arithmetic: fp32, bf16 or fp16 (CUDA only) for the DAv2 prior and TTO "
                             "(default: fp32 for the prior; TTO as its recipe: bf16 on CUDA for paper, bf16 "
                             "everywhere for fast; fastest has no gradient step)")


def add_parser(commands) -> None:
    parser = commands.add_parser("focus", help="metric depth from focal stacks (run), the DDFF-12 table (eval)",
                                 description="Depth from focus + Depth Anything V2 + test-time optimisation.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    run = actions.add_parser("run", help="metric depth of focal stacks (DFF + DAv2 + test-time optimisation)",
                             description="A folder of image_<k>_<metres>.<ext> slices (or with a focus.csv/json "
                             "sidecar), a FoD500 folder or a DDFF-12 .h5 file. Writes depth (npy metres, 16-bit "
                             "PNG millimetres, colour), the AiF image, the confidence, the TTO loss curve and a "
                             "summary figure.")
    run.add_argument("path", nargs="+", help="focal stack folders or files (a folder of stack folders: one stack each)")
    _common(run)
    run.add_argument("--prior", default="dav2", choices=PRIORS,
                     help="dav2 (default): Depth Anything V2 prior, linear fit and TTO; none: the focus volume and "
                     "DFF alone (no weights needed; depth_m.npy = dff_m.npy)")
    run.add_argument("--tto", choices=[*TTO_RECIPES, "off"], help="test-time optimisation (default fast; off with --prior none)")
    run.add_argument("--confidence", default="stack", choices=["stack", "volume"])
    run.add_argument("--align", action="store_true", help="align slices first (ECC; for hand-held phone stacks)")
    run.add_argument("--reduce", type=int, default=1, choices=[1, 2, 4, 8], help="read JPEG slices at 1/reduce size")
    run.add_argument("--split", default="val", choices=SPLITS,
                     help="DDFF-12 split of an .h5 file (default val; test: the official test file, no GT)")
    add_limit(run, "at most this many stacks")
    add_out(run, "focus-out")
    run.set_defaults(run=run_focus)

    evaluate = actions.add_parser("eval", help="the DDFF-12 table: DFF, linear fit, TTO (volume and stack confidence)",
                                  description="Scores the pipeline on a DDFF-12 split with ground truth by the DFV "
                                  "protocol (metrics in disparity, GT > 0).")
    evaluate.add_argument("path", help="DDFF-12 HDF5 file (original or DFV repack)")
    _common(evaluate)
    evaluate.add_argument("--split", default="val", choices=SPLITS, help="a split with ground truth (default val)")
    evaluate.add_argument("--samples", type=positive_int, metavar="N", help="evaluate the first N samples")
    evaluate.add_argument("--tto", default="fast", choices=TTO_RECIPES, help="TTO recipe for the TTO rows")
    evaluate.add_argument("--json", help="also write the table here")
    evaluate.set_defaults(run=run_eval)


def _models(args, device: str):
    """(DAv2 model on `device`, or None with --prior none; DFV network on `device` or None)."""
    from anydepth.focus.dfv import load_dfv
    from anydepth.foundation import load_depth_anything

    if args.focus_volume == "dfv" and not args.dfv_weights:
        raise InputError("--focus-volume dfv needs --dfv-weights DFF-DFV.tar")
    dfv = load_dfv(args.dfv_weights).to(device) if args.dfv_weights else None
    if getattr(args, "prior", "dav2") == "none":
        return None, dfv
    try:
        model = load_depth_anything(args.encoder, args.weights, device=device)
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

    check_output_dir(args.out, "--out")
    _prior_options(args)
    device = check_network(args)
    checked = check_focal_stacks(args.path, split=args.split, reduce=args.reduce, limit=args.limit)
    failures = 0
    for entry in checked:  # every stack is read and checked before any weights load
        if entry.error is not None:
            failures += 1
            print_error("anydepth focus run", entry.error)
    usable = [entry for entry in checked if entry.error is None]
    if not usable:
        return 1
    model, dfv = _models(args, device)
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
            with progress(total=iterations, desc=f"TTO {entry.name}", unit="it", **({} if iterations else {"disable": True})) as bar:
                result = estimate_depth(stack, model, args.focus_volume, dfv, args.tto, args.confidence,
                                        args.input_size, bar.update, precision=args.precision)
            written = write_focus_outputs(result, args.out, entry.name, stack.disparity_scale)
        except AnydepthError as error:
            failures += 1
            print_error("anydepth focus run", error)
            continue
        done += 1
        extra = f", TTO {result.tto.iterations} iterations in {result.tto.seconds:.1f} s" if result.tto else ""
        print(f"{entry.name}: {len(written)} files in {written[0].parent}{extra}")
    if len(checked) > 1 or failures:
        print(f"{done} of {len(checked)} stacks done; outputs in {args.out}")
    return 1 if failures else 0


def run_eval(args) -> int:
    import json

    from anydepth.focus.evaluate import check_scorable, evaluate_ddff12_split
    from anydepth.focus.readers import read_ddff12

    if args.json:
        check_output_file(args.json, "--json")
    device = check_network(args)
    samples = read_ddff12(args.path, split=args.split)
    count = check_scorable(samples, args.samples)  # before loading (or downloading) any weights
    model, dfv = _models(args, device)
    with progress(total=count, desc="DDFF-12", unit="stack") as bar:
        table = evaluate_ddff12_split(samples, model, args.focus_volume, dfv, args.tto, args.input_size, count,
                                      args.precision, bar.update)
    for line in table.lines():
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(table.to_dict(), indent=2))
    return 0
