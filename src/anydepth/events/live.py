"""Live events from a running DV source (iniVation `dv-processing`), cut into time windows.

    with LiveEvents("tcp://127.0.0.1:7777", window_us=50_000) as source:
        for window in source.windows():        # EventArray, newest complete window first served
            ...

Sources (`address`): `tcp://HOST:PORT`, a DV network output (DV's "Network TCP server" output
module, or `dv_processing.io.NetworkWriter`); `camera`, the first connected iniVation camera;
`camera:SERIAL`, the camera with that serial number. Needs the optional `dv-processing` package
(`pip install anydepth[live]`).

Windows and the dropping policy: a background thread receives event batches as they arrive and cuts
them into windows [t0 + k w, t0 + (k + 1) w) of the camera's clock (t0 = the first event received,
w = window_us). A window is complete when the first event at or after its end arrives, or when the
source stops (the last, partial window). Complete windows wait in a queue of `backlog` windows
(default 1). When the consumer (a model) is slower than real time and a window completes while the
queue is full, the oldest waiting window is dropped and counted in `dropped`: the consumer always
gets the newest windows, is never more than `backlog` windows behind, and memory stays bounded
(the queue plus the window being filled). Windows without events are not queued (counted in `empty`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.container import EventArray
from anydepth.fileio import first_line

INSTALL_HINT = "live streams need the dv-processing package: install anydepth[live]"


def import_dv():
    """The `dv_processing` module, or an InputError naming the extra to install."""
    try:
        import dv_processing
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return dv_processing


@dataclass(frozen=True)
class LiveAddress:
    """A parsed `address`: kind "tcp" (host, port) or "camera" (serial, None = the first one)."""

    kind: str
    host: str | None = None
    port: int | None = None
    serial: str | None = None

    @classmethod
    def parse(cls, address: str) -> "LiveAddress":
        text = str(address).strip()
        if text == "camera":
            return cls("camera")
        if text.startswith("camera:") and len(text) > len("camera:"):
            return cls("camera", serial=text[len("camera:"):])
        if text.startswith("tcp://"):
            host, _, port = text[len("tcp://"):].rpartition(":")
            if host and port.isdigit() and 0 < int(port) < 65536:
                return cls("tcp", host=host.strip("[]"), port=int(port))
        raise InputError(f"live address {text!r}: expected tcp://HOST:PORT, camera or camera:SERIAL")

    def __str__(self) -> str:
        if self.kind == "tcp":
            return f"tcp://{self.host}:{self.port}"
        return "camera" if self.serial is None else f"camera:{self.serial}"


def _open_source(address: LiveAddress):
    """A dv-processing input (NetworkReader or camera) with an event stream; InputError otherwise."""
    dv = import_dv()
    try:
        if address.kind == "tcp":
            source = dv.io.NetworkReader(address.host, address.port)
        else:
            cameras = dv.io.camera.discover()
            chosen = [c for c in cameras if address.serial is None or c.serialNumber == address.serial]
            if not chosen:
                found = ", ".join(f"{c.cameraModel} {c.serialNumber}" for c in cameras) or "none"
                raise InputError(f"live source {address}: no such iniVation camera connected (found: {found})")
            source = dv.io.camera.open(chosen[0])
    except InputError:
        raise
    except Exception as error:  # boost/asio and libcaer errors come as RuntimeError, IndexError, ...
        raise InputError(f"live source {address}: cannot connect ({first_line(error)})") from None
    if not source.isEventStreamAvailable():
        raise InputError(f"live source {address}: it sends no event stream")
    return source


class LiveEvents:
    """Windows of `window_us` µs of the events of a running DV source (see the module docstring).

    Attributes: `sensor_size` (height, width) and `name` of the source; counters `completed`
    (windows with events that completed), `delivered`, `dropped` (skipped because the consumer was
    behind), `empty` (windows without events), `events` (received); `last_completed_s`, the
    `time.monotonic()` at which the window last yielded completed (for latency).
    Close it (or use it as a context manager) to stop the receiving thread and disconnect.
    """

    def __init__(self, address: str, window_us: int = 50_000, backlog: int = 1, poll_s: float = 0.002):
        if int(window_us) != window_us or window_us <= 0:
            raise InputError(f"live window must be a positive whole number of µs, got {window_us}")
        if int(backlog) != backlog or backlog < 1:
            raise InputError(f"backlog must be at least one window, got {backlog}")
        self.address = LiveAddress.parse(address)
        self.window_us, self.backlog, self.poll_s = int(window_us), int(backlog), float(poll_s)
        self._source = _open_source(self.address)
        width, height = self._source.getEventResolution()
        self.sensor_size = (int(height), int(width))
        self.name = str(self._source.getCameraName())
        self.completed = self.delivered = self.dropped = self.empty = self.events = 0
        self.last_completed_s: float | None = None
        self._queue: deque[tuple[EventArray, float]] = deque()
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self._finished = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._receive, name=f"anydepth-live {self.address}", daemon=True)
        self._thread.start()

    # ---- receiving thread ---------------------------------------------------------------------
    def _receive(self) -> None:
        pending: list[np.ndarray] = []  # structured batches (timestamp, x, y, polarity) of the open window
        window_end = None
        try:
            while not self._stopping.is_set():
                batch = self._source.getNextEventBatch()
                if batch is None or batch.size() == 0:
                    if not self._source.isRunning():
                        break
                    time.sleep(self.poll_s)
                    continue
                rows = batch.numpy()
                self.events += len(rows)
                if window_end is None:
                    window_end = int(rows["timestamp"][0]) + self.window_us
                while len(rows) and int(rows["timestamp"][-1]) >= window_end:  # the batch closes windows
                    cut = int(np.searchsorted(rows["timestamp"], window_end, side="left"))
                    self._complete(pending + [rows[:cut]])
                    pending, rows = [], rows[cut:]
                    window_end += self.window_us
                    gap = (int(rows["timestamp"][0]) - window_end) // self.window_us if len(rows) else 0
                    if gap > 0:  # silence: whole windows without events
                        self.empty += gap
                        window_end += gap * self.window_us
                pending.append(rows)
            if pending:
                self._complete(pending)  # the last, partial window of a source that stopped
        except BaseException as error:  # handed to the consumer
            self._error = error
        finally:
            with self._ready:
                self._finished = True
                self._ready.notify_all()

    def _complete(self, parts: list[np.ndarray]) -> None:
        rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if not len(rows):
            self.empty += 1
            return
        events = EventArray.from_arrays(rows["x"], rows["y"], rows["timestamp"], rows["polarity"], self.sensor_size,
                                        source=str(self.address))
        with self._ready:
            self.completed += 1
            if len(self._queue) == self.backlog:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((events, time.monotonic()))
            self._ready.notify_all()

    # ---- consumer ---------------------------------------------------------------------------
    def windows(self, stop: threading.Event | None = None) -> Iterator[EventArray]:
        """Complete windows as they come, oldest waiting first, until the source stops, `stop` is
        set, or the source is closed. Errors of the receiving thread (a FormatError for unsorted
        or out-of-sensor events) are raised here."""
        while True:
            with self._ready:
                while not self._queue and not self._finished and not (stop is not None and stop.is_set()):
                    self._ready.wait(0.05)
                if stop is not None and stop.is_set():
                    return
                if not self._queue:
                    break
                events, self.last_completed_s = self._queue.popleft()
                self.delivered += 1
            yield events
        if self._error is not None:
            if isinstance(self._error, FormatError | InputError):
                raise self._error
            raise InputError(f"live source {self.address}: {first_line(self._error)}") from self._error

    def close(self) -> None:
        """Stop receiving and disconnect (idempotent)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._source = None  # the dv-processing reader disconnects when released

    def __enter__(self) -> "LiveEvents":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"LiveEvents({str(self.address)!r}, {self.name!r}, sensor {self.sensor_size[0]}x{self.sensor_size[1]}, "
                f"window {self.window_us} µs, {self.delivered} delivered, {self.dropped} dropped)")


__all__ = ["INSTALL_HINT", "LiveAddress", "LiveEvents", "import_dv"]
