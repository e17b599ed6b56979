"""`anydepth image`: Depth Anything V2 on image files and folders."""

from __future__ import annotations

import time
from pathlib import Path

from anydepth.cli.common import (add_backend, add_encoder, add_input_size, add_network, add_out, add_weights,
                                 check_network, check_output_dir, check_output_file, print_error, progress,
                                 with_backend)
from anydepth.errors import InputError
from anydepth.foundation import load_depth_anything
from anydepth.foundation.predict import OUTPUT_FORMATS, predict_images
from anydepth.foundation.weights import VARIANTS
from anydepth.fileio import find_images


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "image",
        help="relative (or metric) depth of images with Depth Anything V2",
        description="Run Depth Anything V2 on image files or folders (recursively). Writes, per image, "
        "<name>_depth.png (colour-mapped, Spectral_r), <name>_depth16.png (16-bit) and <name>_depth.npy "
        "(raw float32 at input resolution: relative disparity, or metres for a metric model).",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    add_encoder(parser)
    add_weights(parser)
    parser.add_argument("--variant", default="relative", choices=VARIANTS, help="official release to use without --weights")
    add_input_size(parser)
    add_out(parser, "anydepth-out")
    parser.add_argument("--formats", default=",".join(OUTPUT_FORMATS),
                        help=f"comma-separated outputs among {', '.join(OUTPUT_FORMATS)} (default all)")
    parser.add_argument("--raw-out", metavar="FILE.npy", help="with one input image: also write its raw float32 HxW prediction here")
    parser.add_argument("--grayscale", action="store_true", help="grey instead of the Spectral_r palette")
    add_network(parser)
    add_backend(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = sorted(set(formats) - set(OUTPUT_FORMATS))
    if unknown:
        raise InputError(f"unknown output format(s) {', '.join(unknown)}; choose among {', '.join(OUTPUT_FORMATS)}")
    check_output_dir(args.out, "--out")
    if args.raw_out:
        check_output_file(args.raw_out, "--raw-out", (".npy",))
    device = check_network(args)
    images, problems = find_images(args.inputs)
    if args.raw_out and len(images) != 1:
        raise InputError(f"--raw-out needs exactly one input image, got {len(images)}")
    for problem in problems:
        print_error("anydepth image", problem)
    if not images:
        raise InputError("no images to process")

    model = load_depth_anything(args.encoder, args.weights, variant=args.variant, device=device)
    model = with_backend(args, model)
    failures = len(problems)
    written = 0
    started = time.perf_counter()
    results = predict_images(model, images, Path(args.out), formats, args.input_size, args.grayscale, args.raw_out,
                             precision=args.precision)
    for result in progress(results, total=len(images), desc="depth", unit="image"):
        if result.error:
            failures += 1
            print_error("anydepth image", result.error)
        else:
            written += 1
    elapsed = time.perf_counter() - started
    print(f"{written} of {len(images)} images done in {elapsed:.1f} s; outputs in {args.out}")
    return 1 if failures else 0
