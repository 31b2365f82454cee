"""The embeddings table: schema declared once, read and written here.

`embeddings.parquet` columns: item_id (string), text_sha256 (string),
embedding (fixed_size_list<float32>[d]); schema metadata `rqvae_ids.model`
(embedding model identity) and `rqvae_ids.dim`. Rows are in catalog order, in row
groups of ROW_GROUP_ROWS rows (not part of the contract: it lets a reader stream the
file, see `iter_vectors`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UserError
from .io import decode_metadata, object_strings, read_parquet_table, write_parquet_atomic

ROW_GROUP_ROWS = 65536  # 8 x assign's default chunk: a streamed read hands the encoder whole chunks
# How the columns are encoded (not part of the contract either): float vectors neither compress
# (snappy: 314 vs 312 MB for 200k x 384) nor repeat, and without a dictionary attempt and without
# snappy, reading the column took 0.40-0.48 s instead of 0.78-0.95 s (200k x 384, one thread).
VECTOR_ENCODING = {
    "use_dictionary": ["item_id", "text_sha256"],
    # pyarrow names a nested column by its leaf path
    "compression": {"item_id": "snappy", "text_sha256": "snappy", "embedding.list.element": "none"},
}
KEY_COLUMNS = ["item_id", "text_sha256"]


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
    vectors: (N, d) float32, L2-normalised (None once a streamed read dropped them, see
    `ids.assign`); model: embedding model identity.
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
        return len(self.item_ids)


def write_embeddings(
    path: str | os.PathLike,
    item_ids,
    text_sha256,
    vectors: np.ndarray,
    model: str,
    extra_metadata: dict[str, Any] | None = None,
) -> None:
    """Write the table atomically. vectors: (N, d) float32 (any other float dtype is cast)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.Table.from_arrays(
        [
            pa.array(np.asarray(item_ids, dtype=object), type=pa.string()),
            pa.array(np.asarray(text_sha256, dtype=object), type=pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
        ],
        schema=embeddings_schema(dim),
    )
    meta = {"model": model, "dim": dim, "items": n, **(extra_metadata or {})}
    write_parquet_atomic(table, path, meta, row_group_size=ROW_GROUP_ROWS, **VECTOR_ENCODING)


def read_embeddings(path: str | os.PathLike, *, with_vectors: bool = True) -> EmbeddingTable:
    """Read an embeddings.parquet written by `rqvae-ids embed`; clear errors on bad files.

    with_vectors=False: the `embedding` column is left unread and `vectors` is an
    uninitialised (N, d) float32 array for `fill_vectors` to fill (assign reads the
    column while it encodes)."""
    p, table = read_parquet_table(path, "embeddings file", None if with_vectors else KEY_COLUMNS)
    schema = table.schema if with_vectors else pq.read_schema(p)
    missing = {"item_id", "text_sha256", "embedding"} - set(schema.names)
    if missing:
        raise UserError(f"{p} is not an embeddings file: missing column(s) {sorted(missing)}")
    dim = _dim(schema.field("embedding").type, p)
    if with_vectors:
        vectors = _vectors(table.column("embedding"), dim, p)
    else:
        vectors = np.empty((table.num_rows, dim), dtype=np.float32)
    meta = decode_metadata(table.schema)
    return EmbeddingTable(
        item_ids=object_strings(table.column("item_id")),
        text_sha256=object_strings(table.column("text_sha256")),
        vectors=vectors,
        model=str(meta.get("model", "unknown")),
        metadata=meta,
    )


def iter_vectors(path: str | os.PathLike, batch_rows: int, what: str = "embeddings") -> Iterator[np.ndarray]:
    """The `embedding` column of `path` in file order, as (b, d) float32 blocks of about
    `batch_rows` rows (read-only views of Arrow's buffers; b may be smaller at row-group ends).

    A block holding NaN/inf is never yielded: the rest is read to count the bad rows, then a
    UserError like `check_finite`'s is raised. Runs fine in a background thread (io.prefetched):
    Arrow's Parquet decoding releases the GIL."""
    rows, bad, first_bad = 0, 0, -1
    try:
        with pq.ParquetFile(path, memory_map=True) as f:
            dim = _dim(f.schema_arrow.field("embedding").type, path)
            for batch in f.iter_batches(batch_size=batch_rows, columns=["embedding"]):
                block = _vectors(batch.column(0), dim, path)
                if not _all_finite(block):
                    bad_rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
                    first_bad = rows + int(bad_rows[0]) if not bad else first_bad
                    bad += bad_rows.size
                elif not bad:
                    yield block
                rows += len(block)
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"cannot read embeddings file {path}: {e}") from None
    if bad:
        raise UserError(_not_finite_message(what, bad, first_bad))


def fill_vectors(path: str | os.PathLike, out: np.ndarray, batch_rows: int, what: str = "embeddings") -> Iterator[int]:
    """Read the `embedding` column of `path` into `out` (N, d) float32, `batch_rows` rows at a
    time in file order, yielding after each batch how many leading rows of `out` are filled
    (NaN/inf: `iter_vectors`' UserError; a row count other than N: UserError)."""
    filled = 0
    for block in iter_vectors(path, batch_rows, what):
        if filled + len(block) > len(out):
            raise UserError(f"{path}: more than {len(out)} embeddings (file changed while read?)")
        out[filled:filled + len(block)] = block
        filled += len(block)
        yield filled
    if filled != len(out):
        raise UserError(f"{path}: {filled} embeddings read, {len(out)} expected (file changed while read?)")


def _dim(kind: pa.DataType, path) -> int:
    if not (pa.types.is_fixed_size_list(kind) and pa.types.is_floating(kind.value_type)):
        raise UserError(f"{path}: column 'embedding' must be fixed_size_list<float32>, got {kind}")
    return kind.list_size


def _vectors(column: pa.ChunkedArray | pa.Array, dim: int, path) -> np.ndarray:
    """(N, d) float32 of an `embedding` column (one copy when it holds several chunks)."""
    if column.null_count:
        raise UserError(f"{path}: column 'embedding' has {column.null_count} null row(s)")
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [c.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
             for c in chunks if len(c)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float32)


def _all_finite(vectors: np.ndarray, block_rows: int = 8192) -> bool:
    # np.isfinite(...).all() is the fastest test here (12 ms per 200k x 384, a float64 row sum
    # took 64 ms); row blocks keep its boolean temporary at a few MB
    return all(bool(np.isfinite(vectors[s:s + block_rows]).all()) for s in range(0, len(vectors), block_rows))


def check_finite(vectors: np.ndarray, what: str = "embeddings") -> None:
    """Raise UserError if any vector holds NaN or inf (naming the first bad row)."""
    if _all_finite(vectors):
        return
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise UserError(_not_finite_message(what, rows.size, int(rows[0])))


def _not_finite_message(what: str, rows: int, first: int) -> str:
    return f"{what}: {rows} row(s) contain NaN/inf (first at row {first})"
