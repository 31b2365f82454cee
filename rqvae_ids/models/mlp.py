"""Shared MLP blocks: TIGER's encoder 384 -> 512 -> 256 -> 128 -> latent, mirrored decoder."""

from __future__ import annotations

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
