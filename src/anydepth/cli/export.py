"""`anydepth export onnx`: a network as an ONNX file (recurrent state as explicit inputs/outputs)."""

from __future__ import annotations

from anydepth.cli.common import add_device
from anydepth.errors import InputError
from anydepth.foundation.config import ENCODERS
from anydepth.foundation.weights import VARIANTS

FOUNDATION = "dav2"


def add_parser(commands) -> None:
    from anydepth.eventdepth import MODELS

    parser = commands.add_parser("export", help="export a network (ONNX)",
                                 description="Export a network to a deployment format.")
    formats = parser.add_subparsers(dest="action", metavar="FORMAT", required=True)
    onnx = formats.add_parser(
        "onnx", help="Depth Anything V2 or an event student as an ONNX file",
        description="Write the network (its forward: pre/post-processing stay in Python) as an ONNX file "
        "that onnxruntime runs (install anydepth[onnx]). Students take and return their recurrent state "
        "as state_in_K / state_out_K (zeros = a fresh sequence). The image size is dynamic where the model "
        "allows it; the inputs and outputs are printed with their shapes.")
    onnx.add_argument("--model", required=True, choices=[FOUNDATION, *MODELS],
                      help="dav2 (Depth Anything V2, relative or metric) or an event student")
    onnx.add_argument("--weights", help="weights file; dav2 without it: the official release from the cache, "
                      "as `anydepth image` (--encoder, --variant)")
    onnx.add_argument("--encoder", choices=list(ENCODERS), help="dav2: model size; default read from --weights, else vits")
    onnx.add_argument("--variant", default="relative", choices=VARIANTS, help="dav2: official release without --weights")
    onnx.add_argument("--out", required=True, metavar="FILE.onnx", help="output file")
    onnx.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                      help="size traced: dav2 the network input, multiples of 14 (default 518 518); "
                      "a student the sensor (default 260 346)")
    onnx.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    add_device(onnx, "; where the network is traced (the file runs anywhere)", "cpu")
    onnx.set_defaults(run=run)


def run(args) -> int:
    from anydepth.cli.common import check_output_file, resolve_device
    from anydepth.export.onnx import export_onnx

    check_output_file(args.out, "--out", (".onnx",))
    device = resolve_device(args.device)
    if args.model == FOUNDATION:
        from anydepth.foundation import load_depth_anything

        model = load_depth_anything(args.encoder, args.weights, variant=args.variant, device=device)
    else:
        from anydepth.eventdepth import load_model

        if args.weights is None:
            raise InputError(f"--weights is needed for {args.model}")
        if args.encoder:
            raise InputError("--encoder is for dav2; a student's encoder is read from its --weights")
        model = load_model(args.model, args.weights).to(device)
    exported = export_onnx(model, args.out, tuple(args.input_size) if args.input_size else None, args.opset)
    print(f"{args.model} -> {exported.path}")
    for line in exported.lines():
        print(f"  {line}")
    return 0
