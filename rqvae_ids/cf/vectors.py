"""CF item embeddings from training sequences: windowed co-occurrence counts -> shifted PPMI ->
seeded randomized SVD (Levy & Goldberg: SVD of shifted PPMI ~ word2vec's SGNS); `CFConfig` holds the knobs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.config import check
from ..core.errors import UserError

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

    lengths = np.array([len(s) for s in train_sequences], np.int64)
    items = np.concatenate([np.asarray(s, np.int64) for s in train_sequences]) if len(lengths) else np.zeros(0, np.int64)
    # All sequences end to end; a pair at distance d counts when both ends are in one sequence.
    sequence = np.repeat(np.arange(len(lengths)), lengths)
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        a, b = items[:-d], items[d:]
        keep = (sequence[:-d] == sequence[d:]) & (a != b)
        rows += [a[keep], b[keep]]
        cols += [b[keep], a[keep]]
        vals.append(np.full(2 * int(keep.sum()), 1.0 / d))
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
    # The sparse products in float32: they are memory-bound gathers of q's rows, and at 1M items
    # q (N x k) no longer fits in cache: half the bytes, half the time. Orthonormalisation and the
    # small eigenproblem stay in float64.
    m32, mt32 = m.astype(np.float32), m.T.astype(np.float32)

    def times(a, x):
        return (a @ x.astype(np.float32)).astype(np.float64)

    q = orthonormal(times(m32, rng.standard_normal((m.shape[1], k))))
    for _ in range(iters):
        q = orthonormal(times(mt32, q))
        q = orthonormal(times(m32, q))
    # U, S of the small (k, N) B = q^T m from the eigenpairs of B B^T (k x k): the SVD of B
    # itself also builds its (k, N) right factor, which nobody uses (6 s of 35 at 200k items).
    b = times(mt32, q).T
    eigenvalues, vectors = np.linalg.eigh(b @ b.T)
    order = np.argsort(eigenvalues)[::-1][:rank]
    return q @ vectors[:, order], np.sqrt(np.maximum(eigenvalues[order], 0.0))


def orthonormal(a: np.ndarray) -> np.ndarray:
    """An orthonormal basis of a tall (N, k) matrix's columns: Cholesky QR twice (two k x k
    Gram products; 3x faster than Householder QR at N = 200k), Householder QR where the
    columns are too close to dependent for it (Gram condition number beyond ~1e12)."""
    import scipy.linalg

    try:
        for _ in range(2):
            r = np.linalg.cholesky(a.T @ a).T  # upper triangular, a = q r
            diag = np.abs(np.diag(r))
            if diag.min() < 1e-6 * diag.max():
                raise np.linalg.LinAlgError("nearly dependent columns")
            a = a @ scipy.linalg.solve_triangular(r, np.eye(len(r)), lower=False)
        return a
    except np.linalg.LinAlgError:
        return np.linalg.qr(a)[0]


def cf_vectors(train_sequences, n_items: int, cfg: CFConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, c) float32 L2-normalised CF embeddings (zero rows where missing), (N,) bool has."""
    counts = cooccurrence(train_sequences, n_items, cfg.window)
    if counts.nnz == 0:
        raise UserError(NO_SIGNAL)
    m = ppmi(counts, cfg.smoothing, cfg.shift)
    has = np.asarray((m != 0).sum(axis=1)).ravel() > 0
    rank = min(cfg.dim, int(has.sum()) - 1) if has.sum() > 1 else 1
    u, s = randomized_svd(m, rank, cfg.seed)
    v = u * np.sqrt(s)[None, :]
    v = np.where(has[:, None], v, 0.0)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    has &= norms[:, 0] > 1e-12
    v = np.where(has[:, None], v / np.maximum(norms, 1e-12), 0.0)
    out = np.zeros((n_items, cfg.dim), np.float32)
    out[:, : v.shape[1]] = v
    return out, has
