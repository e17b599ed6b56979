"""`anydepth events`: look at event recordings."""

from __future__ import annotations

from tqdm import tqdm

from anydepth.events.render import count_windows, describe_recording, render_recording, write_video
from anydepth.events.representations import REPRESENTATIONS


def add_parser(commands) -> None:
    parser = commands.add_parser("events", help="event recordings: info, render",
                                 description="Event camera recordings (DSEC, MVSEC, AEDAT4, .npz/.h5/.txt).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    info = actions.add_parser("info", help="sensor size, event count, duration and rate of a recording")
    info.add_argument("file", help="recording")
    info.set_defaults(run=run_info)

    render = actions.add_parser("render", help="one picture per time window (PNG, optional mp4/gif)")
    render.add_argument("file", help="recording")
    render.add_argument("--repr", default="tencode", choices=list(REPRESENTATIONS), help="representation (default tencode)")
    render.add_argument("--window-ms", type=float, default=50.0, help="window length in ms (default 50)")
    render.add_argument("--bins", type=int, default=5, help="voxel grid bins (default 5)")
    render.add_argument("--out", default="events-render", help="output folder (default ./events-render)")
    render.add_argument("--video", metavar="OUT.mp4|OUT.gif", help="also assemble the frames into a video")
    render.add_argument("--fps", type=float, default=20.0, help="video frame rate (default 20)")
    render.set_defaults(run=run_render)


def run_info(args) -> int:
    for line in describe_recording(args.file).lines():
        print(line)
    return 0


def run_render(args) -> int:
    total = count_windows(args.file, args.window_ms)
    frames = list(tqdm(render_recording(args.file, args.out, args.repr, args.window_ms, args.bins),
                       total=total, desc="render", unit="window", disable=None))
    print(f"{len(frames)} windows of {args.window_ms:g} ms rendered as {args.repr} in {args.out}")
    if args.video:
        print(f"video: {write_video(frames, args.video, args.fps)}")
    return 0
