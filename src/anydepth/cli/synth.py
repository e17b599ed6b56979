"""`anydepth synth`: synthetic datasets with exact ground truth."""

from __future__ import annotations

from anydepth.cli.common import check_output_dir, positive_float, positive_int, progress
from anydepth.errors import InputError


def _resolution(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"resolution must look like 260x346 (HxW), got {text!r}") from None
    if height < 8 or width < 8:
        raise InputError(f"resolution {text} is too small")
    return height, width


def add_parser(commands) -> None:
    parser = commands.add_parser("synth", help="synthetic event sequences and focal stacks with ground truth",
                                 description="Generate datasets in the real on-disk layouts, deterministic for a seed.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    events = actions.add_parser("events", help="event sequences with frames and metric depth")
    events.add_argument("--out", required=True, help="output folder (one sub-folder per sequence)")
    events.add_argument("--sequences", type=positive_int, default=1, help="number of sequences (default 1)")
    events.add_argument("--seconds", type=positive_float, default=2.0)
    events.add_argument("--resolution", default="260x346", help="HxW (default 260x346)")
    events.add_argument("--seed", type=int, default=0)
    events.add_argument("--layout", default="dsec", choices=["dsec", "e2depth", "mvsec"], help="on-disk layout (default dsec)")
    events.add_argument("--fps", type=positive_float, default=1000.0, help="internal rendering rate fed to the simulator (default 1000)")
    events.set_defaults(run=run_events)

    focus = actions.add_parser("focus", help="focal stacks with metric depth and the all-in-focus image")
    focus.add_argument("--out", required=True, help="output folder")
    focus.add_argument("--samples", type=positive_int, default=4, help="number of stacks (default 4)")
    focus.add_argument("--layout", default="ddff12", choices=["ddff12", "fod500", "phone"], help="on-disk layout (default ddff12)")
    focus.add_argument("--from-rgbd", metavar="DIR", help="use the <scene>/rgb.png + depth_m.npy pairs of DIR instead of rendered scenes")
    focus.add_argument("--seed", type=int, default=0)
    focus.set_defaults(run=run_focus)


def run_events(args) -> int:
    from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence

    resolution = _resolution(args.resolution)
    out = check_output_dir(args.out, "--out")
    frames_each = int(round(args.seconds * args.fps))
    with progress(total=args.sequences * frames_each, desc="synth events", unit="frame") as bar:
        for index in range(args.sequences):
            spec = EventSequenceSpec(seconds=args.seconds, resolution=resolution, internal_fps=args.fps, seed=args.seed + index,
                                     **({} if args.layout == "dsec" else {"baseline_m": None}))  # only DSEC stores a right camera
            sequence = generate_event_sequence(spec, progress=bar.update)
            folder = write_event_sequence(sequence, out / f"sequence_{index:03d}", args.layout)
            bar.write(f"{folder}: {len(sequence.events):,} events, {len(sequence.frames)} frames, "
                       f"{len(sequence.depth_m)} depth maps")
    return 0


def run_focus(args) -> int:
    from anydepth.synth.focus_sets import generate_focus_dataset

    check_output_dir(args.out, "--out")
    with progress(total=args.samples, desc="synth focus", unit="stack") as bar:
        written = generate_focus_dataset(args.out, args.samples, args.layout, args.seed, args.from_rgbd, progress=bar.update)
    print(f"{args.samples} stacks in the {args.layout} layout: {len(written)} files under {args.out}")
    return 0
