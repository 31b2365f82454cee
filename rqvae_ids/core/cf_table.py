"""`cf_embeddings.parquet`, the collaborative item embeddings on disk (floor 0, like embedding_table).

Columns item_id (string), embedding (fixed_size_list<float32>[c]) for the items that have one;
metadata `interactions_sha256`, `catalog_sha256` (sha256 of the catalog's item ids, in order),
the CFConfig and counts. Built by `rqvae_ids.cf` (which needs the interactions reader, floor 3);
read here so that ID assignment (floor 2) can use the CF embeddings a model was trained with.

Two readers, for two questions:
- `read_cf_table(path, item_ids)`: CF embeddings FOR TRAINING on exactly this catalog; a file
  of another catalog is a UserError.
- `cf_for_items(path, item_ids)`: CF embeddings for the items of a catalog that may have changed
  since training (the daily refresh adds and removes items): items of the file that are still in
  the catalog get theirs, new items none (they are encoded from their text); a file sharing no
  item with the catalog is a UserError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import UserError
from .io import decode_metadata, read_parquet_table, sha256_text, write_parquet_atomic

CF_FILE = "cf_embeddings.parquet"


@dataclass
class CFTable:
    """CF embeddings aligned with a catalog: vectors (N, c) float32 (zero rows where missing),
    has (N,) bool, plus the file's metadata."""

    vectors: np.ndarray
    has: np.ndarray
    metadata: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def catalog_sha256(item_ids) -> str:
    return sha256_text("\n".join(map(str, item_ids)))


def write_cf_table(path: str | os.PathLike, item_ids, vectors: np.ndarray, meta: dict[str, Any]) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    schema = pa.schema([pa.field("item_id", pa.string(), nullable=False),
                        pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False)])
    table = pa.Table.from_arrays(
        [pa.array(list(item_ids), pa.string()),
         pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)], schema=schema)
    write_parquet_atomic(table, path, {**meta, "dim": dim})


def _read_rows(path) -> tuple[Any, list[str], np.ndarray, dict[str, Any]]:
    """(path, item ids, (n, c) float32 vectors, metadata) of a cf_embeddings.parquet."""
    p, table = read_parquet_table(path, "CF embeddings file")
    if not {"item_id", "embedding"} <= set(table.column_names):
        raise UserError(f"{p}: not a CF embeddings file (needs columns item_id, embedding)")
    ids = [str(i) for i in table.column("item_id").to_pylist()]
    col = table.column("embedding").combine_chunks()
    dim = col.type.list_size
    vecs = np.asarray(col.values.to_numpy(zero_copy_only=False), np.float32).reshape(len(ids), dim)
    return p, ids, vecs, decode_metadata(table.schema)


def _aligned(ids: list[str], vecs: np.ndarray, item_ids: list[str], meta: dict[str, Any]) -> CFTable:
    """CFTable over `item_ids` from rows (ids, vecs); ids outside the catalog are skipped."""
    index = {i: n for n, i in enumerate(item_ids)}
    rows = np.array([index.get(i, -1) for i in ids], np.int64)
    inside = rows >= 0
    vectors = np.zeros((len(item_ids), vecs.shape[1]), np.float32)
    vectors[rows[inside]] = vecs[inside]
    has = np.zeros(len(item_ids), bool)
    has[rows[inside]] = True
    return CFTable(vectors, has, meta)


def read_cf_table(path: str | os.PathLike, item_ids) -> CFTable:
    """cf_embeddings.parquet aligned with the catalog `item_ids`; a file built for another
    catalog (recorded catalog hash differs, or ids outside the catalog) is a UserError."""
    p, ids, vecs, meta = _read_rows(path)
    item_ids = [str(i) for i in item_ids]
    if meta.get("catalog_sha256") not in (None, catalog_sha256(item_ids)):
        raise UserError(f"{p}: CF embeddings of another catalog (catalog hash differs); rebuild them")
    index = set(item_ids)
    outside = [i for i in ids if i not in index]
    if outside:
        raise UserError(f"{p}: CF embeddings of another catalog ({len(outside)} item ids not in it, "
                        f"e.g. {outside[0]!r})")
    return _aligned(ids, vecs, item_ids, meta)


def cf_for_items(path: str | os.PathLike, item_ids) -> CFTable:
    """The CF embeddings of `path` for the items of a catalog that may have changed since they
    were built: kept items get theirs, new items none; metadata gains `items_matched` and
    `items_gone` (CF rows whose item left the catalog). No item in common: a UserError."""
    p, ids, vecs, meta = _read_rows(path)
    item_ids = [str(i) for i in item_ids]
    table = _aligned(ids, vecs, item_ids, dict(meta))
    matched = int(table.has.sum())
    if ids and matched == 0:
        raise UserError(f"{p}: CF embeddings of another catalog (none of its {len(ids)} item ids is in the "
                        f"catalog, e.g. {ids[0]!r})")
    table.metadata.update(items_matched=matched, items_gone=len(ids) - matched)
    return table
