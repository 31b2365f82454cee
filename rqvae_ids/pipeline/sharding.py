"""Sharded embedding: plan, encode one shard, merge: the library side of `flows/embed_sharded.py`.

Only texts missing from the embedding cache are sharded. Each shard is a small
Parquet file of (key, text) that any worker can encode with `encode_texts`
(the same model and normalisation as the single-process path: vectors equal
within ~1e-6); the worker writes a `.npy` beside it and hands back its path.
`merge_shards` adds every shard's vectors to the shared cache, then runs the
ordinary `embed_items`, which now finds every text cached and writes one
`embeddings.parquet` in catalog order. So a sharded run and a plain run share
the cache both ways, and the output is the same file either would write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.io import atomic_path, write_parquet_atomic
from .stages import EMBEDDINGS, read_items


def cache_path_for(cfg, out_dir: str | os.PathLike) -> Path:
    """The cache `embed_items` would use: cfg.cache, else OUT/embedding_cache.parquet."""
    from ..embed import CACHE_FILENAME

    return Path(cfg.cache) if cfg.cache else Path(out_dir) / CACHE_FILENAME


def plan_shards(
    items_path: str | os.PathLike, out_dir: str | os.PathLike, cfg, shard_size: int
) -> list[str]:
    """Write `out_dir/shards/shard-00000.parquet` ... for the distinct texts not in the cache.

    cfg: EmbedConfig. Returns the shard paths (empty when everything is cached).
    """
    from ..embed import cache_identity, cache_key, lookup_cache, prepare_backend, resolve_model

    _, texts, _ = read_items(items_path)
    spec = resolve_model(cfg.model)
    identity = cache_identity(spec, cfg)
    keys = [cache_key(identity, t) for t in texts]
    hit, _ = lookup_cache(cache_path_for(cfg, out_dir), identity, keys)
    seen: set[str] = set()
    missing: list[tuple[str, str]] = []
    for key, text, cached in zip(keys, texts, hit):
        if not cached and key not in seen:
            seen.add(key)
            missing.append((key, text))
    if missing:  # export + accuracy guard once here, not in every worker at the same time
        prepare_backend(spec, cfg, texts)
    shard_dir = Path(out_dir) / "shards"
    paths = []
    for n, start in enumerate(range(0, len(missing), shard_size)):
        rows = missing[start : start + shard_size]
        table = pa.table({"key": [k for k, _ in rows], "text": [t for _, t in rows]})
        path = shard_dir / f"shard-{n:05d}.parquet"
        write_parquet_atomic(table, path, {"model": identity})
        paths.append(str(path))
    return paths


def encode_shard(shard_path: str | os.PathLike, cfg) -> str:
    """Encode one shard's texts (cfg: EmbedConfig); write `<shard>.npy` (N, d) float32; return its path."""
    from ..embed import encode_texts

    texts = pq.read_table(shard_path, columns=["text"]).column("text").to_pylist()
    vectors = encode_texts(texts, cfg)
    out = Path(shard_path).with_suffix(".npy")
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors)
    return str(out)


def merge_shards(
    items_path: str | os.PathLike, vector_paths: list[str], out_dir: str | os.PathLike, cfg
) -> dict[str, Any]:
    """Add the shards' vectors to the cache, then write `out_dir/embeddings.parquet` in catalog order."""
    from ..embed import append_cache, cache_identity, embed_items, resolve_model
    from ..core.io import read_parquet_metadata

    keys: list[str] = []
    blocks: list[np.ndarray] = []
    for vec_path in vector_paths:
        shard = Path(vec_path).with_suffix(".parquet")
        keys += pq.read_table(shard, columns=["key"]).column("key").to_pylist()
        blocks.append(np.load(vec_path))
    if keys:
        identity = cache_identity(resolve_model(cfg.model), cfg)
        append_cache(cache_path_for(cfg, out_dir), identity, keys, np.concatenate(blocks))
    item_ids, texts, _ = read_items(items_path)
    report = embed_items(item_ids, texts, out_dir, cfg, source=read_parquet_metadata(items_path).get("source"))
    for vec_path in vector_paths:  # shards are scratch: the cache holds their vectors now
        Path(vec_path).unlink(missing_ok=True)
        Path(vec_path).with_suffix(".parquet").unlink(missing_ok=True)
    shard_dir = Path(out_dir) / "shards"
    if shard_dir.is_dir() and not any(shard_dir.iterdir()):
        shard_dir.rmdir()
    # embed_items found everything cached; report what the shards encoded.
    return {**report, "encoded": len(keys), "cached": report["items"] - len(keys), "shards": len(vector_paths),
            "path": str(Path(out_dir) / EMBEDDINGS)}
