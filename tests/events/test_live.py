"""Live DV sources: `LiveEvents`, `predict_live` and `anydepth events predict --live`, against a
dv-processing NetworkWriter on 127.0.0.1 (a thread of the test, or a separate process) sending
synthetic events."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import cv2
import numpy as np
import pytest

from anydepth.cli.main import main
from anydepth.errors import InputError
from anydepth.eventdepth import DepthStream, load_model
from tests.cli.test_events_predict import tiny_daer  # noqa: F401  (fixture)

dv = pytest.importorskip("dv_processing", reason="live tests need dv-processing (anydepth[live])")

from anydepth.eventdepth.live import predict_live  # noqa: E402
from anydepth.events.live import LiveEvents  # noqa: E402

SENSOR = (48, 64)  # (height, width)
T0 = 1_700_000_000_000_000  # µs, a Unix time as DV cameras stamp
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def packet_events(k: int, packet_us: int, per_packet: int, seed: int = 0):
    """Events of packet k: `per_packet` sorted times in [T0 + k P, T0 + (k + 1) P), random pixels."""
    rng = np.random.default_rng(seed + k)
    t = T0 + k * packet_us + np.sort(rng.integers(0, packet_us, per_packet))
    return rng.integers(0, SENSOR[1], per_packet), rng.integers(0, SENSOR[0], per_packet), t, rng.integers(0, 2, per_packet)


class DvWriter:
    """A dv-processing NetworkWriter in this process; a thread sends packets of `packet_us` µs of
    synthetic events, paced in real time (or as fast as possible), once a client is connected."""

    def __init__(self, packet_us: int = 5_000, per_packet: int = 300, packets: int | None = None, real_time: bool = True):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        stream = dv.io.Stream.EventStream(0, "events", "anydepth-test", (SENSOR[1], SENSOR[0]))
        self.writer = dv.io.NetworkWriter("127.0.0.1", self.port, stream)
        self.packet_us, self.per_packet, self.packets, self.real_time = packet_us, per_packet, packets, real_time
        self.sent = []  # (x, y, t, p) per packet
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def _send(self) -> None:
        while self.writer.getClientCount() == 0 and not self._stop.is_set():
            time.sleep(0.005)
        started, k = time.monotonic(), 0
        while not self._stop.is_set() and (self.packets is None or k < self.packets):
            x, y, t, p = packet_events(k, self.packet_us, self.per_packet)
            store = dv.EventStore()
            for xi, yi, ti, pi in zip(x.tolist(), y.tolist(), t.tolist(), p.tolist()):
                store.push_back(ti, xi, yi, bool(pi))
            self.writer.writeEvents(store)
            self.sent.append((x, y, t, p))
            k += 1
            if self.real_time:
                time.sleep(max(0.0, started + k * self.packet_us / 1e6 - time.monotonic()))

    def sent_arrays(self):
        return [np.concatenate(column) for column in zip(*self.sent)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + 10  # releasing the writer while a client is connected can hang dv-processing
        while self.writer.getClientCount() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.writer.getClientCount():
            time.sleep(0.2)
            del self.writer


@pytest.fixture
def tiny_model(tiny_daer):  # noqa: F811
    return load_model("depthanyevent-r", tiny_daer)


def test_live_windows_hold_every_event_sent(tmp_path):
    writer = DvWriter(packet_us=4_000, per_packet=250, packets=26, real_time=False)  # 104 ms of events
    try:
        with LiveEvents(writer.address, window_us=10_000, backlog=100) as source:
            assert source.sensor_size == SENSOR and source.name == "anydepth-test"
            windows = []
            for window in source.windows():
                windows.append(window)
                if len(windows) == 10:  # [T0, T0 + 100 ms): the 10 windows an event at >= 100 ms completes
                    break
            assert source.dropped == 0 and source.empty == 0
    finally:
        writer.close()
    x, y, t, p = writer.sent_arrays()
    first = int(t[0])
    for k, window in enumerate(windows):  # windows [t0 + k w, t0 + (k + 1) w) of the camera's clock
        inside = (t >= first + k * 10_000) & (t < first + (k + 1) * 10_000)
        assert window.sensor_size == SENSOR and len(window) == inside.sum() > 0
        assert np.array_equal(window.t, t[inside]) and np.array_equal(window.x, x[inside])
        assert np.array_equal(window.y, y[inside]) and np.array_equal(window.p, p[inside])


def test_predict_live_writes_depth_and_a_video(tiny_model, tmp_path):
    writer = DvWriter(packet_us=10_000, per_packet=400)
    try:
        with LiveEvents(writer.address, window_us=20_000) as source:
            results = list(predict_live(source, tiny_model, out_dir=tmp_path / "depth", video=tmp_path / "live.mp4",
                                        max_windows=3))
    finally:
        writer.close()
    assert [r.index for r in results] == [0, 1, 2]
    for result in results:
        assert result.latency_ms > 0 and np.isfinite(result.latency_ms) and result.count > 0
        assert result.depth.shape == SENSOR and np.isfinite(result.depth).all()
        assert np.array_equal(np.load(result.written[1]), result.depth)
    assert sorted(p.name for p in (tmp_path / "depth").iterdir()) == [f"depth_00000{k}.{ext}" for k in range(3) for ext in ("npy", "png")]
    capture = cv2.VideoCapture(str(tmp_path / "live.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3 and capture.get(cv2.CAP_PROP_FPS) == 50
    print(f"\nlive tiny model: latency {[round(r.latency_ms) for r in results]} ms, dropped {results[-1].dropped}")


class SlowStream(DepthStream):
    """A model far slower than real time: each window takes 150 ms more."""

    def step(self, window, **options):
        time.sleep(0.15)
        return super().step(window, **options)


def test_a_slow_model_skips_windows_and_never_falls_behind(tiny_model):
    writer = DvWriter(packet_us=10_000, per_packet=200)  # 100 windows of 10 ms per second, in real time
    try:
        with LiveEvents(writer.address, window_us=10_000, backlog=1) as source:
            stream = SlowStream(tiny_model)
            results = list(predict_live(source, tiny_model, stream=stream, max_windows=6))
    finally:
        writer.close()
    dropped, delivered, completed = source.dropped, source.delivered, source.completed  # closed: final counts
    assert delivered == 6 and dropped >= 20  # ~15 windows complete during each 150 ms step; all but one dropped
    assert completed - delivered - dropped in (0, 1)  # the rest is at most the one window waiting
    assert [r.dropped for r in results] == sorted(r.dropped for r in results) and results[-1].dropped <= dropped
    latencies = [r.latency_ms for r in results[1:]]
    step_ms = 150 + stream.mean_latency_ms  # one window's work
    assert max(latencies) < 3 * step_ms  # one step plus the waiting window; a queue of everything would reach 5 steps
    starts = [r.t0_us for r in results]
    assert all(later - earlier >= 10_000 * 5 for earlier, later in zip(starts, starts[1:]))  # skipped ahead in time
    print(f"\nslow model: {delivered} windows, {dropped} dropped, latency {[round(v) for v in latencies]} ms")


def test_ctrl_c_stops_cleanly_with_outputs_closed(tiny_daer, tmp_path):  # noqa: F811
    writer = DvWriter(packet_us=10_000, per_packet=300)
    out, video = tmp_path / "depth", tmp_path / "live.mp4"
    command = [sys.executable, "-m", "anydepth.cli.main", "events", "predict", "--live", writer.address,
               "--weights", str(tiny_daer), "--window-ms", "20", "--out", str(out), "--video", str(video), "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("depth_*.npy"))) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        writer.close()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "window 0:" in stdout and "latency" in stdout, stdout + stderr
    summary = [line for line in stdout.splitlines() if line.startswith("live interrupted:")]
    assert len(summary) == 1 and "dropped" in summary[0], stdout
    depths = sorted(out.glob("depth_*.npy"))
    assert len(depths) >= 3 and len(list(out.glob("depth_*.png"))) == len(depths)
    assert not list(out.glob(".*")) and not list(tmp_path.glob(".*"))  # no half-written temporary files
    for path in depths:
        assert np.load(path).shape == SENSOR
    capture = cv2.VideoCapture(str(video))  # closed: readable to its last frame
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == len(depths)
    print(f"\n{summary[0]}")


WRITER_PROCESS = textwrap.dedent("""
    import sys, time
    import dv_processing as dv
    port, packets = int(sys.argv[1]), int(sys.argv[2])
    writer = dv.io.NetworkWriter("127.0.0.1", port, dv.io.Stream.EventStream(0, "events", "DVXplorer_test", (64, 48)))
    print("listening", flush=True)
    while writer.getClientCount() == 0:
        time.sleep(0.005)
    for k in range(packets):
        store = dv.EventStore()
        for i in range(200):
            store.push_back(1_700_000_000_000_000 + k * 10_000 + i * 50, (i * 7) % 64, (i * 5) % 48, bool(i % 2))
        writer.writeEvents(store)
    time.sleep(0.5)
""")


def test_the_cli_ends_when_the_source_stops(tiny_daer, tmp_path, capsys):  # noqa: F811
    port = free_port()
    source = subprocess.Popen([sys.executable, "-c", WRITER_PROCESS, str(port), "8"], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert source.stdout.readline().strip() == "listening"
        code = main(["events", "predict", "--live", f"tcp://127.0.0.1:{port}", "--weights", str(tiny_daer),
                     "--window-ms", "20", "--out", str(tmp_path / "depth"), "--device", "cpu"])
    finally:
        source.wait(timeout=30)
        source.stdout.close()
    assert code == 0
    out = capsys.readouterr().out
    assert "live source stopped:" in out and "1600 events received" in out, out
    assert len(list((tmp_path / "depth").glob("depth_*.npy"))) >= 1


def test_live_errors_are_one_line(tiny_daer, tmp_path, monkeypatch, capsys):  # noqa: F811
    closed_port = free_port()
    base = ["events", "predict", "--weights", str(tiny_daer), "--out", str(tmp_path), "--device", "cpu"]
    cases = [
        (["--live", f"tcp://127.0.0.1:{closed_port}"], "cannot connect"),
        (["--live", "udp://somewhere"], "expected tcp://HOST:PORT"),
        (["--live", "tcp://127.0.0.1:1", "--window-events", "100"], "--window-ms"),
        (["recording.npz", "--live", "camera"], "one of the two"),
        ([], "one of the two"),
    ]
    for extra, words in cases:
        assert main(base + extra) == 1, extra
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("anydepth events predict: error:") and words in lines[0], lines
    monkeypatch.setitem(sys.modules, "dv_processing", None)  # as if dv-processing were not installed
    assert main(base + ["--live", "tcp://127.0.0.1:7777"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("install anydepth[live]"), lines
    with pytest.raises(InputError, match=r"install anydepth\[live\]"):
        LiveEvents("tcp://127.0.0.1:7777")
