"""The retriever interface of the next-item harness.

Every retriever (popularity, embedding-knn, sid-prefix, the trained models of
rqvae_ids.retrieval) meets it, so the harness ranks them all the same way.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np


class Retriever(Protocol):
    name: str

    def fit(self, train_sequences: Sequence[np.ndarray], valid=None) -> "Retriever":
        """Learn from training sequences (catalog indices). `valid` is an optional
        (histories, targets) pair for tuning knobs on validation only."""
        ...

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> np.ndarray:
        """Top-k catalog indices per history, best first: int64 array (U, k)."""
        ...
