"""Masked layers: the weights that make a network autoregressive are zeroed by fixed masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_groups(n: int, colours: int) -> torch.Tensor:
    """Assign ``n`` feature channels to ``colours`` contiguous groups (R, G, B, ...)."""
    if n < colours:
        raise ValueError(f"need at least {colours} feature channels for {colours} colours, got {n}")
    return torch.arange(n) * colours // n


def group_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, strict: bool) -> torch.Tensor:
    """(out, in) connectivity: output group g sees input groups < g (strict) or <= g."""
    o, i = out_groups.unsqueeze(1), in_groups.unsqueeze(0)
    return (i < o) if strict else (i <= o)


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 mask (out, in)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor, bias=True):
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mask", mask.float().reshape(out_features, in_features))

    def set_mask(self, mask: torch.Tensor) -> None:
        self.mask.copy_(mask.float().reshape_as(self.mask))

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (no padding: callers pad causally) with a fixed 0/1 weight mask."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], mask: torch.Tensor, **kw):
        super().__init__(cin, cout, kernel, padding=0, **kw)
        self.register_buffer("mask", mask.float().reshape_as(self.weight))

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, dilation=self.dilation)


def conv1x1_masked(cin_groups: torch.Tensor, cout_groups: torch.Tensor) -> MaskedConv2d:
    """1x1 convolution that keeps colour causality (output group g sees groups <= g)."""
    mask = group_mask(cout_groups, cin_groups, strict=False)
    return MaskedConv2d(len(cin_groups), len(cout_groups), (1, 1), mask[:, :, None, None])


def gate(a: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Gated activation tanh(a1) * sigmoid(a2) over the two halves of ``dim``."""
    t, s = a.chunk(2, dim=dim)
    return torch.tanh(t) * torch.sigmoid(s)
