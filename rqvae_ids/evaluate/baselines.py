"""The baseline retrievers, which need no trained model: popularity, embedding-knn, sid-prefix.

All meet `Retriever` (fit(train_sequences, valid), recommend(histories, k)) and
are ranked by the harness, which also removes each user's history items.
Knobs are tuned on the validation split only (a seeded sample of at most
`tune_users` users, objective: validation Recall@10 under the harness policy).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from .harness import rank_excluding_history
from .ranking import recall_at


SCORE_CELLS = 1 << 25  # (histories x items) scores per SidPrefixRetriever batch: 256 MB of float64


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) int64 indices of the largest scores per row, best first. scores: (B, N)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def _pad(rows: np.ndarray, k: int) -> np.ndarray:
    if rows.shape[1] >= k:
        return rows[:, :k]
    return np.pad(rows, ((0, 0), (0, k - rows.shape[1])), constant_values=-1)


def _tuning_sample(valid, tune_users: int, seed: int) -> tuple[list[np.ndarray], np.ndarray] | None:
    if valid is None:
        return None
    histories, targets = valid
    n = len(targets)
    if n == 0:
        return None
    idx = np.arange(n)
    if n > tune_users:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=tune_users, replace=False))
    return [histories[i] for i in idx], np.asarray(targets)[idx]


def _valid_recall(recommend, sample, k: int = 10) -> float:
    histories, targets = sample
    ranked = rank_excluding_history(recommend, histories, k)
    return recall_at(ranked, targets, k)


def _popularity(train_sequences: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """(N,) float64 interaction counts of each item in the training sequences."""
    flat = np.concatenate([np.asarray(s, np.int64) for s in train_sequences]) if len(train_sequences) else np.zeros(0, np.int64)
    return np.bincount(flat, minlength=n_items).astype(np.float64)


class PopularityRetriever:
    """The most interacted-with items of the training sequences, the same list for everyone."""

    name = "popularity"

    def __init__(self, n_items: int):
        self.n_items = n_items
        self.ranking = np.arange(n_items, dtype=np.int64)

    def fit(self, train_sequences, valid=None) -> "PopularityRetriever":
        counts = _popularity(train_sequences, self.n_items)
        self.ranking = np.argsort(-counts, kind="stable").astype(np.int64)
        self.tuned = {}
        return self

    def recommend(self, histories, k: int) -> np.ndarray:
        return np.tile(self.ranking[:k], (len(histories), 1))


class EmbeddingKnnRetriever:
    """Mean of the last n history embeddings -> top-k items by cosine (faiss IndexFlatIP).

    vectors: (N, d) float32 item embeddings in catalog order. n is picked from
    `n_grid` by validation Recall@10.
    """

    name = "embedding-knn"

    def __init__(self, vectors: np.ndarray, n_grid=(1, 2, 3, 5, 10, 20), tune_users: int = 5000, seed: int = 0):
        from ..core.knn import unit_rows

        self.vectors = unit_rows(vectors)  # searched by faiss.knn: no index copy of the catalog
        self.n_grid, self.tune_users, self.seed = tuple(n_grid), tune_users, seed
        self.n_last = self.n_grid[0]
        self.tuned: dict = {}

    def fit(self, train_sequences, valid=None) -> "EmbeddingKnnRetriever":
        sample = _tuning_sample(valid, self.tune_users, self.seed)
        if sample is not None:
            scores = {}
            for n in self.n_grid:
                self.n_last = n
                scores[n] = _valid_recall(self.recommend, sample)
            self.n_last = max(scores, key=lambda n: (scores[n], -n))
            self.tuned = {"n_last": self.n_last, "valid_recall@10": scores}
        return self

    def recommend(self, histories, k: int) -> np.ndarray:
        q = np.zeros((len(histories), self.vectors.shape[1]), dtype=np.float32)
        for i, h in enumerate(histories):
            if len(h):
                q[i] = self.vectors[np.asarray(h[-self.n_last :], np.int64)].mean(axis=0)
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        import faiss

        _, found = faiss.knn(q, self.vectors, min(k, len(self.vectors)), metric=faiss.METRIC_INNER_PRODUCT)
        return _pad(found.astype(np.int64), k)


class SidPrefixRetriever:
    """Items scored by how deep a SID prefix they share with the recent history.

    score(j) = sum_t decay^age(t) * w[prefix(j, h_t)] + tie-break, where age 0 is the
    most recent history item, prefix() the number of leading levels two items share
    and w[m] = sum_{l<m} base^l (so a deeper shared prefix always scores more when
    base > 0). Scores are rounded to 1e-6 (contributions below that are noise), then ties
    (e.g. items sharing no prefix with the history) are broken by training popularity,
    then item index. decay and base are tuned on validation.

    codes: (N, L) int code tuples in catalog order (the collision suffix is left out:
    two items sharing all L codes are siblings, which the score already rewards).
    """

    name = "sid-prefix"

    def __init__(
        self,
        codes: np.ndarray,
        name: str = "sid-prefix",
        decays=(0.3, 0.5, 0.8, 1.0),
        bases=(0.25, 1.0, 4.0),
        tune_users: int = 3000,
        seed: int = 0,
        batch_size: int = 1024,
    ):
        codes = np.asarray(codes, dtype=np.int64)
        self.name = name
        self.n_items, self.levels = codes.shape
        # One-hot (G_l, N) membership of each item in its level-l prefix group.
        self.groups, self.members = [], []
        for level in range(self.levels):
            _, inv = np.unique(codes[:, : level + 1], axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            self.groups.append(inv)
            self.members.append(
                sp.csr_matrix((np.ones(self.n_items), (inv, np.arange(self.n_items))), shape=(inv.max() + 1, self.n_items))
            )
        if min(decays) <= 0 or min(bases) <= 0:
            raise ValueError("decays and bases must be > 0")
        self.decays, self.bases = tuple(decays), tuple(bases)
        self.tune_users, self.seed, self.batch_size = tune_users, seed, batch_size
        self.decay, self.base = self.decays[-1], self.bases[0]
        self.tiebreak = np.zeros(self.n_items)
        self.tuned: dict = {}

    def fit(self, train_sequences, valid=None) -> "SidPrefixRetriever":
        pop = _popularity(train_sequences, self.n_items)
        # Rank-based tie-break in [0, 1e-7): below the 1e-6 rounding step of real scores, and
        # its steps (1e-7 / N) stay above float64 spacing for scores up to ~1e4.
        rank = np.empty(self.n_items)
        rank[np.lexsort((-np.arange(self.n_items), pop))] = np.arange(self.n_items)
        self.tiebreak = 1e-7 * rank / self.n_items
        sample = _tuning_sample(valid, self.tune_users, self.seed)
        if sample is not None:
            scores = {}
            for decay, base in itertools.product(self.decays, self.bases):
                self.decay, self.base = decay, base
                scores[(decay, base)] = _valid_recall(self.recommend, sample)
            self.decay, self.base = max(scores, key=lambda key: scores[key])
            self.tuned = {
                "decay": self.decay,
                "base": self.base,
                "valid_recall@10": {f"decay={d},base={b}": v for (d, b), v in scores.items()},
            }
        return self

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(B, N) float64 prefix scores of every item for each history (tie-break included)."""
        b = len(histories)
        rows = np.concatenate([np.full(len(h), i, np.int64) for i, h in enumerate(histories)]) if b else np.zeros(0, np.int64)
        items = np.concatenate([np.asarray(h, np.int64) for h in histories]) if b else np.zeros(0, np.int64)
        ages = np.concatenate([np.arange(len(h) - 1, -1, -1) for h in histories]) if b else np.zeros(0)
        weights = self.decay ** ages.astype(np.float64)
        out = np.zeros((b, self.n_items))
        for level in range(self.levels):
            # Sparse (B, G_l) recency mass per prefix group, spread onto the group's items.
            mass = sp.csr_matrix((weights, (rows, self.groups[level][items])), shape=(b, self.members[level].shape[0]))
            spread = (mass @ self.members[level]).tocoo()
            out[spread.row, spread.col] += (self.base**level) * spread.data
        # Round so equal scores are exactly equal whatever the summation order, then break ties.
        np.round(out, 6, out=out)
        out += self.tiebreak[None, :]
        return out

    def recommend(self, histories, k: int) -> np.ndarray:
        # A batch scores every item for each of its histories: (B, N) float64. Fewer histories per
        # batch in a large catalog keep that under SCORE_CELLS (1024 x 1M items would be 8 GB).
        step = max(1, min(self.batch_size, SCORE_CELLS // max(self.n_items, 1)))
        parts = [
            _topk(self.scores(histories[i : i + step]), k)
            for i in range(0, len(histories), step)
        ]
        return _pad(np.concatenate(parts), k) if parts else np.zeros((0, k), np.int64)
