"""What keeps the cost per item flat as the catalog grows (issue 27), at tiny N.

- training on a seeded sample of `max_items` items (every item still assigned);
- evaluation on bounded samples (next-item test users, tuning users), the sizes reported;
- the embedding cache's part files (a flush writes its rows, not the whole cache);
- the faster equivalents of hot loops give the same results as the code they replaced:
  interactions split by user without a group-by loop, neighbour recall by a partial sort,
  exact neighbours without an index copy, reconstruction metrics a block at a time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rqvae_ids.core.embedding_table import write_embeddings

torch = pytest.importorskip("torch")

N = 300


@pytest.fixture
def emb(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 16))[np.arange(N) % 16] + 0.3 * rng.standard_normal((N, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    path = tmp_path / "embeddings.parquet"
    write_embeddings(path, [f"i{i}" for i in range(N)], [f"h{i}" for i in range(N)], x, model="test-model")
    return path


def _train_cfg(**kw):
    from rqvae_ids.models import ModelConfig
    from rqvae_ids.train import TrainConfig

    model = ModelConfig(kind="rqvae", levels=3, codebook_size=32, latent_dim=4, hidden=(32,))
    return TrainConfig(model=model, epochs=3, batch_size=64, init_sample=500, device="cpu", **kw)


# --------------------------------------------------------------------------- training sample


def test_training_reads_a_seeded_sample_and_every_item_is_assigned(emb, tmp_path):
    from rqvae_ids.ids import assign_ids, read_semantic_ids
    from rqvae_ids.core.io import sha256_file
    from rqvae_ids.train import train_model
    from rqvae_ids.train.inputs import sample_rows

    report = train_model(emb, tmp_path / "a", _train_cfg(max_items=120), progress=False)
    assert report["items"] == 120 and report["catalog_items"] == N
    again = train_model(emb, tmp_path / "b", _train_cfg(max_items=120), progress=False)
    assert sha256_file(tmp_path / "a" / "model.safetensors") == sha256_file(tmp_path / "b" / "model.safetensors")
    other_seed = sample_rows(N, 120, seed=1)
    assert len(other_seed) == 120 and not np.array_equal(other_seed, sample_rows(N, 120, seed=0))
    assert np.all(np.diff(sample_rows(N, 120, seed=0)) > 0)  # sorted, distinct
    assign_ids(tmp_path / "a", emb, tmp_path / "ids")
    assert len(read_semantic_ids(tmp_path / "ids" / "semantic_ids.parquet").item_ids) == N


def test_a_catalog_under_the_cap_trains_exactly_as_without_one(emb, tmp_path):
    from rqvae_ids.core.io import sha256_file
    from rqvae_ids.train import train_model
    from rqvae_ids.train.inputs import sample_rows

    assert sample_rows(N, 0, 0) is None and sample_rows(N, N, 0) is None
    train_model(emb, tmp_path / "all", _train_cfg(max_items=0), progress=False)
    train_model(emb, tmp_path / "cap", _train_cfg(max_items=N + 1), progress=False)
    assert sha256_file(tmp_path / "all" / "model.safetensors") == sha256_file(tmp_path / "cap" / "model.safetensors")


def test_the_cf_embeddings_are_cut_to_the_training_sample():
    from rqvae_ids.core.cf_table import CFTable
    from rqvae_ids.train.inputs import sample_rows, with_cf

    rows = sample_rows(N, 50, 0)
    cf = CFTable(np.arange(N * 2, dtype=np.float32).reshape(N, 2), np.arange(N) % 3 > 0, {})
    cfg, cut = with_cf(_train_cfg(), cf, N, rows)
    np.testing.assert_array_equal(cut.vectors, cf.vectors[rows])
    np.testing.assert_array_equal(cut.has, cf.has[rows])
    assert cfg.model.cf_dim == 2


def test_the_bounds_are_validated_at_the_edge():
    from rqvae_ids.core.errors import UserError
    from rqvae_ids.pipeline.config import load_pipeline_config

    with pytest.raises(UserError, match="max_items"):
        load_pipeline_config(None, {"train.max_items": -1})
    with pytest.raises(UserError, match="max_users"):
        load_pipeline_config(None, {"evaluate.max_users": -1})
    with pytest.raises(UserError, match="tune_users"):
        load_pipeline_config(None, {"evaluate.tune_users": 0})


# --------------------------------------------------------------------------- evaluation samples


def _split(users=50, seed=0):
    from rqvae_ids.evaluate.sequences import leave_one_out

    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 40, size=rng.integers(3, 9)) for _ in range(users)]
    return leave_one_out([f"u{i}" for i in range(users)], seqs, 5, "timestamp")


def test_sample_users_cuts_the_ranked_side_and_keeps_every_training_sequence():
    from rqvae_ids.evaluate.sequences import sample_users

    split = _split()
    small = sample_users(split, 12, seed=3)
    assert len(small.test_targets) == len(small.valid_targets) == len(small.users) == 12
    assert small.train is split.train  # fitting sees every user
    pos = [split.users.index(u) for u in small.users]
    assert pos == sorted(pos)
    for i, p in enumerate(pos):
        assert small.test_targets[i] == split.test_targets[p]
        np.testing.assert_array_equal(small.test_histories[i], split.test_histories[p])
        np.testing.assert_array_equal(small.valid_histories[i], split.valid_histories[p])
    assert sample_users(split, 12, seed=3).users == small.users  # seeded
    assert sample_users(split, 0) is split and sample_users(split, 50) is split


def test_the_evaluate_stage_reports_its_samples(tmp_path):
    from rqvae_ids.pipeline.config import EvaluateOptions
    from rqvae_ids.pipeline.stages import bounded_split, samples_note

    items = [f"i{i}" for i in range(40)]
    split = _split()
    rows = [(u, items[j], t) for u, seq in zip(split.users, split.train) for t, j in enumerate(seq)]
    rows += [(u, items[v], 100) for u, v in zip(split.users, split.valid_targets)]
    rows += [(u, items[t], 200) for u, t in zip(split.users, split.test_targets)]
    path = tmp_path / "events.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)
    sampled, samples = bounded_split(path, items, EvaluateOptions(max_users=20, tune_users=7))
    assert samples == {"test_users": 20, "test_users_total": 50, "tune_users": 7}
    assert len(sampled.test_targets) == 20 and len(sampled.train) == 50
    note = samples_note({"items": 40, "neighbour_queries": 40, **samples})
    assert "20 of 50 test users" in note and "tuned on 7 validation users" in note
    assert bounded_split(None, items, EvaluateOptions()) == (None, {})


def test_neighbour_recall_partial_sort_ranks_as_the_full_sort():
    from rqvae_ids.evaluate.neighbours import neighbour_recall, shared_prefix_length
    from rqvae_ids.core.knn import exact_neighbours

    def by_lexsort(vectors, codes, ks=(10, 100), truth_k=10, max_queries=2000, seed=0):
        rng = np.random.default_rng(seed)
        n = len(codes)
        queries = np.sort(rng.choice(n, size=min(max_queries, n), replace=False))
        hits = {k: 0 for k in ks}
        for q, true_nb in zip(queries, exact_neighbours(vectors, queries, truth_k)):
            prefix = shared_prefix_length(codes, codes[q]).astype(np.float64)
            prefix[q] = -1
            top = np.lexsort((rng.random(n), -prefix))[: max(ks)]
            for k in ks:
                hits[k] += np.isin(true_nb, top[:k]).sum()
        return {f"neighbour_recall@{k}": hits[k] / (len(queries) * truth_k) for k in ks}

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((500, 8)).astype(np.float32)
    codes = np.stack([np.arange(500) % 4, (vectors[:, 0] > 0).astype(int), rng.integers(0, 3, 500)], axis=1)
    assert neighbour_recall(vectors, codes, max_queries=200) == by_lexsort(vectors, codes, max_queries=200)


def test_exact_neighbours_and_embedding_knn_match_a_faiss_index():
    import faiss

    from rqvae_ids.evaluate.baselines import EmbeddingKnnRetriever
    from rqvae_ids.core.knn import exact_neighbours

    rng = np.random.default_rng(1)
    v = rng.standard_normal((400, 12)).astype(np.float32)
    x = v / np.linalg.norm(v, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(12)
    index.add(x)
    queries = np.arange(0, 400, 9)
    expected = [row[row != q][:5] for q, row in zip(queries, index.search(x[queries], 6)[1])]
    np.testing.assert_array_equal(exact_neighbours(v, queries, 5), np.stack(expected))
    knn = EmbeddingKnnRetriever(v)
    knn.n_last = 1
    np.testing.assert_array_equal(knn.recommend([np.array([q]) for q in queries], 7), index.search(x[queries], 7)[1])


def test_sid_prefix_bounds_its_candidates_per_batch(monkeypatch):
    from rqvae_ids.evaluate import baselines as retrievers

    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, size=(200, 3))
    histories = [rng.integers(0, 200, size=rng.integers(1, 6)) for _ in range(50)]
    r = retrievers.SidPrefixRetriever(codes).fit([h for h in histories])
    whole = r.recommend(histories, 10)
    # Candidates are bounded by history items x levels x k: 10 history items per batch here.
    monkeypatch.setattr(retrievers, "SCORE_CELLS", 10 * 3 * 10)
    scored = []
    real = r._masses
    monkeypatch.setattr(r, "_masses", lambda hs: scored.append(sum(len(h) for h in hs)) or real(hs))
    np.testing.assert_array_equal(r.recommend(histories, 10), whole)
    assert len(scored) > 5 and max(scored) <= 10 and sum(scored) == sum(len(h) for h in histories)


def test_reconstruction_metrics_by_blocks_equal_the_whole_array():
    from rqvae_ids.evaluate.quality import reconstruction_metrics

    rng = np.random.default_rng(2)
    x = rng.standard_normal((1000, 6)).astype(np.float32)
    x_hat = x + 0.2 * rng.standard_normal((1000, 6)).astype(np.float32)
    whole = reconstruction_metrics(x, x_hat, chunk=10_000)
    blocks = reconstruction_metrics(x, x_hat, chunk=64)
    assert blocks == pytest.approx(whole, rel=1e-12)
    a, b = x.astype(np.float64), x_hat.astype(np.float64)
    assert whole["recon_mse"] == pytest.approx(np.mean((a - b) ** 2), rel=1e-12)


# --------------------------------------------------------------------------- interactions


def test_interactions_split_by_user_as_a_sorted_group_by(tmp_path):
    from rqvae_ids.evaluate.sequences import load_interactions

    rng = np.random.default_rng(4)
    rows = 400
    frame = pd.DataFrame({"user_id": rng.choice(["b", "a", "c10", "c2", "d"], rows),
                          "item_id": rng.choice([f"i{i}" for i in range(30)] + ["unknown"], rows),
                          "timestamp": rng.integers(0, 20, rows).astype(float)})
    frame.loc[rng.choice(rows, 30, replace=False), "timestamp"] = np.nan  # missing: sorted last
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    catalog = [f"i{i}" for i in range(30)]
    notes = []
    users, seqs, order = load_interactions(path, catalog, log=notes.append)
    assert order == "timestamp" and len(notes) == 1 and "not in the catalog" in notes[0]
    # the reference: pandas' stable sort by (user, timestamp, file order) and a sorted group-by
    ref = frame[frame["item_id"] != "unknown"].copy()
    ref["_row"] = np.arange(len(ref))
    ref["_item"] = pd.Index(catalog).get_indexer(ref["item_id"])
    ref = ref.sort_values(["user_id", "timestamp", "_row"], kind="stable")
    expected = {u: g["_item"].to_numpy() for u, g in ref.groupby("user_id", sort=True)}
    assert users == list(expected)
    for u, s in zip(users, seqs):
        np.testing.assert_array_equal(s, expected[u])


# --------------------------------------------------------------------------- embedding cache


def test_cache_flushes_write_parts_folded_into_the_file_once_they_are_a_quarter(tmp_path, monkeypatch):
    from rqvae_ids.embed import cache as embed_cache

    cache = tmp_path / "cache.parquet"
    parts = embed_cache.cache_parts_dir(cache)
    vec = lambda n, v: np.full((n, 3), v, np.float32)  # noqa: E731
    embed_cache.append_cache(cache, "m", [f"k{i}" for i in range(40)], vec(40, 1.0))
    assert cache.is_file() and not parts.exists()  # no file yet: the first flush becomes it
    embed_cache.append_cache(cache, "m", ["k0", "new1"], vec(2, 2.0))  # 2 rows < a quarter of 40
    assert cache.is_file() and len(list(parts.glob("part-*.parquet"))) == 1
    hit, vectors = embed_cache.lookup_cache(cache, "m", ["k0", "k1", "new1", "nope"])
    assert hit.tolist() == [True, True, True, False]
    np.testing.assert_array_equal(vectors[[0, 1, 2]], [[2, 2, 2], [1, 1, 1], [2, 2, 2]])  # the newest row wins
    embed_cache.append_cache(cache, "m", [f"more{i}" for i in range(9)], vec(9, 3.0))  # parts: 11 rows >= 10
    assert not parts.exists()
    import pyarrow.parquet as pq

    table = pq.read_table(cache)
    assert table.num_rows == 50 and len(set(table.column("key").to_pylist())) == 50  # k0 once
    hit, vectors = embed_cache.lookup_cache(cache, "m", ["k0", "more8"])
    np.testing.assert_array_equal(vectors, [[2, 2, 2], [3, 3, 3]])
    monkeypatch.setattr(embed_cache, "COMPACT_FILES", 2)
    embed_cache.append_cache(cache, "m", ["x"], vec(1, 4.0))
    embed_cache.append_cache(cache, "m", ["y"], vec(1, 5.0))  # the second part: folded by the file-count rule
    assert not parts.exists() and pq.read_metadata(cache).num_rows == 52


def test_unit_rows_copies_only_what_is_not_unit_already():
    from rqvae_ids.core.knn import unit_rows

    rng = np.random.default_rng(0)
    v = rng.standard_normal((300, 8)).astype(np.float32)
    u = unit_rows(v, chunk=64)
    assert u is not v
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-6)
    u[5] = 0.0  # a zero row counts as normalised
    assert unit_rows(u, chunk=64) is u  # embeddings.parquet rows: no copy of the catalog
    assert unit_rows(u.astype(np.float64)) is not u


def test_decode_chunked_equals_one_decode():
    from rqvae_ids.evaluate.model_ids import decode_chunked

    table = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)

    class Model:
        def decode_codes(self, codes):
            return table[codes].sum(axis=1)

    codes = np.random.default_rng(2).integers(0, 7, (100, 3))
    np.testing.assert_array_equal(decode_chunked(Model(), codes, chunk=16), Model().decode_codes(codes))
    assert decode_chunked(Model(), codes[:0]).shape == (0, 5)
