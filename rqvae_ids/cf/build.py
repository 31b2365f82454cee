"""Collaborative item embeddings from the TRAINING part of the interactions (item2vec-style).

The collaborative signal the tokenizers learn from (rqvae's InfoNCE term, rqkmeans-cf):
a PPMI matrix of item co-occurrences within a window of each user's training sequence
(the harness's leave-one-out split: every sequence without its validation and test target,
so no validation or test target is ever seen), factorised by a seeded randomized SVD
(Levy & Goldberg: SVD of shifted PPMI ~ word2vec's SGNS). Items that never co-occur with
another in the training part get no CF embedding; the tokenizers fall back to text for them.

`cf_embeddings.parquet` (format and readers: `rqvae_ids/cf_table.py`, floor 0, so that ID
assignment can read the CF embeddings a model was trained with): `build_cf_table` writes it
and reuses a file whose key (interactions hash, catalog, config) matches: the cache. Rows of
items outside the catalog are dropped, said and counted (metadata `interactions.notes`);
interactions with no usable sequence are a UserError before anything is written
(`check_interactions` says so up front, for the pipeline's preflight).

It reads interactions with evaluate/sequences.py (documented as shared foundation in
docs/ARCHITECTURE.md: it only needs errors/io).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.cf_table import CF_FILE, CFTable, catalog_sha256, cf_for_items, read_cf_table, write_cf_table
from ..core.config import check, to_dict
from ..core.errors import UserError
from ..core.io import require_file, sha256_file

__all__ = ["CF_FILE", "CFConfig", "CFTable", "build_cf_table", "catalog_sha256", "cf_for_embeddings", "cf_for_items",
           "cf_vectors", "read_cf_table", "train_part", "write_cf_table"]


NO_SIGNAL = ("interactions: no two items co-occur in the training part of any sequence: "
             "no collaborative signal to learn from")


@dataclass(frozen=True)
class CFConfig:
    dim: int = 64  # SVD rank (CF embedding size)
    window: int = 3  # co-occurrence window (items on each side) in a training sequence
    smoothing: float = 0.75  # context-distribution smoothing of PPMI (word2vec's 0.75)
    shift: float = 0.0  # PPMI shift log(k); 0 keeps every positive PMI
    max_history: int = 20  # the harness's history length (only shapes the split's histories)
    seed: int = 0

    def __post_init__(self):
        check(self.dim >= 1 and self.window >= 1, "cf dim and window must be >= 1")
        check(0.0 < self.smoothing <= 1.0, f"cf smoothing must be in (0, 1], got {self.smoothing}")
        check(self.shift >= 0, f"cf shift must be >= 0, got {self.shift}")


def cooccurrence(train_sequences, n_items: int, window: int):
    """Symmetric (N, N) csr co-occurrence counts of items within `window` positions, each pair
    weighted 1/distance (nearer pairs say more), self-pairs left out."""
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for seq in train_sequences:
        s = np.asarray(seq, np.int64)
        for d in range(1, window + 1):
            if len(s) <= d:
                break
            a, b = s[:-d], s[d:]
            keep = a != b
            rows += [a[keep], b[keep]]
            cols += [b[keep], a[keep]]
            vals.append(np.full(2 * int(keep.sum()), 1.0 / d))
    if not rows:
        return sp.csr_matrix((n_items, n_items))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    return sp.csr_matrix((v, (r, c)), shape=(n_items, n_items))


def ppmi(counts, smoothing: float, shift: float):
    """Positive (shifted) PMI of a symmetric co-occurrence matrix, context counts smoothed."""
    import scipy.sparse as sp

    c = counts.tocoo()
    row = np.asarray(counts.sum(axis=1)).ravel()
    ctx = row ** smoothing
    # log[P(i, j) / (P(i) P_smooth(j))] with P(i, j) = c_ij / T, P(i) = row_i / T: T cancels
    pmi = np.log(c.data) - np.log(row[c.row]) - np.log(ctx[c.col]) + np.log(ctx.sum())
    pmi -= shift
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (c.row[keep], c.col[keep])), shape=counts.shape)


def randomized_svd(m, rank: int, seed: int, oversample: int = 10, iters: int = 4):
    """Top-`rank` (U, S) of a sparse symmetric-ish matrix by seeded randomized subspace
    iteration (Halko et al.): deterministic for a seed, unlike ARPACK's random start."""
    rng = np.random.default_rng(seed)
    k = min(rank + oversample, min(m.shape))
    q = np.linalg.qr(m @ rng.standard_normal((m.shape[1], k)))[0]
    for _ in range(iters):
        q = np.linalg.qr(m.T @ q)[0]
        q = np.linalg.qr(m @ q)[0]
    u, s, _ = np.linalg.svd(q.T @ m, full_matrices=False)
    return (q @ u)[:, :rank], s[:rank]


def cf_vectors(train_sequences, n_items: int, cfg: CFConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, c) float32 L2-normalised CF embeddings (zero rows where missing), (N,) bool has."""
    counts = cooccurrence(train_sequences, n_items, cfg.window)
    if counts.nnz == 0:
        raise UserError(NO_SIGNAL)
    m = ppmi(counts, cfg.smoothing, cfg.shift)
    has = np.asarray((m != 0).sum(axis=1)).ravel() > 0
    rank = min(cfg.dim, int(has.sum()) - 1) if has.sum() > 1 else 1
    u, s = randomized_svd(m.astype(np.float64), rank, cfg.seed)
    v = u * np.sqrt(s)[None, :]
    v = np.where(has[:, None], v, 0.0)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    has &= norms[:, 0] > 1e-12
    v = np.where(has[:, None], v / np.maximum(norms, 1e-12), 0.0)
    out = np.zeros((n_items, cfg.dim), np.float32)
    out[:, : v.shape[1]] = v
    return out, has


def train_part(interactions_path, item_ids, cfg: CFConfig, log=None) -> tuple[list[np.ndarray], dict]:
    """(the harness's leave-one-out training sequences as catalog indices, what was used).

    Rows whose item is not in the catalog are dropped with a note (count and an example) that
    goes to `log` (default: stderr) and into the returned counts' `notes`."""
    import sys

    from ..evaluate.sequences import leave_one_out, load_interactions

    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        (log or (lambda m: print(m, file=sys.stderr)))(message)

    users, seqs, order = load_interactions(interactions_path, item_ids, log=note)
    train = leave_one_out(users, seqs, cfg.max_history, order).train
    used = {"users": len(train), "train_interactions": int(sum(len(s) for s in train)),
            "users_too_short": len(users) - len(train), "notes": notes}
    return train, used


def check_interactions(interactions_path, item_ids, cfg: CFConfig | None = None) -> dict:
    """What `build_cf_table` would learn from, without building it: a UserError now for a file with
    no usable sequence (the pipeline's preflight), else the counts of `train_part` (notes included)."""
    cfg = cfg or CFConfig()
    train, used = train_part(interactions_path, [str(i) for i in item_ids], cfg, log=lambda message: None)
    if not any(len(s) > 1 and (s[1:] != s[:-1]).any() for s in train):
        raise UserError(NO_SIGNAL)
    return used


def build_cf_table(interactions_path, item_ids, out_path, cfg: CFConfig | None = None, log=None) -> CFTable:
    """CF embeddings of the catalog `item_ids` from the interactions' training part, written to
    out_path atomically; an existing file with the same key is read back instead (the cache).
    Bad or unusable interactions: a UserError before anything is written."""
    cfg = cfg or CFConfig()
    item_ids = [str(i) for i in item_ids]
    key = {"interactions_sha256": sha256_file(require_file(interactions_path, "interactions file")),
           "catalog_sha256": catalog_sha256(item_ids), "cf": to_dict(cfg)}
    out = Path(out_path)
    if out.is_file():
        try:
            cached = read_cf_table(out, item_ids)
            if all(cached.metadata.get(k) == v for k, v in key.items()):
                return cached
        except UserError:
            pass  # stale or foreign cache: rebuilt below
    train, used = train_part(interactions_path, item_ids, cfg, log)
    vectors, has = cf_vectors(train, len(item_ids), cfg)
    meta = {**key, "items_total": len(item_ids), "items_with_cf": int(has.sum()), "interactions": used}
    write_cf_table(out, [i for i, h in zip(item_ids, has) if h], vectors[has], meta)
    return CFTable(vectors, has, meta)


def cf_for_embeddings(interactions_path, embeddings_path, out_dir, cfg: CFConfig | None = None) -> CFTable:
    """CF embeddings for the items of an embeddings.parquet, cached as out_dir/cf_embeddings.parquet."""
    from ..core.embedding_table import read_embeddings

    item_ids = read_embeddings(embeddings_path).item_ids
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return build_cf_table(interactions_path, item_ids, Path(out_dir) / CF_FILE, cfg)
