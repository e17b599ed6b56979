"""Recurrent building blocks shared by the students: ConvLSTM and ConvGRU cells and the
conv + recurrent cell layer of E2VID / Depth AnyEvent (parameter names as in those codebases)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvLSTM(nn.Module):
    """ConvLSTM cell: one 3x3 conv on [x, h] -> 4 gates (input, remember, output, cell).
    State (hidden, cell), each (B, hidden, H, W); None = zeros."""

    def __init__(self, input_size: int, hidden_size: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_size = hidden_size
        self.Gates = nn.Conv2d(input_size + hidden_size, 4 * hidden_size, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros((x.shape[0], self.hidden_size, *x.shape[2:]))
            state = (zeros, zeros)
        hidden, cell = state
        in_gate, remember_gate, out_gate, cell_gate = self.Gates(torch.cat((x, hidden), 1)).chunk(4, 1)
        cell = torch.sigmoid(remember_gate) * cell + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
        hidden = torch.sigmoid(out_gate) * torch.tanh(cell)
        return hidden, cell


class ConvGRU(nn.Module):
    """ConvGRU cell (reset, update and output gates, 3x3). State (B, hidden, H, W); None = zeros."""

    def __init__(self, input_size: int, hidden_size: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_size = hidden_size
        padding = kernel_size // 2
        self.reset_gate = nn.Conv2d(input_size + hidden_size, hidden_size, kernel_size, padding=padding)
        self.update_gate = nn.Conv2d(input_size + hidden_size, hidden_size, kernel_size, padding=padding)
        self.out_gate = nn.Conv2d(input_size + hidden_size, hidden_size, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor, state=None) -> torch.Tensor:
        if state is None:
            state = x.new_zeros((x.shape[0], self.hidden_size, *x.shape[2:]))
        stacked = torch.cat((x, state), 1)
        update = torch.sigmoid(self.update_gate(stacked))
        reset = torch.sigmoid(self.reset_gate(stacked))
        candidate = torch.tanh(self.out_gate(torch.cat((x, state * reset), 1)))
        return state * (1 - update) + candidate * update


class ConvLayer(nn.Module):
    """Conv2d followed by ReLU (the `conv.conv2d` of E2VID's layers)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2d(x))


class RecurrentConvLayer(nn.Module):
    """conv (+ ReLU) then a recurrent cell whose hidden state is the output. With padding 0 (Depth
    AnyEvent-R) a 3x3 conv shrinks the map by 2 pixels per side pair."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, cell: str = "convlstm"):
        super().__init__()
        if cell not in ("convlstm", "convgru"):
            raise ValueError(f"recurrent cell must be convlstm or convgru, got {cell!r}")
        self.cell = cell
        self.conv = ConvLayer(in_channels, out_channels, kernel_size, stride, padding)
        self.recurrent_block = (ConvLSTM if cell == "convlstm" else ConvGRU)(out_channels, out_channels, 3)

    def forward(self, x: torch.Tensor, state=None):
        state = self.recurrent_block(self.conv(x), state)
        return (state[0] if self.cell == "convlstm" else state), state
