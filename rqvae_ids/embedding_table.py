"""The embeddings table: schema declared once, read and written here.

`embeddings.parquet` columns: item_id (string), text_sha256 (string), embedding
(fixed_size_binary[4*d]: the item's d float32 values, little-endian, in order; the
field's metadata says so); schema metadata `rqvae_ids.model` (embedding model
identity), `rqvae_ids.dim` and `rqvae_ids.embedding_layout` ("float32le"). Rows are in
catalog order. Outside Python-with-numpy a row is `struct.unpack(f"<{d}f", value)`;
with numpy the whole column is `np.frombuffer(b"".join(values), "<f4").reshape(-1, d)`.

Why bytes and not a list of floats: Parquet has no flat fixed-size list, so Arrow
stores `fixed_size_list<float32>[d]` as a LIST with a repetition and a definition level
per value, and decoding them made reading the file cost more than the encoder pass
of `assign` (bench/RESULTS.md, issue 15). The binary column reads as one buffer that
numpy views without a copy. Files written before (`embedding` as
`fixed_size_list<float32>[d]`) are still read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import UserError
from .io import decode_metadata, object_strings, read_parquet_table, write_parquet_atomic


LAYOUT = "float32le"  # schema metadata `rqvae_ids.embedding_layout` of the files written here


def embeddings_schema(dim: int) -> pa.Schema:
    described = {"encoding": f"{dim} x float32, little-endian"}
    return pa.schema(
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("text_sha256", pa.string(), nullable=False),
            pa.field("embedding", pa.binary(4 * dim), nullable=False, metadata=described),
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
    """Write the table atomically. vectors: (N, d) float32 (any other float dtype is cast)."""
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    n, dim = vectors.shape
    # the (N, d) array's own bytes become the column's data buffer: no copy, no per-row work
    column = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * dim), n, [None, pa.py_buffer(vectors)])
    table = pa.Table.from_arrays(
        [
            pa.array(np.asarray(item_ids, dtype=object), type=pa.string()),
            pa.array(np.asarray(text_sha256, dtype=object), type=pa.string()),
            column,
        ],
        schema=embeddings_schema(dim),
    )
    meta = {"model": model, "dim": dim, "items": n, "embedding_layout": LAYOUT, **(extra_metadata or {})}
    # float bits barely compress (snappy saved 0.3 % on MiniLM vectors) nor repeat, and min/max
    # of raw bytes mean nothing: plain, uncompressed pages without statistics
    strings = ["item_id", "text_sha256"]
    write_parquet_atomic(table, path, meta, use_dictionary=strings, write_statistics=strings,
                         compression={"item_id": "snappy", "text_sha256": "snappy", "embedding": "none"})


def read_embeddings(path: str | os.PathLike) -> EmbeddingTable:
    """Read an embeddings.parquet written by `rqvae-ids embed`; clear errors on bad files."""
    p, table = read_parquet_table(path, "embeddings file")
    names = set(table.column_names)
    missing = {"item_id", "text_sha256", "embedding"} - names
    if missing:
        raise UserError(f"{p} is not an embeddings file: missing column(s) {sorted(missing)}")
    vectors = _vectors(table.column("embedding"), p)
    meta = decode_metadata(table.schema)
    return EmbeddingTable(
        item_ids=object_strings(table.column("item_id")),
        text_sha256=object_strings(table.column("text_sha256")),
        vectors=vectors,
        model=str(meta.get("model", "unknown")),
        metadata=meta,
    )


def _vectors(column: pa.ChunkedArray, path) -> np.ndarray:
    """(N, d) float32 of the `embedding` column, either layout; a view of Arrow's buffer
    (read-only) when the file holds one row group, one copy otherwise."""
    kind = column.type
    if column.null_count:
        raise UserError(f"{path}: column 'embedding' has {column.null_count} null row(s)")
    if pa.types.is_fixed_size_binary(kind) and kind.byte_width % 4 == 0 and kind.byte_width:
        dim = kind.byte_width // 4
        parts = [_binary_floats(chunk, dim) for chunk in column.chunks if len(chunk)]
    elif pa.types.is_fixed_size_list(kind) and pa.types.is_floating(kind.value_type):
        dim = kind.list_size  # the layout before issue 15
        parts = [chunk.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
                 for chunk in column.chunks if len(chunk)]
    else:
        raise UserError(f"{path}: column 'embedding' must be fixed_size_binary[4*d] (float32le) or "
                        f"fixed_size_list<float>, got {kind}")
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float32)


def _binary_floats(chunk: pa.FixedSizeBinaryArray, dim: int) -> np.ndarray:
    """(len(chunk), dim) float32 view of a fixed_size_binary chunk's data buffer."""
    width = 4 * dim
    data = chunk.buffers()[1]
    floats = np.frombuffer(data, dtype="<f4", count=len(chunk) * dim, offset=chunk.offset * width)
    return floats.astype(np.float32, copy=False).reshape(len(chunk), dim)


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
