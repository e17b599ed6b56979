"""Event file readers: round trips through fixtures written in each real layout (keys, dtypes and
DSEC's Blosc/ZSTD compression as the datasets ship them), the real AEDAT4 recording, lossless
consecutive windows (hypothesis), and one-line errors for every kind of bad input."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anydepth.errors import FormatError, InputError
from anydepth.events import EventArray, concatenate
from anydepth.events.readers import READERS, detect_format, open_events
from anydepth.events.readers import dsec as dsec_module
from anydepth.events.readers import mvsec as mvsec_module
from anydepth.events.readers.dsec import rectify_events

DSEC_SIZE = (480, 640)
MVSEC_SIZE = (260, 346)
T_OFFSET = 52_345_678_901  # µs, DSEC-like absolute clock
MVSEC_EPOCH_US = 1_506_117_000_000_000  # an MVSEC-like Unix time in µs


# ---- fixture writers, in each dataset's own layout -------------------------------------------------
def blosc():
    """The compression of DSEC's files: Blosc with the ZSTD codec, bit shuffle."""
    return hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.BITSHUFFLE)


def ms_to_idx_of(t_relative: np.ndarray) -> np.ndarray:
    """DSEC's table: (last ms + 1,) uint64, entry ms = index of the first event with t >= ms * 1000."""
    if not len(t_relative):
        return np.zeros(0, np.uint64)
    return np.searchsorted(t_relative, np.arange(int(t_relative[-1]) // 1000 + 1) * 1000, side="left").astype(np.uint64)


def write_dsec(path: Path, x, y, t_abs, p, t_offset: int = T_OFFSET, ms_to_idx=None, skip=()) -> Path:
    t_relative = np.asarray(t_abs, np.int64) - t_offset
    with h5py.File(path, "w") as handle:
        for key, values, dtype in (("x", x, np.uint16), ("y", y, np.uint16), ("t", t_relative, np.uint32), ("p", p, np.uint8)):
            if f"events/{key}" not in skip:
                compression = dict(chunks=True, **blosc()) if len(t_relative) else {}  # HDF5 cannot chunk 0 rows
                handle.create_dataset(f"events/{key}", data=np.asarray(values).astype(dtype), **compression)
        if "ms_to_idx" not in skip:
            table = ms_to_idx_of(t_relative) if ms_to_idx is None else ms_to_idx
            handle.create_dataset("ms_to_idx", data=table, chunks=True if len(table) else None, **(blosc() if len(table) else {}))
        if "t_offset" not in skip:
            handle.create_dataset("t_offset", data=np.int64(t_offset))
    return path


def write_mvsec(path: Path, x, y, t_us, p) -> Path:
    rows = np.stack([x, y, np.asarray(t_us, np.int64) / 1e6, np.where(np.asarray(p) > 0, 1.0, -1.0)], axis=1)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("davis/left/events", data=rows.astype(np.float64).reshape(-1, 4), chunks=(min(4096, len(rows)), 4) if len(rows) else None)
    return path


def write_npz(path: Path, x, y, t, p, sensor_size=DSEC_SIZE) -> Path:
    np.savez(path, x=np.asarray(x, np.uint16), y=np.asarray(y, np.uint16), t=np.asarray(t, np.int64),
             p=np.asarray(p, np.int8), sensor_size=np.array(sensor_size))
    return path


def write_plain_h5(path: Path, x, y, t, p, sensor_size=DSEC_SIZE) -> Path:
    with h5py.File(path, "w") as handle:
        for key, values, dtype in (("x", x, np.uint16), ("y", y, np.uint16), ("t", t, np.int64), ("p", p, np.int8)):
            handle.create_dataset(f"events/{key}", data=np.asarray(values, dtype))
        handle["events"].attrs["height"], handle["events"].attrs["width"] = sensor_size
    return path


def write_txt(path: Path, x, y, t_us, p, sensor_size=DSEC_SIZE) -> Path:
    lines = [f"{sensor_size[1]} {sensor_size[0]}"]
    lines += [f"{ti // 1_000_000}.{ti % 1_000_000:06d} {xi} {yi} {pi}" for ti, xi, yi, pi in zip(t_us, x, y, p)]
    path.write_text("\n".join(lines) + "\n")
    return path


def random_events(n: int, seed: int, t0: int, span_us: int, sensor=DSEC_SIZE):
    """Sorted events with repeated timestamps and events exactly on millisecond edges."""
    rng = np.random.default_rng(seed)
    t = np.sort(np.concatenate([t0 + rng.integers(0, span_us, n - n // 4),
                                t0 + 1000 * rng.integers(0, span_us // 1000, n // 4)]))
    return (rng.integers(0, sensor[1], n), rng.integers(0, sensor[0], n), t.astype(np.int64), rng.integers(0, 2, n))


def assert_events_equal(events: EventArray, x, y, t, p):
    assert np.array_equal(events.t, t) and events.t.dtype == np.int64
    assert np.array_equal(events.x.astype(np.int64), x) and np.array_equal(events.y.astype(np.int64), y)
    assert np.array_equal(events.p, p) and events.p.dtype == np.int8


def select(arrays, mask):
    return [np.asarray(a)[mask] for a in arrays]


def single_line_error(error: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word in message, message


# ---- DSEC ---------------------------------------------------------------------------------------------
def test_dsec_fixture_has_the_real_layout(tmp_path):
    path = write_dsec(tmp_path / "events.h5", *random_events(500, 0, T_OFFSET, 50_000))
    with h5py.File(path, "r") as handle:
        assert handle["events/t"].dtype == np.uint32 and handle["events/p"].dtype == np.uint8
        assert handle["events/x"].dtype == np.uint16 and handle["ms_to_idx"].dtype == np.uint64
        assert handle["t_offset"].dtype == np.int64 and handle["t_offset"].shape == ()
        assert str(hdf5plugin.BLOSC_ID) in handle["events/t"]._filters  # Blosc, as DSEC ships
    assert detect_format(path) == "dsec"


def test_dsec_windows_are_absolute_and_exact(tmp_path):
    arrays = random_events(4000, 1, T_OFFSET + 3, 400_000)
    x, y, t, p = arrays
    path = write_dsec(tmp_path / "events.h5", *arrays)
    with open_events(path) as reader:
        assert reader.sensor_size == DSEC_SIZE and len(reader) == 4000
        assert reader.t_start == t[0] and reader.t_end == t[-1]  # absolute: t + t_offset
        edges = [T_OFFSET - 5000, T_OFFSET + 1000, int(t[10]), int(t[10]) + 1, T_OFFSET + 137_000,
                 T_OFFSET + 137_999, T_OFFSET + 250_000, int(t[-1]), int(t[-1]) + 1, T_OFFSET + 10**7]
        for t0 in edges:
            for t1 in edges:
                if t1 >= t0:
                    assert_events_equal(reader.read_time(t0, t1), *select(arrays, (t >= t0) & (t < t1)))
        assert_events_equal(reader.read_index(100, 2100), *select(arrays, slice(100, 2100)))
        assert_events_equal(reader.read_all(), *arrays)


def test_dsec_index_of_time_agrees_with_ms_to_idx(tmp_path):
    arrays = random_events(3000, 2, T_OFFSET, 120_000)
    path = write_dsec(tmp_path / "events.h5", *arrays)
    table = ms_to_idx_of(arrays[2] - T_OFFSET)
    with open_events(path) as reader:
        for ms in range(len(table)):  # on each millisecond edge, and one µs either side
            assert reader.index_of_time(T_OFFSET + 1000 * ms) == table[ms]
            assert reader.index_of_time(T_OFFSET + 1000 * ms - 1) == np.searchsorted(arrays[2], T_OFFSET + 1000 * ms - 1)
            assert reader.index_of_time(T_OFFSET + 1000 * ms + 1) == np.searchsorted(arrays[2], T_OFFSET + 1000 * ms + 1)


def test_dsec_reads_only_the_window(tmp_path, monkeypatch):
    arrays = random_events(200_000, 3, T_OFFSET, 2_000_000)
    path = write_dsec(tmp_path / "events.h5", *arrays)
    read_sizes = []
    original = dsec_module.read_dataset

    def counting(dataset, selection, source):
        values = original(dataset, selection, source)
        if dataset.name.startswith("/events/"):
            read_sizes.append(values.size)
        return values

    with open_events(path) as reader:
        monkeypatch.setattr(dsec_module, "read_dataset", counting)
        window = reader.read_time(T_OFFSET + 1_000_000, T_OFFSET + 1_010_000)
    assert 500 < len(window) < 2000
    assert sum(read_sizes) < 4 * (len(window) + 1) + 1000  # x, y, t, p of the window plus two ms blocks, not 200k


def test_dsec_inconsistent_ms_to_idx_is_reported(tmp_path):
    arrays = random_events(2000, 4, T_OFFSET, 50_000)
    table = ms_to_idx_of(arrays[2] - T_OFFSET)
    table[20] += 5  # no longer the first event at >= 20 ms
    path = write_dsec(tmp_path / "events.h5", *arrays, ms_to_idx=table)
    with open_events(path) as reader, pytest.raises(FormatError) as error:
        reader.read_time(T_OFFSET + 20_000, T_OFFSET + 30_000)
    single_line_error(error, path, "ms_to_idx")


def test_dsec_rectification_returns_float_coordinates_and_drops_outside(tmp_path):
    x, y, t, p = random_events(3000, 5, T_OFFSET, 100_000)
    path = write_dsec(tmp_path / "events.h5", x, y, t, p)
    rows, columns = np.mgrid[0:480, 0:640].astype(np.float32)
    rectify_map = np.stack([columns * 1.1 - 20.25, rows + 0.5], axis=-1)  # shifts some events out of view
    with h5py.File(tmp_path / "rectify_map.h5", "w") as handle:
        handle.create_dataset("rectify_map", data=rectify_map, **blosc())
    with open_events(path, rectify=True) as reader:
        events = reader.read_time(T_OFFSET, T_OFFSET + 100_000)
    x_rect, y_rect = rectify_map[y, x, 0], rectify_map[y, x, 1]
    inside = (x_rect >= 0) & (x_rect <= 639) & (y_rect >= 0) & (y_rect <= 479)
    assert 0 < (~inside).sum() < len(t)
    assert events.x.dtype == np.float32 and events.y.dtype == np.float32
    assert np.array_equal(events.x, x_rect[inside]) and np.array_equal(events.y, y_rect[inside])
    assert np.array_equal(events.t, t[inside]) and np.array_equal(events.p, p[inside])
    with pytest.raises(InputError, match="already rectified"):
        rectify_events(events, rectify_map)


# ---- MVSEC ----------------------------------------------------------------------------------------------
def test_mvsec_round_trip_with_unix_seconds(tmp_path):
    arrays = random_events(5000, 6, MVSEC_EPOCH_US, 600_000, sensor=MVSEC_SIZE)
    x, y, t, p = arrays
    path = write_mvsec(tmp_path / "outdoor_day1_data.hdf5", *arrays)
    assert detect_format(path) == "mvsec"
    with open_events(path, block=256) as reader:  # a small block so the binary search is exercised
        assert reader.sensor_size == MVSEC_SIZE and len(reader) == 5000
        assert reader.t_start == t[0] and reader.t_end == t[-1]
        for t0, t1 in [(t[0], t[0] + 50_000), (int(t[1234]), int(t[1234]) + 1), (t[0] - 10, t[-1] + 1), (int(t[4000]), int(t[4500]))]:
            assert_events_equal(reader.read_time(t0, t1), *select(arrays, (t >= t0) & (t < t1)))
        assert_events_equal(reader.read_all(), *arrays)  # p ±1 in the file -> 0/1


def test_mvsec_reads_lazily(tmp_path, monkeypatch):
    arrays = random_events(100_000, 7, MVSEC_EPOCH_US, 5_000_000, sensor=MVSEC_SIZE)
    path = write_mvsec(tmp_path / "x_data.hdf5", *arrays)
    rows_read = []
    original = mvsec_module.read_dataset

    def counting(dataset, selection, source):
        values = original(dataset, selection, source)
        rows_read.append(values.shape[0] if values.ndim else 1)
        return values

    with open_events(path, block=1024) as reader:
        monkeypatch.setattr(mvsec_module, "read_dataset", counting)
        window = reader.read_time(MVSEC_EPOCH_US + 2_000_000, MVSEC_EPOCH_US + 2_050_000)
    assert sum(rows_read) < len(window) + 3 * 1024 + 100


# ---- plain files -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("writer, name", [(write_npz, "events.npz"), (write_plain_h5, "events.h5"), (write_txt, "events.txt")])
def test_plain_round_trips(tmp_path, writer, name):
    arrays = random_events(1500, 8, 1_700_000_000_000_000, 300_000)
    x, y, t, p = arrays
    path = writer(tmp_path / name, *arrays)
    with open_events(path) as reader:
        assert reader.sensor_size == DSEC_SIZE and not reader.sensor_size_inferred
        assert_events_equal(reader.read_all(), *arrays)
        t0, t1 = int(t[300]), int(t[900])
        assert_events_equal(reader.read_time(t0, t1), *select(arrays, (t >= t0) & (t < t1)))


def test_txt_without_header_infers_the_sensor_and_reads_signed_polarity(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text("0.000001 3 4 1\n0.5 10 2 -1\n1.25 0 7 1\n")
    with open_events(path) as reader:
        assert reader.sensor_size == (8, 11) and reader.sensor_size_inferred
        events = reader.read_all()
    assert events.t.tolist() == [1, 500_000, 1_250_000] and events.p.tolist() == [1, 0, 1]


def test_npz_time_unit_seconds(tmp_path):
    path = tmp_path / "events.npz"
    np.savez(path, x=[1, 2], y=[3, 4], t=[0.25, 1.5], p=[0, 1])
    with open_events(path, time_unit="s", sensor_size=(10, 10)) as reader:
        assert reader.read_all().t.tolist() == [250_000, 1_500_000]


# ---- the real AEDAT4 recording ------------------------------------------------------------------------------
def test_real_aedat4_recording(realdata):
    path = realdata / "dvxplorer_aedat4" / "sample.aedat4"
    assert detect_format(path) == "aedat4"
    with open_events(path) as reader:
        assert len(reader) == 111_954 and reader.sensor_size == (240, 320)
        assert abs((reader.t_end - reader.t_start) / 1e6 - 0.59) < 0.01
        everything = reader.read_all()
        assert (np.diff(everything.t) >= 0).all()
        assert everything.x.max() < 320 and everything.y.max() < 240 and set(np.unique(everything.p)) == {0, 1}
        windows = list(reader.windows(window_us=50_000))
        assert len(windows) == 12 and all(w.duration_us < 50_000 for w in windows if len(w))
        joined = concatenate(windows)
        assert_events_equal(joined, everything.x, everything.y, everything.t, everything.p)


def test_truncated_aedat4_is_a_format_error(realdata, tmp_path):
    data = (realdata / "dvxplorer_aedat4" / "sample.aedat4").read_bytes()
    for size in (len(data) // 2, 100):
        path = tmp_path / f"cut_{size}.aedat4"
        path.write_bytes(data[:size])
        with pytest.raises(FormatError) as error:
            open_events(path)
        single_line_error(error, path, "truncated or corrupt AEDAT4")


# ---- lossless consecutive windows, for every reader ------------------------------------------------------------
def _write_every_format(folder: Path, x, y, t, p) -> list[tuple[Path, dict]]:
    mvsec_t = t + MVSEC_EPOCH_US - T_OFFSET
    return [
        (write_dsec(folder / "events.h5", x, y, t, p), {}),
        (write_mvsec(folder / "run_data.hdf5", x % 346, y % 260, mvsec_t, p), {"block": 64}),
        (write_npz(folder / "events.npz", x, y, t, p), {}),
        (write_plain_h5(folder / "plain.h5", x, y, t, p), {"block": 64}),
        (write_txt(folder / "events.txt", x, y, t, p), {}),
    ]


def _check_lossless(reader, window_us: int, count: int, t0: int | None, t1: int | None) -> None:
    everything = reader.read_all()
    start = everything.t_start if t0 is None else t0
    stop = everything.t_end + 1 if t1 is None else t1
    wanted = everything.slice_time(start, stop)
    by_time = list(reader.windows(window_us=window_us, t0_us=t0, t1_us=t1))
    for k, window in enumerate(by_time):  # each window inside its own [edge, edge + w)
        if len(window):
            assert window.t[0] >= start + k * window_us and window.t[-1] < min(start + (k + 1) * window_us, stop)
    by_count = list(reader.windows(count=count, t0_us=t0, t1_us=t1))
    assert all(len(w) == count for w in by_count[:-1]) and (not by_count or 0 < len(by_count[-1]) <= count)
    for windows in (by_time, by_count):
        joined = concatenate(windows) if windows else EventArray.empty(reader.sensor_size)
        assert_events_equal(joined, wanted.x, wanted.y, wanted.t, wanted.p)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 400), seed=st.integers(0, 2**16), window_us=st.integers(137, 40_000), count=st.integers(1, 150),
       t0_shift=st.one_of(st.none(), st.integers(-3000, 60_000)), t1_shift=st.one_of(st.none(), st.integers(-3000, 90_000)))
def test_consecutive_windows_lose_and_duplicate_nothing(n, seed, window_us, count, t0_shift, t1_shift):
    x, y, t, p = random_events(max(n, 4), seed, T_OFFSET, 80_000)
    x, y, t, p = x[:n], y[:n], t[:n], p[:n]
    t0 = None if t0_shift is None else T_OFFSET + t0_shift
    t1 = None if t1_shift is None else T_OFFSET + t1_shift
    with tempfile.TemporaryDirectory() as folder:
        for path, options in _write_every_format(Path(folder), x, y, t, p):
            shift = MVSEC_EPOCH_US - T_OFFSET if path.name.endswith("_data.hdf5") else 0
            with open_events(path, **options) as reader:
                assert len(reader) == n
                if n:
                    _check_lossless(reader, window_us, count, None if t0 is None else t0 + shift,
                                    None if t1 is None else t1 + shift)
                else:
                    assert list(reader.windows(window_us=window_us)) == [] and reader.t_start is None


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(window_us=st.integers(1_000, 200_000), count=st.integers(1, 40_000), t0_shift=st.integers(-1000, 300_000))
def test_real_aedat4_windows_are_lossless(realdata, window_us, count, t0_shift):
    with open_events(realdata / "dvxplorer_aedat4" / "sample.aedat4") as reader:
        _check_lossless(reader, window_us, count, reader.t_start + t0_shift, None)


# ---- bad input: one line naming the file and the problem ----------------------------------------------------------
def test_hdf5_cut_in_half(tmp_path):
    good = write_dsec(tmp_path / "good.h5", *random_events(20_000, 9, T_OFFSET, 100_000))
    path = tmp_path / "events.h5"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for call in (lambda: open_events(path), lambda: open_events(path, format="dsec")):
        with pytest.raises(FormatError) as error:
            call()
        single_line_error(error, path, "truncated or corrupt")


def test_not_an_hdf5_file_with_h5_extension(tmp_path):
    path = tmp_path / "events.h5"
    path.write_text("x,y,t,p\n1,2,3,1\n")
    with pytest.raises(FormatError) as error:
        open_events(path)
    single_line_error(error, path, "signature")
    with pytest.raises(FormatError) as error:
        open_events(path, format="dsec")
    single_line_error(error, path, "not an HDF5 file")


def test_empty_file(tmp_path):
    for name in ("events.h5", "events.npz", "events.aedat4", "events.txt"):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(FormatError) as error:
            open_events(path)
        single_line_error(error, path, "empty file")


@pytest.mark.parametrize("missing", ["ms_to_idx", "events/p", "events/t"])
def test_dsec_missing_key_is_named(tmp_path, missing):
    path = write_dsec(tmp_path / "events.h5", *random_events(100, 10, T_OFFSET, 10_000), skip=(missing,))
    with pytest.raises(FormatError) as error:
        open_events(path, format="dsec")
    single_line_error(error, path, f"missing dataset '{missing}'")


def test_mvsec_and_npz_missing_keys_are_named(tmp_path):
    path = tmp_path / "x_data.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("davis/left/image_raw", data=np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(FormatError) as error:
        open_events(path, format="mvsec")
    single_line_error(error, path, "missing dataset 'davis/left/events'")
    npz = tmp_path / "events.npz"
    np.savez(npz, x=[1], y=[1], t=[1])
    with pytest.raises(FormatError) as error:
        open_events(npz)
    single_line_error(error, npz, "missing array 'p'")


def test_hdf5_of_unknown_layout(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("images", data=np.zeros((2, 2)))
    with pytest.raises(FormatError) as error:
        open_events(path)
    single_line_error(error, path, "unknown layout", "images")


def test_unknown_extension_and_unknown_format_name(tmp_path):
    path = tmp_path / "events.bin"
    path.write_bytes(b"\x00\x01\x02")
    with pytest.raises(FormatError) as error:
        open_events(path)
    single_line_error(error, path, "unknown event file format")
    with pytest.raises(InputError, match="unknown event format 'raw'"):
        open_events(path, format="raw")
    with pytest.raises(InputError, match="no such file"):
        open_events(tmp_path / "absent.h5")
    assert {"dsec", "mvsec", "h5", "aedat4", "aedat2", "aedat3.1", "npz", "txt"} <= set(READERS)


def test_empty_events_dataset_gives_empty_windows(tmp_path):
    empty = np.zeros(0, np.int64)
    for path in (write_dsec(tmp_path / "events.h5", empty, empty, empty, empty),
                 write_mvsec(tmp_path / "e_data.hdf5", empty, empty, empty, empty)):
        with open_events(path) as reader:
            assert len(reader) == 0 and reader.t_start is None and reader.t_end is None
            window = reader.read_time(T_OFFSET, T_OFFSET + 50_000)
            assert isinstance(window, EventArray) and len(window) == 0
            assert len(reader.read_all()) == 0 and list(reader.windows(count=10)) == []


def test_unsorted_timestamps_raise_unless_repaired(tmp_path):
    x, y, t, p = random_events(3000, 11, T_OFFSET, 100_000)
    t = t.copy()
    t[1500], t[1501] = t[1501] + 7, t[1500]  # one swapped pair
    for path, options in _write_every_format(tmp_path, x, y, t, p):
        with pytest.raises(FormatError) as error:
            with open_events(path, **options) as reader:
                list(reader.windows(count=100))  # reading through finds it
        single_line_error(error, path, "not sorted")
        with open_events(path, repair=True, **options) as reader:
            assert reader.repair_report == {"sorted": True, "dropped_outside": 0}
            repaired = reader.read_all()
        assert len(repaired) == 3000 and (np.diff(repaired.t) >= 0).all()


def test_coordinates_outside_the_sensor_raise_unless_repaired(tmp_path):
    x, y, t, p = random_events(1000, 12, T_OFFSET, 50_000)
    x = x.copy()
    x[500] = 700  # a 640-wide sensor
    path = write_dsec(tmp_path / "events.h5", x, y, t, p)
    with open_events(path) as reader, pytest.raises(FormatError) as error:
        reader.read_all()
    single_line_error(error, path, "x = 700 outside the 480x640 sensor")
    with open_events(path, repair=True) as reader:
        assert reader.repair_report["dropped_outside"] == 1 and len(reader) == 999


def test_malformed_text_and_corrupt_npz(tmp_path):
    text = tmp_path / "events.txt"
    text.write_text("0.1 1 2 1\n0.2 1 two 0\n")
    with pytest.raises(FormatError) as error:
        open_events(text)
    single_line_error(error, text, "not 't x y p' lines")
    npz = tmp_path / "events.npz"
    write_npz(npz, [1, 2], [1, 2], [1, 2], [0, 1])
    npz.write_bytes(npz.read_bytes()[:60])
    with pytest.raises(FormatError) as error:
        open_events(npz)
    single_line_error(error, npz, "truncated or corrupt")


def test_closed_reader_and_bad_arguments(tmp_path):
    path = write_npz(tmp_path / "events.npz", *random_events(50, 13, 0, 10_000))
    reader = open_events(path)
    with pytest.raises(InputError, match="exactly one of window_us or count"):
        next(reader.windows())
    with pytest.raises(InputError, match="ends before it starts"):
        reader.read_time(10, 5)
    with reader:
        pass
    assert reader.closed
    with pytest.raises(InputError, match="closed"):
        reader.read_all()


def test_dsec_folder_opens_its_left_events(tmp_path):
    folder = tmp_path / "zurich_city_00_a"
    (folder / "events" / "left").mkdir(parents=True)
    write_dsec(folder / "events" / "left" / "events.h5", *random_events(100, 14, T_OFFSET, 10_000))
    with open_events(folder) as reader:
        assert reader.format_name == "dsec" and len(reader) == 100
    shutil.rmtree(folder / "events")
    with pytest.raises(FormatError, match="not a DSEC sequence"):
        open_events(folder)


def test_dsec_sensor_size_comes_from_the_rectify_map_or_the_calibration(tmp_path):
    """A 32x40 folder in DSEC's layout is 32x40, not DSEC's 480x640: from rectify_map.h5 beside the
    events, else from calibration/cam_to_cam.yaml `intrinsics: cam0: resolution: [W, H]`."""
    folder = tmp_path / "small"
    (folder / "events" / "left").mkdir(parents=True)
    write_dsec(folder / "events" / "left" / "events.h5", *random_events(200, 15, T_OFFSET, 10_000, (32, 40)))
    with open_events(folder) as reader:
        assert reader.sensor_size == DSEC_SIZE  # nothing says otherwise: DSEC's size
    (folder / "calibration").mkdir()
    (folder / "calibration" / "cam_to_cam.yaml").write_text("intrinsics:\n  cam0:\n    resolution: [40, 32]\n")
    with open_events(folder) as reader:
        assert reader.sensor_size == (32, 40)
    with h5py.File(folder / "events" / "left" / "rectify_map.h5", "w") as handle:
        handle.create_dataset("rectify_map", data=np.zeros((30, 36, 2), np.float32))
    assert dsec_module.sensor_size_of(folder / "events" / "left" / "events.h5") == (30, 36)  # the map wins
    with open_events(folder) as reader, pytest.raises(FormatError, match="outside the 30x36 sensor"):
        reader.read_all()  # events of x up to 39 do not fit a 36-wide map: reported, not misread
    with open_events(folder, sensor_size=(32, 40)) as reader:
        assert reader.sensor_size == (32, 40)
