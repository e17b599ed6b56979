"""The event container: conventions, validation with one-line errors, explicit repair, slicing
and lossless windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anydepth.errors import FormatError, InputError
from anydepth.events import EventArray, concatenate


def test_conventions_on_construction():
    events = EventArray.from_arrays([1.0, 2.0], [0, 3], [10.0, 20.0], [-1, 1], (4, 5))
    assert events.x.dtype == np.uint16 and events.y.dtype == np.uint16  # integral floats -> uint16
    assert events.t.dtype == np.int64 and events.p.dtype == np.int8
    assert events.p.tolist() == [0, 1]  # -1/+1 -> 0/1
    assert EventArray.from_arrays([0], [0], [0], [True], (1, 1)).p.tolist() == [1]
    rectified = EventArray.from_arrays([1.5], [0.25], [0], [1], (4, 5))
    assert rectified.x.dtype == np.float32
    assert (events.height, events.width, events.t_start, events.t_end, events.duration_us) == (4, 5, 10, 20, 10)


@pytest.mark.parametrize(
    "x, y, t, p, message",
    [
        ([0, 5], [0, 0], [0, 1], [0, 1], "x = 5 outside the 4x5 sensor"),
        ([0, 1], [0, -1], [0, 1], [0, 1], "y = -1 outside the 4x5 sensor"),
        ([0, 1], [0, 0], [5, 4], [0, 1], "timestamps are not sorted: event 1 at 4 µs comes after 5 µs"),
        ([0, 1], [0, 0], [0, 1], [0, 2], "polarities must be 0/1, -1/+1 or booleans, found values from 0 to 2"),
        ([0, 1], [0, 0], [0, 1], [-1, 0], "found values from -1 to 0"),
        ([0, 1], [0, 0], [0.0, np.nan], [0, 1], "timestamps contain NaN"),
    ],
)
def test_bad_events_give_one_line_naming_the_source(x, y, t, p, message):
    with pytest.raises(FormatError) as caught:
        EventArray.from_arrays(x, y, t, p, (4, 5), source="rec.h5")
    assert str(caught.value).startswith("rec.h5: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_mismatched_lengths_and_sensor_size():
    with pytest.raises(InputError, match="one length"):
        EventArray.from_arrays([0, 1], [0], [0, 1], [0, 1], (4, 5))
    with pytest.raises(InputError, match="sensor size must be positive"):
        EventArray.from_arrays([0], [0], [0], [0], (0, 5))


def test_repair_is_explicit_and_reported():
    events = EventArray.from_arrays([0, 9, 1, 2], [0, 0, 1, 1], [30, 10, 20, 5], [1, 0, 1, 0], (4, 5), validate=False)
    with pytest.raises(FormatError):
        events.validate()
    repaired, report = events.repair()
    assert report == {"sorted": True, "dropped_outside": 1}
    assert repaired.t.tolist() == [5, 20, 30] and repaired.x.tolist() == [2, 1, 0]
    repaired.validate()


def test_time_and_index_slicing():
    events = EventArray.from_arrays(np.arange(6) % 5, np.zeros(6), [0, 10, 10, 20, 35, 50], [1, 0, 1, 0, 1, 0], (4, 5))
    window = events.slice_time(10, 35)  # [10, 35)
    assert window.t.tolist() == [10, 10, 20]
    assert len(events.slice_time(36, 50)) == 0 and len(events.slice_index(2, 4)) == 2
    assert np.shares_memory(window.t, events.t)  # views, no copy


def test_concatenate_checks_sensor_and_order():
    a = EventArray.from_arrays([0], [0], [0], [1], (4, 5))
    b = EventArray.from_arrays([1], [1], [5], [0], (4, 5))
    assert concatenate([a, b]).t.tolist() == [0, 5]
    with pytest.raises(FormatError, match="not sorted"):
        concatenate([b, a])
    with pytest.raises(InputError, match="different sensors"):
        concatenate([a, EventArray.from_arrays([0], [0], [9], [1], (8, 8))])


sorted_times = st.lists(st.integers(0, 10_000), min_size=0, max_size=300).map(sorted)


@settings(max_examples=60, deadline=None)
@given(times=sorted_times, window=st.integers(1, 3_000), count=st.integers(1, 50))
def test_consecutive_windows_lose_and_duplicate_nothing(times, window, count):
    n = len(times)
    events = EventArray.from_arrays(np.arange(n) % 7, np.arange(n) % 3, times, np.arange(n) % 2, (3, 7))
    by_time = list(events.windows_by_time(window))
    if n:
        assert np.array_equal(np.concatenate([w.t for w in by_time]), events.t)
        assert all(len(w) == 0 or (w.t_end - w.t_start) < window for w in by_time)
        starts = [events.t_start + k * window for k in range(len(by_time))]
        assert all(len(w) == 0 or (start <= w.t_start and w.t_end < start + window) for w, start in zip(by_time, starts))
    else:
        assert by_time == []
    by_count = list(events.windows_by_count(count))
    assert sum(len(w) for w in by_count) == n
    assert all(len(w) == count for w in by_count[:-1])
    assert np.array_equal(np.concatenate([w.x for w in by_count]) if by_count else np.zeros(0), events.x)


def test_window_bounds_with_explicit_range():
    events = EventArray.from_arrays([0, 1, 2], [0, 0, 0], [100, 150, 260], [1, 1, 1], (1, 3))
    windows = list(events.windows_by_time(50, t0_us=100, t1_us=250))
    assert [w.t.tolist() for w in windows] == [[100], [150], [], ]
    with pytest.raises(InputError):
        list(events.windows_by_time(0))
