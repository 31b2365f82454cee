"""Cold items (`compare --cold-items FRAC`): a seeded share of the catalog that no retriever
sees while learning, and the metrics over the test users whose target is one of them.

The split removes every occurrence of a cold item from the training sequences and the
validation histories, and leaves out the validation users whose validation target is cold
(that occurrence is dropped too, so nothing is tuned on a cold item); nothing else changes.
The test histories and targets stay as they are: the cold metrics are measured on the test
users whose target is cold, beside the usual metrics over all test users.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core.errors import UserError
from .ranking import next_item_metrics
from .sequences import Split

COLD_KS = (10,)


def check_cold_fraction(frac: float | None) -> None:
    """--cold-items must lie strictly between 0 and 0.5 (a majority of cold items leaves little to learn)."""
    if frac is not None and not (0.0 < float(frac) < 0.5):
        raise UserError(f"--cold-items must be in (0, 0.5), got {frac}")


def choose_cold_items(n_items: int, frac: float, seed: int) -> np.ndarray:
    """Sorted int64 catalog indices of round(frac * n_items) items (at least one), seeded."""
    check_cold_fraction(frac)
    n = max(1, int(round(frac * n_items)))
    return np.sort(np.random.default_rng([seed, 13]).choice(n_items, n, replace=False)).astype(np.int64)


def cold_split(split: Split, cold: np.ndarray, n_items: int) -> Split:
    """The split with the cold items removed from training and validation (see the module doc)."""
    is_cold = np.zeros(n_items, bool)
    is_cold[cold] = True
    train = [s[~is_cold[s]] for s in split.train]
    histories = [h[~is_cold[h]] for h in split.valid_histories]
    keep = [i for i, t in enumerate(split.valid_targets) if not is_cold[t] and len(histories[i])]
    return replace(split, train=train, valid_histories=[histories[i] for i in keep],
                   valid_targets=split.valid_targets[keep].astype(np.int64))


def cold_users(split: Split, cold: np.ndarray) -> np.ndarray:
    """Indices of the test users whose target is a cold item."""
    return np.flatnonzero(np.isin(split.test_targets, cold))


def cold_metrics(recommended: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """cold_recall@10 / cold_ndcg@10 of history-filtered recommendations of the cold test users
    (NaN when there is none: no measurement, not a zero)."""
    if len(targets) == 0:
        return {f"cold_{m}@{k}": float("nan") for k in COLD_KS for m in ("recall", "ndcg")}
    m = next_item_metrics(recommended, targets, COLD_KS)
    return {f"cold_{name.removeprefix('next_')}": v for name, v in m.items()}


def not_applicable() -> dict[str, float]:
    """The cold metrics of a retriever that cannot score a cold item (SASRec): NaN."""
    return cold_metrics(np.zeros((0, 10), np.int64), np.zeros(0, np.int64))
