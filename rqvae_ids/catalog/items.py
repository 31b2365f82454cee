"""The catalog as the pipeline stores it: items.parquet (item_id, text, category), in catalog order.

Read here, below every user of it (pipeline stages, sharded embedding, the comparison's flow steps).
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq

from ..core.io import require_file


def read_items(items_path: str | os.PathLike) -> tuple[list[str], list[str], list[str | None]]:
    """(item_ids, texts, categories) of an items.parquet, in catalog order."""
    table = pq.read_table(require_file(items_path, "items file"))
    return (
        table.column("item_id").to_pylist(),
        table.column("text").to_pylist(),
        table.column("category").to_pylist(),
    )
