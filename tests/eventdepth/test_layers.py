"""E2VID-family layers (`anydepth.eventdepth.layers`): where the ConvLSTM takes its Winograd path
and that it computes the cell of the plain convolution; a fresh state with and without
`skip_zero_hidden`."""

from __future__ import annotations

import pytest
import torch

from anydepth.eventdepth import winograd
from anydepth.eventdepth.layers import ConvLSTM


def cell(skip_zero_hidden: bool = False, channels: int = 8) -> ConvLSTM:
    torch.manual_seed(0)
    return ConvLSTM(channels, channels, 3, skip_zero_hidden).eval()


@pytest.fixture
def winograd_calls(monkeypatch):
    """The map sizes `winograd.conv3x3` was called on."""
    calls = []
    original = winograd.conv3x3

    def counting(inputs, *args, **kwargs):
        calls.append(tuple(inputs[0].shape[-2:]))
        return original(inputs, *args, **kwargs)

    monkeypatch.setattr(winograd, "conv3x3", counting)
    return calls


def assert_near(got: torch.Tensor, expected: torch.Tensor, bound: float = 5e-5) -> None:
    """max |got - expected| / max |expected| below `bound` (the float32 bound of F(4, 3), see
    tests/eventdepth/test_winograd.py)."""
    assert float((got - expected).abs().max() / expected.abs().max()) < bound


def plain_cell(lstm: ConvLSTM, x, state):
    """The cell with the plain convolution: the Winograd path switched off."""
    minimum = winograd.MIN_PIXELS
    winograd.MIN_PIXELS = 1 << 60
    try:
        with torch.no_grad():
            return lstm(x, state)
    finally:
        winograd.MIN_PIXELS = minimum


def test_winograd_on_large_maps_in_inference_only(winograd_calls):
    lstm = cell()
    large, small = torch.randn(1, 8, 40, 30), torch.randn(1, 8, 10, 20)  # 1200 and 200 pixels
    state = (torch.randn(1, 8, 40, 30), torch.randn(1, 8, 40, 30))
    with torch.no_grad():
        hidden, cell_state = lstm(large, state)
        lstm(small, None)
    assert winograd_calls == [(40, 30)]
    expected_hidden, expected_cell = plain_cell(lstm, large, state)
    assert_near(hidden, expected_hidden)
    assert_near(cell_state, expected_cell)

    trained_hidden, _ = lstm(large, state)  # autograd: the plain convolution, gradients flow
    trained_hidden.sum().backward()
    assert winograd_calls == [(40, 30)] and lstm.Gates.weight.grad is not None
    torch.testing.assert_close(trained_hidden.detach(), expected_hidden, rtol=0, atol=0)

    with torch.no_grad():  # exporting traces the plain convolution
        graph = torch.export.export(lstm, (large, state)).graph_module.code
    assert winograd_calls == [(40, 30)] and "conv2d" in graph and "bmm" not in graph


def test_weight_updates_reach_the_winograd_path():
    lstm = cell()
    x, state = torch.randn(1, 8, 40, 30), (torch.randn(1, 8, 40, 30), torch.randn(1, 8, 40, 30))
    with torch.no_grad():
        lstm(x, state)  # fills the cache
        lstm.load_state_dict({k: v * 0.5 for k, v in lstm.state_dict().items()})
        got, _ = lstm(x, state)
    assert_near(got, plain_cell(lstm, x, state)[0])


@pytest.mark.parametrize("height, width", [(10, 20), (40, 30)])  # the plain and the Winograd path
def test_fresh_state(height, width):
    x = torch.randn(1, 8, height, width)
    zeros = (torch.zeros(1, 8, height, width), torch.zeros(1, 8, height, width))
    with torch.no_grad():
        plain, skipping = cell(), cell(skip_zero_hidden=True)
        assert all(torch.equal(a, b) for a, b in zip(plain(x, None), plain(x, zeros)))  # same ops on zeros
        for a, b in zip(skipping(x, None), skipping(x, zeros)):  # the input half only: float summation differs
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    trained = cell(skip_zero_hidden=True)(x, None)[0]
    trained.sum().backward()
    torch.testing.assert_close(trained.detach(), skipping(x, zeros)[0], rtol=1e-5, atol=1e-6)


def test_weights_loaded_in_inference_mode_reach_the_winograd_path():
    """Inference tensors have no version counter: loading a state dict clears the cache."""
    with torch.inference_mode():
        lstm = cell()
        x, state = torch.randn(1, 8, 40, 30), (torch.randn(1, 8, 40, 30), torch.randn(1, 8, 40, 30))
        lstm(x, state)
        lstm.load_state_dict({k: v * 0.5 for k, v in lstm.state_dict().items()})
        got, _ = lstm(x, state)
        assert_near(got, plain_cell(lstm, x, state)[0])

