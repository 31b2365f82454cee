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


SCORE_CELLS = 1 << 24  # candidate (history, item) pairs per SidPrefixRetriever batch: ~0.5 GB of temporaries


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
        # groups[l][j]: index of item j's level-l prefix group (G_l groups).
        self.groups = []
        for level in range(self.levels):
            _, inv = np.unique(codes[:, : level + 1], axis=0, return_inverse=True)
            self.groups.append(inv.reshape(-1))
        self.n_groups = [int(g.max()) + 1 if self.n_items else 0 for g in self.groups]
        if min(decays) <= 0 or min(bases) <= 0:
            raise ValueError("decays and bases must be > 0")
        self.decays, self.bases = tuple(decays), tuple(bases)
        self.tune_users, self.seed, self.batch_size = tune_users, seed, batch_size
        self.decay, self.base = self.decays[-1], self.bases[0]
        self.tiebreak = np.zeros(self.n_items)
        self._by_popularity()
        self.tuned: dict = {}

    def fit(self, train_sequences, valid=None) -> "SidPrefixRetriever":
        pop = _popularity(train_sequences, self.n_items)
        # Rank-based tie-break in [0, 1e-7): below the 1e-6 rounding step of real scores, and
        # its steps (1e-7 / N) stay above float64 spacing for scores up to ~1e4.
        rank = np.empty(self.n_items)
        rank[np.lexsort((-np.arange(self.n_items), pop))] = np.arange(self.n_items)
        self.tiebreak = 1e-7 * rank / self.n_items
        self._by_popularity()
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

    def _by_popularity(self) -> None:
        # Each level's items grouped by prefix, most popular (largest tie-break) first inside a
        # group: group g of level l is ranked[l][starts[l][g]:starts[l][g + 1]].
        self.popular = np.argsort(-self.tiebreak, kind="stable")
        self.ranked, self.starts = [], []
        for level in range(self.levels):
            self.ranked.append(self.popular[np.argsort(self.groups[level][self.popular], kind="stable")])
            counts = np.bincount(self.groups[level], minlength=self.n_groups[level])
            self.starts.append(np.concatenate([[0], np.cumsum(counts)]))

    def _masses(self, histories: Sequence[np.ndarray]) -> list[sp.csr_matrix]:
        """Per level, the (B, G_l) recency mass each history puts on each prefix group, canonical
        (duplicates summed, columns sorted per row: `_candidate_scores` binary-searches them)."""
        b = len(histories)
        rows = np.concatenate([np.full(len(h), i, np.int64) for i, h in enumerate(histories)]) if b else np.zeros(0, np.int64)
        items = np.concatenate([np.asarray(h, np.int64) for h in histories]) if b else np.zeros(0, np.int64)
        ages = np.concatenate([np.arange(len(h) - 1, -1, -1) for h in histories]) if b else np.zeros(0)
        weights = self.decay ** ages.astype(np.float64)
        masses = []
        for level in range(self.levels):
            mass = sp.csr_matrix((weights, (rows, self.groups[level][items])), shape=(b, self.n_groups[level]))
            mass.sum_duplicates()
            masses.append(mass)
        return masses

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(B, N) float64 prefix scores of every item for each history (tie-break included).
        The reference `recommend` must reproduce; O(B x N), for small catalogs and tests."""
        out = np.zeros((len(histories), self.n_items))
        for level, mass in enumerate(self._masses(histories)):
            out += (self.base**level) * mass.toarray()[:, self.groups[level]]
        # Round so equal scores are exactly equal whatever the summation order, then break ties.
        np.round(out, 6, out=out)
        out += self.tiebreak[None, :]
        return out

    def recommend(self, histories, k: int) -> np.ndarray:
        # An item's score depends only on which of its prefix groups the history touched, so items
        # of the same touched group and no deeper touched one tie and rank by the tie-break (their
        # popularity). The k best therefore lie among the k most popular items of each touched
        # group, and of the whole catalog for the untouched: scoring those few candidates gives
        # the ranking of `scores` exactly, without its O(N) work per history (at 1M items the dense
        # scoring dominated a 379-s evaluation; now 8 s).
        k_eff = min(k, self.n_items)
        out = np.full((len(histories), k), -1, np.int64)
        for start, stop in self._batches(histories, k_eff):
            out[start:stop, :k_eff] = self._top(self._masses(histories[start:stop]), k_eff)
        return out

    def _batches(self, histories, k: int):
        """(start, stop) runs of at most batch_size histories whose candidates (at most
        k x levels per history item) stay under SCORE_CELLS."""
        cost = np.cumsum([max(len(h), 1) * self.levels * max(k, 1) for h in histories])
        start = 0
        while start < len(histories):
            done = cost[start - 1] if start else 0
            stop = int(np.searchsorted(cost, done + SCORE_CELLS, side="right"))
            stop = min(max(stop, start + 1), start + self.batch_size)
            yield start, stop
            start = stop

    def _candidates(self, masses: list[sp.csr_matrix], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, items) pairs, unique: the k most popular items of every group a history touched."""
        rows, items = [], []
        for level, mass in enumerate(masses):
            coo = mass.tocoo()
            lo, hi = self.starts[level][coo.col], self.starts[level][coo.col + 1]
            take = np.minimum(hi - lo, k)
            offsets = np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
            rows.append(np.repeat(coo.row, take))
            items.append(self.ranked[level][np.repeat(lo, take) + offsets])
        key = np.unique(np.concatenate(rows).astype(np.int64) * self.n_items + np.concatenate(items))
        return key // self.n_items, key % self.n_items

    def _candidate_scores(self, masses: list[sp.csr_matrix], rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The rounded `scores` of (rows, items), summed level by level in the same order."""
        out = np.zeros(len(rows))
        for level, mass in enumerate(masses):
            g = self.n_groups[level]  # canonical masses: the (row, group) keys come out sorted
            keys = np.repeat(np.arange(mass.shape[0], dtype=np.int64), np.diff(mass.indptr)) * g + mass.indices
            want = rows * g + self.groups[level][items]
            pos = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
            hit = keys[pos] == want if len(keys) else np.zeros(len(want), bool)
            out[hit] += (self.base**level) * mass.data[pos[hit]]
        return np.round(out, 6)

    def _top(self, masses: list[sp.csr_matrix], k: int) -> np.ndarray:
        """(B, k) best items per history: scored candidates by score + tie-break, then popular items."""
        b = masses[0].shape[0]
        rows, items = self._candidates(masses, k)
        values = self._candidate_scores(masses, rows, items)
        keep = values > 0  # a zero score ties with every untouched item: left to the popular top-up
        rows, items, values = rows[keep], items[keep], values[keep] + self.tiebreak[items[keep]]
        order = np.lexsort((-values, rows))
        rows, items = rows[order], items[order]
        first = np.searchsorted(rows, np.arange(b))
        rank = np.arange(len(rows)) - first[rows]
        top = np.full((b, k), -1, np.int64)
        top[rows[rank < k], rank[rank < k]] = items[rank < k]
        counts = np.minimum(np.bincount(rows, minlength=b), k)
        popular = self.popular[: 2 * k]
        for r in np.flatnonzero(counts < k):
            rest = popular[~np.isin(popular, top[r, : counts[r]])]
            top[r, counts[r] :] = rest[: k - counts[r]]
        return top
