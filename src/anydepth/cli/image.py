"""`anydepth image`: Depth Anything V2 on image files and folders."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from anydepth.cli.checks import check_output_dir, check_output_file, resolve_device
from anydepth.errors import InputError
from anydepth.foundation import load_depth_anything
from anydepth.foundation.config import ENCODERS
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
    parser.add_argument("--encoder", choices=list(ENCODERS),
                        help="model size; default: read from --weights, else vits")
    parser.add_argument("--weights", help="weights file (official .pth, HF .safetensors or anydepth checkpoint); "
                        "default: the official release from the cache ($ANYDEPTH_CACHE, ~/.cache/anydepth) or the hub")
    parser.add_argument("--variant", default="relative", choices=VARIANTS, help="official release to use without --weights")
    parser.add_argument("--input-size", type=int, default=518, help="shorter network side, rounded to 14 (default 518)")
    parser.add_argument("--out", default="anydepth-out", help="output folder (default ./anydepth-out)")
    parser.add_argument("--formats", default=",".join(OUTPUT_FORMATS),
                        help=f"comma-separated outputs among {', '.join(OUTPUT_FORMATS)} (default all)")
    parser.add_argument("--raw-out", metavar="FILE.npy", help="with one input image: also write its raw float32 HxW prediction here")
    parser.add_argument("--grayscale", action="store_true", help="grey instead of the Spectral_r palette")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"), help="network runtime (default torch; onnxruntime: install anydepth[onnx])")
    parser.add_argument("--onnx", metavar="FILE.onnx", help="--backend onnxruntime: a file `anydepth export onnx` wrote from these weights (default: exported once into the cache)")
    parser.set_defaults(run=run)


def run(args) -> int:
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = sorted(set(formats) - set(OUTPUT_FORMATS))
    if unknown:
        raise InputError(f"unknown output format(s) {', '.join(unknown)}; choose among {', '.join(OUTPUT_FORMATS)}")
    if args.input_size < 14:
        raise InputError(f"--input-size must be at least 14, got {args.input_size}")
    check_output_dir(args.out, "--out")
    if args.raw_out:
        check_output_file(args.raw_out, "--raw-out", (".npy",))
    device = resolve_device(args.device)
    images, problems = find_images(args.inputs)
    if args.raw_out and len(images) != 1:
        raise InputError(f"--raw-out needs exactly one input image, got {len(images)}")
    for problem in problems:
        print(f"anydepth image: error: {problem}", file=sys.stderr)
    if not images:
        raise InputError("no images to process")

    model = load_depth_anything(args.encoder, args.weights, variant=args.variant, device=device)
    if args.onnx and args.backend != "onnxruntime":
        raise InputError("--onnx needs --backend onnxruntime")
    if args.backend == "onnxruntime":
        from anydepth.export.onnx import onnx_backend
        model = onnx_backend(model, args.onnx)
    failures = len(problems)
    written = 0
    started = time.perf_counter()
    for result in tqdm(predict_images(model, images, Path(args.out), formats, args.input_size, args.grayscale, args.raw_out),
                       total=len(images), desc="depth", unit="image", disable=None):
        if result.error:
            failures += 1
            tqdm.write(f"anydepth image: error: {result.error}", file=sys.stderr)
        else:
            written += 1
    elapsed = time.perf_counter() - started
    print(f"{written} of {len(images)} images done in {elapsed:.1f} s; outputs in {args.out}")
    return 1 if failures else 0
