"""Prophesee decoding throughput: anydepth's numba readers against the decoders people use today,
`evt3` (Rust, EVT 3.0 only) and `expelliarmus` (C; EVT 2.0, EVT 3.0, DAT), on the same file in one run.

    OMP_NUM_THREADS=1 python benchmarks/event_formats.py                    # 5 M events at 1280x720
    OMP_NUM_THREADS=1 python benchmarks/event_formats.py --events 20000000 --repeats 9

The files are written by a vectorised encoder of the format specifications (EVT 3.0: TIME_HIGH /
TIME_LOW when they change, EVT_ADDR_Y when the row or time changes, EVT_ADDR_X per event; EVT 2.0:
TIME_HIGH + one CD word per event; EVT 2.1: TIME_HIGH + one masked word per event; DAT: 8-byte
records). Two paths per format, each from opening the file:
- whole file: `open_events(path).read_all()` (validated EventArray) against evt3 `decode_file` and
  expelliarmus `Wizard.read`;
- 50 ms windows: `reader.windows(window_us=50_000)` over the file against expelliarmus
  `read_time_window` (50 ms) and evt3 `decode_file_batches` (its streaming API, 8 MB batches).
The numba kernels are loaded (or compiled) once before timing; that first call is printed apart.
Rows are timed round-robin, best of `repeats`: wall clock (what a user waits) and the process's
CPU time (less sensitive to other work on a shared machine), each with its ratio to the fastest
peer of the same path.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from anydepth.events.readers import open_events  # noqa: E402

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


WINDOW_US = 50_000


def ours_read_all(path: Path) -> int:
    with open_events(path) as reader:
        return len(reader.read_all())


def ours_windows(path: Path) -> int:
    with open_events(path) as reader:
        return sum(len(window) for window in reader.windows(window_us=WINDOW_US))


def expelliarmus_windows(wizard_class, encoding: str, path: Path) -> int:
    wizard = wizard_class(encoding=encoding, fpath=path)
    wizard.set_time_window(WINDOW_US)
    return sum(len(window) for window in wizard.read_time_window())


def decoders(files: dict[str, Path]):
    """(format, path, decoder name, call) rows; a peer that is not installed is left out."""
    rows = []
    for name in ("evt3", "evt2", "evt21", "dat"):
        rows.append((name, "whole file", "anydepth open + read_all", lambda f=files[name]: ours_read_all(f)))
        rows.append((name, "50 ms windows", "anydepth open + windows", lambda f=files[name]: ours_windows(f)))
    try:
        import evt3
        rows.append(("evt3", "whole file", f"evt3 {evt3.__version__} decode_file",
                     lambda: len(evt3.decode_file(str(files["evt3"])).x)))
        rows.append(("evt3", "50 ms windows", f"evt3 {evt3.__version__} decode_file_batches",
                     lambda: sum(len(batch.x) for batch in evt3.decode_file_batches(str(files["evt3"])))))
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        from expelliarmus import Wizard
        for name in ("evt3", "evt2", "dat"):
            rows.append((name, "whole file", f"expelliarmus {version('expelliarmus')} read",
                         lambda n=name: len(Wizard(encoding=n, fpath=files[n]).read())))
            rows.append((name, "50 ms windows", f"expelliarmus {version('expelliarmus')} read_time_window",
                         lambda n=name: expelliarmus_windows(Wizard, n, files[n])))
    except ImportError:
        pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = write_files(Path(folder), args.events)
        start = time.perf_counter()
        for name in files:  # load (or compile) every kernel outside the timing
            ours_read_all(files[name])
            ours_windows(files[name])
        first_call = time.perf_counter() - start
        rows = decoders(files)
        wall = [float("inf")] * len(rows)
        cpu = [float("inf")] * len(rows)
        for _ in range(args.repeats):  # round-robin, so every row sees the same machine
            for index, (name, _, decoder, call) in enumerate(rows):
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                count = call()
                wall[index] = min(wall[index], time.perf_counter() - start_wall)
                cpu[index] = min(cpu[index], time.process_time() - start_cpu)
                if count != args.events:
                    raise SystemExit(f"{decoder} decoded {count} of {args.events} events of {name}")
        print(f"{args.events} events at {WIDTH}x{HEIGHT}, best of {args.repeats}, same files, one run; "
              f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; anydepth's first calls (numba cache load or "
              f"compile, all formats): {first_call:.2f} s, not counted")
        for name in files:
            print(f"\n{name} ({files[name].stat().st_size / 1e6:.1f} MB)   M events/s: wall (x fastest peer), CPU (x fastest peer)")
            for path in ("whole file", "50 ms windows"):
                mine = [i for i, row in enumerate(rows) if row[0] == name and row[1] == path]
                peers = [i for i in mine if not rows[i][2].startswith("anydepth")]
                for i in mine:
                    rates = [args.events / wall[i], args.events / cpu[i]]
                    ratios = ([rates[0] * wall[j] / args.events for j in peers], [rates[1] * cpu[j] / args.events for j in peers])
                    text = [f"{rate / 1e6:7.1f}" + (f" (x{min(ratio):.2f})" if ratio else "") for rate, ratio in zip(rates, ratios)]
                    print(f"  {path:14s} {rows[i][2]:44s} {text[0]:>16s} {text[1]:>16s}")


if __name__ == "__main__":
    main()
