"""`--resolve balanced`: exact balanced last level; only identical texts share a tuple."""

import numpy as np
import pytest

from rqvae_ids import models
from rqvae_ids.core.embedding_table import write_embeddings
from rqvae_ids.ids import assign_ids, read_semantic_ids
from rqvae_ids.ids.encode import LatentOracle

N, PAIRS = 400, 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("balanced")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, 16)).astype(np.float32)
    texts = [f"t{i}" for i in range(N)]
    for p in range(PAIRS):  # items 2p and 2p+1 have the same text, hence the same embedding
        x[2 * p + 1], texts[2 * p + 1] = x[2 * p], texts[2 * p]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    emb = tmp / "emb.parquet"
    write_embeddings(emb, [f"item{i:04d}" for i in range(N)], texts, x, model="fake-emb")
    cfg = models.ModelConfig(kind="rqkmeans", input_dim=16, levels=3, codebook_size=12, kmeans_iters=5)
    model = models.fit_rqkmeans(x, cfg)
    model.meta = {"embedding_model": "fake-emb", "embedding_dim": 16, "data_sha256": "x"}
    model.save(tmp / "model")
    return tmp, emb, x, texts, model


def test_balanced_leaves_no_shared_tuple_but_identical_texts(setup):
    tmp, emb, x, texts, model = setup
    raw = model.encode_codes(x)
    assert len({tuple(r) for r in raw}) < N - 20  # plenty of raw collisions to resolve
    rep = assign_ids(tmp / "model", emb, tmp / "b", resolve="balanced")
    ids = read_semantic_ids(tmp / "b" / "semantic_ids.parquet")
    assert len(set(ids.sids)) == N  # IDs unique (suffix tells identical texts apart)
    np.testing.assert_array_equal(ids.codes[:, :2], raw[:, :2])  # prefixes untouched
    groups: dict = {}
    for i, row in enumerate(map(tuple, ids.codes)):
        groups.setdefault(row, []).append(i)
    shared = [g for g in groups.values() if len(g) > 1]
    assert shared and all(len({texts[i] for i in g}) == 1 for g in shared)
    res = rep["resolution"]
    assert res["strategy"] == "balanced" and res["sharing_share_excl_identical_text"] == 0.0
    assert res["items_sharing_tuple_identical_text"] == 2 * PAIRS == sum(len(g) for g in shared)
    assert rep["id_length"] == 4 and (ids.suffix > 0).sum() == PAIRS
    # deterministic, and an exact optimum: no more distortion than greedy reassign
    assign_ids(tmp / "model", emb, tmp / "b2", resolve="balanced")
    assert read_semantic_ids(tmp / "b2" / "semantic_ids.parquet").sids.tolist() == ids.sids.tolist()
    assign_ids(tmp / "model", emb, tmp / "r", resolve="reassign")
    re = read_semantic_ids(tmp / "r" / "semantic_ids.parquet")
    oracle = LatentOracle(model, x, raw)
    idx = np.arange(N)
    assert oracle.distance(idx, ids.codes).sum() <= oracle.distance(idx, re.codes).sum() + 1e-4


def test_balanced_keeps_previous_ids_and_places_new_items(setup, tmp_path):
    tmp, emb, x, texts, _ = setup
    old = tmp_path / "old.parquet"
    write_embeddings(old, [f"item{i:04d}" for i in range(N - 40)], texts[: N - 40], x[: N - 40], model="fake-emb")
    assign_ids(tmp / "model", old, tmp_path / "v1", resolve="balanced")
    assign_ids(tmp / "model", emb, tmp_path / "v2", resolve="balanced",
               previous=tmp_path / "v1" / "semantic_ids.parquet")
    v1 = read_semantic_ids(tmp_path / "v1" / "semantic_ids.parquet")
    v2 = read_semantic_ids(tmp_path / "v2" / "semantic_ids.parquet")
    assert v2.sids[: N - 40].tolist() == v1.sids.tolist()  # every old ID kept
    assert len(set(v2.sids)) == N
    groups: dict = {}
    for i, row in enumerate(map(tuple, v2.codes)):
        groups.setdefault(row, []).append(i)
    assert all(len({texts[i] for i in g}) == 1 for g in groups.values())
