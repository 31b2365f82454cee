"""One vector-quantization level: nearest-code lookup with k-means init, EMA and dead codes.

State lives in buffers (lucidrains style) so init status, EMA statistics and usage
survive `state_dict`: `initted`, `cluster_size`, `embed_avg`, `unused_steps`, `reseeded`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .kmeans import kmeans


class VQOutput(NamedTuple):
    quantized: torch.Tensor  # (B, D) codeword values, gradient passed to the input (STE/rotation)
    codes: torch.Tensor  # (B,) int64
    loss: torch.Tensor  # scalar: codebook + beta * commitment (beta * commitment with EMA)


def straight_through(x: torch.Tensor, e: torch.Tensor, mode: str = "ste") -> torch.Tensor:
    """Value e, gradient to x. 'ste': identity (van den Oord 2017); 'rotation': the
    rotation trick (Fifty et al. 2024) rotates and rescales x onto e with a constant
    matrix, so the gradient keeps the angle between x and its codeword."""
    if mode == "ste":
        return x + (e - x).detach()
    eps = 1e-6
    xn, en = x.norm(dim=-1, keepdim=True), e.norm(dim=-1, keepdim=True)
    u, q = (x / (xn + eps)).detach(), (e / (en + eps)).detach()
    w = F.normalize(u + q, dim=-1, eps=eps).detach()
    # Householder-style rotation R x with R u = q, R built from detached u, q, w.
    rotated = x - 2 * (x * w).sum(-1, keepdim=True) * w + 2 * (x * u).sum(-1, keepdim=True) * q
    out = rotated * (en / (xn + eps)).detach()
    return out + (e - out).detach()  # exact forward value despite rounding


def sq_distances(x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """(B, K) squared Euclidean distances between x (B, D) and embed (K, D), float32."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1)[None, :]).clamp_min_(0)


class VectorQuantizer(nn.Module):
    """One codebook of K codes in D dims.

    forward(x (B, D) float) -> VQOutput(quantized (B, D), codes (B,) int64, loss scalar).
    loss = ||sg[x] - e||^2 + beta * ||x - sg[e]||^2  (codebook + commitment; beta 0.25 as in
    VQ-VAE / TIGER). With ema=True the codebook follows exponential moving averages of the
    vectors assigned to it (decay, Laplace smoothing eps) and the loss is beta * commitment.
    Codes unused for `dead_code_steps` consecutive training steps are re-seeded from the
    batch vectors farthest from their codes (0 disables).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_steps: int = 20,
        kmeans_iters: int = 20,
        grad: str = "ste",
    ):
        super().__init__()
        if grad not in ("ste", "rotation"):
            raise ValueError(f"grad must be 'ste' or 'rotation', got {grad!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.dim, self.codebook_size, self.beta = dim, codebook_size, beta
        self.ema, self.decay, self.eps = ema, decay, eps
        self.dead_code_steps, self.kmeans_iters, self.grad = dead_code_steps, kmeans_iters, grad
        embed = torch.randn(codebook_size, dim) * 0.01
        # With EMA the codebook is state, not a trained parameter.
        self.embed = nn.Parameter(embed, requires_grad=not ema)
        self.register_buffer("initted", torch.tensor(False))
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("reseeded", torch.tensor(0, dtype=torch.long))  # cumulative count

    # -- in-place mutators -------------------------------------------------------------
    @torch.no_grad()
    def init_embed_(self, data: torch.Tensor, seed: int = 0) -> None:
        """Fit the codebook by faiss k-means on data (N, D); EMA state starts from it."""
        centroids = kmeans(data.detach().float().cpu().numpy(), self.codebook_size, self.kmeans_iters, seed)
        self.set_embed_(torch.from_numpy(centroids))

    @torch.no_grad()
    def set_embed_(self, embed: torch.Tensor) -> None:
        self.embed.data.copy_(embed.to(self.embed))
        self.embed_avg.copy_(self.embed.data)
        self.cluster_size.fill_(1.0)
        self.unused_steps.zero_()
        self.initted.fill_(True)

    @torch.no_grad()
    def ema_update_(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """cluster_size, embed_avg <- decay * old + (1 - decay) * batch statistics."""
        onehot = F.one_hot(codes, self.codebook_size).type(x.dtype)  # (B, K)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(onehot.t() @ x, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        # Laplace smoothing keeps rare codes from dividing by ~0.
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.data.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def expire_codes_(self, x: torch.Tensor, codes: torch.Tensor, dist: torch.Tensor) -> int:
        """Re-seed codes unused for `dead_code_steps` steps from far-off batch vectors.

        x (B, D), codes (B,), dist (B,) squared distance of each vector to its code.
        Returns how many codes were re-seeded.
        """
        used = torch.bincount(codes, minlength=self.codebook_size) > 0
        self.unused_steps.add_(1).masked_fill_(used, 0)
        if self.dead_code_steps <= 0:
            return 0
        dead = (self.unused_steps >= self.dead_code_steps).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        # Candidates: the worse-served half of the batch; sample among them so several dead
        # codes do not all land on the single farthest point.
        far = dist.argsort(descending=True)[: max(len(x) // 2, 1)]
        pick = far[torch.randint(len(far), (dead.numel(),), device=x.device)]
        self.embed.data[dead] = x[pick].to(self.embed.dtype)
        self.embed_avg[dead] = self.embed.data[dead]
        self.cluster_size[dead] = 1.0
        self.unused_steps[dead] = 0
        self.reseeded.add_(dead.numel())
        return int(dead.numel())

    # -- lookup ------------------------------------------------------------------------
    def nearest(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes (B,) int64, squared distance to the chosen code (B,)) for x (B, D)."""
        d = sq_distances(x.float(), self.embed.float())
        dist, codes = d.min(1)
        return codes, dist

    def forward(self, x: torch.Tensor) -> VQOutput:
        with torch.autocast(device_type=x.device.type, enabled=False):  # distances in float32
            x = x.float()
            if self.training and not bool(self.initted):
                self.init_embed_(x)  # lazy k-means init on the first batch it sees
            codes, dist = self.nearest(x)
            if self.training:
                if self.ema:
                    self.ema_update_(x.detach(), codes)
                self.expire_codes_(x.detach(), codes, dist)
            e = F.embedding(codes, self.embed)
            commit = F.mse_loss(x, e.detach())
            loss = self.beta * commit if self.ema else F.mse_loss(e, x.detach()) + self.beta * commit
            return VQOutput(straight_through(x, e, self.grad), codes, loss)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B,) int64 -> codewords (B, D)."""
        return F.embedding(codes, self.embed)
