"""iniVation formats through open_events: AEDAT4 (written by iniVation's dv-processing, and the real
DVXplorer file read by dv-processing's own reader), AEDAT 2.0 (jAER) and AEDAT 3.1 (cAER).

No installable package writes or reads AEDAT 2.0 / 3.1 files any more (dv-processing and `aedat`
read AEDAT4 only), so those fixtures are built here byte by byte from the specification: jAER's
extractors (DVS128.java, DavisBaseCamera.java) for the 2.0 address bits and iniVation's AEDAT 3.1
page for the packets; the encoders below share no code with the readers.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from anydepth.errors import FormatError, InputError
from anydepth.events.dataset import open_sequence
from anydepth.events.readers import aedat2, detect_format, open_events
from anydepth.events.readers.aedat4 import Aedat4Reader
from tests.support import REALDATA

REAL_AEDAT4 = REALDATA / "dvxplorer_aedat4" / "sample.aedat4"


def _random_events(n, height, width, seed=0, t0=1_000_000, step=7):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, width, n)
    y = rng.integers(0, height, n)
    t = t0 + np.cumsum(rng.integers(0, step, n))
    p = rng.integers(0, 2, n)
    return x, y, t.astype(np.int64), p


def _check_windows(reader, x, y, t, p, window_us):
    """Windows of `window_us` hold every event exactly once, in order."""
    parts = list(reader.windows(window_us=window_us))
    assert sum(len(part) for part in parts) == len(t)
    for name, column in (("x", x), ("y", y), ("t", t), ("p", p)):
        joined = np.concatenate([getattr(part, name) for part in parts])
        np.testing.assert_array_equal(joined, column, err_msg=name)


def _check_chunks(reader):
    """chunks() yields the file's chunks once each, in order: every one equals read_index over its
    events (values and dtypes), and together they are read_all()."""
    parts, at = [], 0
    for part in reader.chunks():
        assert len(part) > 0
        _assert_same_events(part, reader.read_index(at, at + len(part)))
        parts.append(part)
        at += len(part)
    assert at == len(reader)
    whole = reader.read_all()
    for name in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(np.concatenate([getattr(part, name) for part in parts]), getattr(whole, name))
    return parts


def _one_line_error(error, path):
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


# ---- AEDAT4 ------------------------------------------------------------------------------------
dv = pytest.importorskip("dv_processing")


def _write_dv(path, batches, frames=(), imu=(), size=(346, 260), compression=None):
    config = dv.io.MonoCameraWriter.Config("TestCamera")
    if compression is not None:
        config.compression = getattr(dv.CompressionType, compression)
    config.addEventStream(size)
    if frames:
        config.addFrameStream(size)
    if imu:
        config.addImuStream()
    writer = dv.io.MonoCameraWriter(str(path), config)
    for x, y, t, p in batches:
        store = dv.EventStore()
        for xi, yi, ti, pi in zip(x, y, t, p):
            store.push_back(int(ti), int(xi), int(yi), bool(pi))
        writer.writeEvents(store)
    for timestamp, image in frames:
        writer.writeFrame(dv.Frame(int(timestamp), image))
    for sample in imu:
        writer.writeImu(dv.IMU(*sample))
    del writer


@pytest.fixture(scope="module")
def dv_file(tmp_path_factory):
    """A dv-processing file: 6,000 events in 12 packets, 3 frames, 4 IMU samples."""
    path = tmp_path_factory.mktemp("aedat4") / "recording.aedat4"
    x, y, t, p = _random_events(6000, 260, 346)
    batches = [tuple(column[i:i + 500] for column in (x, y, t, p)) for i in range(0, 6000, 500)]
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (260, 346), dtype=np.uint8) for _ in range(3)]
    frame_times = [int(t[1000]), int(t[3000]), int(t[5000])]
    imu = [(int(t[k]), 30.0 + k, 0.5, -1.0, 0.25, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0) for k in (10, 2000, 4000, 5999)]
    _write_dv(path, batches, list(zip(frame_times, images)), imu)
    return path, (x, y, t, p), frame_times, images, imu


def test_aedat4_dv_processing_file_reads_lazily(dv_file):
    path, (x, y, t, p), _, _, _ = dv_file
    assert detect_format(path) == "aedat4"
    with open_events(path) as reader:
        assert isinstance(reader, Aedat4Reader) and reader.sensor_size == (260, 346)
        assert len(reader) == 6000 and len(reader._packets) == 12
        events = reader.read_all()
        for name, column in (("x", x), ("y", y), ("t", t), ("p", p)):
            np.testing.assert_array_equal(getattr(events, name), column, err_msg=name)
        _check_windows(reader, x, y, t, p, window_us=1_000)
        assert [len(part) for part in _check_chunks(reader)] == [500] * 12  # one per packet
        # A window at the end decodes only the packets it overlaps, and the cache stays bounded.
        reader._cache.clear()
        decoded = []
        original = reader._decode_chunk
        reader._decode_chunk = lambda k: decoded.append(k) or original(k)
        late = reader.read_time(int(t[5600]), int(t[5700]))
        assert len(late) == np.count_nonzero((t >= t[5600]) & (t < t[5700]))
        assert set(decoded) <= {10, 11} and len(reader._cache) <= reader.cached_chunks
        stream = reader.chunks()
        assert len(next(stream)) == 500
        reader.close()
        with pytest.raises(InputError, match="closed"):
            next(stream)


def test_aedat4_frames_and_imu_through_open_sequence(dv_file):
    path, (x, y, t, p), frame_times, images, imu = dv_file
    with open_sequence(path, window_ms=2.0) as sequence:
        np.testing.assert_array_equal(sequence.timestamps_us, frame_times)
        for i, sample in enumerate(sequence):
            np.testing.assert_array_equal(sample.frame, images[i])
            assert sample.depth_m is None
            expected = (t >= frame_times[i] - 2000) & (t < frame_times[i])
            np.testing.assert_array_equal(sample.events.t, t[expected])
        samples = sequence.imu()
        np.testing.assert_array_equal(samples["timestamp"], [s[0] for s in imu])
        np.testing.assert_allclose(samples["temperature"], [s[1] for s in imu])
        np.testing.assert_allclose(samples["gyroscope_z"], 3.0)
        assert len(sequence.imu(int(t[1000]), int(t[4000]))) == 1


def test_aedat4_without_data_table_is_scanned(dv_file, tmp_path):
    """A recording cut before its file data table (the header still points past the end) is
    indexed by one scan of its packets."""
    path, (x, y, t, p), _, _, _ = dv_file
    with Aedat4Reader(path) as reader:
        end = int(reader._table["offset"][-1] + reader._table["size"][-1])
    cut = tmp_path / "cut.aedat4"
    cut.write_bytes(path.read_bytes()[:end])
    with open_events(cut) as reader:
        np.testing.assert_array_equal(reader.read_all().t, t)
        assert len(reader.frame_timestamps_us()) == 3


def test_aedat4_truncated_and_corrupt_files_fail_in_one_line(dv_file, tmp_path):
    path, *_ = dv_file
    data = path.read_bytes()
    with Aedat4Reader(path) as reader:
        first = int(reader._packets["offset"][0])
        end = int(reader._table["offset"][-1] + reader._table["size"][-1])
    truncated = tmp_path / "truncated.aedat4"
    truncated.write_bytes(data[:first + 40])
    with pytest.raises(FormatError) as error, open_events(truncated) as reader:
        reader.read_all()
    assert "truncated" in _one_line_error(error, truncated)
    corrupt = tmp_path / "corrupt.aedat4"
    corrupt.write_bytes(data[:first + 4] + b"\xff" * 16 + data[first + 20:])
    with pytest.raises(FormatError) as error, open_events(corrupt) as reader:
        reader.read_all()
    assert "corrupt" in _one_line_error(error, corrupt)
    header_cut = tmp_path / "header.aedat4"
    header_cut.write_bytes(data[:100])
    with pytest.raises(FormatError) as error:
        open_events(header_cut)
    _one_line_error(error, header_cut)
    assert end < len(data)  # the file does carry a data table


@pytest.mark.skipif(not REAL_AEDAT4.is_file(), reason="shared/realdata not present")
def test_real_dvxplorer_file_matches_dv_processing():
    recording = dv.io.MonoCameraRecording(str(REAL_AEDAT4))
    batches = []
    while True:
        batch = recording.getNextEventBatch()
        if batch is None:
            break
        batches.append(batch.numpy())
    reference = np.concatenate(batches)
    with open_events(REAL_AEDAT4) as reader:
        assert len(reader) == len(reference) == 111_954
        assert reader.sensor_size == (240, 320)
        events = reader.read_all()
        np.testing.assert_array_equal(events.t, reference["timestamp"])
        np.testing.assert_array_equal(events.x, reference["x"])
        np.testing.assert_array_equal(events.y, reference["y"])
        np.testing.assert_array_equal(events.p, reference["polarity"])
        assert not reader.has_frames and len(reader.read_imu()) == 475
        _check_windows(reader, events.x, events.y, events.t, events.p, window_us=50_000)


# ---- AEDAT 2.0 ---------------------------------------------------------------------------------
def _aedat2_file(path, chip_class, addresses, timestamps):
    header = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
    if chip_class:
        header += f"# AEChip: {chip_class}\r\n".encode()
    records = np.empty(len(addresses), dtype=[("a", ">u4"), ("t", ">u4")])
    records["a"], records["t"] = addresses, np.asarray(timestamps) % (1 << 32)
    path.write_bytes(header + records.tobytes())
    return path


def _dvs128_address(x, y, p):
    """jAER DVS128: x = 127 - raw x (bits 1-7), jAER y = raw y (bits 8-14, origin bottom-left, so
    image row y = 127 - raw y), bit 0 = 1 for OFF."""
    return ((127 - x) << 1) | ((127 - y) << 8) | (1 - p)


def _davis_address(x, y, p, height, width):
    """jAER DAVIS: y bits 22-30, x bits 12-21 (x mirrored), bit 11 = ON."""
    return ((height - 1 - y) << 22) | ((width - 1 - x) << 12) | (p << 11)


def test_aedat2_dvs128_skips_special_events(tmp_path):
    x, y, t, p = _random_events(3000, 128, 128)
    addresses = _dvs128_address(x, y, p).astype(np.uint32)
    special = np.full(100, 0x8000, np.uint32)  # sync events from the IN pin
    where = np.sort(np.random.default_rng(2).choice(3000, 100, replace=False))
    all_addresses = np.insert(addresses, where, special)
    all_t = np.insert(t, where, t[where])
    path = _aedat2_file(tmp_path / "dvs128.aedat", "ch.unizh.ini.jaer.chip.retina.DVS128", all_addresses, all_t)
    assert detect_format(path) == "aedat2"
    with open_events(path) as reader:
        assert reader.sensor_size == (128, 128) and len(reader) == 3000
        events = reader.read_all()
        for name, column in (("x", x), ("y", y), ("t", t), ("p", p)):
            np.testing.assert_array_equal(getattr(events, name), column, err_msg=name)
        _check_windows(reader, x, y, t, p, window_us=500)
        _check_chunks(reader)


def test_aedat2_davis346_blocks_wrap_and_aps_imu(tmp_path, monkeypatch):
    monkeypatch.setattr(aedat2, "BLOCK_RECORDS", 97)  # many blocks, windows across their edges
    height, width = 260, 346
    x, y, t, p = _random_events(2000, height, width, t0=(1 << 32) - 5_000, step=9)  # wraps past 2^32 µs
    addresses = _davis_address(x, y, p, height, width).astype(np.uint32)
    rng = np.random.default_rng(3)
    others = np.array([0x80000000 | (5 << 22) | 17, 0x80000C00 | (3 << 28), 1 << 10], np.uint32)  # APS, IMU, external
    where = np.sort(rng.choice(2000, 300))
    all_addresses = np.insert(addresses, where, others[rng.integers(0, 3, 300)])
    all_t = np.insert(t, where, t[where])
    path = _aedat2_file(tmp_path / "davis.aedat", "eu.seebetter.ini.chips.davis.Davis346B", all_addresses, all_t)
    with open_events(path) as reader:
        assert reader.sensor_size == (260, 346) and len(reader) == 2000
        assert reader.t_start == t[0] and reader.t_end == t[-1] > 1 << 32
        events = reader.read_all()
        for name, column in (("x", x), ("y", y), ("t", t), ("p", p)):
            np.testing.assert_array_equal(getattr(events, name), column, err_msg=name)
        _check_windows(reader, x, y, t, p, window_us=333)
        assert len(_check_chunks(reader)) > 10  # blocks of 97 records
        assert reader.index_of_time(int(t[1234])) == np.searchsorted(t, t[1234])


def test_aedat2_without_chip_needs_the_option_and_truncation_fails(tmp_path):
    x, y, t, p = _random_events(50, 180, 240)
    addresses = _davis_address(x, y, p, 180, 240).astype(np.uint32)
    path = _aedat2_file(tmp_path / "nochip.aedat", None, addresses, t)
    with pytest.raises(FormatError) as error:
        open_events(path)
    assert "chip=" in _one_line_error(error, path)
    with open_events(path, chip="davis240") as reader:
        np.testing.assert_array_equal(reader.read_all().x, x)
    truncated = tmp_path / "truncated.aedat"
    truncated.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(FormatError) as error:
        open_events(truncated, chip="davis240")
    assert "truncated" in _one_line_error(error, truncated)


# ---- AEDAT 3.1 ---------------------------------------------------------------------------------
def _aedat31_file(path, source_line, packets):
    header = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n" + source_line.encode() +
              b"#Start-Time: 2017-01-01 10:00:00 (TZ+0100)\r\n#!END-HEADER\r\n")
    body = b""
    for event_type, source, overflow, payload, number, valid in packets:
        size = 8 if event_type == 1 else 8
        body += struct.pack("<hhiiiiii", event_type, source, size, 4, overflow, number, number, valid) + payload
    path.write_bytes(header + body)
    return path


def _polarity_payload(x, y, t, p, valid):
    data = (x.astype(np.uint32) << 17) | (y.astype(np.uint32) << 2) | (p.astype(np.uint32) << 1) | valid.astype(np.uint32)
    records = np.empty(len(x), dtype=[("data", "<u4"), ("t", "<i4")])
    records["data"], records["t"] = data, t & 0x7FFFFFFF
    return records.tobytes()


def test_aedat31_polarity_packets(tmp_path):
    x, y, t, p = _random_events(1200, 260, 346, t0=(1 << 31) - 3_000, step=11)  # crosses one overflow
    valid = np.random.default_rng(4).random(1200) > 0.1
    packets = []
    for i in range(0, 1200, 200):
        s = slice(i, i + 200)
        overflow = int(t[s][0] >> 31)
        if (t[s] >> 31).max() != overflow:  # keep one overflow value per packet, as cAER does
            cut = i + int(np.argmax((t[s] >> 31) != overflow))
            parts = [slice(i, cut), slice(cut, i + 200)]
        else:
            parts = [s]
        for part in parts:
            packets.append((1, 1, int(t[part][0] >> 31), _polarity_payload(x[part], y[part], t[part], p[part], valid[part]),
                            part.stop - part.start, int(valid[part].sum())))
        packets.append((0, 1, 0, b"\x00" * 8 * 3, 3, 3))  # a special-event packet, skipped
    path = _aedat31_file(tmp_path / "davis.aedat", "#Source 1: DAVIS346B\r\n", packets)
    assert detect_format(path) == "aedat3.1"
    with open_events(path) as reader:
        assert reader.sensor_size == (260, 346) and len(reader) == int(valid.sum())
        x, y, t, p = x[valid], y[valid], t[valid], p[valid]
        events = reader.read_all()
        for name, column in (("x", x), ("y", y), ("t", t), ("p", p)):
            np.testing.assert_array_equal(getattr(events, name), column, err_msg=name)
        _check_windows(reader, x, y, t, p, window_us=250)
        _check_chunks(reader)
    with open_events(path, repair=True) as reader:  # held in memory: one array
        assert [len(part) for part in reader.chunks()] == [len(t)]


def test_chunks_check_the_order_across_chunks(tmp_path):
    """A packet that starts before the one before it ends: chunks() yields the chunks before it,
    then raises the message of read_index over that chunk."""
    x, y, t, p = _random_events(600, 260, 346, step=5)
    t[400:] -= 50  # packet 2 (events 400..599) starts before packet 1 ends
    packets = [(1, 1, 0, _polarity_payload(x[s], y[s], t[s], p[s], np.ones(200, bool)), 200, 200)
               for s in (slice(0, 200), slice(200, 400), slice(400, 600))]
    path = _aedat31_file(tmp_path / "unsorted.aedat", "#Source 1: DAVIS346B\r\n", packets)
    with open_events(path) as reader:
        with pytest.raises(FormatError) as expected:
            reader.read_index(400, 600)
        counts = []
        with pytest.raises(FormatError) as error:
            counts.extend(len(events) for events in reader.chunks())
        assert counts == [200, 200] and str(error.value) == str(expected.value)
        assert "not sorted" in _one_line_error(error, path)


def test_aedat31_unknown_device_and_truncation(tmp_path):
    x, y, t, p = _random_events(40, 100, 100)
    payload = _polarity_payload(x, y, t, p, np.ones(40, bool))
    path = _aedat31_file(tmp_path / "odd.aedat", "#Source 0: SomeFutureCamera\r\n", [(1, 0, 0, payload, 40, 40)])
    with pytest.raises(FormatError) as error:
        open_events(path)
    assert "sensor_size" in _one_line_error(error, path)
    with open_events(path, sensor_size=(100, 100)) as reader:
        np.testing.assert_array_equal(reader.read_all().y, y)
    truncated = tmp_path / "truncated.aedat"
    truncated.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(FormatError) as error:
        open_events(truncated, sensor_size=(100, 100))
    assert "truncated" in _one_line_error(error, truncated)


def test_detection_by_signature_not_extension(tmp_path, dv_file):
    x, y, t, p = _random_events(10, 128, 128)
    renamed = _aedat2_file(tmp_path / "events.bin", "DVS128", _dvs128_address(x, y, p).astype(np.uint32), t)
    assert detect_format(renamed) == "aedat2"
    copy = tmp_path / "recording.data"
    copy.write_bytes(dv_file[0].read_bytes())
    assert detect_format(copy) == "aedat4"
    fake = tmp_path / "fake.aedat"
    fake.write_bytes(b"not an aedat file at all\n")
    with pytest.raises(FormatError) as error:
        detect_format(fake)
    _one_line_error(error, fake)


# ---- fast paths (numba kernels, LZ4 into a reused buffer) against the plain ones ------------------
def _generic_read(reader, i0, i1):
    """The plain validated read of EventReader (concatenate, then EventArray.from_arrays)."""
    from anydepth.events.readers.base import EventReader
    return EventReader._read_validated(reader, i0, i1)


def _assert_same_events(a, b):
    for name in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype, name


@pytest.mark.parametrize("lz4_fast", [True, False])
def test_aedat4_whole_file_equals_windows_and_dv_processing(tmp_path, monkeypatch, lz4_fast):
    """dv-processing writes the file (LZ4, linked 64 KiB blocks); read_all, 50 ms-style windows,
    random index ranges and dv-processing's own reader give the same events, with the LZ4 frame
    decoded into the reused buffer and with lz4.frame.decompress."""
    from anydepth.events.readers import aedat4
    if not lz4_fast:
        monkeypatch.setattr(aedat4.Lz4FrameDecoder, "_library", False)
    path = tmp_path / "big.aedat4"
    x, y, t, p = _random_events(60_000, 260, 346, seed=3, step=3)
    _write_dv(path, [tuple(c[i:i + 7000] for c in (x, y, t, p)) for i in range(0, 60_000, 7000)])
    recording, parts = dv.io.MonoCameraRecording(str(path)), []
    while (batch := recording.getNextEventBatch()) is not None:
        parts.append(batch.numpy())
    theirs = np.concatenate(parts)
    with open_events(path) as reader:
        assert (reader._lz4._context.value is not None) == lz4_fast
        events = reader.read_all()
        np.testing.assert_array_equal(events.t, theirs["timestamp"])
        np.testing.assert_array_equal(events.x, theirs["x"])
        np.testing.assert_array_equal(events.y, theirs["y"])
        np.testing.assert_array_equal(events.p, theirs["polarity"].astype(np.int8))
        _check_windows(reader, x, y, t, p, window_us=5_000)
        _check_chunks(reader)
        rng = np.random.default_rng(0)
        for i0 in rng.integers(0, 60_000, 20):
            i1 = int(i0 + rng.integers(0, 20_000))
            _assert_same_events(reader.read_index(i0, i1), _generic_read(reader, int(i0), min(i1, 60_000)))


def test_aedat4_fast_read_falls_back_to_the_plain_errors(dv_file, tmp_path):
    """An event outside the sensor inside a packet: the checked copy gives up and the plain path
    raises its message; windows before it still read."""
    path, (x, y, t, p), _, _, _ = dv_file
    bad = tmp_path / "outside.aedat4"
    x = x.copy()
    x[3100] = 400
    _write_dv(bad, [tuple(c[i:i + 500] for c in (x, y, t, p)) for i in range(0, 6000, 500)])
    with open_events(bad) as reader:
        assert len(reader.read_index(0, 3000)) == 3000
        with pytest.raises(FormatError) as error:
            reader.read_index(3000, 3200)
        assert "x = 400 outside the 260x346 sensor" in _one_line_error(error, bad)


def _plain_reader(path):
    """A reader with the packet kernel (decode_packets) switched off: every packet through
    _decode_events and ChunkedEventReader's per-chunk validated read."""
    reader = open_events(path)
    reader._file_bytes = None
    return reader


@pytest.mark.parametrize("compression", ["LZ4", "NONE"])
def test_aedat4_packet_kernel_equals_the_plain_path(tmp_path, monkeypatch, compression):
    """dv-processing writes packets of 1 to 3,000 events (LZ4 frames, or uncompressed) with frames
    between them; windows and index ranges that span many packets, read by decode_packets, equal
    the plain per-packet path and the generic validation, and so does the window cache."""
    from anydepth.events.readers import aedat4
    calls = []
    kernel = aedat4.decode_packets
    monkeypatch.setattr(aedat4, "decode_packets", lambda *args: calls.append(len(args[1])) or kernel(*args))
    x, y, t, p = _random_events(20_000, 260, 346, seed=7, step=4)
    cuts = np.unique(np.concatenate([[0, 1, 2, 20_000], np.random.default_rng(8).integers(3, 20_000, 18)]))
    batches = [tuple(c[a:b] for c in (x, y, t, p)) for a, b in zip(cuts[:-1], cuts[1:])]
    frames = [(int(t[k]), np.full((260, 346), k % 256, np.uint8)) for k in (500, 9000, 15000)]
    path = tmp_path / f"{compression}.aedat4"
    _write_dv(path, batches, frames, compression=compression)
    with open_events(path) as reader, _plain_reader(path) as plain:
        assert reader._file_bytes is not None and len(reader._packets) == len(batches)
        _assert_same_events(reader.read_all(), plain.read_all())
        assert max(calls) >= len(batches) - 2  # one call for every packet between the first and the last
        for window_us in (700, 5_000, 40_000):
            ours, theirs = list(reader.windows(window_us=window_us)), list(plain.windows(window_us=window_us))
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs):
                _assert_same_events(a, b)
        rng = np.random.default_rng(9)
        for i0 in rng.integers(0, 20_000, 30):
            i1 = int(i0 + rng.integers(0, 12_000))
            expected = _generic_read(plain, int(i0), min(i1, 20_000))
            _assert_same_events(reader.read_index(i0, i1), expected)
            reader._cache.clear()  # first and last packet decoded again, by the kernel
            _assert_same_events(reader.read_index(i0, i1), expected)
        ours, theirs = _check_chunks(reader), _check_chunks(plain)
        assert len(ours) == len(theirs) == len(batches)
        for a, b in zip(ours, theirs):
            _assert_same_events(a, b)
        for k in range(len(batches)):
            for a, b in zip(reader._decode_chunk(k), plain._decode_chunk(k)):
                np.testing.assert_array_equal(a, b)
                assert a.dtype == b.dtype


def test_aedat4_packet_kernel_gives_the_plain_errors(tmp_path):
    """A corrupt LZ4 frame or an event outside the sensor in a packet between the first and the
    last of a read: the kernel gives up and the message is the plain path's."""
    x, y, t, p = _random_events(6000, 260, 346, seed=4)
    x[3100] = 400
    outside = tmp_path / "outside.aedat4"
    _write_dv(outside, [tuple(c[i:i + 500] for c in (x, y, t, p)) for i in range(0, 6000, 500)])
    with open_events(outside) as reader:
        assert len(reader.read_index(0, 3000)) == 3000
        with pytest.raises(FormatError) as error:
            reader.read_all()
        assert "x = 400 outside the 260x346 sensor" in _one_line_error(error, outside)
        for streamed in (reader, _plain_reader(outside)):  # chunks() too: the packets before, then the error
            with streamed, pytest.raises(FormatError) as error:
                for events in streamed.chunks():
                    assert events.t[-1] < t[3000]
            assert "x = 400 outside the 260x346 sensor" in _one_line_error(error, outside)
    data = bytearray(outside.read_bytes())
    with Aedat4Reader(outside) as reader:
        inner = int(reader._packets["offset"][5])
    data[inner:inner + 4] = b"\xff" * 4  # not an LZ4 frame any more
    corrupt = tmp_path / "corrupt.aedat4"
    corrupt.write_bytes(bytes(data))
    messages = []
    for reader in (open_events(corrupt), _plain_reader(corrupt)):
        with reader:
            with pytest.raises(FormatError) as error:
                reader.read_index(100, 5900)
            messages.append(_one_line_error(error, corrupt))
            assert len(reader.read_index(0, 2500)) == 2500  # the context was reset: later packets decode
            counts = []
            with pytest.raises(FormatError) as error:
                counts.extend(len(events) for events in reader.chunks())
            messages.append(_one_line_error(error, corrupt))
            assert counts == [500] * 5
    assert len(set(messages)) == 1 and f"packet at byte {inner}" in messages[0]


def test_aedat2_kernels_match_the_numpy_reference(tmp_path):
    rng = np.random.default_rng(5)
    n = 5000
    address = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    stamps = (np.cumsum(rng.integers(0, 3_000_000, n)) % (1 << 32)).astype(np.uint32)  # many wraps
    words = np.stack([address, stamps], axis=1).astype(">u4").view(np.uint32).reshape(-1, 2)
    for layout, reference in aedat2.DECODERS.items():
        mask = aedat2.DVS_MASK[layout]
        count = int(np.count_nonzero((address & np.uint32(mask)) == 0))
        t = stamps.astype(np.int64)
        t += np.concatenate([[0], np.cumsum(np.diff(t) < -(1 << 31))]) << 32
        expected = reference(address, t, 260, 346)
        got = aedat2.decode_block(words, count, 0, layout == "davis", 260, 346, aedat2.SWAP)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
        counts, t_last, wraps = (np.zeros(3, np.int64) for _ in range(3))
        aedat2.index_blocks(words, 0, 2000, mask, aedat2.SWAP, counts, t_last, wraps, 0, 0)
        assert counts.sum() == count and t_last[-1] == expected[2][-1]


def test_aedat31_kernel_matches_the_numpy_reference():
    from anydepth.events.readers import aedat31
    rng = np.random.default_rng(6)
    records = np.empty(3000, aedat31.POLARITY_RECORD)
    records["data"] = rng.integers(0, 1 << 32, 3000, dtype=np.uint64).astype(np.uint32)
    records["t"] = rng.integers(-(1 << 31), 1 << 31, 3000)
    count = int(np.count_nonzero(records["data"] & 1))
    expected = aedat31.decode_polarity(records, 5)
    got = aedat31.decode_packet(records.view(np.uint32).reshape(-1, 2), count, 5)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
