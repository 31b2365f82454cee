"""Optimised product quantization (faiss `OPQMatrix` + `ProductQuantizer`): RPG's long IDs.

M sub-spaces x K codes (RPG: M = 16 for Toys, 32 for Beauty, 256 codes each). No gradient
training: `fit_codebooks_` learns the rotation and the sub-space codebooks with faiss.

It meets the residual-quantizer view of `Tokenizer` exactly, so encode/decode/assign work
unchanged: the latent is the rotated embedding z = R x (encoder = fixed Linear R, decoder
= R^T), and level m's codebook holds sub-space m's centroids embedded in the full latent,
zero elsewhere. The nearest such codeword to any residual only depends on sub-space m
(the other coordinates add the same constant to every distance), and subtracting it only
touches sub-space m, so residual encoding over these codebooks IS product quantization.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core.errors import UserError
from .base import ModelConfig, Tokenizer, replace


class OPQ(Tokenizer):
    kind = "opq"
    neural = False

    def __init__(self, cfg: ModelConfig):
        super().__init__(replace(cfg, latent_dim=cfg.input_dim))  # the latent is the rotated embedding
        d, m, k = cfg.input_dim, cfg.levels, cfg.codebook_size
        if d % m:
            raise UserError(f"opq: the embedding size {d} must be a multiple of the sub-spaces M (--levels {m})")
        if k & (k - 1):
            raise UserError(f"opq: codebook_size must be a power of two (faiss PQ bits), got {k}")
        self.encoder = nn.Linear(d, d, bias=False).requires_grad_(False)
        self.decoder = nn.Linear(d, d, bias=False).requires_grad_(False)
        eye = torch.eye(d)
        self.encoder.weight.data.copy_(eye)
        self.decoder.weight.data.copy_(eye)

    @torch.no_grad()
    def fit_codebooks_(self, x: torch.Tensor, seed: int = 0) -> None:
        """Learn the rotation R (OPQMatrix) and the M sub-space codebooks on x (N, d)."""
        import faiss

        data = np.ascontiguousarray(x.detach().float().cpu().numpy())
        d, m, k = self.cfg.input_dim, self.levels, self.codebook_size
        if len(data) < k:
            raise UserError(f"opq: need at least codebook_size={k} items to fit, got {len(data)}")
        opq = faiss.OPQMatrix(d, m)
        opq.niter = 10  # faiss default 50: ~4x the time for a few % lower distortion on Toys
        opq.verbose = False
        pq = faiss.ProductQuantizer(d, m, int(np.log2(k)))
        pq.cp.seed = seed
        pq.cp.niter = self.cfg.kmeans_iters
        opq.pq = pq  # OPQMatrix alternates rotation and this PQ's training
        opq.train(data)
        rot = faiss.vector_to_array(opq.A).reshape(d, d).astype(np.float32)  # z = A x
        z = np.ascontiguousarray(data @ rot.T)
        pq.train(z)
        cent = faiss.vector_to_array(pq.centroids).reshape(m, k, d // m)
        self.encoder.weight.data.copy_(torch.from_numpy(rot))
        self.decoder.weight.data.copy_(torch.from_numpy(rot.T.copy()))  # R orthonormal: R^-1 = R^T
        sub = d // m
        for level, vq in enumerate(self.quantizer.layers):
            book = torch.zeros(k, d)
            book[:, level * sub : (level + 1) * sub] = torch.from_numpy(cent[level])
            vq.set_embed_(book)


def fit_opq(x: np.ndarray, cfg: ModelConfig, seed: int = 0) -> OPQ:
    """Convenience: OPQ on x (N, d) float32 -> a fitted tokenizer (cfg.levels = M sub-spaces)."""
    model = OPQ(replace(cfg, kind="opq", input_dim=int(x.shape[1])))
    model.fit_codebooks_(torch.from_numpy(np.array(x, dtype=np.float32)), seed=seed)
    return model.eval()
