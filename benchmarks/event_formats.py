"""Prophesee decoding throughput: anydepth's numba readers against the decoders people use today,
`evt3` (Rust, EVT 3.0 only) and `expelliarmus` (C; EVT 2.0, EVT 3.0, DAT), on the same file in one run.

    python benchmarks/event_formats.py                    # 5 M events at 1280x720
    python benchmarks/event_formats.py --events 20000000 --repeats 5

The files are written by a vectorised encoder of the format specifications (EVT 3.0: TIME_HIGH /
TIME_LOW when they change, EVT_ADDR_Y when the row or time changes, EVT_ADDR_X per event; EVT 2.0:
TIME_HIGH + one CD word per event; EVT 2.1: TIME_HIGH + one masked word per event; DAT: 8-byte
records). Rows: "anydepth open + read_all" is the whole public path (index pass, decode, validated
EventArray); "anydepth kernel" is the index pass plus one decode of every block. Each decoder reads
the whole file into memory; prints the best of `repeats` in events/s and the ratio to the fastest peer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from anydepth.events.readers.prophesee import PropheseeDatReader, PropheseeRawReader

HEIGHT, WIDTH = 720, 1280


def synthetic_events(n: int, seed: int = 0):
    """Sorted events at ~20 M ev/s over a 1280x720 sensor, rows grouped within each microsecond."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, n // 20, n)).astype(np.int64) + 1_000
    y, x, p = rng.integers(0, HEIGHT, n), rng.integers(0, WIDTH, n), rng.integers(0, 2, n)
    order = np.lexsort((x, y, t))
    return x[order].astype(np.int64), y[order].astype(np.int64), t[order], p[order].astype(np.int64)


def interleave(columns: list[tuple[np.ndarray, np.ndarray]], dtype) -> np.ndarray:
    """Per event, the words of each (present mask, word) column in order, absent ones dropped."""
    present = np.stack([c[0] for c in columns], axis=1).ravel()
    words = np.stack([c[1] for c in columns], axis=1).ravel()
    return words[present].astype(dtype)


def encode_evt3(x, y, t, p) -> np.ndarray:
    high, low = (t >> 12) & 0xFFF, t & 0xFFF
    first = np.ones(len(t), bool)
    new_high = first.copy()
    new_high[1:] = high[1:] != high[:-1]
    new_time = first.copy()
    new_time[1:] = t[1:] != t[:-1]
    new_row = new_time.copy()
    new_row[1:] |= y[1:] != y[:-1]
    return interleave([(new_high, 0x8000 | high), (new_time, 0x6000 | low), (new_row, y),
                       (np.ones(len(t), bool), 0x2000 | (p << 11) | x)], "<u2")


def encode_evt2(x, y, t, p) -> np.ndarray:
    high = (t >> 6) & 0x0FFFFFFF
    new_high = np.ones(len(t), bool)
    new_high[1:] = high[1:] != high[:-1]
    return interleave([(new_high, (0x8 << 28) | high),
                       (np.ones(len(t), bool), (p << 28) | ((t & 0x3F) << 22) | (x << 11) | y)], "<u4")


def encode_evt21(x, y, t, p) -> np.ndarray:
    high = (t >> 6) & 0x0FFFFFFF
    new_high = np.ones(len(t), bool)
    new_high[1:] = high[1:] != high[:-1]
    head = (p << 28) | ((t & 0x3F) << 22) | ((x // 32 * 32) << 11) | y
    return interleave([(new_high, ((0x8 << 28) | high) << 32),
                       (np.ones(len(t), bool), (head << 32) | (1 << (x % 32)))], "<u8")


def write_files(folder: Path, n: int) -> dict[str, Path]:
    x, y, t, p = synthetic_events(n)
    files = {}
    for name, encode, title in (("evt3", encode_evt3, "EVT3"), ("evt2", encode_evt2, "EVT2"), ("evt21", encode_evt21, "EVT21")):
        files[name] = folder / f"{name}.raw"
        header = f"% format {title};height={HEIGHT};width={WIDTH}\n% end\n".encode()
        files[name].write_bytes(header + encode(x, y, t, p).tobytes())
    records = np.stack([t, x | (y << 14) | (p << 28)], axis=1).astype("<u4")
    files["dat"] = folder / "cd.dat"
    files["dat"].write_bytes(f"% Version 2\n% Height {HEIGHT}\n% Width {WIDTH}\n".encode() + bytes([12, 8]) + records.tobytes())
    return files


def ours_read_all(path: Path, reader) -> int:
    with reader(path) as opened:
        return len(opened.read_all())


def ours_kernel(path: Path) -> int:
    with PropheseeRawReader(path) as opened:
        return len(opened._decode_blocks(0, len(opened.checkpoints) - 1)[0])


def decoders(files: dict[str, Path]):
    """(format, decoder name, call) rows; a peer that is not installed is left out."""
    rows = []
    for name in ("evt3", "evt2", "evt21"):
        rows.append((name, "anydepth open + read_all", lambda f=files[name]: ours_read_all(f, PropheseeRawReader)))
        rows.append((name, "anydepth kernel (index + decode)", lambda f=files[name]: ours_kernel(f)))
    rows.append(("dat", "anydepth open + read_all", lambda: ours_read_all(files["dat"], PropheseeDatReader)))
    try:
        import evt3
        rows.append(("evt3", f"evt3 {evt3.__version__} decode_file", lambda: len(evt3.decode_file(str(files["evt3"])).x)))
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        from expelliarmus import Wizard
        for name in ("evt3", "evt2", "dat"):
            rows.append((name, f"expelliarmus {version('expelliarmus')} read",
                         lambda n=name: len(Wizard(encoding=n, fpath=files[n]).read())))
    except ImportError:
        pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = write_files(Path(folder), args.events)
        ours_read_all(files["evt3"], PropheseeRawReader)  # compile the kernels outside the timing
        results: dict[str, list[tuple[str, float]]] = {}
        for name, decoder, call in decoders(files):
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                count = call()
                best = min(best, time.perf_counter() - start)
            if count != args.events:
                raise SystemExit(f"{decoder} decoded {count} of {args.events} events of {name}")
            results.setdefault(name, []).append((decoder, count / best))
        print(f"{args.events} events at {WIDTH}x{HEIGHT}, best of {args.repeats}, same files, one run")
        for name, rows in results.items():
            size = files[name].stat().st_size
            peers = [rate for decoder, rate in rows if not decoder.startswith("anydepth")]
            print(f"\n{name} ({size / 1e6:.1f} MB)")
            for decoder, rate in rows:
                ratio = f"  x{rate / max(peers):.2f} of the fastest peer" if peers else ""
                print(f"  {decoder:36s} {rate / 1e6:8.1f} M events/s{ratio}")


if __name__ == "__main__":
    main()
