"""Sharded embedding on a local 2-worker Dask cluster equals single-process embedding."""

from __future__ import annotations

import numpy as np
import pytest

from rqvae_ids.embed import EmbedConfig, embed_items, encode_texts
from rqvae_ids.embed.backends import DEFAULT_BACKEND
from rqvae_ids.pipeline import stages
from rqvae_ids.pipeline.config import CatalogOptions, DaskOptions
from rqvae_ids.core.embedding_table import read_embeddings

import catalog_data  # tests/flows/catalog_data.py

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("backend", sorted({"torch", DEFAULT_BACKEND}))
def test_sharded_embeddings_equal_single_process_and_share_the_cache(tmp_path, prefect_harness, backend):
    from flows.embed_sharded import sharded_flow

    rows = catalog_data.items(150, seed=3)
    rows.append(dict(rows[100], item_id="DUP-TEXT"))  # a repeated text is encoded once, written twice
    catalog = catalog_data.write_items(tmp_path / "items.csv", rows)
    out = tmp_path / "sharded"
    cache = tmp_path / "cache" / "embedding_cache.parquet"
    cfg = EmbedConfig(device="cpu", cache=str(cache), batch_size=32, backend=backend)
    stages.ingest(catalog, out, CatalogOptions())
    items = str(out / stages.ITEMS)

    # Pre-fill the cache with 20 items: only the rest may be sharded.
    ids, texts, _ = stages.read_items(items)
    embed_items(ids[:20], texts[:20], tmp_path / "warm", cfg)

    report = sharded_flow(DaskOptions(n_workers=2, threads_per_worker=1))(items, str(out), cfg, shard_size=40)
    assert report["shards"] == 4  # 130 distinct uncached texts / 40 per shard
    assert report["encoded"] == 130 and report["items"] == 151

    table = read_embeddings(out / "embeddings.parquet")
    assert list(table.item_ids) == ids  # catalog order
    reference = encode_texts(texts, EmbedConfig(device="cpu", backend=backend))
    assert np.abs(table.vectors - reference).max() <= 1e-5
    assert not (out / "shards").exists()  # scratch removed

    # The same cache serves the single-process path: nothing is encoded again.
    again = embed_items(ids, texts, tmp_path / "plain", cfg)
    assert again["encoded"] == 0 and again["cached"] == 151
