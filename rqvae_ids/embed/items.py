"""The embed stage's outputs: one vector per item through the cache (`embed_texts_cached`), written
as OUT/embeddings.parquet with embed_report.json and embed_config.json (`embed_items`, `embed_catalog`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.config import to_dict
from ..core.embedding_table import write_embeddings
from ..core.errors import UserError
from ..core.io import provenance, sha256_text, write_json_atomic
from ..core.runtime import resolve_device
from .cache import append_cache, cache_key, lookup_cache
from .config import EmbedConfig
from .text_encoder import cache_identity, encode_rows, load_text_encoder, model_dim, resolve_model, show_progress

CACHE_FILENAME = "embedding_cache.parquet"
# Newly encoded vectors are flushed to the cache file every this many texts, so an
# interrupted run over a large catalog keeps most of its work (~100 s of CPU encoding).
CACHE_FLUSH_EVERY = 20_000


def embed_texts_cached(
    texts: Sequence[str], cfg: EmbedConfig, cache_path: str | os.PathLike
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed `texts` through the cache. Returns (vectors (N, d) float32, stats).

    stats: encoded (texts run through the model; duplicates within `texts` count
    once), cached (the rest), model (identity), model_path, device, dim.
    The model is loaded only when something is missing from the cache.
    """
    texts = list(texts)
    spec = resolve_model(cfg.model)
    cache_path = Path(cache_path)
    identity = cache_identity(spec, cfg)
    keys = [cache_key(identity, t) for t in texts]
    hit, vectors = lookup_cache(cache_path, identity, keys)
    miss_rows = _first_occurrence_misses(keys, hit)
    device = None  # resolved (and torch imported) only when something must be encoded
    backend_info: dict[str, Any] = {"backend": cfg.backend}
    if miss_rows.size or vectors is None:
        device = resolve_device(cfg.device)
        model, backend_info = load_text_encoder(spec, cfg, device, texts)
        device = backend_info.get("device", device)
        dim = model_dim(model)
        if vectors is None:
            vectors = np.empty((len(texts), dim), dtype=np.float32)
        elif vectors.shape[1] != dim:
            raise UserError(f"{cache_path} holds {vectors.shape[1]}-d vectors for {spec.identity}; the model gives {dim}")
        flusher = _CacheFlusher(cache_path, identity, keys)
        try:
            encode_rows(model, texts, miss_rows, vectors, cfg.batch_size, show_progress(cfg), flusher)
        finally:
            flusher.flush(vectors)  # on Ctrl-C too: finished batches are not encoded again
        _fill_duplicates(vectors, keys, hit, miss_rows)
    stats = {
        "encoded": int(miss_rows.size),
        "cached": len(texts) - int(miss_rows.size),
        "model": spec.identity,
        "model_path": spec.path,
        "device": device,
        "dim": int(vectors.shape[1]),
        **backend_info,
    }
    return vectors, stats


def _first_occurrence_misses(keys: list[str], hit: np.ndarray) -> np.ndarray:
    """Row indices to encode: cache misses, each distinct text once (its first row)."""
    seen: set[str] = set()
    rows = []
    for i in np.flatnonzero(~hit):
        if keys[i] not in seen:
            seen.add(keys[i])
            rows.append(i)
    return np.asarray(rows, dtype=np.int64)


def _fill_duplicates(vectors: np.ndarray, keys: list[str], hit: np.ndarray, miss_rows: np.ndarray) -> None:
    """Copy each newly encoded vector (in place) to later rows with the same text."""
    row_of = {keys[i]: i for i in miss_rows}
    for i in np.flatnonzero(~hit):
        if row_of[keys[i]] != i:
            vectors[i] = vectors[row_of[keys[i]]]


class _CacheFlusher:
    """Writes newly encoded vectors to the cache every CACHE_FLUSH_EVERY texts and at the end.

    Periodic flushes bound the work a hard kill (OOM, SIGKILL) loses.

    keys[i] is the cache key of row i of the array being filled.
    """

    def __init__(self, path: Path, model_identity: str, keys: list[str]):
        self.path, self.model_identity, self.keys = path, model_identity, keys
        self.pending: list[int] = []

    def __call__(self, out: np.ndarray, rows: np.ndarray) -> None:
        self.pending.extend(int(i) for i in rows)
        if len(self.pending) >= CACHE_FLUSH_EVERY:
            self.flush(out)

    def flush(self, out: np.ndarray) -> None:
        rows = np.asarray(self.pending, dtype=np.int64)
        append_cache(self.path, self.model_identity, [self.keys[i] for i in rows], out[rows])
        self.pending = []


# ---------------------------------------------------------------- outputs


def embed_items(
    item_ids: Sequence[str],
    texts: Sequence[str],
    out_dir: str | os.PathLike,
    cfg: EmbedConfig | None = None,
    *,
    source: str | None = None,
) -> dict[str, Any]:
    """Embed one text per item and write OUT/embeddings.parquet, embed_report.json, embed_config.json.

    Rows keep the given order; text_sha256 is sha256 of the text alone (the key
    the IDs stage uses to notice edited items). The cache is `cfg.cache` or
    OUT/embedding_cache.parquet. Returns the report:
    {"items", "encoded", "cached", "seconds", "model", "dim", ...}. `source`
    (the catalog path) is recorded in embed_config.json.
    """
    cfg = cfg or EmbedConfig()
    item_ids, texts = list(item_ids), list(texts)
    if len(item_ids) != len(texts):
        raise UserError(f"{len(item_ids)} item ids but {len(texts)} texts")
    if not item_ids:
        raise UserError("no items to embed")
    out_dir = Path(out_dir)
    cache_path = Path(cfg.cache) if cfg.cache else out_dir / CACHE_FILENAME
    start = time.perf_counter()
    vectors, stats = embed_texts_cached(texts, cfg, cache_path)
    text_sha = [sha256_text(t) for t in texts]
    write_embeddings(out_dir / "embeddings.parquet", item_ids, text_sha, vectors, stats["model"])
    report = {
        "items": len(item_ids),
        "encoded": stats["encoded"],
        "cached": stats["cached"],
        "seconds": round(time.perf_counter() - start, 3),
        "model": stats["model"],
        "dim": stats["dim"],
        "model_path": stats["model_path"],
        "device": stats["device"],
        "cache": str(cache_path),
        **{k: stats[k] for k in ("backend", "precision", "accuracy_vs_torch", "export_dir", "export_seconds") if k in stats},
    }
    write_json_atomic(out_dir / "embed_config.json", {"config": to_dict(cfg), "source": source, "model": stats["model"], "provenance": provenance()})
    write_json_atomic(out_dir / "embed_report.json", report)
    return report


def embed_catalog(catalog, out_dir: str | os.PathLike, cfg: EmbedConfig | None = None) -> dict[str, Any]:
    """`embed_items` for a `rqvae_ids.catalog.Catalog` (anything with item_ids and texts)."""
    source = getattr(catalog, "source", None)
    return embed_items(catalog.item_ids, catalog.texts, out_dir, cfg, source=None if source is None else str(source))