"""Stable IDs across runs: carry previous IDs over, and map IDs after a retrain.

- Same frozen model (`assign --previous`): an item whose item_id and text_sha256 are
  unchanged holds its previous ID exactly; new and edited items are assigned fresh
  IDs around the held ones (resolve.py never gives them a held ID).
- New model: IDs are not comparable, so `write_id_mapping` records old -> new SID per
  item and the share that changed, for downstream systems to migrate.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ..core.errors import UserError
from ..core.io import write_parquet_atomic
from .table import SemanticIds, read_semantic_ids

REMOVED_SAMPLE = 20  # removed item_ids quoted in the report (the count is always exact)


@dataclass
class Carried:
    """Previous IDs matched onto the current catalog (N items, catalog order).

    held: (N,) bool; codes: (N, L) int64 and suffix: (N,) int64, valid where held.
    """

    held: np.ndarray
    codes: np.ndarray
    suffix: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


def check_previous(prev: SemanticIds, *, checkpoint_sha256: str, levels: int, codebook_size: int, resolve: str) -> None:
    """UserError unless `prev` was made by the same checkpoint, shape and resolution."""
    meta = prev.metadata
    if meta.get("checkpoint_sha256") != checkpoint_sha256:
        raise UserError(
            "previous IDs were assigned with another model checkpoint "
            f"({str(meta.get('checkpoint_sha256'))[:12]}, this one is {checkpoint_sha256[:12]}): "
            "IDs can only be carried over under the same frozen model; after retraining, assign "
            "without --previous and migrate with an old -> new mapping (the retrain flow writes "
            "id_mapping.parquet; in Python: rqvae_ids.ids.write_id_mapping(old, new, out))"
        )
    if prev.levels != levels or int(meta.get("codebook_size", -1)) != codebook_size:
        raise UserError(
            f"previous IDs have L={prev.levels}, K={meta.get('codebook_size')}; this model has "
            f"L={levels}, K={codebook_size}"
        )
    if meta.get("resolve") != resolve:
        raise UserError(
            f"previous IDs were resolved with {meta.get('resolve')!r}, this run asks for {resolve!r}: "
            "use the same --resolve to keep IDs stable"
        )


def carry_over(prev: SemanticIds, item_ids: np.ndarray, text_sha256: np.ndarray) -> Carried:
    """Match previous IDs onto the current items (item_ids, text_sha256: (N,) str)."""
    import pandas as pd  # here, not at the top: importing rqvae_ids.ids stays light (the CLI's --help)

    n = len(item_ids)
    index = pd.Index(prev.item_ids)
    if not index.is_unique:
        raise UserError("previous semantic IDs file has duplicate item_id values")
    pos = index.get_indexer(pd.Index(item_ids))
    present = pos >= 0
    same_text = np.zeros(n, dtype=bool)
    same_text[present] = prev.text_sha256[pos[present]] == np.asarray(text_sha256, dtype=object)[present]
    held = present & same_text
    codes = np.zeros((n, prev.levels), dtype=np.int64)
    suffix = np.zeros(n, dtype=np.int64)
    codes[held] = prev.codes[pos[held]]
    suffix[held] = prev.suffix[pos[held]]
    current = pd.Index(item_ids)
    removed = prev.item_ids[current.get_indexer(pd.Index(prev.item_ids)) < 0]
    return Carried(held, codes, suffix, {
        "previous_items": int(len(prev)),
        "kept": int(held.sum()),
        "edited": int((present & ~same_text).sum()),
        "new": int((~present).sum()),
        "removed": int(removed.size),
        "removed_sample": [str(x) for x in removed[:REMOVED_SAMPLE]],
    })


def id_mapping_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("old_sid", pa.string(), nullable=True),  # null: item added since
            pa.field("new_sid", pa.string(), nullable=True),  # null: item removed since
            pa.field("changed", pa.bool_(), nullable=False),
        ]
    )


def write_id_mapping(old_ids_path: str | os.PathLike, new_ids_path: str | os.PathLike, out_path: str | os.PathLike) -> dict[str, Any]:
    """Write id_mapping.parquet (item_id, old_sid, new_sid, changed) and return the summary.

    Rows: every item of the new table in its order, then items only in the old one.
    changed is True when old_sid != new_sid (added and removed items count as changed);
    changed_share is over items present in both tables.
    """
    import pandas as pd

    old, new = read_semantic_ids(old_ids_path), read_semantic_ids(new_ids_path)
    old_idx = pd.Index(old.item_ids)
    pos = old_idx.get_indexer(pd.Index(new.item_ids))
    in_old = pos >= 0
    old_sid = np.full(len(new), None, dtype=object)
    old_sid[in_old] = old.sids[pos[in_old]]
    removed_mask = pd.Index(new.item_ids).get_indexer(old_idx) < 0
    item_id = np.concatenate([new.item_ids, old.item_ids[removed_mask]])
    old_col = np.concatenate([old_sid, old.sids[removed_mask]])
    new_col = np.concatenate([new.sids, np.full(int(removed_mask.sum()), None, dtype=object)])
    changed = np.array([a is None or b is None or a != b for a, b in zip(old_col, new_col)], dtype=bool)
    common = int(in_old.sum())
    changed_common = int(changed[: len(new)][in_old].sum())
    summary = {
        "items_old": int(len(old)),
        "items_new": int(len(new)),
        "items_common": common,
        "changed": changed_common,
        "changed_share": float(changed_common / common) if common else 0.0,
        "added": int((~in_old).sum()),
        "removed": int(removed_mask.sum()),
        "old_checkpoint_sha256": old.metadata.get("checkpoint_sha256"),
        "new_checkpoint_sha256": new.metadata.get("checkpoint_sha256"),
    }
    table = pa.Table.from_arrays(
        [pa.array(item_id, type=pa.string()), pa.array(old_col, type=pa.string()),
         pa.array(new_col, type=pa.string()), pa.array(changed)],
        schema=id_mapping_schema(),
    )
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_parquet_atomic(table, out_path, {**summary, "created_at": created,
                                           "old_ids": os.fspath(old_ids_path), "new_ids": os.fspath(new_ids_path)})
    return summary
