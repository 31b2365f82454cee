"""The embedding cache: a Parquet file of (key, model, embedding) rows, key = sha256 of
(model identity, text), plus a folder of part files that flushes append to.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core.errors import UserError
from ..core.io import write_parquet_atomic

CACHE_FORMAT = "embedding_cache/1"


def cache_key(model_identity: str, text: str) -> str:
    """sha256 of (model identity, text): the cache key of one embedding."""
    return hashlib.sha256(f"{model_identity}\0{text}".encode("utf-8")).hexdigest()


def _cache_schema() -> pa.Schema:
    # Variable-length lists so models of different dimensions can share one cache file.
    return pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32()), nullable=False),
        ]
    )


# The cache is one Parquet file plus, beside it, a folder of part files (`<cache>.parts/`) that
# flushes append to: rewriting the whole file on every flush of 20,000 texts made a 1M-item run
# move ~40 GB. Parts are folded into the file when they reach a quarter of it (or 16 files), so
# the rewrites cost O(N) over any number of runs; readers see the file and its parts as one cache.
COMPACT_SHARE, COMPACT_FILES = 0.25, 16
TAKE_ROWS = 65_536  # cache rows copied per block in lookups (bounds the transient copy)


def cache_parts_dir(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def _cache_files(path: Path) -> list[Path]:
    """Newest first: the parts (newest name first), then the file. A key's first row wins."""
    parts = cache_parts_dir(path)
    files = sorted(parts.glob("part-*.parquet"), reverse=True) if parts.is_dir() else []
    return files + ([path] if path.exists() else [])


def _read_cache_file(path: Path, model_identity: str | None) -> pa.Table:
    try:
        filters = [("model", "=", model_identity)] if model_identity else None
        table = pq.read_table(path, filters=filters)
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"cannot read embedding cache {path}: {e} (delete it to start a fresh cache)") from None
    if table.schema.names != _cache_schema().names:
        raise UserError(f"{path} is not an rqvae-ids embedding cache (columns {table.schema.names})")
    return table.cast(_cache_schema())


def _read_cache_table(path: Path, model_identity: str | None = None) -> pa.Table:
    """All cache rows (or one model's), newest first (a key may repeat: its first row is current);
    an empty table when there is no cache yet."""
    tables = [_read_cache_file(f, model_identity) for f in _cache_files(path)]
    return pa.concat_tables(tables) if tables else _cache_schema().empty_table()


def lookup_cache(path: Path, model_identity: str, keys: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Find `keys` in the cache. Returns (hit (N,) bool, vectors (N, d) float32 or None).

    Rows of `vectors` where hit is False are undefined. Only this model's rows are read.
    """
    table = _read_cache_table(path, model_identity)
    if table.num_rows == 0:
        return np.zeros(len(keys), dtype=bool), None
    where = pc.index_in(pa.array(keys, pa.string()), value_set=table.column("key"))
    hit = pc.is_valid(where).to_numpy(zero_copy_only=False)
    dim = len(table.column("embedding")[0])
    vectors = np.empty((len(keys), dim), dtype=np.float32)
    found, rows = np.flatnonzero(hit), pc.drop_null(where)
    # Take in blocks: only the hit rows are copied, a block at a time, not the whole cache.
    for start in range(0, len(found), TAKE_ROWS):
        block = table.column("embedding").take(rows.slice(start, TAKE_ROWS)).combine_chunks()
        vectors[found[start:start + TAKE_ROWS]] = block.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return hit, vectors


def append_cache(path: Path, model_identity: str, keys: list[str], vectors: np.ndarray) -> None:
    """Add (key, vector) rows to the cache as a new part file (atomic), folding the parts into
    the file when they have grown (`compact_cache`). A rewritten key's newest row wins.

    Writers never rewrite each other's parts, so two processes adding rows at once lose nothing;
    a compaction deletes only the parts it read."""
    if not keys:
        return
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    new = pa.Table.from_arrays(
        [
            pa.array(keys, pa.string()),
            pa.array([model_identity] * n, pa.string()),
            pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1), pa.float32())),
        ],
        schema=_cache_schema(),
    )
    name = f"part-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.parquet"
    write_parquet_atomic(new, cache_parts_dir(path) / name, {"format": CACHE_FORMAT})
    compact_cache(path, force=False)


def compact_cache(path: Path, force: bool = True) -> bool:
    """Fold the part files into the cache file (one atomic rewrite, newest row of each key kept).
    force=False: only when there is no file yet, or the parts hold >= COMPACT_SHARE of its rows,
    or there are COMPACT_FILES parts. Returns whether it rewrote the file."""
    parts = _cache_files(path)[: -1 if path.exists() else None]
    if not parts:
        return False
    if not force and path.exists():
        main_rows = pq.read_metadata(path).num_rows
        part_rows = sum(pq.read_metadata(p).num_rows for p in parts)
        if part_rows < COMPACT_SHARE * main_rows and len(parts) < COMPACT_FILES:
            return False
    tables = [_read_cache_file(f, None) for f in parts + ([path] if path.exists() else [])]
    table = pa.concat_tables(tables)
    first = pc.index_in(table.column("key"), value_set=table.column("key")).to_numpy(zero_copy_only=False)
    if (first != np.arange(table.num_rows)).any():
        table = table.filter(pa.array(first == np.arange(table.num_rows)))
    write_parquet_atomic(table, path, {"format": CACHE_FORMAT})
    for part in parts:
        part.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        cache_parts_dir(path).rmdir()
    return True

