"""Winograd F(m x m, 3 x 3) convolution (`anydepth.eventdepth.winograd`) against the plain
convolution. Reference: `F.conv2d` in float64 on the same float32 values; error measure
max |fast - reference| / max |reference|."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from anydepth.eventdepth import winograd

# float32 bounds per tile: F(2, 3) rounds like the plain convolution (~3e-7 measured), F(4, 3)
# amplifies rounding by its larger transform coefficients (~1e-5 measured on 128 channels).
BOUND = {2: 2e-6, 4: 5e-5, 6: 5e-4}


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.double() - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("tile", winograd.TILES)
@pytest.mark.parametrize("channels, out_channels, height, width, padding", [
    ((64, 64), 256, 37, 49, 1),    # a ConvLSTM's [input, hidden] -> 4 gates, odd sides (partial tiles)
    ((16,), 24, 38, 50, 0),        # one input, no padding (the recurrent layers' ConvLayer)
    ((5, 3), 7, 3, 4, 1),          # smaller than one tile
])
def test_matches_the_plain_convolution(tile, channels, out_channels, height, width, padding):
    generator = torch.Generator().manual_seed(sum(channels) + height)
    inputs = tuple(torch.randn(2, c, height, width, generator=generator) for c in channels)
    inputs = (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])  # either memory format
    weight = torch.randn(out_channels, sum(channels), 3, 3, generator=generator) / (3 * sum(channels) ** 0.5)
    bias = torch.randn(out_channels, generator=generator)
    expected = F.conv2d(torch.cat(inputs, 1).double(), weight.double(), bias.double(), padding=padding)
    with torch.no_grad():
        got = winograd.conv3x3(inputs, winograd.transform_weight(weight, tile), bias, tile, padding)
        no_bias = winograd.conv3x3(inputs, winograd.transform_weight(weight, tile), None, tile, padding)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert got.stride(1) == 1  # channels-last strides (a crop of a dense map where a side is not a multiple of the tile)
    assert relative_error(got, expected) < BOUND[tile]
    assert relative_error(no_bias, expected - bias.double().view(1, -1, 1, 1)) < BOUND[tile]
    plain = F.conv2d(torch.cat(inputs, 1), weight, bias, padding=padding)
    assert relative_error(plain, expected) < BOUND[2]  # the bound is about float32 rounding, not loose


def test_bands_of_tile_rows_and_the_epilogue(monkeypatch):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 8, 21, 30, generator=generator)
    weight = winograd.transform_weight(torch.randn(12, 8, 3, 3, generator=generator), 4)
    bias = torch.randn(12, generator=generator)
    with torch.no_grad():
        monkeypatch.setattr(winograd, "CHUNK_TILES", 1 << 30)
        whole = winograd.conv3x3((x,), weight, bias, 4)
        monkeypatch.setattr(winograd, "CHUNK_TILES", 8)  # one tile row (8 tiles) per band
        banded = winograd.conv3x3((x,), weight, bias, 4)
        activated = winograd.conv3x3((x,), weight, bias, 4, epilogue=lambda convolved, target: torch.sigmoid(convolved, out=target))
    torch.testing.assert_close(banded, whole, rtol=1e-6, atol=1e-6)  # the GEMMs may block differently
    torch.testing.assert_close(activated, torch.sigmoid(banded), rtol=1e-6, atol=1e-7)  # strided sigmoid: last bit


def test_weight_cache_follows_the_weight():
    conv = torch.nn.Conv2d(6, 8, 3)
    cache = winograd.WeightCache()
    first = cache.get(conv.weight, 2)
    assert cache.get(conv.weight, 2) is first  # cached
    assert torch.equal(first, winograd.transform_weight(conv.weight, 2))
    half = cache.get(conv.weight, 2, slice(0, 4))
    assert half.shape == (16, 4, 8) and torch.equal(half, winograd.transform_weight(conv.weight[:, :4], 2))
    with torch.no_grad():
        conv.weight.mul_(2)  # an in-place update (an optimiser step)
    assert torch.equal(cache.get(conv.weight, 2), winograd.transform_weight(conv.weight, 2))
    conv.load_state_dict({"weight": torch.ones(8, 6, 3, 3), "bias": torch.zeros(8)})
    assert torch.equal(cache.get(conv.weight, 2), winograd.transform_weight(torch.ones(8, 6, 3, 3), 2))
    conv.weight = torch.nn.Parameter(torch.zeros(8, 6, 3, 3))  # a new tensor
    assert not cache.get(conv.weight, 2).any()


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
def test_allowed_only_for_cpu_float32_inference():
    x = torch.zeros(1, 1, 4, 4)
    with torch.no_grad():
        assert winograd.allowed(x)
        assert not winograd.allowed(x.double())
    with torch.inference_mode():
        assert winograd.allowed(x)
    assert not winograd.allowed(x)  # autograd on

    seen = []

    def probe(t):
        seen.append(winograd.allowed(t))
        return t + 1

    with torch.no_grad():  # only the tracer could say no
        torch.jit.trace(probe, x, check_trace=False)
        torch.export.export(_Module(probe), (x,))
    assert seen == [False, False]
    assert winograd.pays_off(17, 23) and not winograd.pays_off(8, 11)  # DepthAnyEvent-R levels 3 and 4


class _Module(torch.nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


def test_bad_arguments():
    weight = torch.zeros(4, 3, 5, 5)
    with pytest.raises(ValueError, match="3x3 kernel"):
        winograd.transform_weight(weight, 2)
    with pytest.raises(ValueError, match="tile must be one of"):
        winograd.matrices(3)
    with pytest.raises(ValueError, match="does not fit"):
        winograd.conv3x3((torch.zeros(1, 2, 5, 5),), winograd.transform_weight(torch.zeros(4, 3, 3, 3), 2), None, 2)
    with pytest.raises(ValueError, match="no output"):
        winograd.conv3x3((torch.zeros(1, 3, 2, 2),), winograd.transform_weight(torch.zeros(4, 3, 3, 3), 2), None, 2, padding=0)
