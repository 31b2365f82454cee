"""The embeddings table: schema declared once, read and written here.

`embeddings.parquet` columns: item_id (string), text_sha256 (string),
embedding (fixed_size_list<float32>[d]); schema metadata `rqvae_ids.model`
(embedding model identity) and `rqvae_ids.dim`. Rows are in catalog order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import UserError
from .io import decode_metadata, read_parquet_table, write_parquet_atomic


def embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("text_sha256", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


@dataclass
class EmbeddingTable:
    """Item embeddings in catalog order.

    item_ids: (N,) object array of str; text_sha256: (N,) object array of str;
    vectors: (N, d) float32, L2-normalised; model: embedding model identity.
    """

    item_ids: np.ndarray
    text_sha256: np.ndarray
    vectors: np.ndarray
    model: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def write_embeddings(
    path: str | os.PathLike,
    item_ids,
    text_sha256,
    vectors: np.ndarray,
    model: str,
    extra_metadata: dict[str, Any] | None = None,
) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.Table.from_arrays(
        [
            pa.array(list(item_ids), type=pa.string()),
            pa.array(list(text_sha256), type=pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
        ],
        schema=embeddings_schema(dim),
    )
    meta = {"model": model, "dim": dim, "items": n, **(extra_metadata or {})}
    write_parquet_atomic(table, path, meta)


def read_embeddings(path: str | os.PathLike) -> EmbeddingTable:
    """Read an embeddings.parquet written by `rqvae-ids embed`; clear errors on bad files."""
    p, table = read_parquet_table(path, "embeddings file")
    names = set(table.column_names)
    missing = {"item_id", "text_sha256", "embedding"} - names
    if missing:
        raise UserError(f"{p} is not an embeddings file: missing column(s) {sorted(missing)}")
    col = table.column("embedding").combine_chunks()
    if not pa.types.is_fixed_size_list(col.type):
        raise UserError(f"{p}: column 'embedding' must be fixed_size_list<float32>, got {col.type}")
    dim = col.type.list_size
    vectors = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    vectors = vectors.reshape(len(table), dim)
    meta = decode_metadata(table.schema)
    return EmbeddingTable(
        item_ids=_strings(table.column("item_id")),
        text_sha256=_strings(table.column("text_sha256")),
        vectors=vectors,
        model=str(meta.get("model", "unknown")),
        metadata=meta,
    )


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """(N,) object array of str, built in Arrow's C loop (no Python list in between)."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def check_finite(vectors: np.ndarray, what: str = "embeddings") -> None:
    """Raise UserError if any vector holds NaN or inf (naming the first bad row)."""
    # Fast path: a float64 row sum of float32 values cannot overflow, and is finite
    # exactly when every value is; no (N, d) boolean temporary.
    if np.isfinite(vectors.sum(axis=1, dtype=np.float64)).all():
        return
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise UserError(f"{what}: {rows.size} row(s) contain NaN/inf (first at row {int(rows[0])})")
