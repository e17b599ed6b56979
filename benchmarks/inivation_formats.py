"""Decoding throughput of the iniVation readers (AEDAT 2.0, 3.1, 4) on one synthetic stream, and of
the AEDAT4 decoders people use today (`aedat`, Rust; iniVation's `dv-processing`, C++) on the same
AEDAT4 file in the same run, access mode by access mode.

    OMP_NUM_THREADS=1 python benchmarks/inivation_formats.py --repeats 5   # 10 M events, DAVIS346
    python benchmarks/inivation_formats.py --events 2000000 --repeats 2      # quick
    python benchmarks/inivation_formats.py --breakdown     # also where read_all's time goes

The AEDAT4 file is written by dv-processing (LZ4, its default; packets of 10,000 events); the
AEDAT 2.0 / 3.1 files by the layouts of jAER and cAER (no maintained package writes them). Modes,
each compared only with the peers' same mode:

- "open": the indexing pass (`len(reader)`).
- "windows": every event through 50 ms windows: `windows(window_us=50_000)` (lazy, bounded memory)
  vs dv-processing's `getEventsTimeRange`.
- "streamed": every event once in the file's own batches, each dropped after counting:
  `chunks()` (one checked EventArray per packet) vs dv-processing's `getNextEventBatch` and the
  packets of `aedat.Decoder`.
- "one array": the whole file in one array: `read_all()` vs the peers' batches joined with
  `np.concatenate`. Fresh memory costs the kernel's page zeroing here, which streamed batches
  (reused heap memory) do not pay; "read_all vs streamed peers" is printed for that reason.

Every path opens the file itself. The repeats run round-robin (warm: one untimed round first), one
thread; prints M events/s (best of --repeats) and, per mode, anydepth against the fastest peer of
that mode: the ratio of best times and the median of the per-round ratios. No maintained Python
package reads AEDAT 2.0 / 3.1 without pulling torch (tonic), so those rows have no peer.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from anydepth.events.readers import open_events
from anydepth.events.readers.chunked import fresh_arrays

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


def round_robin(repeats: int, cases: list) -> list:
    """cases [(format, mode, decoder, function)] -> [(format, mode, decoder, [seconds per round],
    events)]; one untimed round, then `repeats` rounds with every case once per round (noise hits
    all of them alike)."""
    times, counts = [[] for _ in cases], [0] * len(cases)
    for round_ in range(repeats + 1):
        for i, (*_, function) in enumerate(cases):
            start = time.perf_counter()
            counts[i] = function()
            if round_:
                times[i].append(time.perf_counter() - start)
    return [(name, mode, decoder, seconds, count) for (name, mode, decoder, _), seconds, count in zip(cases, times, counts)]


def ours_open(path: Path) -> int:
    with open_events(path) as reader:
        return len(reader)


def ours_windows(path: Path) -> int:
    with open_events(path) as reader:
        return sum(len(window) for window in reader.windows(window_us=50_000))


def ours_chunks(path: Path) -> int:
    with open_events(path) as reader:
        return sum(len(chunk) for chunk in reader.chunks())


def ours_all(path: Path) -> int:
    with open_events(path) as reader:
        return len(reader.read_all())


def aedat_packets(path: Path):
    import aedat
    return (packet["events"] for packet in aedat.Decoder(str(path)) if "events" in packet)


def dv_batches(path: Path):
    import dv_processing as dv
    recording = dv.io.MonoCameraRecording(str(path))
    while (batch := recording.getNextEventBatch()) is not None:
        yield batch.numpy()


def dv_processing_windows(path: Path, window_us: int = 50_000) -> int:
    import dv_processing as dv
    recording, count = dv.io.MonoCameraRecording(str(path)), 0
    start, end = recording.getTimeRange()
    for t0 in range(start, end + 1, window_us):
        batch = recording.getEventsTimeRange(t0, min(t0 + window_us, end + 1))
        if batch is not None:
            count += len(batch.numpy())
    return count


def streamed(batches) -> int:
    return sum(len(batch) for batch in batches)


def one_array(batches) -> int:
    return len(np.concatenate(list(batches)))


def breakdown(path: Path, repeats: int) -> list[str]:
    """Where `read_all()` spends its time on an AEDAT4 LZ4 file (best of `repeats`, round-robin):
    LZ4 alone (liblz4 into the reused buffer, the decode_packets loop without the copy), the
    packet kernel into warm arrays (+ copy and check), into fresh arrays (+ the OS zeroing the
    fresh pages), and `read_all()` from opening to closing (+ open, map, close)."""
    import ctypes

    from anydepth.events.readers import aedat4
    reader = open_events(path)
    offsets, sizes, _ = reader._kernel_packets
    context, options = reader._kernel_lz4
    decompress = ctypes.CFUNCTYPE(ctypes.c_size_t, *[ctypes.c_void_p] * 6)(
        ctypes.cast(aedat4.Lz4FrameDecoder._load().LZ4F_decompress, ctypes.c_void_p).value)
    written, read = ctypes.c_size_t(), ctypes.c_size_t()
    scratch, base = reader._scratch, reader._file_bytes.ctypes.data

    def lz4_only() -> None:
        for offset, size in zip(offsets.tolist(), sizes.tolist()):
            written.value, read.value = len(scratch), size
            decompress(context, scratch.ctypes.data, ctypes.addressof(written), base + offset,
                       ctypes.addressof(read), options)

    count, warm = len(reader), None

    def kernel(fresh: bool) -> None:
        nonlocal warm
        outputs = warm if warm is not None and not fresh else fresh_arrays(count)
        warm = warm if warm is not None else outputs
        assert reader._decode_packets(0, len(offsets), 0, None, outputs, 0, np.iinfo(np.int64).min)[1] == count

    steps = [("LZ4 only", lz4_only), ("+ copy and check (warm arrays)", lambda: kernel(False)),
             ("+ fresh arrays", lambda: kernel(True)), ("read_all() (+ open, map, close)", lambda: ours_all(path)),
             ("chunks()", lambda: ours_chunks(path))]
    rows = round_robin(repeats, [("AEDAT4", "breakdown", name, function) for name, function in steps])
    reader.close()
    return [f"AEDAT4 read_all() breakdown, best of {repeats}:"] + [
        f"  {name:34} {min(seconds) * 1e3:7.1f} ms" for _, _, name, seconds, _ in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="also time the parts of AEDAT4 read_all()")
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
            cases.append((name, "open", "anydepth len()", lambda path=path: ours_open(path)))
            cases.append((name, "windows", "anydepth windows(50 ms)", lambda path=path: ours_windows(path)))
            cases.append((name, "streamed", "anydepth chunks()", lambda path=path: ours_chunks(path)))
            cases.append((name, "one array", "anydepth read_all()", lambda path=path: ours_all(path)))
        aedat4 = files["AEDAT4"]
        cases += [
            ("AEDAT4", "windows", "dv-processing getEventsTimeRange", lambda: dv_processing_windows(aedat4)),
            ("AEDAT4", "streamed", "dv-processing getNextEventBatch", lambda: streamed(dv_batches(aedat4))),
            ("AEDAT4", "streamed", "aedat Decoder", lambda: streamed(aedat_packets(aedat4))),
            ("AEDAT4", "one array", "dv-processing batches joined", lambda: one_array(dv_batches(aedat4))),
            ("AEDAT4", "one array", "aedat packets joined", lambda: one_array(aedat_packets(aedat4))),
        ]
        rows = round_robin(args.repeats, cases)
        parts = breakdown(aedat4, args.repeats) if args.breakdown else []
    print(f"{args.events:,} events at {HEIGHT}x{WIDTH}, best of {args.repeats} (round-robin), one thread")
    print(f"{'format':10} {'mode':10} {'decoder':34} {'seconds':>8} {'M ev/s':>8}")
    for name, mode, decoder, seconds, count in rows:
        if mode != "open":
            assert count == args.events, (name, decoder, count)
        print(f"{name:10} {mode:10} {decoder:34} {min(seconds):8.3f} {count / min(seconds) / 1e6:8.1f}")
    times = {(name, decoder): np.array(seconds) for name, _, decoder, seconds, _ in rows if name == "AEDAT4"}
    modes = {decoder: mode for name, mode, decoder, _, _ in rows if name == "AEDAT4"}

    def versus(ours: str, peers: list[str]) -> str:
        """Ratio of the fastest peer's best time to ours, and the median of the per-round ratios
        (per round: the fastest peer of that round)."""
        mine, theirs = times[("AEDAT4", ours)], np.min([times[("AEDAT4", peer)] for peer in peers], axis=0)
        return f"{theirs.min() / mine.min():.2f}x (median of rounds {np.median(theirs / mine):.2f}x)"

    for ours in ("anydepth windows(50 ms)", "anydepth chunks()", "anydepth read_all()"):
        peers = [decoder for decoder, mode in modes.items() if mode == modes[ours] and not decoder.startswith("anydepth")]
        print(f"AEDAT4 {modes[ours]:9}: {ours} vs the fastest of {', '.join(peers)}: {versus(ours, peers)}")
    peers = [decoder for decoder, mode in modes.items() if mode == "streamed" and not decoder.startswith("anydepth")]
    print(f"AEDAT4 read_all() (one fresh array) vs the fastest streamed peer: {versus('anydepth read_all()', peers)}")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
