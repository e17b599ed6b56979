"""Prophesee formats (EVT 2.0 / 2.1 / 3.0 `.raw`, `.dat`, Metavision HDF5) through `open_events`.

References: files written by expelliarmus 1.1.12 (its EVT 2.0 and DAT writers; its EVT 3.0 writer omits
the time-high words that EVT 3.0 requires, so it is not used here), and spec-conformant files written by the small
encoders below from Prophesee's format documentation, decoded by evt3 0.4.1 (x, y, p, t and
triggers) and expelliarmus (x, y, p) on the same bytes.
"""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

from anydepth.errors import AnydepthWarning, FormatError
from anydepth.events.readers import (READERS, MetavisionH5Reader, PropheseeDatReader, PropheseeRawReader,
                                     detect_format, open_events)

evt3 = pytest.importorskip("evt3")
expelliarmus = pytest.importorskip("expelliarmus")

EVT3_HEADER = b"% camera_integrator_name Prophesee\n% format EVT3;height=720;width=1280\n% serial_number 00ca0009\n% end\n"


# ---- spec-conformant encoders (test code; the truth is the arrays they are given) ------------------
def events_of(n, seed, t0=0, span=3_000_000, height=720, width=1280, runs=True):
    """Sorted random events (x, y, t int64, p) with runs of neighbouring pixels at one time (vectors)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span, n)).astype(np.int64) + t0
    x, y, p = rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n)
    if runs:
        for start in range(100, n - 40, 997):
            length = int(rng.integers(2, 30))
            x[start:start + length] = np.arange(length) + int(rng.integers(0, width - 40))
            y[start:start + length], t[start:start + length], p[start:start + length] = y[start], t[start], p[start]
    t.sort()
    order = np.lexsort((x, y, t))
    x, y, t, p = x[order], y[order], t[order], p[order]
    keep = np.ones(n, bool)
    keep[1:] = (np.diff(t) != 0) | (np.diff(y) != 0) | (np.diff(x) != 0)  # one event per pixel and time
    return x[keep].astype(np.uint16), y[keep].astype(np.uint16), t[keep], p[keep].astype(np.int8)


def encode_evt3(x, y, t, p, triggers=()):
    """EVT 3.0 words: TIME_HIGH when t bits 23..12 change, TIME_LOW when bits 11..0 change, EVT_ADDR_Y
    on a row change, then EVT_ADDR_X for a lone event or VECT_BASE_X + VECT_12 / VECT_8 for a run;
    EXT_TRIGGER (t, id, value) at its time."""
    words, high, low, row = [], None, None, None
    pending = sorted(triggers)

    def set_time(stamp):
        nonlocal high, low
        if (stamp >> 12) & 0xFFF != high:
            high, low = (stamp >> 12) & 0xFFF, None
            words.append(0x8000 | high)
        if stamp & 0xFFF != low:
            low = stamp & 0xFFF
            words.append(0x6000 | low)

    i, n = 0, len(t)
    while i < n or pending:
        if pending and (i >= n or pending[0][0] <= t[i]):
            stamp, channel, value = pending.pop(0)
            set_time(stamp)
            words.append(0xA000 | (channel << 8) | value)
            continue
        set_time(int(t[i]))
        if int(y[i]) != row:
            row = int(y[i])
            words.append(row)
        j = i + 1
        while j < n and t[j] == t[i] and y[j] == y[i] and p[j] == p[i] and x[j] - x[i] < 40:
            j += 1
        if j - i == 1:
            words.append(0x2000 | (int(p[i]) << 11) | int(x[i]))
        else:
            base, columns = int(x[i]), {int(v) for v in x[i:j]}
            words.append(0x3000 | (int(p[i]) << 11) | base)
            while base <= int(x[j - 1]):
                size = 12 if int(x[j - 1]) - base >= 8 else 8
                mask = sum(1 << k for k in range(size) if base + k in columns)
                words.append((0x4000 if size == 12 else 0x5000) | mask)
                base += size
        i = j
    return np.array(words, "<u2")


def encode_evt2(x, y, t, p, triggers=()):
    """EVT 2.0 words: TIME_HIGH (t >> 6) when it changes, CD_ON / CD_OFF with t bits 5..0, and
    EXT_TRIGGER (t, id, value)."""
    words, high = [], None
    items = sorted([(int(t[i]), 0, i) for i in range(len(t))] + [(s, 1, (c, v)) for s, c, v in triggers])
    for stamp, is_trigger, item in items:
        if (stamp >> 6) & 0x0FFFFFFF != high:
            high = (stamp >> 6) & 0x0FFFFFFF
            words.append((0x8 << 28) | high)
        if is_trigger:
            words.append((0xA << 28) | ((stamp & 0x3F) << 22) | (item[0] << 8) | item[1])
        else:
            words.append((int(p[item]) << 28) | ((stamp & 0x3F) << 22) | (int(x[item]) << 11) | int(y[item]))
    return np.array(words, "<u4")


def encode_evt21(x, y, t, p, legacy=False):
    """EVT 2.1 words: TIME_HIGH when t >> 6 changes, then one word per (t, y, polarity, 32-pixel group)
    with its mask; legacy swaps the 32-bit halves."""
    words, high = [], None
    groups: dict = {}
    for i in range(len(t)):
        key = (int(t[i]), int(y[i]), int(p[i]), int(x[i]) // 32)
        groups[key] = groups.get(key, 0) | (1 << (int(x[i]) % 32))
    for (stamp, row, polarity, group), mask in groups.items():  # insertion order = time order
        if (stamp >> 6) & 0x0FFFFFFF != high:
            high = (stamp >> 6) & 0x0FFFFFFF
            words.append(((0x8 << 28) | high) << 32)
        head = (polarity << 28) | ((stamp & 0x3F) << 22) | ((group * 32) << 11) | row
        words.append((head << 32) | mask)
    words = np.array(words, np.uint64)
    if legacy:
        words = (words >> np.uint64(32)) | (words << np.uint64(32))
    return words.astype("<u8")


def evt21_order(x, y, t, p):
    """The order an EVT 2.1 stream gives the events in: by time, then row / polarity / group as first
    seen, then column."""
    keys = {}
    for i in range(len(t)):
        keys.setdefault((int(t[i]), int(y[i]), int(p[i]), int(x[i]) // 32), len(keys))
    rank = np.array([keys[(int(t[i]), int(y[i]), int(p[i]), int(x[i]) // 32)] for i in range(len(t))])
    return np.lexsort((x, rank))


def write_raw(path, header: bytes, words: np.ndarray):
    path.write_bytes(header + words.tobytes())
    return path


def assert_events(events, x, y, t, p):
    np.testing.assert_array_equal(events.x, x)
    np.testing.assert_array_equal(events.y, y)
    np.testing.assert_array_equal(events.t, t)
    np.testing.assert_array_equal(events.p, p)


# ---- EVT 3.0 -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evt3_file(tmp_path_factory):
    """An EVT 3.0 file crossing a wrap of the 24-bit counter, with vectors and two triggers."""
    x, y, t, p = events_of(60_000, seed=0, t0=(1 << 24) - 1_000_000, span=3_000_000)
    triggers = [(int(t[50]), 3, 1), (int(t[9000]) + 1, 0, 0)]
    path = write_raw(tmp_path_factory.mktemp("evt3") / "rec.raw", EVT3_HEADER, encode_evt3(x, y, t, p, triggers))
    return path, (x, y, t, p), triggers


def test_evt3_matches_truth_and_evt3_package(evt3_file):
    path, truth, triggers = evt3_file
    with open_events(path) as reader:
        assert isinstance(reader, PropheseeRawReader) and reader.encoding == "evt3"
        assert reader.sensor_size == (720, 1280) and reader.serial == "00ca0009"
        events = reader.read_all()
        assert_events(events, *truth)
        assert events.t[-1] > (1 << 24)  # 64-bit time past the counter's wrap
        np.testing.assert_array_equal(reader.triggers.t, [s for s, _, _ in triggers])
        np.testing.assert_array_equal(reader.triggers.id, [c for _, c, _ in triggers])
        np.testing.assert_array_equal(reader.triggers.p, [v for _, _, v in triggers])
    decoded, decoded_triggers = evt3.decode_file_with_triggers(str(path))
    np.testing.assert_array_equal(decoded.x, events.x)
    np.testing.assert_array_equal(decoded.y, events.y)
    np.testing.assert_array_equal(decoded.polarity, events.p)
    np.testing.assert_array_equal(decoded.timestamp.astype(np.int64), events.t)
    np.testing.assert_array_equal(np.asarray(decoded_triggers.timestamp, np.int64), reader.triggers.t)
    np.testing.assert_array_equal(np.asarray(decoded_triggers.id), reader.triggers.id)
    np.testing.assert_array_equal(np.asarray(decoded_triggers.value), reader.triggers.p)


def test_evt3_xyp_match_expelliarmus(evt3_file, tmp_path):
    path = write_raw(tmp_path / "no_triggers.raw", EVT3_HEADER, encode_evt3(*evt3_file[1]))  # it rejects EXT_TRIGGER
    decoded = expelliarmus.Wizard(encoding="evt3").read(path)
    with open_events(path) as reader:
        events = reader.read_all()
    np.testing.assert_array_equal(decoded["x"], events.x)
    np.testing.assert_array_equal(decoded["y"], events.y)
    np.testing.assert_array_equal(decoded["p"], events.p)


@pytest.mark.parametrize("block_words", [64, 1000, 1 << 16])
def test_windows_lose_and_duplicate_nothing(evt3_file, block_words):
    path, (x, y, t, p), _ = evt3_file
    with PropheseeRawReader(path, block_words=block_words) as reader:
        for windows in (list(reader.windows(window_us=7_919)), list(reader.windows(count=4_999))):
            assert sum(len(w) for w in windows) == len(t)
            np.testing.assert_array_equal(np.concatenate([w.t for w in windows]), t)
            np.testing.assert_array_equal(np.concatenate([w.x for w in windows]), x)
        for t0, t1 in ((0, int(t[0])), (int(t[123]), int(t[4567])), (int(t[-7]), int(t[-1]) + 1), (int(t[5]), int(t[5]))):
            assert_events(reader.read_time(t0, t1), *(a[(t >= t0) & (t < t1)] for a in (x, y, t, p)))
        for i0, i1 in ((0, 1), (17, 70_000), (len(t) - 3, len(t))):
            np.testing.assert_array_equal(reader.read_index(i0, i1).t, t[i0:i1])


def test_header_spellings(tmp_path):
    x, y, t, p = events_of(500, seed=1, height=480, width=640)
    words = encode_evt3(x, y, t, p)
    for header in (b"% evt 3.0\n% geometry 640x480\n", b"% format EVT3.0;height=480;width=640\n% end\n"):
        path = write_raw(tmp_path / "a.raw", header, words)
        with open_events(path) as reader:
            assert reader.sensor_size == (480, 640)
            assert_events(reader.read_all(), x, y, t, p)


# ---- EVT 2.0 / 2.1 -------------------------------------------------------------------------------
def test_evt2_wrap_triggers_and_expelliarmus(tmp_path):
    x, y, t, p = events_of(20_000, seed=2, t0=(1 << 34) - 1_000_000, span=2_000_000, runs=False)
    triggers = [(int(t[10]), 5, 1), (int(t[20]), 5, 0)]
    path = write_raw(tmp_path / "a.raw", b"% format EVT2;height=720;width=1280\n% end\n", encode_evt2(x, y, t, p, triggers))
    with open_events(path) as reader:
        assert reader.encoding == "evt2"
        assert_events(reader.read_all(), x, y, t, p)
        np.testing.assert_array_equal(reader.triggers.t, [int(t[10]), int(t[20])])
        np.testing.assert_array_equal(reader.triggers.p, [1, 0])
        windows = list(reader.windows(window_us=10_007))
        np.testing.assert_array_equal(np.concatenate([w.t for w in windows]), t)
    decoded = expelliarmus.Wizard(encoding="evt2").read(path)
    np.testing.assert_array_equal(decoded["x"], x)
    np.testing.assert_array_equal(decoded["y"], y)
    np.testing.assert_array_equal(decoded["p"], p)


def written_by_expelliarmus(tmp_path, encoding, suffix):
    x, y, t, p = events_of(3_000, seed=3, height=480, width=640, runs=False)
    array = np.zeros(len(t), np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.uint8)]))
    array["t"], array["x"], array["y"], array["p"] = t, x, y, p
    path = tmp_path / f"written.{suffix}"
    expelliarmus.Wizard(encoding=encoding).save(path, array)
    return path, (x, y, t, p)


def test_evt2_written_by_expelliarmus(tmp_path):
    path, truth = written_by_expelliarmus(tmp_path, "evt2", "raw")
    assert detect_format(path) == "prophesee-raw"
    with pytest.raises(FormatError, match="sensor_size"):  # its header has no geometry
        open_events(path)
    with open_events(path, sensor_size=(480, 640)) as reader:
        assert_events(reader.read_all(), *truth)


@pytest.mark.parametrize("legacy", [False, True])
def test_evt21(tmp_path, legacy):
    x, y, t, p = events_of(20_000, seed=4, t0=5_000, span=1_000_000)
    order = evt21_order(x, y, t, p)
    header = b"% format EVT21;height=720;width=1280" + (b";endianness=legacy" if legacy else b"") + b"\n% end\n"
    path = write_raw(tmp_path / "a.raw", header, encode_evt21(x, y, t, p, legacy))
    with PropheseeRawReader(path, block_words=256) as reader:
        assert reader.encoding == "evt21"
        assert_events(reader.read_all(), *(a[order] for a in (x, y, t, p)))
        windows = list(reader.windows(window_us=3_001))
        np.testing.assert_array_equal(np.concatenate([w.x for w in windows]), x[order])


# ---- DAT -----------------------------------------------------------------------------------------
def test_dat_written_by_expelliarmus(tmp_path):
    path, (x, y, t, p) = written_by_expelliarmus(tmp_path, "dat", "dat")
    assert detect_format(path) == "prophesee-dat"
    with open_events(path, sensor_size=(480, 640)) as reader:
        assert isinstance(reader, PropheseeDatReader)
        assert_events(reader.read_all(), x, y, t, p)
        windows = list(reader.windows(window_us=999))
        np.testing.assert_array_equal(np.concatenate([w.t for w in windows]), t)
        assert_events(reader.read_time(int(t[100]), int(t[200])), *(a[100:200] for a in (x, y, t, p)))


def write_dat(path, x, y, t, p, event_type=12, event_size=8, height=480, width=640):
    records = np.stack([t.astype(np.uint32), x.astype(np.uint32) | (y.astype(np.uint32) << 14)
                        | (p.astype(np.uint32) << 28)], axis=1).astype("<u4")
    header = f"% Data file containing CD events.\n% Version 2\n% Height {height}\n% Width {width}\n".encode()
    path.write_bytes(header + bytes([event_type, event_size]) + records.tobytes())
    return path


def test_dat_header_size(tmp_path):
    x, y, t, p = events_of(1_000, seed=5, height=480, width=640)
    with open_events(write_dat(tmp_path / "a.dat", x, y, t, p)) as reader:
        assert reader.sensor_size == (480, 640)
        assert_events(reader.read_all(), x, y, t, p)


# ---- Metavision HDF5 -----------------------------------------------------------------------------
CD_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")])


def write_metavision_h5(path, x, y, t, p, compression=None, ecf=False):
    events = np.zeros(len(t), CD_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t
    with h5py.File(path, "w") as h5file:
        h5file.attrs["format"] = "EVT3;height=720;width=1280"
        group = h5file.create_group("CD")
        if ecf:  # the pipeline Metavision writes: ECF (filter 36559) on chunks written directly
            plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            plist.set_chunk((len(t),))
            plist.set_filter(36559, h5py.h5z.FLAG_OPTIONAL)
            space = h5py.h5s.create_simple((len(t),))
            dataset = h5py.Dataset(h5py.h5d.create(group.id, b"events", h5py.h5t.py_create(CD_DTYPE), space, plist))
            dataset.id.write_direct_chunk((0,), b"\x00" * 64, filter_mask=0)
        else:
            group.create_dataset("events", data=events, chunks=True, compression=compression)
        group.create_dataset("indexes", data=np.zeros(1, [("id", "<u8"), ("ts", "<i8")]))
        triggers = np.zeros(2, [("p", "<i2"), ("t", "<i8"), ("id", "<i2")])
        triggers["t"], triggers["id"], triggers["p"] = (int(t[3]), int(t[4])), (1, 1), (1, 0)
        h5file.create_dataset("EXT_TRIGGER/events", data=triggers)
    return path


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_metavision_h5(tmp_path, compression):
    x, y, t, p = events_of(5_000, seed=6)
    path = write_metavision_h5(tmp_path / "rec.hdf5", x, y, t, p, compression)
    assert detect_format(path) == "metavision-h5"
    with open_events(path) as reader:
        assert isinstance(reader, MetavisionH5Reader) and reader.sensor_size == (720, 1280)
        assert_events(reader.read_all(), x, y, t, p)
        np.testing.assert_array_equal(reader.triggers.t, t[3:5])
        windows = list(reader.windows(window_us=5_003))
        np.testing.assert_array_equal(np.concatenate([w.t for w in windows]), t)


def test_metavision_h5_ecf_names_the_codec(tmp_path):
    x, y, t, p = events_of(8, seed=7, runs=False)
    path = write_metavision_h5(tmp_path / "ecf.hdf5", x, y, t, p, ecf=True)
    with pytest.raises(FormatError) as error:
        open_events(path)
    message = str(error.value)
    assert str(path) in message and "ECF" in message and "36559" in message and "\n" not in message


# ---- detection and damaged files ----------------------------------------------------------------
def test_registered_and_detected(evt3_file, tmp_path):
    assert {"prophesee-raw", "prophesee-dat", "metavision-h5"} <= set(READERS)
    path = evt3_file[0]
    assert detect_format(path) == "prophesee-raw"
    copy = tmp_path / "no_extension"
    copy.write_bytes(path.read_bytes())
    assert detect_format(copy) == "prophesee-raw"  # by header, not by extension
    bare = tmp_path / "headerless.raw"
    bare.write_bytes(path.read_bytes()[len(EVT3_HEADER):])
    with pytest.raises(FormatError, match="signature is missing"):
        detect_format(bare)


def damaged_files(tmp_path, evt3_file):
    data = evt3_file[0].read_bytes()
    x, y, t, p = events_of(100, seed=8, height=480, width=640)
    dat = write_dat(tmp_path / "good.dat", x, y, t, p).read_bytes()
    files = {
        "truncated.raw": data[:-1],
        "header_only_unknown.raw": b"% format HISTO3D;height=720;width=1280\n% end\n" + data[len(EVT3_HEADER):],
        "no_time_high.raw": EVT3_HEADER + np.array([0x0005, 0x2010] * 50, "<u2").tobytes(),
        "no_geometry.raw": b"% evt 3.0\n" + data[len(EVT3_HEADER):],
        "truncated.dat": dat[:-3],
        "wrong_type.dat": dat.replace(bytes([12, 8]), bytes([40, 36]), 1),
        "no_size_bytes.dat": dat[:dat.index(bytes([12, 8]))],
    }
    paths = []
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        paths.append(path)
    return paths


def test_damaged_files_one_line_naming_the_file(tmp_path, evt3_file):
    for path in damaged_files(tmp_path, evt3_file):
        with pytest.raises(FormatError) as error:
            with open_events(path) as reader:
                reader.read_all()
        message = str(error.value)
        assert message.startswith(str(path)) and "\n" not in message, message


def test_unsorted_stream_raises(tmp_path):
    x, y, t, p = events_of(2_000, seed=9)
    words = np.concatenate([encode_evt3(x[1000:], y[1000:], t[1000:], p[1000:]), encode_evt3(x[:1000], y[:1000], t[:1000], p[:1000])])
    path = write_raw(tmp_path / "a.raw", EVT3_HEADER, words)
    with pytest.raises(FormatError, match="repair=True"):
        with open_events(path, block_words=128) as reader:
            reader.read_all()
    with open_events(path, repair=True) as reader:
        np.testing.assert_array_equal(reader.read_all().t, t)


# ---- one-pass paths against the index ------------------------------------------------------------
def paths_of(reader_class, path, window_us, count, **options):
    """(read_all in one pass, read_all through the index, streamed time windows, streamed count
    windows, time windows read through the index) of one file."""
    with reader_class(path, **options) as reader:
        whole = reader.read_all()
        streamed = list(reader.windows(window_us=window_us))
        counted = list(reader.windows(count=count))
    with reader_class(path, **options) as reader:
        assert len(reader) == len(whole)  # builds the index first
        indexed = reader.read_all()
        by_index = list(reader.windows(window_us=window_us, t0_us=reader.t_start, t1_us=reader.t_end + 1))
    return whole, indexed, streamed, counted, by_index


@pytest.mark.parametrize("encoding", ["evt3", "evt2", "evt21", "dat"])
def test_one_pass_and_indexed_paths_agree(tmp_path, encoding):
    x, y, t, p = events_of(30_000, seed=10, t0=(1 << 24) - 500_000, span=1_000_000, runs=encoding != "evt2")
    options = {"block_words": 512} if encoding != "dat" else {}
    if encoding == "evt3":
        path, reader_class = write_raw(tmp_path / "a.raw", EVT3_HEADER, encode_evt3(x, y, t, p)), PropheseeRawReader
    elif encoding == "evt2":
        header = b"% format EVT2;height=720;width=1280\n% end\n"
        path, reader_class = write_raw(tmp_path / "a.raw", header, encode_evt2(x, y, t, p)), PropheseeRawReader
    elif encoding == "evt21":
        order = evt21_order(x, y, t, p)
        header = b"% format EVT21;height=720;width=1280\n% end\n"
        path, reader_class = write_raw(tmp_path / "a.raw", header, encode_evt21(x, y, t, p)), PropheseeRawReader
        x, y, t, p = (a[order] for a in (x, y, t, p))
    else:
        path, reader_class = write_dat(tmp_path / "a.dat", x, y, t, p, height=720, width=1280), PropheseeDatReader
    whole, indexed, streamed, counted, by_index = paths_of(reader_class, path, 7_001, 999, **options)
    for events in (whole, indexed):
        assert_events(events, x, y, t, p)
    assert [len(w) for w in streamed] == [len(w) for w in by_index]
    assert len(streamed) == -(-(int(t[-1]) + 1 - int(t[0])) // 7_001)
    assert [len(w) for w in counted] == [999] * (len(t) // 999) + ([len(t) % 999] if len(t) % 999 else [])
    for windows in (streamed, counted, by_index):
        assert_events(type(whole)(*(np.concatenate([getattr(w, a) for w in windows]) for a in "xytp"), whole.sensor_size),
                      x, y, t, p)
    for k, window in enumerate(streamed):
        assert len(window) == 0 or (window.t[0] >= t[0] + k * 7_001 and window.t[-1] < t[0] + (k + 1) * 7_001)


def test_count_windows_split_vectors(evt3_file):
    path, (x, y, t, p), _ = evt3_file
    with PropheseeRawReader(path) as reader:
        windows = list(reader.windows(count=1))
    assert len(windows) == len(t) and all(len(w) == 1 for w in windows)
    np.testing.assert_array_equal(np.concatenate([w.x for w in windows]), x)


def test_one_pass_collects_triggers_and_the_index(evt3_file):
    path, (x, y, t, p), triggers = evt3_file
    with PropheseeRawReader(path, block_words=1000) as reader:
        reader.read_all()
        one_pass = reader.checkpoints.copy(), reader.triggers
    with PropheseeRawReader(path, block_words=1000) as reader:
        np.testing.assert_array_equal(reader.checkpoints, one_pass[0])  # the counting pass
    np.testing.assert_array_equal(one_pass[1].t, [s for s, _, _ in triggers])


def test_events_outside_the_sensor_are_skipped_on_every_path(tmp_path):
    x, y, t, p = events_of(20_000, seed=11)  # up to 1279 x 719, vectors straddling x = 640
    header = b"% format EVT3;height=480;width=640\n% end\n"
    path = write_raw(tmp_path / "a.raw", header, encode_evt3(x, y, t, p))
    inside = (x < 640) & (y < 480)
    whole, indexed, streamed, counted, by_index = paths_of(PropheseeRawReader, path, 5_003, 777, block_words=300)
    for events in (whole, indexed):
        assert_events(events, *(a[inside] for a in (x, y, t, p)))
    for windows in (streamed, counted, by_index):
        np.testing.assert_array_equal(np.concatenate([w.x for w in windows]), x[inside])


def test_unsorted_raw_raises_on_every_path(tmp_path):
    x, y, t, p = events_of(2_000, seed=9)
    words = np.concatenate([encode_evt3(x[1000:], y[1000:], t[1000:], p[1000:]), encode_evt3(x[:1000], y[:1000], t[:1000], p[:1000])])
    path = write_raw(tmp_path / "a.raw", EVT3_HEADER, words)
    for use in (lambda r: r.read_all(), len, lambda r: list(r.windows(window_us=10_000)), lambda r: list(r.windows(count=100))):
        with pytest.raises(FormatError, match="not sorted.*repair=True"):
            with open_events(path) as reader:
                use(reader)


@pytest.mark.parametrize("damage", ["unsorted", "outside"])
def test_dat_validation_in_the_kernel(tmp_path, damage):
    x, y, t, p = events_of(5_000, seed=12, height=480, width=640, runs=False)
    if damage == "unsorted":
        t = t.copy()
        t[3_000] = t[2_000]
    else:
        x = x.copy()
        x[4_999] = 700
    path = write_dat(tmp_path / "a.dat", x, y, t, p)
    with open_events(path) as reader:
        assert_events(reader.read_index(0, 2_500), *(a[:2_500] for a in (x, y, t, p)))
        with pytest.raises(FormatError, match="repair=True"):
            reader.read_all()
        with pytest.raises(FormatError, match="repair=True"):
            list(reader.windows(count=1_000))
    with open_events(path, repair=True) as reader:
        assert len(reader.read_all()) == (5_000 if damage == "unsorted" else 4_999)


def test_shrunk_raw_file_raises(tmp_path, evt3_file):
    path = tmp_path / "a.raw"
    path.write_bytes(evt3_file[0].read_bytes())
    with open_events(path) as reader:
        with open(path, "r+b") as handle:
            handle.truncate(len(EVT3_HEADER) + 1000)
        with pytest.raises(FormatError, match="shrank"):
            reader.read_all()


def test_streamed_windows_follow_the_gap_rule(tmp_path):
    x, y, t, p = events_of(3_000, seed=13, span=200_000, runs=False)
    # gaps of 5 s and of 2.5 ms (1 ms windows), 10 events after each
    t = np.concatenate([t, t[-1] + 5_000_000 + np.arange(10), t[-1] + 5_002_509 + np.arange(10)])
    x, y, p = (np.concatenate([a, a[:10], a[:10]]) for a in (x, y, p))
    path = write_raw(tmp_path / "a.raw", b"% format EVT2;height=720;width=1280\n% end\n", encode_evt2(x, y, t, p))
    for gap_windows in (None, 2, 3, 1000):
        runs = []
        for t0_us in (None, int(t[0])):  # streamed, through the index
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with PropheseeRawReader(path) as reader:
                    runs.append(([len(w) for w in reader.windows(window_us=1_000, gap_windows=gap_windows, t0_us=t0_us)],
                                 [str(w.message) for w in caught if issubclass(w.category, AnydepthWarning)]))
        assert runs[0] == runs[1]
        assert len(runs[0][1]) == {None: 0, 2: 2, 3: 1, 1000: 1}[gap_windows]
        with PropheseeRawReader(path) as reader, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            streamed = list(reader.windows(window_us=1_000, gap_windows=gap_windows))
        np.testing.assert_array_equal(np.concatenate([w.t for w in streamed]), t)
