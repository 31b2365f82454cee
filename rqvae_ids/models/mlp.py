"""Shared MLP blocks: TIGER's encoder 384 -> 512 -> 256 -> 128 -> latent, mirrored decoder."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Sequential):
    """Linear layers in_dim -> hidden... -> out_dim with ReLU between them (none after the last).

    forward(x (B, in_dim) float) -> (B, out_dim) float.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float = 0.0):
        dims = (in_dim, *hidden, out_dim)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class SkipMLP(nn.Module):
    """A linear path plus an MLP branch whose last layer starts at zero: out = W x + b + MLP(x).

    The linear path can be set to PCA (`set_linear_`), so training starts from the best
    linear autoencoder instead of a random map that scrambles neighbourhoods; the MLP
    branch then only learns what the linear map misses.
    forward(x (B, in_dim) float) -> (B, out_dim) float.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.mlp = MLP(in_dim, hidden, out_dim, dropout)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)

    @torch.no_grad()
    def set_linear_(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """weight (out_dim, in_dim), bias (out_dim,); rows beyond weight's keep zeros + bias."""
        self.linear.weight.zero_()
        self.linear.weight[: weight.shape[0]] = weight
        self.linear.bias.copy_(bias)
