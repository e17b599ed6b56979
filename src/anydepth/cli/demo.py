"""`anydepth demo`: the whole system on data made on the spot, with a visual report."""

from __future__ import annotations

from anydepth.cli.common import PRECISIONS, add_device, check_network, check_output_dir


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo", help="run both pipelines end to end on built-in data and write report.html",
        description="Makes synthetic event recordings and focal stacks, trains a teacher (unless official DAv2 "
                    "weights are given or cached), distils it into an event student, runs the focus pipeline with "
                    "test-time optimisation, and writes OUT/report.html with tables and pictures (timings: README).")
    parser.add_argument("--out", default="anydepth-demo", help="output folder (default ./anydepth-demo)")
    parser.add_argument("--quick", action="store_true", help="every stage cut down to a minimum")
    parser.add_argument("--weights", help="official Depth Anything V2 ViT-S weights (default: the cache, if there)")
    parser.add_argument("--rgbd", help="folder of <scene>/rgb.png + depth_m.npy RGB-D samples for the focus part "
                                       "(default: ../shared/realdata/nyu_rgbd when present)")
    add_device(parser, "; the teacher's labels, the students and the focus prior run there (data are made on the CPU)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="network arithmetic (default: each stage's own: fp32 labels and scores, bf16 training "
                             "on CUDA)")
    parser.add_argument("--screenshot", action="store_true",
                        help="also render report.html to report.png with headless Chromium (if installed)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from anydepth.demo import run_demo

    check_output_dir(args.out, "--out")
    device = check_network(args)
    path = run_demo(args.out, quick=args.quick, weights=args.weights, rgbd=args.rgbd, device=device,
                    precision=args.precision)
    if args.screenshot:
        from anydepth.report import screenshot

        print(f"screenshot: {screenshot(path, path.with_suffix('.png'))}")
    return 0
