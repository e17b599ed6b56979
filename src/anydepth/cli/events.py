"""`anydepth events`: look at event recordings."""

from __future__ import annotations

import argparse

from anydepth.cli import events_convert, events_eval, events_live, events_pseudolabel, events_train
from anydepth.cli.common import (add_backend, add_network, add_out, add_repair, add_weights, check_network,
                                 check_output_dir, check_output_file, positive_float, positive_int, progress,
                                 with_backend)
from anydepth.errors import InputError
from anydepth.events.render import count_windows, describe_recording, render_recording, write_video
from anydepth.events.representations import REPRESENTATIONS
from anydepth.eventdepth import MODELS, DepthStream, load_model


def sensor_size_arg(text: str) -> tuple[int, int]:
    """--sensor-size HxW (e.g. 260x346) -> (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 260x346, got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"sensor size must be positive, got {text!r}")
    return height, width


def _add_sensor_size(parser) -> None:
    parser.add_argument("--sensor-size", type=sensor_size_arg, metavar="HxW",
                        help="sensor height x width for files that do not state it (.npy, .csv, .txt, .h5)")


def add_parser(commands) -> None:
    parser = commands.add_parser("events", help="event recordings: info, render, predict; pseudolabel, train, eval",
                                 description="Event camera recordings (DSEC, MVSEC, AEDAT4, .npz/.h5/.txt).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    info = actions.add_parser("info", help="sensor size, event count, duration and rate of a recording")
    info.add_argument("file", help="recording")
    _add_sensor_size(info)
    add_repair(info)
    info.set_defaults(run=run_info)

    render = actions.add_parser("render", help="one picture per time window (PNG, optional mp4/gif)")
    render.add_argument("file", help="recording")
    render.add_argument("--repr", default="tencode", choices=list(REPRESENTATIONS), help="representation (default tencode)")
    render.add_argument("--window-ms", type=positive_float, default=50.0, help="window length in ms (default 50)")
    render.add_argument("--bins", type=positive_int, default=5, help="voxel grid bins (default 5)")
    add_out(render, "events-render")
    render.add_argument("--video", metavar="OUT.mp4|OUT.gif", help="also assemble the frames into a video")
    render.add_argument("--fps", type=positive_float, default=20.0, help="video frame rate (default 20)")
    _add_sensor_size(render)
    add_repair(render)
    render.set_defaults(run=run_render)

    predict = actions.add_parser("predict", help="stream a recording through an event depth model",
                                 description="Depth per window of any supported recording, with the recurrent state "
                                 "carried from window to window. Writes depth_<k>.png (colour) and depth_<k>.npy "
                                 "(float32: metres for E2Depth/EReFormer, relative depth for DepthAnyEvent).")
    predict.add_argument("file", nargs="?", help="recording (or --live)")
    predict.add_argument("--live", metavar="ADDRESS", help=events_live.LIVE_HELP)
    predict.add_argument("--model", default="depthanyevent-r", choices=list(MODELS), help="student (default depthanyevent-r)")
    add_weights(predict, "checkpoint of that model (official container or anydepth's)", required=True)
    predict.add_argument("--encoder", choices=("vits", "vitb", "vitl"),
                         help="DepthAnyEvent encoder to expect; checked against the file")
    window = predict.add_mutually_exclusive_group()
    window.add_argument("--window-ms", type=positive_float, help="time window per prediction (default 50 ms)")
    window.add_argument("--window-events", type=positive_int, help="events per prediction instead of a time window")
    add_out(predict, "events-depth")
    predict.add_argument("--video", metavar="OUT.mp4|OUT.gif", help="also write a side-by-side video (events | depth)")
    add_network(predict)
    add_backend(predict)
    _add_sensor_size(predict)
    add_repair(predict)
    predict.set_defaults(run=run_predict)
    events_pseudolabel.add_action(actions)
    events_train.add_action(actions)
    events_eval.add_action(actions)
    events_convert.add_action(actions)


def run_info(args) -> int:
    for line in describe_recording(args.file, sensor_size=args.sensor_size, repair=args.repair).lines():
        print(line)
    return 0


def run_render(args) -> int:
    check_output_dir(args.out, "--out")
    if args.video:
        check_output_file(args.video, "--video", (".mp4", ".gif"))
    total = count_windows(args.file, args.window_ms, sensor_size=args.sensor_size, repair=args.repair)
    frames = list(progress(render_recording(args.file, args.out, args.repr, args.window_ms, args.bins, args.sensor_size,
                                            args.repair),
                           total=total, desc="render", unit="window"))
    print(f"{len(frames)} windows of {args.window_ms:g} ms rendered as {args.repr} in {args.out}")
    if args.video:
        print(f"video: {write_video(frames, args.video, args.fps)}")
    return 0


def run_predict(args) -> int:
    from anydepth.eventdepth.stream import predict_recording

    if (args.file is None) == (args.live is None):
        raise InputError("give a recording or --live ADDRESS (one of the two)")
    check_output_dir(args.out, "--out")
    if args.video:
        check_output_file(args.video, "--video", (".mp4", ".gif"))
    device = check_network(args)
    window_us = None if args.window_events else int(round((args.window_ms or 50.0) * 1000))
    if window_us is not None and window_us <= 0:
        raise InputError(f"--window-ms {args.window_ms:g} is shorter than 1 µs")
    total = None  # the recording is opened (and checked) before the model loads
    if args.file is not None:
        total = (-(-describe_recording(args.file, sensor_size=args.sensor_size, repair=args.repair).count
                   // args.window_events) if args.window_events else count_windows(args.file, window_us / 1000, sensor_size=args.sensor_size,
                                                          repair=args.repair))
    model = load_model(args.model, args.weights).to(device)
    if args.encoder and getattr(model.config, "encoder", args.encoder) != args.encoder:
        raise InputError(f"{args.weights}: holds a {model.config.encoder} model, not {args.encoder}")
    model = with_backend(args, model)
    if args.live:
        return events_live.run_live(args, model, device)
    stream = DepthStream(model, precision=args.precision)
    results = predict_recording(args.file, model, window_us, args.window_events, args.out, args.video, stream=stream,
                                sensor_size=args.sensor_size, repair=args.repair)
    count = sum(1 for _ in progress(results, total=total, desc="depth", unit="window"))
    print(f"{count} windows -> {args.out}; mean latency {stream.mean_latency_ms:.1f} ms per window "
          f"(first window {stream.first_latency_ms:.0f} ms; {args.model}, {device})")
    if args.video:
        print(f"video: {args.video}")
    return 0
