"""ID quality: code usage, collisions, reconstruction error, agreement with categories.

All functions take plain arrays so they work for every tokenizer (and for random
IDs, which have no decoder). Metric names returned here are the fixed names of
`comparison.parquet`: `utilisation_l{i}`, `perplexity_l{i}`, `duplicate_rate_raw`,
`duplicate_rate_resolved`, `colliding_share_raw`, `recon_mse`, `recon_cosine`, `nmi_l0`,
`purity_l0`, `nmi_l01`, `purity_l01` (rqvae_ids.core.metrics.duplicate_and_colliding defines
duplicate_rate and colliding_share). Comparison files written before issue 26 also carry
`collision_rate_raw` / `collision_rate_resolved`, the same values as the duplicate_rate ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.metrics import colliding_share, duplicate_rate, perplexity, utilisation

CATEGORY_SEP = " > "


def code_usage_metrics(codes: np.ndarray, codebook_size: int, suffix: np.ndarray | None = None) -> dict[str, float]:
    """Per-level utilisation/perplexity, raw/resolved duplicate_rate and raw colliding_share.

    codes: (N, L) int raw code tuples; suffix: (N,) int collision suffix or None
    (then the resolved rate is the raw rate of codes that are already unique, e.g. random IDs).
    """
    codes = np.asarray(codes, dtype=np.int64)
    out: dict[str, float] = {}
    for i, (u, p) in enumerate(zip(utilisation(codes, codebook_size), perplexity(codes, codebook_size))):
        out[f"utilisation_l{i}"] = u
        out[f"perplexity_l{i}"] = p
    out["duplicate_rate_raw"] = duplicate_rate(codes)
    out["colliding_share_raw"] = colliding_share(codes)
    full = codes if suffix is None else np.concatenate([codes, np.asarray(suffix, np.int64)[:, None]], axis=1)
    out["duplicate_rate_resolved"] = duplicate_rate(full)
    return out


def reconstruction_metrics(x: np.ndarray, x_hat: np.ndarray, chunk: int = 65_536) -> dict[str, float]:
    """recon_mse: mean squared error per element (as torch's mse_loss); recon_cosine: mean cosine.

    x, x_hat: (N, d) float arrays in the same item order. Summed in float64 a block of rows at a
    time (float64 copies of both inputs would be 6 GB at 1M items).
    """
    if np.shape(x) != np.shape(x_hat):
        raise ValueError(f"reconstruction shape {np.shape(x_hat)} != embeddings shape {np.shape(x)}")
    n, squared, cosine = len(x), 0.0, 0.0
    for s in range(0, n, chunk):
        a = np.asarray(x[s:s + chunk], dtype=np.float64)
        b = np.asarray(x_hat[s:s + chunk], dtype=np.float64)
        squared += float(((a - b) ** 2).sum())
        den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        cosine += float(((a * b).sum(axis=1) / den).sum())
    size = n * (np.shape(x)[1] if np.ndim(x) > 1 else 1)
    return {"recon_mse": squared / size if size else float("nan"), "recon_cosine": cosine / n if n else float("nan")}


def _labels(values: Sequence) -> np.ndarray:
    """Map any hashable labels (N,) to dense int64 ids."""
    _, inv = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(a: Sequence, b: Sequence) -> float:
    """Normalised mutual information I(a;b) / mean(H(a), H(b)) (sklearn's 'arithmetic' default).

    a, b: (N,) labels of any hashable type. Two single-cluster labelings give 1.0;
    one single-cluster labeling against a split one gives 0.0.
    """
    la, lb = _labels(a), _labels(b)
    n = la.size
    if n == 0:
        return float("nan")
    na, nb = la.max() + 1, lb.max() + 1
    joint = np.bincount(la * nb + lb, minlength=na * nb).reshape(na, nb).astype(np.float64)
    ha, hb = _entropy(joint.sum(axis=1)), _entropy(joint.sum(axis=0))
    if ha == 0.0 and hb == 0.0:
        return 1.0
    if ha == 0.0 or hb == 0.0:
        return 0.0
    pij = joint / n
    pi = pij.sum(axis=1, keepdims=True)
    pj = pij.sum(axis=0, keepdims=True)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / (pi @ pj)[nz])).sum())
    return max(0.0, mi / ((ha + hb) / 2.0))


def purity(clusters: Sequence, labels: Sequence) -> float:
    """Share of items whose label is the majority label of their cluster."""
    lc, ll = _labels(clusters), _labels(labels)
    if lc.size == 0:
        return float("nan")
    nl = ll.max() + 1
    joint = np.bincount(lc * nl + ll, minlength=(lc.max() + 1) * nl).reshape(-1, nl)
    return float(joint.max(axis=1).sum() / lc.size)


@dataclass
class CategoryLevels:
    """Category labels per item at the two levels NMI/purity use (None = unknown).

    top: (N,) level compared with level-0 codes; second: (N,) "top > second" compared
    with (l0, l1) prefixes; dropped_root: the uninformative root removed, if any.
    """

    top: list[str | None]
    second: list[str | None]
    dropped_root: str | None


def category_levels(categories: Sequence[str | None] | None, root_share: float = 0.95) -> CategoryLevels | None:
    """Split "A > B > C" paths into the top and second levels used by NMI/purity.

    A leading level shared by >= `root_share` of the categorised items (Amazon's
    "Toys & Games" root) says nothing about the items, so it is dropped once and
    the next level becomes the top. Returns None when no item has a category.
    """
    if categories is None:
        return None
    paths = [None if not c else [p.strip() for p in str(c).split(CATEGORY_SEP) if p.strip()] for c in categories]
    known = [p for p in paths if p]
    if not known:
        return None
    roots, counts = np.unique([p[0] for p in known], return_counts=True)
    dropped = None
    if counts.max() >= root_share * len(known) and any(len(p) > 1 for p in known):
        dropped = str(roots[counts.argmax()])
        paths = [p[1:] if p and p[0] == dropped else p for p in paths]
    top = [p[0] if p else None for p in paths]
    second = [CATEGORY_SEP.join(p[:2]) if p and len(p) > 1 else None for p in paths]
    return CategoryLevels(top=top, second=second, dropped_root=dropped)


def category_metrics(codes: np.ndarray, levels: CategoryLevels) -> dict[str, float]:
    """nmi_l0 / purity_l0 (level-0 code vs top category, items with a top category) and
    nmi_l01 / purity_l01 ((l0, l1) prefix vs second level, items with one); codes: (N, L)."""
    codes = np.asarray(codes, dtype=np.int64)
    out: dict[str, float] = {}
    has_top = np.array([t is not None for t in levels.top])
    if has_top.any():
        cats = [t for t in levels.top if t is not None]
        out["nmi_l0"] = nmi(codes[has_top, 0], cats)
        out["purity_l0"] = purity(codes[has_top, 0], cats)
    has_second = np.array([s is not None for s in levels.second])
    if has_second.any() and codes.shape[1] >= 2:
        prefix = codes[has_second, 0] * (codes[:, 1].max() + 1) + codes[has_second, 1]
        cats = [s for s in levels.second if s is not None]
        out["nmi_l01"] = nmi(prefix, cats)
        out["purity_l01"] = purity(prefix, cats)
    return out
