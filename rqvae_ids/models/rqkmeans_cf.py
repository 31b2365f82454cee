"""Residual k-means on [text ⊕ α·CF]: the non-neural collaborative baseline (issue 14).

The latent of an item with a CF embedding is its text embedding with α times its CF
embedding appended (cf_embeddings.parquet, see rqvae_ids/cf/); codebooks are fitted by
residual k-means on those latents. An item without one (new, or never in a training
sequence) is encoded from its text alone: nearest codewords by the text part of each
codeword only, so it still lands where items with similar text sit.

encode_codes(x) takes (N, d) text-only rows (all cold) or (N, d + c) rows built by
`cf_inputs(text, cf_vectors, has)` (rows whose CF part is zero are treated as cold).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ModelConfig, Tokenizer, replace


class RQKMeansCF(Tokenizer):
    kind = "rqkmeans-cf"
    neural = False
    # rows without CF take the nearest codewords of their text part, not of the whole latent:
    # ids.encode's fast path (nearest codewords of the latent) would give other codes
    residual_search = False

    def __init__(self, cfg: ModelConfig):
        super().__init__(replace(cfg, latent_dim=cfg.input_dim + cfg.cf_dim))

    def cf_inputs(self, text: np.ndarray, cf: np.ndarray | None, has: np.ndarray | None) -> np.ndarray:
        """(N, d + c) float32 model inputs: text ⊕ α·CF, zero CF part where `has` is False."""
        text = np.asarray(text, np.float32)
        out = np.zeros((len(text), self.cfg.input_dim + self.cfg.cf_dim), np.float32)
        out[:, : text.shape[1]] = text
        if cf is not None and self.cfg.cf_dim:
            out[:, self.cfg.input_dim:] = self.cfg.cf_alpha * np.where(np.asarray(has)[:, None], cf, 0.0)
        return out

    def latent(self, x: torch.Tensor):
        """Identity on [text, alpha * CF] rows; text-only rows get a zero CF part (cold items), so
        generic callers (ids.assign's resolution geometry) see one latent size."""
        if x.shape[1] == self.cfg.input_dim and self.cfg.cf_dim:
            x = torch.cat([x, x.new_zeros(len(x), self.cfg.cf_dim)], dim=1)
        return super().latent(x)

    def encode_codes(self, x: np.ndarray, distinct_last: bool = False) -> np.ndarray:
        x = np.asarray(x, np.float32)
        d = self.cfg.input_dim
        if x.shape[1] == d:
            x = self.cf_inputs(x, None, None)
        cold = ~np.abs(x[:, d:]).any(axis=1) if self.cfg.cf_dim else np.zeros(len(x), bool)
        codes = super().encode_codes(x, distinct_last=distinct_last)
        if cold.any():
            codes[cold] = self.text_codes(x[cold, :d])
        return codes

    def text_codes(self, text: np.ndarray) -> np.ndarray:
        """Greedy residual codes of text-only rows against the text part of the codebooks."""
        residual = torch.from_numpy(np.ascontiguousarray(text, np.float32))
        d, codes = text.shape[1], []
        for book in self.codebooks():
            e = torch.from_numpy(book[:, :d])
            c = torch.cdist(residual, e).argmin(1)
            residual = residual - e[c]
            codes.append(c)
        return torch.stack(codes, 1).numpy().astype(np.int64)

    def decode_codes(self, codes: np.ndarray) -> np.ndarray:
        """The text part of the summed codewords (the embedding's reconstruction)."""
        return super().decode_codes(codes)[:, : self.cfg.input_dim]
