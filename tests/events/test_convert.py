"""`anydepth events convert`: any recording -> DSEC-style HDF5, read back identical through open_events."""

from __future__ import annotations


import h5py
import hdf5plugin
import numpy as np
import pytest

from anydepth.cli.main import main
from anydepth.errors import FormatError, InputError
from anydepth.events import open_events
from anydepth.events.convert import convert_to_dsec
from anydepth.synth.writers import ms_to_idx
from tests.support import cli_stderr
from tests.events.readers.test_readers import T_OFFSET, random_events, write_dsec


def assert_same_recording(converted, original_path, **options):
    """Every event, the sensor size and time windows of the converted file equal the original's."""
    with open_events(original_path, **options) as original, open_events(converted) as copy:
        assert copy.format_name == "dsec" and copy.sensor_size == original.sensor_size
        assert len(copy) == len(original) and copy.t_start == original.t_start and copy.t_end == original.t_end
        expected, actual = original.read_all(), copy.read_all()
        for key in "xytp":
            assert np.array_equal(getattr(actual, key), getattr(expected, key)), key
        assert actual.t.dtype == np.int64 and actual.p.dtype == np.int8
        if len(original):  # random access by time agrees too (lazily, through ms_to_idx)
            span = original.t_end - original.t_start
            for t0, t1 in ((original.t_start, original.t_start + span // 3), (original.t_start + span // 2 + 7, original.t_end + 1)):
                window = copy.read_time(t0, t1)
                assert np.array_equal(window.t, expected.slice_time(t0, t1).t)


def assert_dsec_layout(path, t_dtype=np.uint32):
    """DSEC's dtypes, Blosc compression, and ms_to_idx as DSEC defines it over the whole file."""
    with h5py.File(path, "r") as handle:
        assert handle["events/x"].dtype == np.uint16 and handle["events/y"].dtype == np.uint16
        assert handle["events/t"].dtype == t_dtype and handle["events/p"].dtype == np.uint8
        assert handle["ms_to_idx"].dtype == np.uint64 and handle["t_offset"].dtype == np.int64 and handle["t_offset"].shape == ()
        assert str(hdf5plugin.BLOSC_ID) in handle["events/t"]._filters
        t_relative = handle["events/t"][:].astype(np.int64)
        assert np.array_equal(handle["ms_to_idx"][:], ms_to_idx(t_relative))
        return int(handle["t_offset"][()]), t_relative


def test_convert_the_real_aedat4(realdata, tmp_path, capsys):
    recording = realdata / "dvxplorer_aedat4" / "sample.aedat4"
    if not recording.is_file():
        pytest.skip(f"{recording} is not present")
    target = tmp_path / "sample.h5"
    assert main(["events", "convert", str(recording), str(target)]) == 0
    out = capsys.readouterr().out
    assert "events" in out and "M events/s" in out and "240x320" in out
    t_offset, _ = assert_dsec_layout(target)
    assert_same_recording(target, recording)
    with open_events(recording) as original:
        assert t_offset == original.t_start
    print(out.strip())  # throughput, shown with -s


@pytest.mark.parametrize("kind", ["npz", "txt", "h5", "dsec"])
def test_convert_synthetic_files_in_small_steps(kind, tmp_path):
    x, y, t, p = random_events(20_000, seed=7, t0=T_OFFSET + 123, span_us=250_000, sensor=(120, 200))
    source = tmp_path / f"events.{kind if kind != 'dsec' else 'h5'}"
    if kind == "npz":
        np.savez(source, x=x, y=y, t=t, p=p, sensor_size=np.array([120, 200]))
    elif kind == "txt":
        lines = [f"{ti / 1e6:.6f} {xi} {yi} {pi}\n" for ti, xi, yi, pi in zip(t, x, y, p)]
        source.write_text("200 120\n" + "".join(lines))
    elif kind == "h5":
        with h5py.File(source, "w") as handle:
            for key, values in zip("xytp", (x, y, t, p)):
                handle.create_dataset(key, data=values)
            handle.attrs["sensor_size"] = (120, 200)
    else:
        write_dsec(source, x, y, t, p)
    steps = []
    target = tmp_path / "out" / "converted.h5"
    report = convert_to_dsec(source, target, window_events=3000, progress=lambda done, total: steps.append((done, total)),
                             **({"sensor_size": (120, 200)} if kind == "dsec" else {}))
    assert report.events == 20_000 and report.sensor_size == (120, 200) and report.path == target
    # window by window: 7 steps of at most 3000 events, so ms_to_idx was built across step boundaries
    assert steps == [(min(3000 * k, 20_000), 20_000) for k in range(1, 8)]
    t_offset, t_relative = assert_dsec_layout(target)
    assert t_offset == t[0] and np.array_equal(t_relative + t_offset, t)
    assert_same_recording(target, source, **({"sensor_size": (120, 200)} if kind == "dsec" else {}))
    assert sorted(p.name for p in target.parent.iterdir()) == ["converted.h5"]  # no temporary file left


def test_recordings_longer_than_uint32_keep_their_times(tmp_path):
    source = tmp_path / "long.npz"
    t = np.array([0, 1000, 5_000_000_000, 5_000_000_999], np.int64)  # 83 minutes: beyond DSEC's uint32
    np.savez(source, x=np.array([0, 1, 2, 3]), y=np.array([3, 2, 1, 0]), t=t, p=np.array([1, 0, 1, 1]),
             sensor_size=np.array([4, 4]))
    target = convert_to_dsec(source, tmp_path / "long.h5").path
    assert_dsec_layout(target, t_dtype=np.int64)
    assert_same_recording(target, source)


def test_an_empty_recording_converts_to_an_empty_file(tmp_path):
    source = tmp_path / "empty.npz"
    np.savez(source, x=np.zeros(0, np.uint16), y=np.zeros(0, np.uint16), t=np.zeros(0, np.int64), p=np.zeros(0, np.int8),
             sensor_size=np.array([30, 40]))
    report = convert_to_dsec(source, tmp_path / "empty.h5")
    assert report.events == 0 and report.t_start_us is None
    with open_events(report.path) as reader:
        assert len(reader) == 0 and reader.sensor_size == (30, 40)


def test_bad_inputs_are_one_line_and_leave_no_output(tmp_path, capsys):
    corrupt = tmp_path / "broken.aedat4"
    corrupt.write_bytes(b"#!AER-DAT4.0\r\nnot really")
    unsorted = tmp_path / "unsorted.npz"
    np.savez(unsorted, x=np.array([0, 1, 2]), y=np.array([0, 1, 2]), t=np.array([0, 50, 10]), p=np.array([1, 0, 1]),
             sensor_size=np.array([4, 4]))
    for index, source in enumerate((corrupt, unsorted, tmp_path / "missing.h5")):  # a real process first
        target = tmp_path / f"{source.stem}.h5"
        code, err = cli_stderr(["events", "convert", source, target], None if index == 0 else capsys)
        assert code == 1 and "Traceback" not in err, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"anydepth events convert: error: {source}"), err
        assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.aedat4", "unsorted.npz"]  # no temporary files


def test_refuses_to_overwrite_or_to_write_another_format(tmp_path):
    source = tmp_path / "e.npz"
    np.savez(source, x=np.array([0, 1]), y=np.array([0, 1]), t=np.array([0, 10]), p=np.array([1, 0]), sensor_size=np.array([2, 2]))
    target = tmp_path / "e.h5"
    target.write_bytes(b"keep me")
    with pytest.raises(InputError, match="exists"):
        convert_to_dsec(source, target)
    assert target.read_bytes() == b"keep me"
    assert main(["events", "convert", str(source), str(target), "--overwrite"]) == 0
    with open_events(target) as reader:
        assert len(reader) == 2
    with pytest.raises(InputError, match=".h5"):
        convert_to_dsec(source, tmp_path / "e.npz2")
    with pytest.raises(InputError, match="input"):
        convert_to_dsec(target, target, overwrite=True)
    rectified = tmp_path / "rect"
    (rectified / "events" / "left").mkdir(parents=True)
    write_dsec(rectified / "events" / "left" / "events.h5", *random_events(100, 1, T_OFFSET, 10_000))
    rows, columns = np.mgrid[0:480, 0:640].astype(np.float32)
    with h5py.File(rectified / "events" / "left" / "rectify_map.h5", "w") as handle:
        handle.create_dataset("rectify_map", data=np.stack([columns + 0.5, rows], axis=-1))
    with pytest.raises((InputError, FormatError), match="fractional"):
        convert_to_dsec(rectified, tmp_path / "rect.h5", rectify=True)
    assert not (tmp_path / "rect.h5").exists()
