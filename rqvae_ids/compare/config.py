"""What a comparison is given and what it builds: its knobs (`CompareConfig`) and one model's IDs (`ModelIds`).

The bottom of the compare package: `comparison` and `generative` both import from
here, never from each other's privates.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import check

# The comparison's rows (issue 14): `rqvae` is collaborative whenever interactions are given
# (text-only without), `rqvae-text` always text only, `rqkmeans` text, `rqkmeans-cf` residual
# k-means on [text, alpha * CF]; the rest are the text-only baselines (compare/build.py).
MODEL_KINDS = ("rqvae", "rqvae-text", "vqvae", "vae", "ae", "rqkmeans", "rqkmeans-cf", "random")
# Rows that only exist with interactions (left out, with a report note, without them).
CF_ROWS = ("rqvae-text", "rqkmeans-cf")


@dataclass(frozen=True)
class CompareConfig:
    """Knobs of a comparison; every model gets the same levels, codebook size, seed and epochs."""

    models: tuple[str, ...] = MODEL_KINDS
    levels: int = 3
    codebook_size: int = 256
    seed: int = 0
    epochs: int | None = None  # None: TrainConfig's default budget
    max_history: int = 20  # TIGER's history truncation
    neighbour_queries: int = 2000
    tune_users: int = 3000  # validation users sampled for tuning retriever knobs

    def __post_init__(self):
        unknown = sorted(set(self.models) - set(MODEL_KINDS))
        check(not unknown, f"unknown model(s) {unknown}; known: {list(MODEL_KINDS)}")
        check(len(self.models) > 0, "at least one model is needed")
        check(len(set(self.models)) == len(self.models), "models listed twice")
        check(self.levels >= 1 and self.codebook_size >= 2, "levels >= 1 and codebook_size >= 2 needed")
        check(self.epochs is None or self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.max_history >= 1, f"max_history must be >= 1, got {self.max_history}")
        check(self.neighbour_queries >= 1, f"neighbour_queries must be >= 1, got {self.neighbour_queries}")
        check(self.tune_users >= 0, f"tune_users must be >= 0, got {self.tune_users}")


@dataclass
class ModelIds:
    """One model's IDs in embeddings row order.

    codes: (N, L) int64 raw codes; suffix: (N,) int64 collision suffix or None;
    recon: (N, d) float32 reconstruction of the embeddings or None (random IDs);
    losses: per-epoch training metrics frame or None; seconds: time to build.
    """

    name: str
    codes: np.ndarray
    suffix: np.ndarray | None = None
    recon: np.ndarray | None = None
    losses: pd.DataFrame | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def progress_to_stderr(msg: str) -> None:
    """The default progress line of a comparison: `[compare] MSG` on stderr."""
    print(f"[compare] {msg}", file=sys.stderr, flush=True)
