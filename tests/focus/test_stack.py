"""FocalStack (anydepth.focus.stack): validation with one-line errors, metres <-> disparity."""

from __future__ import annotations

import numpy as np
import pytest

from anydepth.errors import InputError
from anydepth.focus.stack import (
    DDFF12_DISPARITY_SCALE,
    DDFF12_FOCUS_DISPARITIES,
    FocalStack,
    disparity_to_metres,
    in_unit,
    metres_to_disparity,
)
from anydepth.synth.focus_writers import ddff12_focus_distances_m


def slices(count=3, height=8, width=10, dtype=np.uint8):
    rng = np.random.default_rng(0)
    values = rng.random((count, height, width, 3))
    return (values * 255).astype(np.uint8) if dtype == np.uint8 else values.astype(dtype)


def test_valid_stack_keeps_data_and_normalises_types():
    truth = np.full((8, 10), 1.5)
    truth[0, 0] = np.nan
    truth[0, 1] = -1.0
    stack = FocalStack(slices(dtype=np.float64), [0.5, 1.0, 2.0], "metres", truth, aif=np.zeros((8, 10, 3)))
    assert stack.slices.dtype == np.float32 and stack.aif.dtype == np.float32
    assert stack.positions.dtype == np.float64 and stack.count == 3 and stack.shape == (8, 10)
    assert stack.ground_truth.dtype == np.float32
    assert stack.ground_truth[0, 0] == 0 and stack.ground_truth[0, 1] == 0 and stack.ground_truth[1, 1] == 1.5
    as_uint8 = FocalStack(slices(), [3.0, 2.0, 1.0], "disparity")  # decreasing is monotonic too
    np.testing.assert_allclose(as_uint8.float_slices(), as_uint8.slices / 255.0, atol=1e-7)
    assert as_uint8.float_slices().dtype == np.float32


@pytest.mark.parametrize("kwargs, message", [
    (dict(slices=np.zeros((0, 8, 10, 3), np.uint8), positions=[]), "empty focal stack"),
    (dict(slices=np.zeros((3, 0, 10, 3), np.uint8), positions=[1, 2, 3]), "empty focal stack"),
    (dict(slices=np.zeros((3, 8, 10), np.uint8), positions=[1, 2, 3]), r"must be \(N, H, W, 3\)"),
    (dict(slices=np.zeros((3, 8, 10, 4), np.uint8), positions=[1, 2, 3]), r"must be \(N, H, W, 3\)"),
    (dict(slices=np.zeros((3, 8, 10, 3), np.int16), positions=[1, 2, 3]), "uint8 or float32"),
    (dict(slices=np.full((3, 8, 10, 3), np.nan, np.float32), positions=[1, 2, 3]), "NaN"),
    (dict(slices=slices(), positions=[1, 2]), "3 slices but 2 focus positions"),
    (dict(slices=slices(), positions=[1, 3, 2]), "strictly monotonic"),
    (dict(slices=slices(), positions=[1, 1, 2]), "strictly monotonic"),
    (dict(slices=slices(), positions=[0, 1, 2]), "finite and positive"),
    (dict(slices=slices(), positions=[-1, 1, 2]), "finite and positive"),
    (dict(slices=slices(), positions=[1, np.inf, 2]), "finite and positive"),
    (dict(slices=slices(), positions=[1, 2, 3], unit="mm"), "focus unit"),
    (dict(slices=slices(), positions=[1, 2, 3], ground_truth=np.ones((8, 11))), "ground truth is"),
    (dict(slices=slices(), positions=[1, 2, 3], aif=np.ones((8, 10))), "AiF image is"),
    (dict(slices=slices(), positions=[1, 2, 3], disparity_scale=-1.0), "disparity scale"),
])
def test_bad_stacks_raise_one_line_errors(kwargs, message):
    with pytest.raises(InputError, match=message) as caught:
        FocalStack(**kwargs)
    assert "\n" not in str(caught.value)


def test_slices_given_as_a_list_are_stacked_after_a_size_check():
    stack = FocalStack([np.zeros((8, 10, 3), np.uint8), np.ones((8, 10, 3), np.uint8)], [1.0, 2.0])
    assert stack.slices.shape == (2, 8, 10, 3)
    with pytest.raises(InputError, match=r"slices differ in size: slice 1 is \(8, 12, 3\), slice 0 is \(8, 10, 3\)"):
        FocalStack([np.zeros((8, 10, 3)), np.zeros((8, 12, 3))], [1.0, 2.0])
    with pytest.raises(InputError, match="empty focal stack"):
        FocalStack([], [])


def test_error_names_the_source():
    with pytest.raises(InputError, match=r"^some/file\.h5: 3 slices but 1 focus positions$"):
        FocalStack(slices(), [1.0], source="some/file.h5")


def test_ddff12_metres_and_disparity_convert_with_the_explicit_scale():
    metres = ddff12_focus_distances_m()
    np.testing.assert_allclose(metres_to_disparity(metres, DDFF12_DISPARITY_SCALE), DDFF12_FOCUS_DISPARITIES, rtol=1e-12)
    np.testing.assert_allclose(disparity_to_metres(DDFF12_FOCUS_DISPARITIES, 0.141238), metres, rtol=1e-12)
    np.testing.assert_array_equal(metres_to_disparity([0.0, -1.0, np.nan, 2.0], 2.0), [0.0, 0.0, 0.0, 1.0])
    with pytest.raises(InputError, match="disparity scale must be a positive number"):
        metres_to_disparity([1.0], 0.0)
    with pytest.raises(InputError, match="needs a disparity scale"):
        disparity_to_metres([1.0], None)
    # in_unit: a float64 copy in the same unit (no scale needed), the reciprocal map otherwise
    values = np.array([[0.5, 0.0]], np.float32)
    same = in_unit(values, "disparity", "disparity")
    assert same.dtype == np.float64 and same is not values and same.tolist() == [[0.5, 0.0]]
    np.testing.assert_array_equal(in_unit(values, "disparity", "metres", 2.0), [[4.0, 0.0]])
    with pytest.raises(InputError, match="focus unit"):
        in_unit(values, "disparity", "dioptres", 2.0)


def test_stack_to_unit_converts_positions_and_ground_truth_and_back():
    depth = np.full((8, 10), 2.0, np.float32)
    depth[0, 0] = 0.0  # invalid stays invalid
    stack = FocalStack(slices(10), ddff12_focus_distances_m(), "metres", depth)
    with pytest.raises(InputError, match="needs a scale"):
        stack.to_unit("disparity")
    disparity = stack.to_unit("disparity", DDFF12_DISPARITY_SCALE)
    assert disparity.unit == "disparity" and disparity.disparity_scale == DDFF12_DISPARITY_SCALE
    np.testing.assert_allclose(disparity.positions, DDFF12_FOCUS_DISPARITIES, rtol=1e-12)
    assert disparity.ground_truth[0, 0] == 0 and disparity.ground_truth[1, 1] == pytest.approx(0.141238 / 2.0)
    back = disparity.to_unit("metres")  # the stack now carries its scale
    np.testing.assert_allclose(back.positions, stack.positions, rtol=1e-12)
    np.testing.assert_allclose(back.ground_truth, depth, rtol=1e-6)
    np.testing.assert_allclose(stack.positions_in("disparity", 0.141238), DDFF12_FOCUS_DISPARITIES, rtol=1e-12)
    np.testing.assert_array_equal(stack.positions_in("metres"), stack.positions)
    with pytest.raises(InputError, match="focus unit"):
        stack.positions_in("feet")
    np.testing.assert_array_equal(disparity.ground_truth_in("disparity"), disparity.ground_truth)
    np.testing.assert_array_equal(disparity.ground_truth_in("metres"), back.ground_truth)
    assert disparity.ground_truth_in("metres").dtype == np.float32
    assert FocalStack(slices(), [1.0, 2.0, 3.0]).ground_truth_in("disparity", 1.0) is None
    assert back.slices is stack.slices  # conversion never copies or changes the images
