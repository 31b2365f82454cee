"""Residual k-means on [text ⊕ α·CF]: the non-neural collaborative baseline (issue 14).

The latent of an item with a CF embedding is its text embedding with α times its CF
embedding appended (cf_embeddings.parquet, see rqvae_ids/cf/); codebooks are fitted by
residual k-means on those latents. An item without one (new, or never in a training
sequence) is encoded from its text alone: with `cf_cold` "regress" (the default) its CF part is
predicted from its text (models/cf_input.py) and it takes the nearest codewords of the whole row;
with "zero" it takes the nearest codewords of the text part of each codeword only, so it lands
where items with similar text sit. On Toys' held-out items "regress" gave the hybrid retriever a
cold validation Recall@10 of 0.1440 against 0.1055 (bench/RESULTS.md, issue 25).

encode_codes(x) takes (N, d) text-only rows (all cold) or (N, d + c) rows built by
`cf_inputs(text, cf_vectors, has)` (rule "zero": rows whose CF part is zero are treated as cold).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ModelConfig, Tokenizer, replace


class RQKMeansCF(Tokenizer):
    kind = "rqkmeans-cf"
    neural = False

    def __init__(self, cfg: ModelConfig):
        super().__init__(replace(cfg, latent_dim=cfg.input_dim + cfg.cf_dim))

    @property
    def reads_cf(self) -> bool:
        return self.cfg.cf_dim > 0

    @property
    def residual_search(self) -> bool:
        """Whether codes are the nearest codewords of the whole row (ids.encode's fast path): not under
        cf_cold "zero", where rows without CF take the nearest codewords of their text part."""
        return self.cfg.cf_cold != "zero"

    def encode_codes(self, x: np.ndarray, distinct_last: bool = False) -> np.ndarray:
        x = np.asarray(x, np.float32)
        d = self.cfg.input_dim
        if x.shape[1] == d:
            x = self.cf_inputs(x, None, None)
        # rule "zero" only: rows with a predicted CF part ("regress") take the nearest codewords whole
        zero_rule = self.cfg.cf_dim and self.cfg.cf_cold == "zero"
        cold = ~np.abs(x[:, d:]).any(axis=1) if zero_rule else np.zeros(len(x), bool)
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
