"""Decoding throughput of the iniVation readers (AEDAT 2.0, 3.1, 4) on one synthetic stream, and of
the AEDAT4 decoders people use today (`aedat`, Rust; iniVation's `dv-processing`, C++) on the same
AEDAT4 file in the same run.

    python benchmarks/inivation_formats.py                 # 10 M events, DAVIS346 (260x346)
    python benchmarks/inivation_formats.py --events 2000000

The AEDAT4 file is written by dv-processing (LZ4, its default); the AEDAT 2.0 / 3.1 files by the
layouts of jAER and cAER (no maintained package writes them). "open" is the indexing pass;
"windows" is every event through `windows(window_us=50_000)` (lazy, bounded memory; dv-processing's
windowed API is `getEventsTimeRange`); "whole file" is `read_all()` (dv-processing: every batch of
`getNextEventBatch`, each dropped after counting; "one array" also joins them into one array, as
`read_all` must: its fresh memory costs the kernel's page zeroing). Every path opens the file
itself. The repeats run round-robin (warm: one untimed round first), one thread; prints M events/s
(best of --repeats) and the ratios to the peer. No maintained Python package reads AEDAT 2.0 / 3.1
without pulling torch (tonic), so those rows have no peer.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from anydepth.events.readers import open_events

HEIGHT, WIDTH = 260, 346


def make_events(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, WIDTH, n).astype(np.int64)
    y = rng.integers(0, HEIGHT, n).astype(np.int64)
    t = 1_000_000 + np.cumsum(rng.integers(0, 2, n))  # ~2 M events/s
    p = rng.integers(0, 2, n).astype(np.int64)
    return x, y, t.astype(np.int64), p


def write_aedat2(path: Path, x, y, t, p) -> None:
    records = np.empty(len(x), dtype=[("a", ">u4"), ("t", ">u4")])
    records["a"] = ((HEIGHT - 1 - y) << 22) | ((WIDTH - 1 - x) << 12) | (p << 11)
    records["t"] = t % (1 << 32)
    path.write_bytes(b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.Davis346B\r\n" + records.tobytes())


def write_aedat31(path: Path, x, y, t, p, packet: int = 4096) -> None:
    with open(path, "wb") as handle:
        handle.write(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DAVIS346B\r\n#!END-HEADER\r\n")
        records = np.empty(len(x), dtype=[("data", "<u4"), ("t", "<i4")])
        records["data"] = (x << 17) | (y << 2) | (p << 1) | 1
        records["t"] = t & 0x7FFFFFFF
        for i in range(0, len(x), packet):
            chunk = records[i:i + packet]
            overflow = int(t[i] >> 31)
            handle.write(struct.pack("<hhiiiiii", 1, 1, 8, 4, overflow, len(chunk), len(chunk), len(chunk)))
            handle.write(chunk.tobytes())


def write_aedat4(path: Path, x, y, t, p, packet: int = 10_000) -> None:
    import dv_processing as dv
    config = dv.io.MonoCameraWriter.Config("Benchmark")
    config.addEventStream((WIDTH, HEIGHT))
    writer = dv.io.MonoCameraWriter(str(path), config)
    for i in range(0, len(x), packet):
        store = dv.EventStore()
        for xi, yi, ti, pi in zip(x[i:i + packet].tolist(), y[i:i + packet].tolist(), t[i:i + packet].tolist(),
                                  p[i:i + packet].tolist()):
            store.push_back(ti, xi, yi, bool(pi))
        writer.writeEvents(store)
    del writer


def best_of_round_robin(repeats: int, cases: list) -> list:
    """cases [(format, decoder, function)] -> [(format, decoder, best seconds, events)]; one untimed
    round, then `repeats` rounds with every case once per round (noise hits all of them alike)."""
    best, counts = [float("inf")] * len(cases), [0] * len(cases)
    for round_ in range(repeats + 1):
        for i, (_, _, function) in enumerate(cases):
            start = time.perf_counter()
            counts[i] = function()
            if round_:
                best[i] = min(best[i], time.perf_counter() - start)
    return [(name, decoder, seconds, count) for (name, decoder, _), seconds, count in zip(cases, best, counts)]


def ours(path: Path) -> int:
    with open_events(path) as reader:
        return sum(len(window) for window in reader.windows(window_us=50_000))


def ours_all(path: Path) -> int:
    with open_events(path) as reader:
        return len(reader.read_all())


def ours_open(path: Path) -> int:
    with open_events(path) as reader:
        return len(reader)


def aedat_rust(path: Path) -> int:
    import aedat
    return sum(len(packet["events"]) for packet in aedat.Decoder(str(path)) if "events" in packet)


def dv_processing(path: Path) -> int:
    import dv_processing as dv
    recording, count = dv.io.MonoCameraRecording(str(path)), 0
    while True:
        batch = recording.getNextEventBatch()
        if batch is None:
            return count
        count += len(batch.numpy())


def dv_processing_one_array(path: Path) -> int:
    import dv_processing as dv
    recording, batches = dv.io.MonoCameraRecording(str(path)), []
    while (batch := recording.getNextEventBatch()) is not None:
        batches.append(batch.numpy())
    return len(np.concatenate(batches))


def dv_processing_windows(path: Path, window_us: int = 50_000) -> int:
    import dv_processing as dv
    recording, count = dv.io.MonoCameraRecording(str(path)), 0
    start, end = recording.getTimeRange()
    for t0 in range(start, end + 1, window_us):
        batch = recording.getEventsTimeRange(t0, min(t0 + window_us, end + 1))
        if batch is not None:
            count += len(batch.numpy())
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x, y, t, p = make_events(args.events)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files = {"AEDAT 2.0": folder / "davis.aedat", "AEDAT 3.1": folder / "davis31.aedat", "AEDAT4": folder / "dv.aedat4"}
        write_aedat2(files["AEDAT 2.0"], x, y, t, p)
        write_aedat31(files["AEDAT 3.1"], x, y, t, p)
        write_aedat4(files["AEDAT4"], x, y, t, p)
        cases = []
        for name, path in files.items():
            cases.append((name, "anydepth open (index)", lambda path=path: ours_open(path)))
            cases.append((name, "anydepth windows(50 ms)", lambda path=path: ours(path)))
            cases.append((name, "anydepth whole file", lambda path=path: ours_all(path)))
        aedat4 = files["AEDAT4"]
        cases.append(("AEDAT4", "aedat (Rust, whole file)", lambda: aedat_rust(aedat4)))
        cases.append(("AEDAT4", "dv-processing windows(50 ms)", lambda: dv_processing_windows(aedat4)))
        cases.append(("AEDAT4", "dv-processing whole file", lambda: dv_processing(aedat4)))
        cases.append(("AEDAT4", "dv-processing whole file, one array", lambda: dv_processing_one_array(aedat4)))
        rows = best_of_round_robin(args.repeats, cases)
    print(f"{args.events:,} events at {HEIGHT}x{WIDTH}, best of {args.repeats} (round-robin), one thread")
    print(f"{'format':10} {'decoder':36} {'seconds':>8} {'M ev/s':>8}")
    for name, decoder, seconds, count in rows:
        assert count == args.events, (name, decoder, count)
        print(f"{name:10} {decoder:36} {seconds:8.3f} {count / seconds / 1e6:8.1f}")
    seconds = {(name, decoder): value for name, decoder, value, _ in rows}
    for path_name in ("windows(50 ms)", "whole file"):
        peer = min(value for (name, decoder), value in seconds.items()
                   if name == "AEDAT4" and not decoder.startswith("anydepth") and path_name in decoder)
        print(f"AEDAT4 anydepth {path_name} vs dv-processing {path_name}: "
              f"{peer / seconds[('AEDAT4', 'anydepth ' + path_name)]:.2f}x")
    one_array = seconds[("AEDAT4", "dv-processing whole file, one array")]
    print(f"AEDAT4 anydepth whole file vs dv-processing whole file, one array: "
          f"{one_array / seconds[('AEDAT4', 'anydepth whole file')]:.2f}x")
    fastest_peer = min(value for (name, decoder), value in seconds.items()
                       if name == "AEDAT4" and not decoder.startswith("anydepth"))
    print(f"AEDAT4 anydepth windows vs fastest peer (any path): "
          f"{fastest_peer / seconds[('AEDAT4', 'anydepth windows(50 ms)')]:.2f}x")


if __name__ == "__main__":
    main()
