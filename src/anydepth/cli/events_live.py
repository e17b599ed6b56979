"""`anydepth events predict --live ADDRESS`: depth from a running DV source until Ctrl-C."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np

from anydepth.errors import InputError

LIVE_HELP = ("stream from a running DV source instead of a file: tcp://HOST:PORT (a DV network output), camera "
             "(the first iniVation camera) or camera:SERIAL; needs anydepth[live]. Runs until the source stops or "
             "Ctrl-C; when the model is slower than real time it skips windows (counted), never falls behind")


def run_live(args, model, device: str) -> int:
    """Run `predict_live` with the predict subcommand's arguments; Ctrl-C finishes the window in
    progress, closes the outputs and prints the summary (a second Ctrl-C aborts)."""
    from anydepth.eventdepth import DepthStream
    from anydepth.eventdepth.live import predict_live
    from anydepth.events.live import LiveEvents

    if args.window_events:
        raise InputError("--live cuts windows by time: use --window-ms, not --window-events")
    window_us = int(round((args.window_ms or 50.0) * 1000))
    if window_us <= 0:
        raise InputError(f"window must be at least 1 µs, got {args.window_ms} ms")
    stop = threading.Event()

    def on_interrupt(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    stream = DepthStream(model, precision=args.precision)
    latencies_ms = []
    try:
        with LiveEvents(args.live, window_us=window_us) as source:
            print(f"live: {source.name} at {source.address}, sensor {source.sensor_size[0]}x{source.sensor_size[1]}, "
                  f"windows of {window_us / 1000:g} ms; Ctrl-C stops", flush=True)
            shown = time.monotonic()
            results = predict_live(source, model, args.out, args.video, stream=stream, stop=stop)
            try:
                for result in results:
                    latencies_ms.append(result.latency_ms)
                    if time.monotonic() - shown >= 1.0 or result.index == 0:
                        shown = time.monotonic()
                        print(f"window {result.index}: {result.count} events, latency {result.latency_ms:.0f} ms "
                              f"(model {1000 * stream.step_seconds[-1]:.0f} ms), {result.dropped} dropped", flush=True)
            finally:
                results.close()
            reason = "interrupted" if stop.is_set() else "source stopped"
            median = f"{np.median(latencies_ms):.0f} ms" if latencies_ms else "n/a"
            print(f"live {reason}: {source.delivered} windows -> {args.out}, {source.dropped} dropped (model slower than "
                  f"real time), {source.empty} empty; median latency {median}, model {stream.mean_latency_ms:.1f} ms per "
                  f"window ({args.model}, {device}); {source.events} events received", flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.video:
        print(f"video: {args.video}")
    return 0
