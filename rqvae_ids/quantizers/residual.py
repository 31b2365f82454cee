"""Residual quantization: a stack of VectorQuantizers, level l quantizing what levels < l left."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .vq import VectorQuantizer, straight_through


class RQOutput(NamedTuple):
    quantized: torch.Tensor  # (B, D) sum of the codewords, gradient passed to the input
    codes: torch.Tensor  # (B, L') int64, L' = levels used
    loss: torch.Tensor  # scalar, sum of the per-level losses
    level_losses: list  # L' scalars


class ResidualQuantizer(nn.Module):
    """L levels of K codes in D dims (codebook_size an int or a per-level tuple).

    forward(z (B, D), levels=None) -> RQOutput. Residuals are taken against detached
    codewords (r_{l+1} = r_l - sg[e_l]) as in RQ-VAE/TIGER, so each level's loss trains
    its own codebook and commits the encoder; the summed codeword leaves through one
    straight-through (or rotation-trick) estimator.
    """

    def __init__(self, levels: int, codebook_size: int | tuple[int, ...], dim: int, grad: str = "ste", **vq_kwargs):
        super().__init__()
        sizes = (codebook_size,) * levels if isinstance(codebook_size, int) else tuple(codebook_size)
        if len(sizes) != levels:
            raise ValueError(f"{len(sizes)} codebook sizes for {levels} levels")
        self.levels, self.dim, self.grad = levels, dim, grad
        self.layers = nn.ModuleList(VectorQuantizer(dim, k, grad="ste", **vq_kwargs) for k in sizes)

    def forward(self, z: torch.Tensor, levels: int | None = None) -> RQOutput:
        levels = self.levels if levels is None else levels
        residual, total = z, torch.zeros_like(z)
        codes, losses = [], []
        for vq in self.layers[:levels]:
            out = vq(residual)
            residual = residual - out.quantized.detach()
            total = total + out.quantized.detach()
            codes.append(out.codes)
            losses.append(out.loss)
        loss = torch.stack(losses).sum() if losses else z.new_zeros(())
        return RQOutput(straight_through(z, total, self.grad), torch.stack(codes, 1), loss, losses)

    @torch.no_grad()
    def init_embed_(self, z: torch.Tensor, start: int = 0, seed: int = 0) -> None:
        """Residual k-means init of levels >= start on z (N, D): each level is fitted on the
        residuals left by the (already fitted) levels above it."""
        residual = z.detach().float()
        for l, vq in enumerate(self.layers):
            if l >= start:
                vq.init_embed_(residual, seed=seed + l)
            codes, _ = vq.nearest(residual)
            residual = residual - vq.decode(codes)

    @torch.no_grad()
    def encode(self, z: torch.Tensor, distinct_last: bool = False) -> torch.Tensor:
        """z (B, D) -> codes (B, L) int64, greedy residual assignment.

        distinct_last: items of the batch that share their first L-1 codes get distinct
        last-level codes where the prefix group allows (<= K items), chosen by a greedy
        minimum-distance matching (LETTER-style balanced last level). The prefix, and so
        the neighbourhood structure, is unchanged; codes then depend on the whole batch.
        """
        residual, codes = z.float(), []
        for vq in self.layers[:-1]:
            c, _ = vq.nearest(residual)
            residual = residual - vq.decode(c)
            codes.append(c)
        last = self.layers[-1]
        c, _ = last.nearest(residual)
        if distinct_last and len(codes) > 0:
            c = distinct_within_groups(torch.stack(codes, 1), residual, last.embed.float(), c)
        codes.append(c)
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, L) -> summed codewords (B, D)."""
        return sum(vq.decode(codes[:, l]) for l, vq in enumerate(self.layers))

    def reseeded(self) -> list[int]:
        """Cumulative re-seeded codes per level."""
        return [int(vq.reseeded) for vq in self.layers]


def distinct_within_groups(prefix: torch.Tensor, residual: torch.Tensor, embed: torch.Tensor,
                           nearest: torch.Tensor) -> torch.Tensor:
    """Last-level codes (B,) that differ within each group of equal prefix (B, L-1) rows.

    Greedy matching per group: repeatedly give the closest remaining (item, code) pair
    its code. Groups larger than K keep the nearest code for the items left over.
    """
    out = nearest.clone()
    _, inverse, counts = torch.unique(prefix, dim=0, return_inverse=True, return_counts=True)
    for g in torch.nonzero(counts > 1).flatten().tolist():
        rows = torch.nonzero(inverse == g).flatten()
        if torch.unique(nearest[rows]).numel() == rows.numel():
            continue  # already distinct
        d = torch.cdist(residual[rows], embed).pow(2)  # (m, K)
        d_flat = d.clone()
        for _ in range(min(len(rows), embed.shape[0])):
            i, k = divmod(int(torch.argmin(d_flat)), d_flat.shape[1])
            out[rows[i]] = k
            d_flat[i, :] = float("inf")
            d_flat[:, k] = float("inf")
    return out
