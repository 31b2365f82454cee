"""The collaborative input layout [text ⊕ α·CF] that CF-reading tokenizers encode (issues 14, 25).

An item with a CF embedding (cf_embeddings.parquet, see rqvae_ids/cf.py) is the row
[text, cf_alpha * CF]; an item without one (new since training, or never in a training
sequence) gets a "cold" CF part by the model's `cf_cold` rule:

- "zero": a zero CF part (rqkmeans-cf then codes it by the text part of its codewords; the
  RQ-VAE learns, by CF-part dropout in training, to place such rows where their warm twins sit);
- "regress": α times the L2-normalised prediction of a ridge regression text -> CF fitted on
  the warm training items (`fit_ridge`); its weights live in the model's own safetensors
  (buffers `cf_reg_w`, `cf_reg_b`), so a saved model directory encodes new items alone.

These helpers are plain functions of arrays so that every kind shares one definition.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

COLD_RULES = ("zero", "regress")  # ModelConfig.cf_cold "auto" picks the kind's (Tokenizer.default_cold)


def fit_ridge(text: np.ndarray, cf: np.ndarray, has: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """(W (d, c), b (c,)) float32 of the ridge regression cf ≈ text @ W + b over the rows with `has`
    (centred, so the intercept is not shrunk); lam: the L2 penalty on W."""
    x = np.asarray(text, np.float64)[has]
    y = np.asarray(cf, np.float64)[has]
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    return w.astype(np.float32), (my - mx @ w).astype(np.float32)


def predicted_part(text: torch.Tensor, w: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """(B, c) cold CF part of the rule "regress": α · normalise(text @ W + b) (CF rows are unit
    vectors; the ridge prediction is shrunk towards the mean, so its direction is what it says)."""
    return alpha * F.normalize(text.float() @ w + b, dim=-1)


def layout(cfg) -> dict:
    """What config.json records of a CF-reading model's inputs (`inputs` entry), from its ModelConfig."""
    return {"layout": "text ⊕ cf_alpha·CF", "text_dim": cfg.input_dim, "cf_dim": cfg.cf_dim,
            "cf_alpha": cfg.cf_alpha, "cold": cfg.cf_cold,
            "cf_source": "cf_embeddings.parquet beside the model (items without a row are cold)"}
