"""Numba decoders of Prophesee's event streams (EVT 2.0, EVT 2.1, EVT 3.0 and DAT CD events).

Facts from Prophesee's public format documentation and OpenEB's decoders (hal/decoders/evt*):
- EVT 2.0, 32-bit little-endian words, type = bits 31..28. CD_OFF 0x0 / CD_ON 0x1: t low 6 bits
  27..22, x 21..11, y 10..0. EVT_TIME_HIGH 0x8: bits 27..0 are t >> 6. EXT_TRIGGER 0xA: t low 6
  bits 27..22, id 12..8, value bit 0. Others (0xD IMU, 0xE OTHERS, 0xF CONTINUED) carry no CD event.
- EVT 2.1, 64-bit little-endian words, type = bits 63..60. EVT_NEG 0x0 / EVT_POS 0x1: t low 6 bits
  59..54, x 53..43 (a multiple of 32), y 42..32, a 32-bit mask 31..0 of the pixels x + i that
  fired. EVT_TIME_HIGH 0x8: bits 59..32 are t >> 6. EXT_TRIGGER 0xA: t low 59..54, id 44..40, value
  bit 32. The "legacy" endianness swaps the two 32-bit halves.
- EVT 3.0, 16-bit little-endian words, type = bits 15..12, stateful. EVT_ADDR_Y 0x0: y 10..0 (CD
  row); 0x1: an exposure-measurement row (its events are not CD). EVT_ADDR_X 0x2: one event at x
  10..0 of the current row, polarity bit 11. VECT_BASE_X 0x3: base x 10..0 and polarity bit 11 for
  the vectors after it. VECT_12 0x4 / VECT_8 0x5: a 12- / 8-bit mask of the pixels base + i that
  fired, then base += 12 / 8. EVT_TIME_LOW 0x6: t bits 11..0. EVT_TIME_HIGH 0x8: t bits 23..12
  (time low restarts at 0 when it changes). EXT_TRIGGER 0xA: id 11..8, value bit 0, at the current
  time.
- Time is 64-bit here: a time high that drops by at least half its range is a wrap of the sensor
  counter (2^34 µs in EVT 2.x, 2^24 µs in EVT 3.0; OpenEB's rule), counted in `loops`. Events before
  the first time high have no time base and are skipped, as OpenEB skips them. Events outside the
  sensor geometry are skipped, as OpenEB skips rows beyond the height.

Every stream kernel has one signature and one loop:

    kernel(words, start, state, width, height, block_words, x, y, t, p, base_count, t_stop,
           checkpoints, checkpoint_base, trig_t, trig_id, trig_p, trig_count, option) -> stop

- words: one buffer of the stream; decoding starts at word `start` and returns the index of the
  first word it did not decode: len(words), or earlier when it stopped (see below; call again from
  there with the same state to go on).
- state (STATE_SIZE,) int64: the decoder's state, updated in place (see the S_* indexes);
  state[S_COUNT] counts the events decoded since the beginning of the stream, state[S_LAST_T] is the
  last event's time and state[S_UNSORTED] the number of the first event whose time is smaller than
  the one before it (-1: none), so a caller validates the order without another pass.
- x, y, t, p: outputs, written at state[S_COUNT] - base_count; empty arrays: count only. The kernel
  stops before an event word once more than len(x) - MAX_PER_WORD[format] events are written, so
  outputs of capacity + MAX_PER_WORD - 1 slots take at least `capacity` events (all of them when the
  words end first). Writes are branch-free: slots past the last event may hold garbage.
- t_stop: stop before the first event with t >= t_stop (time windows; INT64_MAX: never).
- checkpoints (n, STATE_SIZE) int64: when not empty, a copy of the state is stored before every word
  whose index k is a multiple of block_words, in row checkpoint_base + k // block_words.
- trig_*: EXT_TRIGGER events (t µs, id, value), appended at trig_count[0]; the kernel stops before a
  trigger when they are full (empty arrays: not recorded).
- option: EVT 2.1 legacy endianness (1) or not (0); unused by the others.
"""

from __future__ import annotations

import numba
import numpy as np

(S_TIME, S_HIGH, S_LOOPS, S_BASE_SET, S_Y, S_BASE_X, S_POL, S_IS_CD, S_COUNT, S_LAST_T, S_LOW,
 S_UNSORTED) = range(12)
STATE_SIZE = 12
NO_STOP = np.iinfo(np.int64).max
MAX_EVT2, MAX_EVT21, MAX_EVT3 = 1, 32, 12  # events one word can hold
MAX_PER_WORD = {"evt2": MAX_EVT2, "evt21": MAX_EVT21, "evt3": MAX_EVT3}
# bit index of a 32-bit power of two: DE_BRUIJN[(bit * 0x077CB531) >> 27 & 31]
DE_BRUIJN = np.array([0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
                      31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9], np.int64)


def new_state() -> np.ndarray:
    """The state of a decoder at the start of a stream: no time base, no event, no last time."""
    state = np.zeros(STATE_SIZE, np.int64)
    state[S_LAST_T] = -1
    state[S_UNSORTED] = -1
    return state


@numba.njit(cache=True, nogil=True, inline="always")
def popcount32(value):
    """Set bits of a value below 2^32 (SWAR)."""
    value = value - ((value >> 1) & 0x55555555)
    value = (value & 0x33333333) + ((value >> 2) & 0x33333333)
    value = (value + (value >> 4)) & 0x0F0F0F0F
    return ((value * 0x01010101) & 0xFFFFFFFF) >> 24


@numba.njit(cache=True, nogil=True, inline="always")
def load_time_state(state):
    """(time_base, high, loops, base_set, count, last_t, unsorted) of an EVT 2.0 / 2.1 decoder."""
    return (state[S_TIME], state[S_HIGH], state[S_LOOPS], state[S_BASE_SET], state[S_COUNT], state[S_LAST_T],
            state[S_UNSORTED])


@numba.njit(cache=True, nogil=True, inline="always")
def store_time_state(state, time_base, high, loops, base_set, count, last_t, unsorted):
    """The inverse of `load_time_state` (at a checkpoint and when a decoding call returns)."""
    state[S_TIME] = time_base
    state[S_HIGH] = high
    state[S_LOOPS] = loops
    state[S_BASE_SET] = base_set
    state[S_COUNT] = count
    state[S_LAST_T] = last_t
    state[S_UNSORTED] = unsorted


@numba.njit(cache=True, nogil=True, inline="always")
def time_high(new_high, high, loops, base_set):
    """A TIME_HIGH word (its 28 bits `new_high`): -> (high, loops, time_base). A backwards jump of at
    least half the 28-bit range is a wrap of the 34-bit time (one more loop)."""
    if base_set and high - new_high >= (1 << 27):
        loops += 1
    return new_high, loops, (loops << 34) | (new_high << 6)


@numba.njit(cache=True, nogil=True, inline="always")
def record_trigger(trig_t, trig_id, trig_p, trig_count, stamp, ident, polarity) -> bool:
    """Append an EXT_TRIGGER event; False when the trigger outputs are full (the caller stops)."""
    j = trig_count[0]
    if j == trig_t.shape[0]:
        return False
    trig_t[j] = stamp
    trig_id[j] = ident
    trig_p[j] = polarity
    trig_count[0] = j + 1
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def decode_evt2x(words, start, state, width, height, block_words, x, y, t, p, base_count, t_stop,
                 checkpoints, checkpoint_base, trig_t, trig_id, trig_p, trig_count, option, wide):
    """EVT 2.0 (`wide` False: uint32 words, one event each) and EVT 2.1 (`wide` True: uint64 words
    whose upper half is laid out as an EVT 2.0 word and whose lower half is the mask of the 32
    pixels x + i that fired; option 1 = legacy endianness). `wide` is a constant in the two kernels
    below, so each compiles to its own loop."""
    write = x.shape[0] > 0
    capacity_limit = base_count + x.shape[0] - (MAX_EVT21 if wide else MAX_EVT2) if write else NO_STOP
    record_triggers = trig_t.shape[0] > 0
    time_base, high, loops, base_set, count, last_t, unsorted = load_time_state(state)
    # events past `limit` take the careful path: t_stop may fall in this time-high period, or the outputs are full
    limit = -1 if time_base + 63 >= t_stop else capacity_limit
    k = start
    n = words.shape[0]
    marking = checkpoints.shape[0] > 0
    stopped = False
    while k < n and not stopped:
        segment_end = n
        if marking:
            if k % block_words == 0:
                store_time_state(state, time_base, high, loops, base_set, count, last_t, unsorted)
                checkpoints[checkpoint_base + k // block_words, :] = state
            segment_end = min(n, (k // block_words + 1) * block_words)
        while k < segment_end:
            if wide:
                word = np.uint64(words[k])
                if option == 1:
                    word = (word >> np.uint64(32)) | (word << np.uint64(32))
                head = np.int64(word >> np.uint64(32))
                mask = np.int64(word & np.uint64(0xFFFFFFFF))
            else:
                head = np.int64(words[k])
                mask = np.int64(1)
            kind = head >> 28
            if kind <= 1:
                column = (head >> 11) & 0x7FF
                row = head & 0x7FF
                if wide:
                    if column + 32 > width:  # pixels past the sensor's width are skipped
                        mask &= (np.int64(1) << max(width - column, 0)) - 1
                elif column >= width:
                    mask = 0
                if base_set and mask and row < height:
                    stamp = time_base + ((head >> 22) & 0x3F)
                    if count > limit and (stamp >= t_stop or count > capacity_limit):
                        stopped = True
                        break
                    if not write:
                        fired = popcount32(mask) if wide else 1
                    elif wide:
                        i = np.uint64(count - base_count)
                        while mask:  # one event per set bit, lowest first
                            bit = mask & -mask
                            x[i] = column + DE_BRUIJN[((bit * 0x077CB531) >> 27) & 31]
                            y[i] = row
                            t[i] = stamp
                            p[i] = kind
                            i += np.uint64(1)
                            mask ^= bit
                        fired = np.int64(i) - (count - base_count)
                    else:
                        i = np.uint64(count - base_count)
                        x[i] = column
                        y[i] = row
                        t[i] = stamp
                        p[i] = kind
                        fired = 1
                    if stamp < last_t and unsorted < 0:
                        unsorted = count
                    count += fired
                    last_t = stamp
            elif kind == 0x8:
                high, loops, time_base = time_high(head & 0x0FFFFFFF, high, loops, base_set)
                base_set = 1
                limit = -1 if time_base + 63 >= t_stop else capacity_limit
            elif kind == 0xA:
                if record_triggers and base_set and not record_trigger(
                        trig_t, trig_id, trig_p, trig_count, time_base + ((head >> 22) & 0x3F), (head >> 8) & 0x1F, head & 1):
                    stopped = True
                    break
            k += 1
    store_time_state(state, time_base, high, loops, base_set, count, last_t, unsorted)
    return k


@numba.njit(cache=True, nogil=True)
def decode_evt2(words, start, state, width, height, block_words, x, y, t, p, base_count, t_stop,
                checkpoints, checkpoint_base, trig_t, trig_id, trig_p, trig_count, option):
    """EVT 2.0 (uint32 words); see the module docstring for the signature."""
    return decode_evt2x(words, start, state, width, height, block_words, x, y, t, p, base_count, t_stop, checkpoints,
                        checkpoint_base, trig_t, trig_id, trig_p, trig_count, option, False)


@numba.njit(cache=True, nogil=True)
def decode_evt21(words, start, state, width, height, block_words, x, y, t, p, base_count, t_stop,
                 checkpoints, checkpoint_base, trig_t, trig_id, trig_p, trig_count, option):
    """EVT 2.1 (uint64 words; option 1 = legacy endianness); see the module docstring."""
    return decode_evt2x(words, start, state, width, height, block_words, x, y, t, p, base_count, t_stop, checkpoints,
                        checkpoint_base, trig_t, trig_id, trig_p, trig_count, option, True)


@numba.njit(cache=True, nogil=True, inline="always")
def store_evt3_state(state, time, high, low, loops, base_set, row, base_x, polarity, valid_row, count, last_t,
                     unsorted):
    """An EVT 3.0 decoder's variables into its state (at a checkpoint and when a decoding call returns)."""
    state[S_TIME] = time
    state[S_HIGH] = high
    state[S_LOW] = low
    state[S_LOOPS] = loops
    state[S_BASE_SET] = base_set
    state[S_Y] = row
    state[S_BASE_X] = base_x
    state[S_POL] = polarity
    state[S_IS_CD] = valid_row
    state[S_COUNT] = count
    state[S_LAST_T] = last_t
    state[S_UNSORTED] = unsorted


@numba.njit(cache=True, nogil=True)
def decode_evt3(words, start, state, width, height, block_words, x, y, t, p, base_count, t_stop,
                checkpoints, checkpoint_base, trig_t, trig_id, trig_p, trig_count, option):
    """EVT 3.0 (uint16 words); see the module docstring for the signature."""
    write = x.shape[0] > 0
    capacity_limit = base_count + x.shape[0] - MAX_EVT3 if write else NO_STOP
    record_triggers = trig_t.shape[0] > 0
    time = state[S_TIME]
    high = state[S_HIGH]
    low = state[S_LOW]
    loops = state[S_LOOPS]
    base_set = state[S_BASE_SET]
    row = state[S_Y]
    base_x = state[S_BASE_X]
    polarity = state[S_POL]
    valid_row = state[S_IS_CD]  # a CD row inside the sensor, with a time base
    count = state[S_COUNT]
    last_t = state[S_LAST_T]
    unsorted = state[S_UNSORTED]
    limit = -1 if time >= t_stop else capacity_limit  # stop at an event past `limit`: t >= t_stop, or outputs full
    k = start
    n = words.shape[0]
    marking = checkpoints.shape[0] > 0
    stopped = False
    while k < n and not stopped:
        segment_end = n
        if marking:
            if k % block_words == 0:
                store_evt3_state(state, time, high, low, loops, base_set, row, base_x, polarity, valid_row, count, last_t,
                                 unsorted)
                checkpoints[checkpoint_base + k // block_words, :] = state
            segment_end = min(n, (k // block_words + 1) * block_words)
        while k < segment_end:
            word = np.int64(words[k])
            kind = word >> 12
            if kind == 0x2:  # EVT_ADDR_X
                column = word & 0x7FF
                if valid_row and column < width:
                    if count > limit:
                        stopped = True
                        break
                    if write:
                        i = np.uint64(count - base_count)
                        x[i] = column
                        y[i] = row
                        t[i] = time
                        p[i] = (word >> 11) & 1
                    if time < last_t and unsorted < 0:
                        unsorted = count
                    count += 1
                    last_t = time
            elif kind == 0x0:  # EVT_ADDR_Y, CD
                row = word & 0x7FF
                valid_row = 1 if (base_set and row < height) else 0
            elif kind == 0x4 or kind == 0x5:  # VECT_12, VECT_8
                size = 12 if kind == 0x4 else 8
                if valid_row:
                    mask = word & ((1 << size) - 1)
                    if base_x + size > width:  # pixels past the sensor's width are skipped
                        mask &= (np.int64(1) << max(width - base_x, 0)) - 1
                    if mask:
                        if count > limit:
                            stopped = True
                            break
                        if write:
                            i = np.uint64(count - base_count)
                            for bit in range(size):  # branch-free: every slot written, kept when it fired
                                x[i] = base_x + bit
                                y[i] = row
                                t[i] = time
                                p[i] = polarity
                                i += np.uint64((mask >> bit) & 1)
                        if time < last_t and unsorted < 0:
                            unsorted = count
                        count += popcount32(mask)
                        last_t = time
                base_x += size
            elif kind == 0x1:  # an exposure-measurement row
                valid_row = 0
            elif kind == 0x3:  # VECT_BASE_X
                base_x = word & 0x7FF
                polarity = (word >> 11) & 1
            elif kind == 0x6:  # EVT_TIME_LOW
                low = word & 0xFFF
                time = (loops << 24) | (high << 12) | low
                limit = -1 if time >= t_stop else capacity_limit
            elif kind == 0x8:  # EVT_TIME_HIGH
                new_high = word & 0xFFF
                if base_set and high - new_high >= (1 << 11):
                    loops += 1
                if new_high != high or not base_set:
                    low = 0
                high = new_high
                if not base_set:
                    base_set = 1
                    valid_row = 0  # a row must be addressed again after the time base is set
                time = (loops << 24) | (high << 12) | low
                limit = -1 if time >= t_stop else capacity_limit
            elif kind == 0xA:  # EXT_TRIGGER
                if record_triggers and base_set and not record_trigger(
                        trig_t, trig_id, trig_p, trig_count, time, (word >> 8) & 0xF, word & 1):
                    stopped = True
                    break
            k += 1
    store_evt3_state(state, time, high, low, loops, base_set, row, base_x, polarity, valid_row, count, last_t, unsorted)
    return k


@numba.njit(cache=True, nogil=True)
def decode_dat_cd(records, width, height, last_t, x, y, t, p):
    """DAT CD events: records (N, 2) uint32 = (t µs, packed); x bits 13..0, y 27..14, p bit 28.

    Validates while decoding (reductions, no branch per event): returns (whether a t is below the one
    before it, whether an event lies outside width x height); last_t: the time of the event before
    records[0] (-1: none)."""
    n = records.shape[0]
    if n == 0:
        return False, False
    decreasing = np.int64(records[0, 0]) < last_t
    largest_x = 0
    largest_y = 0
    previous = records[0, 0]
    for i in range(n):
        stamp = records[i, 0]
        packed = records[i, 1]
        column = packed & 0x3FFF
        row = (packed >> 14) & 0x3FFF
        t[i] = stamp
        x[i] = column
        y[i] = row
        p[i] = (packed >> 28) & 1
        decreasing |= stamp < previous
        previous = stamp
        largest_x = max(largest_x, column)
        largest_y = max(largest_y, row)
    return decreasing, largest_x >= width or largest_y >= height


KERNELS = {"evt2": (decode_evt2, np.dtype("<u4")), "evt21": (decode_evt21, np.dtype("<u8")),
           "evt3": (decode_evt3, np.dtype("<u2"))}
