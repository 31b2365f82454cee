"""assign_ids end to end with the real models package (tiny rqkmeans and rqvae checkpoints)."""

import numpy as np
import pytest
import torch
from test_ids_fakes import make_embeddings

from rqvae_ids import models
from rqvae_ids.ids import assign_ids, read_semantic_ids
from rqvae_ids.ids.encode import LatentOracle


def save_with_meta(model, out):
    model.meta = {"embedding_model": "fake-emb", "embedding_dim": 16, "data_sha256": "x"}
    model.save(out)
    return out


@pytest.fixture(scope="module")
def real_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    emb = tmp / "emb.parquet"
    x = make_embeddings(emb, n=400)
    cfg = models.ModelConfig(kind="rqkmeans", input_dim=16, levels=3, codebook_size=16, kmeans_iters=5)
    rqk = save_with_meta(models.fit_rqkmeans(x, cfg), tmp / "rqkmeans")
    torch.manual_seed(0)
    rq = models.build_model(models.ModelConfig(kind="rqvae", input_dim=16, levels=3, codebook_size=16,
                                               latent_dim=4, hidden=(8,), kmeans_iters=5))
    rq.init_codebooks_(torch.from_numpy(x))
    rqv = save_with_meta(rq, tmp / "rqvae")
    return tmp, emb, x, {"rqkmeans": rqk, "rqvae": rqv}


@pytest.mark.parametrize("kind", ["rqkmeans", "rqvae"])
@pytest.mark.parametrize("resolve", ["suffix", "reassign"])
def test_real_model_ids_unique_and_match_encode_codes(real_setup, kind, resolve):
    tmp, emb, x, dirs = real_setup
    rep = assign_ids(dirs[kind], emb, tmp / f"{kind}-{resolve}", resolve=resolve, chunk_size=97)
    ids = read_semantic_ids(tmp / f"{kind}-{resolve}" / "semantic_ids.parquet")
    assert len(set(ids.sids)) == 400 and rep["kind"] == kind
    assert rep["encode_path"] == "residual_search"  # the fast path was verified and used
    model = models.load_model(dirs[kind])
    raw = model.encode_codes(x)
    if resolve == "suffix":
        assert np.array_equal(ids.codes, raw)  # codes are exactly the model's own
    else:
        assert np.array_equal(ids.codes[:, :2], raw[:, :2])
        assert (ids.codes[:, 2] != raw[:, 2]).sum() == rep["resolution"]["items_moved"]


def test_oracle_distance_is_distance_to_reconstruction(real_setup):
    _, _, x, dirs = real_setup
    model = models.load_model(dirs["rqvae"])
    codes = model.encode_codes(x)
    oracle = LatentOracle(model, x, codes, chunk_size=50)
    idx = np.arange(0, 400, 7)
    z = model.encode_latent(x[idx])
    recon = sum(b[codes[idx, l]] for l, b in enumerate(model.codebooks()))
    np.testing.assert_allclose(oracle.distance(idx), np.linalg.norm(z - recon, axis=1), rtol=1e-4, atol=1e-5)


def test_fast_path_distance_matches_oracle_and_chunking(real_setup):
    _, _, x, dirs = real_setup
    from rqvae_ids.ids.encode import encode_chunked

    model = models.load_model(dirs["rqvae"])
    a, b = encode_chunked(model, x, 400), encode_chunked(model, x, 61)
    assert a.path == "residual_search" and np.array_equal(a.codes, b.codes)
    np.testing.assert_allclose(a.distance, b.distance, rtol=1e-5, atol=1e-6)
    oracle = LatentOracle(model, x, a.codes)  # no known distances: recomputed from the latent
    np.testing.assert_allclose(a.distance, oracle.distance(np.arange(400)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("steps", [[400], [1, 5, 130, 131, 260, 399, 400], list(range(0, 401, 13)) + [400]])
def test_encoding_a_stream_of_blocks_is_encode_chunked_exactly(real_setup, steps):
    from rqvae_ids.ids.encode import encode_chunked, encode_stream

    _, _, x, dirs = real_setup
    model = models.load_model(dirs["rqvae"])
    blocks = [x[a:b] for a, b in zip([0, *steps], steps)]  # block ends at each step, some empty
    a = encode_chunked(model, x, 61)
    b = encode_stream(model, iter(blocks), len(x), 61)
    assert b.path == a.path == "residual_search" and b.vectors is None  # streamed through
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.distance, b.distance)  # bitwise
    kept = encode_stream(model, iter(blocks), len(x), 61, keep=True)
    assert np.array_equal(kept.codes, a.codes) and np.array_equal(kept.vectors, x)
    with pytest.raises(ValueError, match="only 200 of 400"):
        encode_stream(model, iter([x[:100], x[100:200]]), len(x), 61)
    with pytest.raises(ValueError, match="more than 400"):
        encode_stream(model, iter([x, x[:1]]), len(x), 61)


@pytest.mark.parametrize("resolve", ["suffix", "balanced"])
def test_streamed_assignment_writes_what_a_whole_read_writes(real_setup, monkeypatch, resolve):
    """suffix streams the embeddings through (nothing kept), balanced keeps them for its
    re-encoding; both must write exactly what reading the whole file first writes."""
    import pyarrow.parquet as pq

    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.ids import assign as assign_mod

    tmp, emb, _, dirs = real_setup
    kept = []
    real_read = assign_mod._read_vectors

    def spy(model, path, table, chunk_size, encode, keep=True):
        encoded = real_read(model, path, table, chunk_size, encode, keep)
        kept.append(table.vectors is not None)
        return encoded

    monkeypatch.setattr(assign_mod, "_read_vectors", spy)
    streamed = assign_ids(dirs["rqvae"], emb, tmp / f"stream-{resolve}", resolve=resolve, chunk_size=53)
    assert kept == [resolve != "suffix"] and streamed["encode_path"] == "residual_search"
    assert streamed["collisions"]["items_in_colliding_groups"] > 0  # the resolution had work to do

    def whole_read(model, path, table, chunk_size, encode, keep=True):
        table.vectors = read_embeddings(path).vectors
        return None  # assign_table encodes with encode_chunked

    monkeypatch.setattr(assign_mod, "_read_vectors", whole_read)
    assign_ids(dirs["rqvae"], emb, tmp / f"whole-{resolve}", resolve=resolve, chunk_size=53)
    for name in ("semantic_ids.parquet", "collisions.parquet"):
        assert pq.read_table(tmp / f"stream-{resolve}" / name).equals(pq.read_table(tmp / f"whole-{resolve}" / name))
