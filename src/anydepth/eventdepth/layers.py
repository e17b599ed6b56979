"""Convolutional and recurrent layers of the E2VID family (E2Depth, Depth AnyEvent-R), with the
official module and parameter names: ConvLayer (`conv2d`, `norm_layer`), UpsampleConvLayer,
TransposedConvLayer, ConvLSTM (`Gates`), ConvGRU, RecurrentConvLayer (`conv`, `recurrent_block`),
ResidualBlock."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anydepth.eventdepth import winograd


def _norm_layer(norm: str | None, channels: int) -> nn.Module | None:
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "IN":
        return nn.InstanceNorm2d(channels, track_running_stats=True)
    return None


class ConvLayer(nn.Module):
    """conv2d -> optional norm -> ReLU (or none): (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, activation="relu", norm=None):
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=norm != "BN")
        norm_layer = _norm_layer(norm, out_channels)
        if norm_layer is not None:
            self.norm_layer = norm_layer
        self.activation = None if activation is None else getattr(torch, activation)

    def forward(self, x):
        x = self.conv2d(x)
        if hasattr(self, "norm_layer"):
            x = self.norm_layer(x)
        return x if self.activation is None else self.activation(x)


class UpsampleConvLayer(ConvLayer):
    """Bilinear x2 (align_corners False), then ConvLayer: (N, C_in, H, W) -> (N, C_out, 2H, 2W)."""

    def forward(self, x):
        return super().forward(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


class TransposedConvLayer(nn.Module):
    """Transposed conv, stride 2 -> optional norm -> ReLU: (N, C_in, H, W) -> (N, C_out, 2H, 2W)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, activation="relu", norm=None):
        super().__init__()
        self.transposed_conv2d = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=2, padding=padding,
                                                    output_padding=1, bias=norm != "BN")
        norm_layer = _norm_layer(norm, out_channels)
        if norm_layer is not None:
            self.norm_layer = norm_layer
        self.activation = None if activation is None else getattr(torch, activation)

    def forward(self, x):
        x = self.transposed_conv2d(x)
        if hasattr(self, "norm_layer"):
            x = self.norm_layer(x)
        return x if self.activation is None else self.activation(x)


class ConvLSTM(nn.Module):
    """One ConvLSTM cell: a single conv `Gates` on [input, hidden] gives the input, remember,
    output and cell gates. State (hidden, cell), each (N, hidden_size, H, W); None = zeros.

    The official parameters (`Gates`, input channels first) are kept; the three sigmoid gates run
    as one op on the channels-last gate map, and without autograd the cell update runs in place on
    this step's temporaries (the same operations: bit-identical, three maps fewer to allocate).

    Inference on CPU (no autograd, not tracing or exporting) computes a 3x3 `Gates` on maps of at
    least `winograd.MIN_PIXELS` pixels with Winograd F(`WINOGRAD_TILE` x WINOGRAD_TILE, 3x3)
    (`anydepth.eventdepth.winograd`), the sigmoid and tanh applied as each band of the gate map is
    written: the same cell up to float rounding with fewer multiplies and passes over the map. The
    transformed weights are cached and recomputed when `Gates.weight` changes. Elsewhere it is the
    plain convolution.

    skip_zero_hidden: with state None, convolve the input with the input half of `Gates` only (the
    hidden half would multiply zeros) and skip the remember term: the first step of a sequence
    then equals an explicit zero state up to float summation, not bit for bit. Off by default (a
    fresh state then runs the same ops on zeros, bit-identical to an explicit zero state)."""

    WINOGRAD_TILE = 4

    def __init__(self, input_size, hidden_size, kernel_size, skip_zero_hidden: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.skip_zero_hidden = skip_zero_hidden
        self.Gates = nn.Conv2d(input_size + hidden_size, 4 * hidden_size, kernel_size, padding=kernel_size // 2)
        self._winograd_weights = winograd.WeightCache()
        self.register_load_state_dict_post_hook(_forget_winograd_weights)

    def gates(self, x: torch.Tensor, prev_hidden: torch.Tensor | None) -> torch.Tensor:
        """`Gates` on [x, prev_hidden], before the activations: (N, 4 hidden_size, H, W);
        prev_hidden None = x alone with the input half of the weights. The plain convolution."""
        if prev_hidden is None:
            return F.conv2d(x, self.Gates.weight[:, : x.shape[1]], self.Gates.bias, padding=self.Gates.padding)
        return self.Gates(torch.cat((x, prev_hidden), 1))

    def activated_gates(self, x: torch.Tensor, prev_hidden: torch.Tensor | None) -> torch.Tensor:
        """The gates after their activations (sigmoid on input, remember and output gate, tanh on
        the cell gate) with the Winograd convolution: (N, 4 hidden_size, H, W)."""
        size = self.hidden_size
        inputs = (x,) if prev_hidden is None else (x, prev_hidden)
        channels = slice(0, x.shape[1]) if prev_hidden is None else slice(None)
        weights = self._winograd_weights.get(self.Gates.weight, self.WINOGRAD_TILE, channels)

        def activate(convolved, target):
            torch.sigmoid(convolved[..., : 3 * size], out=target[..., : 3 * size])
            torch.tanh(convolved[..., 3 * size :], out=target[..., 3 * size :])

        return winograd.conv3x3(inputs, weights, self.Gates.bias, self.WINOGRAD_TILE, epilogue=activate)

    def uses_winograd(self, x: torch.Tensor) -> bool:
        """Whether this step's gates take the Winograd path (see the class docstring)."""
        return self.Gates.kernel_size == (3, 3) and winograd.allowed(x) and winograd.pays_off(*x.shape[-2:])

    def forward(self, x, prev_state=None):
        size = self.hidden_size
        if prev_state is None and not self.skip_zero_hidden:
            zeros = x.new_zeros((x.shape[0], size, *x.shape[2:]))
            prev_state = (zeros, zeros)
        prev_hidden, prev_cell = (None, None) if prev_state is None else prev_state
        if self.uses_winograd(x):
            activated = self.activated_gates(x, prev_hidden)
            in_gate, remember_gate, out_gate = activated[:, : 3 * size].chunk(3, 1)
            cell = torch.mul(activated[:, 3 * size :], in_gate)
        else:
            gates = self.gates(x, prev_hidden)
            in_gate, remember_gate, out_gate = torch.sigmoid(gates[:, : 3 * size]).chunk(3, 1)
            if torch.is_grad_enabled():  # autograd keeps the tanh outputs for the backward pass
                cell = in_gate * torch.tanh(gates[:, 3 * size :])
                if prev_cell is not None:
                    cell = torch.addcmul(cell, remember_gate, prev_cell)
                return out_gate * torch.tanh(cell), cell
            cell = torch.tanh(gates[:, 3 * size :]).mul_(in_gate)
        if prev_cell is not None:
            cell.addcmul_(remember_gate, prev_cell)
        return torch.tanh(cell).mul_(out_gate), cell


def _forget_winograd_weights(module: ConvLSTM, _incompatible_keys) -> None:
    """After `load_state_dict`: the cached transforms may be stale (inference tensors have no
    version counter to tell)."""
    module._winograd_weights.clear()


class ConvGRU(nn.Module):
    """One ConvGRU cell (reset, update and output gate convs). State (N, hidden_size, H, W); None = zeros."""

    def __init__(self, input_size, hidden_size, kernel_size):
        super().__init__()
        self.hidden_size = hidden_size
        padding = kernel_size // 2
        self.reset_gate = nn.Conv2d(input_size + hidden_size, hidden_size, kernel_size, padding=padding)
        self.update_gate = nn.Conv2d(input_size + hidden_size, hidden_size, kernel_size, padding=padding)
        self.out_gate = nn.Conv2d(input_size + hidden_size, hidden_size, kernel_size, padding=padding)

    def forward(self, x, prev_state=None):
        if prev_state is None:
            prev_state = x.new_zeros((x.shape[0], self.hidden_size, *x.shape[2:]))
        stacked = torch.cat((x, prev_state), 1)
        update = torch.sigmoid(self.update_gate(stacked))
        reset = torch.sigmoid(self.reset_gate(stacked))
        candidate = torch.tanh(self.out_gate(torch.cat((x, prev_state * reset), 1)))
        return prev_state * (1 - update) + candidate * update


class RecurrentConvLayer(nn.Module):
    """ConvLayer (stride 2 in E2Depth) then a ConvLSTM / ConvGRU (3x3) whose hidden state is the
    output: (N, C_in, H, W), state -> (N, C_out, H / 2, W / 2), new state. skip_zero_hidden: see
    ConvLSTM (ignored by ConvGRU)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0,
                 recurrent_block_type="convlstm", activation="relu", norm=None, skip_zero_hidden=False):
        super().__init__()
        self.recurrent_block_type = recurrent_block_type
        self.conv = ConvLayer(in_channels, out_channels, kernel_size, stride, padding, activation, norm)
        if recurrent_block_type == "convlstm":
            self.recurrent_block = ConvLSTM(out_channels, out_channels, 3, skip_zero_hidden)
        else:
            self.recurrent_block = ConvGRU(input_size=out_channels, hidden_size=out_channels, kernel_size=3)

    def forward(self, x, prev_state):
        state = self.recurrent_block(self.conv(x), prev_state)
        return (state[0] if self.recurrent_block_type == "convlstm" else state), state


class ResidualBlock(nn.Module):
    """conv3x3 -> norm -> ReLU -> conv3x3 -> norm, + input, ReLU: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, in_channels, out_channels, norm=None):
        super().__init__()
        self.norm = norm
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=norm != "BN")
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=norm != "BN")
        if norm == "BN":
            self.bn1, self.bn2 = nn.BatchNorm2d(out_channels), nn.BatchNorm2d(out_channels)
        elif norm == "IN":  # no running statistics here, unlike ConvLayer's
            self.bn1, self.bn2 = nn.InstanceNorm2d(out_channels), nn.InstanceNorm2d(out_channels)

    def forward(self, x):
        out = self.conv1(x)
        if self.norm is not None:
            out = self.bn1(out)
        out = self.conv2(torch.relu(out))
        if self.norm is not None:
            out = self.bn2(out)
        return torch.relu(out + x)
