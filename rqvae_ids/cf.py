"""Collaborative item embeddings from the TRAINING part of the interactions (item2vec-style).

The collaborative signal the tokenizers learn from (rqvae's InfoNCE term, rqkmeans-cf):
a PPMI matrix of item co-occurrences within a window of each user's training sequence
(the harness's leave-one-out split: every sequence without its validation and test target,
so no validation or test target is ever seen), factorised by a seeded randomized SVD
(Levy & Goldberg: SVD of shifted PPMI ~ word2vec's SGNS). Items that never co-occur with
another in the training part get no CF embedding; the tokenizers fall back to text for them.

`cf_embeddings.parquet`: item_id (string), embedding (fixed_size_list<float32>[c]) for the
items that have one, in catalog order; metadata `interactions_sha256`, `catalog_sha256`
(sha256 of the catalog's item ids, in order), the CFConfig and counts. `build_cf_table`
reuses a file whose key (interactions hash, catalog, config) matches: the cache.

It reads interactions with evaluate/sequences.py (documented as shared foundation in
docs/ARCHITECTURE.md: it only needs errors/io).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .config import check, to_dict
from .errors import UserError
from .io import decode_metadata, read_parquet_table, require_file, sha256_file, sha256_text, write_parquet_atomic

CF_FILE = "cf_embeddings.parquet"


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


@dataclass
class CFTable:
    """CF embeddings aligned with a catalog: vectors (N, c) float32 (zero rows where missing),
    has (N,) bool, plus the file's metadata."""

    vectors: np.ndarray
    has: np.ndarray
    metadata: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def catalog_sha256(item_ids) -> str:
    return sha256_text("\n".join(map(str, item_ids)))


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
        raise UserError("interactions: no two items co-occur in the training part of any sequence: "
                        "no collaborative signal to learn from")
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


def train_part(interactions_path, item_ids, cfg: CFConfig, log=None):
    """The harness's leave-one-out training sequences (catalog indices) of the interactions file."""
    from .evaluate.sequences import leave_one_out, load_interactions

    kw = {"log": log} if log is not None else {}
    users, seqs, order = load_interactions(interactions_path, item_ids, **kw)
    return leave_one_out(users, seqs, cfg.max_history, order).train


def build_cf_table(interactions_path, item_ids, out_path, cfg: CFConfig | None = None, log=None) -> CFTable:
    """CF embeddings of the catalog `item_ids` from the interactions' training part, written to
    out_path atomically; an existing file with the same key is read back instead (the cache)."""
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
    vectors, has = cf_vectors(train_part(interactions_path, item_ids, cfg, log), len(item_ids), cfg)
    write_cf_table(out, [i for i, h in zip(item_ids, has) if h], vectors[has],
                   {**key, "items_total": len(item_ids), "items_with_cf": int(has.sum())})
    return CFTable(vectors, has, {**key, "items_total": len(item_ids), "items_with_cf": int(has.sum())})


def write_cf_table(path: str | os.PathLike, item_ids, vectors: np.ndarray, meta: dict[str, Any]) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    schema = pa.schema([pa.field("item_id", pa.string(), nullable=False),
                        pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False)])
    table = pa.Table.from_arrays(
        [pa.array(list(item_ids), pa.string()),
         pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)], schema=schema)
    write_parquet_atomic(table, path, {**meta, "dim": dim})


def read_cf_table(path: str | os.PathLike, item_ids) -> CFTable:
    """cf_embeddings.parquet aligned with the catalog `item_ids`; a file built for another
    catalog (recorded catalog hash differs, or ids outside the catalog) is a UserError."""
    p, table = read_parquet_table(path, "CF embeddings file")
    meta = decode_metadata(table.schema)
    if not {"item_id", "embedding"} <= set(table.column_names):
        raise UserError(f"{p}: not a CF embeddings file (needs columns item_id, embedding)")
    item_ids = [str(i) for i in item_ids]
    if meta.get("catalog_sha256") not in (None, catalog_sha256(item_ids)):
        raise UserError(f"{p}: CF embeddings of another catalog (catalog hash differs); rebuild them")
    ids = table.column("item_id").to_pylist()
    index = {i: n for n, i in enumerate(item_ids)}
    rows = np.array([index.get(i, -1) for i in ids], np.int64)
    if (rows < 0).any():
        raise UserError(f"{p}: CF embeddings of another catalog ({int((rows < 0).sum())} item ids not in it, "
                        f"e.g. {ids[int(np.argmax(rows < 0))]!r})")
    col = table.column("embedding").combine_chunks()
    dim = col.type.list_size
    vecs = np.asarray(col.values.to_numpy(zero_copy_only=False), np.float32).reshape(len(ids), dim)
    vectors = np.zeros((len(item_ids), dim), np.float32)
    vectors[rows] = vecs
    has = np.zeros(len(item_ids), bool)
    has[rows] = True
    return CFTable(vectors, has, meta)


def cf_for_embeddings(interactions_path, embeddings_path, out_dir, cfg: CFConfig | None = None) -> CFTable:
    """CF embeddings for the items of an embeddings.parquet, cached as out_dir/cf_embeddings.parquet."""
    from .embedding_table import read_embeddings

    item_ids = read_embeddings(embeddings_path).item_ids
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return build_cf_table(interactions_path, item_ids, Path(out_dir) / CF_FILE, cfg)
