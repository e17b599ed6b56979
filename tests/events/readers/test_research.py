"""Research layouts: event_utils HDF5 (written as event_utils' hdf5_packager lays it out: int16 xs/ys,
float64 seconds ts, bool ps, sensor_resolution, images/image%09d with timestamp attributes), .npy
(numpy's writer), E2VID zipped text (zipfile), CSV (the csv module)."""

from __future__ import annotations

import csv
import zipfile

import h5py
import numpy as np
import pytest

from anydepth.cli.main import main
from anydepth.errors import FormatError, InputError
from anydepth.events.dataset import open_sequence
from anydepth.events.readers import detect_format, open_events

HEIGHT, WIDTH = 180, 240


def _events(count: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    t_us = 1_000_000 + np.cumsum(rng.choice([0, 1, 7, 300], count))
    return (rng.integers(0, WIDTH, count), rng.integers(0, HEIGHT, count), t_us, rng.integers(0, 2, count))


def _check_every_event(path, expected, **options):
    x, y, t_us, p = expected
    with open_events(path, **options) as reader:
        assert len(reader) == len(t_us)
        for window_us in (1000, 33_333):
            windows = list(reader.windows(window_us=window_us))
            np.testing.assert_array_equal(np.concatenate([w.t for w in windows]), t_us)
            np.testing.assert_array_equal(np.concatenate([w.x for w in windows]), x)
            np.testing.assert_array_equal(np.concatenate([w.y for w in windows]), y)
            np.testing.assert_array_equal(np.concatenate([w.p for w in windows]), p)
            starts = [reader.t_start + k * window_us for k in range(len(windows))]
            assert all(not len(w) or (w.t.min() >= lo and w.t.max() < lo + window_us) for w, lo in zip(windows, starts))
        counted = list(reader.windows(count=301))
        np.testing.assert_array_equal(np.concatenate([w.t for w in counted]), t_us)
        return reader.format_name, reader.sensor_size


def _write_event_utils(path, events, images: bool = True, sensor_resolution=(HEIGHT, WIDTH)):
    x, y, t_us, p = events
    with h5py.File(path, "w") as h5file:
        h5file.create_dataset("events/xs", data=x.astype(np.int16))
        h5file.create_dataset("events/ys", data=y.astype(np.int16))
        h5file.create_dataset("events/ts", data=t_us / 1e6)
        h5file.create_dataset("events/ps", data=p.astype(np.bool_))
        if sensor_resolution is not None:
            h5file.attrs["sensor_resolution"] = sensor_resolution
        h5file.attrs["num_events"] = len(t_us)
        if images:
            group = h5file.create_group("images")
            for k, t in enumerate(range(int(t_us[0]) + 20_000, int(t_us[-1]), 30_000)):
                image = group.create_dataset(f"image{k:09d}", data=np.full((HEIGHT, WIDTH), k, np.uint8))
                image.attrs["timestamp"] = t / 1e6
                image.attrs["size"] = (HEIGHT, WIDTH)
                image.attrs["type"] = "greyscale"


def test_event_utils_h5(tmp_path):
    path = tmp_path / "seq.h5"
    events = _events()
    _write_event_utils(path, events)
    assert detect_format(path) == "event_utils"
    assert _check_every_event(path, events) == ("event_utils", (HEIGHT, WIDTH))


def test_event_utils_images_as_a_sequence(tmp_path):
    path = tmp_path / "seq.h5"
    x, y, t_us, p = _events()
    _write_event_utils(path, (x, y, t_us, p))
    with open_sequence(path, window_ms=50) as sequence:
        assert len(sequence) > 3
        for sample in sequence:
            inside = (t_us >= sample.timestamp_us - 50_000) & (t_us < sample.timestamp_us)
            np.testing.assert_array_equal(sample.events.t, t_us[inside])
            assert sample.frame.shape == (HEIGHT, WIDTH) and sample.frame[0, 0] == sample.index
            assert sample.depth_m is None


def test_event_utils_without_resolution_takes_the_option(tmp_path):
    path = tmp_path / "seq.h5"
    events = _events()
    _write_event_utils(path, events, images=False, sensor_resolution=None)
    assert _check_every_event(path, events, sensor_size=(200, 300))[1] == (200, 300)
    with open_events(path) as reader:  # scanned: exact maximum + 1
        assert reader.sensor_size == (int(events[1].max()) + 1, int(events[0].max()) + 1)


@pytest.mark.parametrize("columns", ["txyp", "xytp"])
def test_npy_columns_by_rule_and_by_option(tmp_path, columns):
    x, y, t_us, p = _events()
    polarity = p * 2 - 1  # ±1
    table = np.stack([t_us / 1e6, x, y, polarity] if columns == "txyp" else [x, y, t_us / 1e6, polarity], 1)
    path = tmp_path / "events.npy"
    np.save(path, table)
    assert detect_format(path) == "npy"
    name, size = _check_every_event(path, (x, y, t_us, p), sensor_size=(HEIGHT, WIDTH))
    assert name == "npy" and size == (HEIGHT, WIDTH)
    _check_every_event(path, (x, y, t_us, p), columns=columns, sensor_size=(HEIGHT, WIDTH))
    integer = tmp_path / "integer.npy"  # integer timestamps are microseconds
    np.save(integer, np.stack([t_us, x, y, p] if columns == "txyp" else [x, y, t_us, p], 1).astype(np.int64))
    _check_every_event(integer, (x, y, t_us, p), sensor_size=(HEIGHT, WIDTH))


def test_npy_structured(tmp_path):
    x, y, t_us, p = _events()
    table = np.zeros(len(t_us), dtype=[("timestamp", "<i8"), ("x", "<u2"), ("y", "<u2"), ("polarity", "i1")])
    table["timestamp"], table["x"], table["y"], table["polarity"] = t_us, x, y, p
    path = tmp_path / "structured.npy"
    np.save(path, table)
    assert _check_every_event(path, (x, y, t_us, p))[0] == "npy"


def test_npy_ambiguous_and_guessed_sizes(tmp_path):
    path = tmp_path / "ambiguous.npy"
    np.save(path, np.array([[0.1, 1, 0.2, 1], [0.2, 2, 0.3, 0]]))  # columns 0 and 2 both increase
    with pytest.raises(FormatError, match="columns='txyp' or 'xytp'"):
        open_events(path)
    x, y, t_us, p = _events(5000)
    x[4000] = WIDTH + 50  # beyond what the first events suggest
    path = tmp_path / "late.npy"
    np.save(path, np.stack([t_us, x, y, p], 1))
    with open_events(path, probe=1000) as reader:
        assert reader.sensor_size_inferred
        with pytest.raises(FormatError, match=r"guessed from the first 1,000 events: pass sensor_size.*--sensor-size"):
            reader.read_all()
    with open_events(path, sensor_size=(HEIGHT, WIDTH + 100)) as reader:
        assert len(reader.read_all()) == 5000


def _write_zipped_text(path, events, member="events.txt"):
    x, y, t_us, p = events
    lines = [f"{WIDTH} {HEIGHT}"] + [f"{t / 1e6:.6f} {a} {b} {c}" for t, a, b, c in zip(t_us, x, y, p)]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, "\n".join(lines) + "\n")


def test_zipped_text_detected_by_content(tmp_path):
    events = _events()
    for name in ("events.zip", "misnamed.npz"):  # a zip is never taken for .npz by its name
        path = tmp_path / name
        _write_zipped_text(path, events)
        assert detect_format(path) == "txt.zip"
        assert _check_every_event(path, events) == ("txt.zip", (HEIGHT, WIDTH))
    npz = tmp_path / "arrays.npz"
    np.savez(npz, x=events[0], y=events[1], t=events[2], p=events[3])
    assert detect_format(npz) == "npz"
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("a.png", b"x")
        archive.writestr("b.txt", b"x")
    with pytest.raises(FormatError, match="zip archive of unknown content"):
        detect_format(other)


@pytest.mark.parametrize("header, unit", [(["t", "x", "y", "p"], None), (["x", "y", "polarity", "timestamp_us"], "us"),
                                         (["timestamp [s]", "x", "y", "pol"], "s")])
def test_csv_with_a_header(tmp_path, header, unit):
    x, y, t_us, p = _events()
    values = {"x": x, "y": y, "p": p}
    path = tmp_path / "events.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(len(t_us)):
            row = []
            for name in header:
                key = name[0] if name[0] in "xyp" else "t"
                row.append(f"{t_us[i] / 1e6:.6f}" if key == "t" and unit == "s" else
                           int(t_us[i]) if key == "t" else int(values[key][i]))
            writer.writerow(row)
    assert detect_format(path) == "csv"
    assert _check_every_event(path, (x, y, t_us, p), sensor_size=(HEIGHT, WIDTH))[0] == "csv"


def test_csv_without_a_header(tmp_path):
    path = tmp_path / "bare.csv"
    path.write_text("1,2,3,1\n2,3,4,0\n")
    with pytest.raises(FormatError, match="names no column"):
        open_events(path)


def test_corrupt_and_truncated_files_fail_in_one_line(tmp_path):
    events = _events()
    cases = []
    h5 = tmp_path / "seq.h5"
    _write_event_utils(h5, events)
    cases.append((h5, h5.read_bytes()[:3000]))
    npy = tmp_path / "events.npy"
    np.save(npy, np.stack([events[2], events[0], events[1], events[3]], 1))
    cases.append((npy, npy.read_bytes()[:200]))
    zipped = tmp_path / "events.zip"
    _write_zipped_text(zipped, events)
    cases.append((zipped, zipped.read_bytes()[:500]))
    bad_csv = tmp_path / "events.csv"
    cases.append((bad_csv, b"t,x,y,p\n1,2,3,1\n2,3,oops,0\n"))
    for path, data in cases:
        broken = path.with_name("broken_" + path.name)
        broken.write_bytes(data)
        with pytest.raises(FormatError) as error:
            with open_events(broken) as reader:
                reader.read_all()
        message = str(error.value)
        assert str(broken) in message and "\n" not in message, message


def test_sensor_size_option_where_the_format_states_it(tmp_path):
    path = tmp_path / "seq.h5"
    with h5py.File(path, "w") as h5file:
        h5file.create_dataset("davis/left/events", data=np.zeros((0, 4)))
    with pytest.raises(InputError, match="does not apply"):
        open_events(path, sensor_size=(10, 10))


@pytest.mark.parametrize("name", ["seq.h5", "events.npy", "events.zip", "events.csv"])
def test_cli_info(tmp_path, capsys, name):
    x, y, t_us, p = events = _events()
    path = tmp_path / name
    if name.endswith(".h5"):
        _write_event_utils(path, events)
    elif name.endswith(".npy"):
        np.save(path, np.stack([t_us, x, y, p], 1))
    elif name.endswith(".zip"):
        _write_zipped_text(path, events)
    else:
        path.write_text("x,y,t,p\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in zip(x, y, t_us, p)))
    assert main(["events", "info", str(path), "--sensor-size", f"{HEIGHT}x{WIDTH}"]) == 0
    out = capsys.readouterr().out
    assert f"events    {len(t_us):,}" in out and f"sensor    {WIDTH} x {HEIGHT}" in out


def test_cli_sensor_size_flag_is_checked(tmp_path, capsys):
    path = tmp_path / "events.npy"
    np.save(path, np.stack(_events()[2:3] + _events()[:2] + _events()[3:], 1))
    with pytest.raises(SystemExit):
        main(["events", "info", str(path), "--sensor-size", "12"])
    assert "expected HxW" in capsys.readouterr().err
