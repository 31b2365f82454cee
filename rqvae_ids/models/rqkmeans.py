"""Residual k-means straight on the embeddings (GRID's RQ-KMeans): the non-neural reference.

No encoder, no training: `fit_codebooks_` runs faiss k-means level by level on the raw
embeddings (latent_dim = embedding dim), same L x K budget as the neural models.
"""

import numpy as np
import torch

from .base import ModelConfig, Tokenizer, replace


class RQKMeans(Tokenizer):
    kind = "rqkmeans"
    neural = False

    def __init__(self, cfg: ModelConfig):
        # The latent is the embedding itself.
        super().__init__(replace(cfg, latent_dim=cfg.input_dim))


def fit_rqkmeans(x: np.ndarray, cfg: ModelConfig, seed: int = 0) -> RQKMeans:
    """Convenience: residual k-means on x (N, d) float32 -> a fitted RQKMeans tokenizer."""
    model = RQKMeans(replace(cfg, kind="rqkmeans", input_dim=int(x.shape[1])))
    model.fit_codebooks_(torch.from_numpy(np.array(x, dtype=np.float32)), seed=seed)
    return model
