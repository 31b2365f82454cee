"""User interaction sequences and the leave-one-out split of the generative-retrieval papers.

Items are referred to by their index in the catalog order (the row order of
embeddings.parquet). Protocol (TIGER, P5): each user's sequence sorted by its
order column; the last item is the test target, the second last the validation
target; histories are truncated to the last `max_history` items; training uses
each sequence without its last two items.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..io import require_file


@dataclass
class Split:
    """Leave-one-out split. Every array holds int64 catalog indices.

    train: per user, the sequence without its last two items (may be short).
    valid_histories / valid_targets: history = seq[:-2] (last max_history), target = seq[-2].
    test_histories / test_targets: history = seq[:-1] (last max_history), target = seq[-1].
    users: user ids, aligned with the per-user lists.
    """

    users: list[str]
    train: list[np.ndarray]
    valid_histories: list[np.ndarray]
    valid_targets: np.ndarray
    test_histories: list[np.ndarray]
    test_targets: np.ndarray
    order_column: str
    max_history: int


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def load_interactions(path: str | os.PathLike, item_ids, log=_note) -> tuple[list[str], list[np.ndarray], str]:
    """Read interactions (CSV/TSV/Parquet, optionally .gz) into per-user index sequences.

    Needs columns `user_id`, `item_id`; orders by `timestamp` when it has values,
    else by `position`, else by file order. Interactions with items missing from
    the catalog are dropped, not an error (catalogs get filtered), but said through
    `log` (default: a line on stderr) with their count and an example.
    Returns (users, sequences, order column used).
    """
    p = require_file(path, "interactions file")
    frame = _read_table(p)
    missing = {"user_id", "item_id"} - set(frame.columns)
    if missing:
        raise UserError(
            f"{p}: missing column(s) {sorted(missing)}; found {list(frame.columns)}"
        )
    if frame.empty:
        raise UserError(f"{p}: the interactions file has no rows")
    frame = frame.copy()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    frame["_file_order"] = np.arange(len(frame))
    if "timestamp" in frame.columns and frame["timestamp"].notna().any():
        order = "timestamp"
    elif "position" in frame.columns and frame["position"].notna().any():
        order = "position"
    else:
        order = "file order"
    index = pd.Index(list(item_ids))
    frame["_item"] = index.get_indexer(frame["item_id"])
    unknown = frame["_item"] < 0
    if unknown.all():
        raise UserError(f"{p}: no interaction refers to an item of the catalog "
                        f"(e.g. item_id {frame['item_id'].iloc[0]!r})")
    if unknown.any():
        log(f"interactions: dropped {int(unknown.sum()):,} of {len(frame):,} rows whose item_id is not in the "
            f"catalog (e.g. {frame.loc[unknown, 'item_id'].iloc[0]!r})")
        frame = frame[~unknown]
    sort_cols = ["user_id", "_file_order"] if order == "file order" else ["user_id", order, "_file_order"]
    frame = frame.sort_values(sort_cols, kind="stable")
    users, sequences = [], []
    for user, group in frame.groupby("user_id", sort=True):
        users.append(str(user))
        sequences.append(group["_item"].to_numpy(dtype=np.int64))
    return users, sequences, order


def _read_table(p: Path) -> pd.DataFrame:
    name = p.name.lower().removesuffix(".gz")
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(p)
        sep = "\t" if name.endswith(".tsv") else ","
        return pd.read_csv(p, sep=sep, dtype={"user_id": str, "item_id": str})
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise UserError(f"cannot read interactions {p}: {e}") from None


def leave_one_out(
    users: list[str], sequences: list[np.ndarray], max_history: int = 20, order_column: str = ""
) -> Split:
    """Split sequences; users with fewer than 3 interactions are left out (no train item)."""
    keep = [i for i, s in enumerate(sequences) if len(s) >= 3]
    if not keep:
        raise UserError("no user has 3 or more interactions: cannot build a leave-one-out split")
    seqs = [np.asarray(sequences[i], dtype=np.int64) for i in keep]
    return Split(
        users=[users[i] for i in keep],
        train=[s[:-2] for s in seqs],
        valid_histories=[s[:-2][-max_history:] for s in seqs],
        valid_targets=np.array([s[-2] for s in seqs], dtype=np.int64),
        test_histories=[s[:-1][-max_history:] for s in seqs],
        test_targets=np.array([s[-1] for s in seqs], dtype=np.int64),
        order_column=order_column,
        max_history=max_history,
    )
