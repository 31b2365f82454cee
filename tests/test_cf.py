"""Collaborative item embeddings (rqvae_ids/cf/): no leak of validation/test targets, cache."""

from __future__ import annotations

import numpy as np
import pytest

from rqvae_ids.cf import CFConfig, build_cf_table, read_cf_table
from rqvae_ids.core.errors import UserError


def write_interactions(path, rows):
    path.write_text("user_id,item_id,position\n" + "".join(f"{u},{i},{p}\n" for u, i, p in rows))
    return path


def clustered_sequences(n_users=60, seed=0):
    """Users browse one of three item groups (a0..a9, b0..b9, c0..c9), 6 items each."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = "abc"[u % 3]
        for p, j in enumerate(rng.choice(10, size=6, replace=False)):
            rows.append((f"u{u}", f"{group}{j}", p))
    return rows


CATALOG = [f"{g}{j}" for g in "abc" for j in range(10)] + ["valid_only", "test_only", "never"]


def test_validation_and_test_targets_get_no_cf_embedding(tmp_path):
    rows = clustered_sequences()
    # u_leak: ... a1 a2 valid_only test_only -> valid target valid_only, test target test_only
    rows += [("u_leak", i, p) for p, i in enumerate(["a1", "a2", "a3", "valid_only", "test_only"])]
    inter = write_interactions(tmp_path / "inter.csv", rows)
    table = build_cf_table(inter, CATALOG, tmp_path / "cf.parquet", CFConfig(dim=4, window=2))
    has = dict(zip(CATALOG, table.has))
    assert not has["valid_only"] and not has["test_only"] and not has["never"]
    assert not table.vectors[CATALOG.index("valid_only")].any()
    assert all(has[f"{g}{j}"] for g in "abc" for j in range(10))
    # the collaborative geometry: items of one group are closer to each other than to the others
    v = table.vectors
    a, b = v[:10], v[10:20]
    assert (a @ a.T).mean() > (a @ b.T).mean() + 0.2
    back = read_cf_table(tmp_path / "cf.parquet", CATALOG)
    np.testing.assert_array_equal(back.has, table.has)
    np.testing.assert_allclose(back.vectors, table.vectors)
    assert back.metadata["items_with_cf"] == 30 and back.metadata["items_total"] == len(CATALOG)


def test_cache_is_reused_and_keyed_by_interactions(tmp_path):
    inter = write_interactions(tmp_path / "inter.csv", clustered_sequences())
    out = tmp_path / "cf.parquet"
    build_cf_table(inter, CATALOG, out, CFConfig(dim=4))
    mtime = out.stat().st_mtime_ns
    build_cf_table(inter, CATALOG, out, CFConfig(dim=4))
    assert out.stat().st_mtime_ns == mtime  # same key: read back, not rewritten
    write_interactions(inter, clustered_sequences(seed=1))
    again = build_cf_table(inter, CATALOG, out, CFConfig(dim=4))
    assert out.stat().st_mtime_ns != mtime and again.metadata["interactions_sha256"] != ""


def test_another_catalog_and_unusable_interactions_are_clear_errors(tmp_path):
    inter = write_interactions(tmp_path / "inter.csv", clustered_sequences())
    build_cf_table(inter, CATALOG, tmp_path / "cf.parquet", CFConfig(dim=4))
    with pytest.raises(UserError, match="another catalog"):
        read_cf_table(tmp_path / "cf.parquet", CATALOG[:-1])
    short = write_interactions(tmp_path / "short.csv", [("u1", "a1", 0), ("u1", "a2", 1)])
    with pytest.raises(UserError, match="3 or more"):
        build_cf_table(short, CATALOG, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_interactions_of_items_outside_the_catalog_are_dropped_counted_and_said(tmp_path):
    rows = clustered_sequences() + [("u1", "gone1", 10), ("u2", "gone2", 11), ("u3", "gone1", 12)]
    inter = write_interactions(tmp_path / "inter.csv", rows)
    said = []
    table = build_cf_table(inter, CATALOG, tmp_path / "cf.parquet", CFConfig(dim=4), log=said.append)
    assert len(said) == 1 and "dropped 3 of 363 rows" in said[0] and "not in the catalog" in said[0]
    used = read_cf_table(tmp_path / "cf.parquet", CATALOG).metadata["interactions"]
    assert used["notes"] == said and used["users"] == 60 and used["train_interactions"] == 60 * 4
    assert table.has.sum() == 30


def test_cooccurrence_counts_pairs_within_each_sequence_only():
    from rqvae_ids.cf.vectors import cooccurrence

    # Two sequences end to end must not pair the last item of one with the first of the next.
    counts = cooccurrence([np.array([0, 1, 2]), np.array([3, 3, 1]), np.array([4])], 5, window=2).toarray()
    expected = np.zeros((5, 5))
    for a, b, w in [(0, 1, 1.0), (1, 2, 1.0), (0, 2, 0.5), (3, 1, 1.0), (3, 1, 0.5)]:  # 3-3: a self-pair
        expected[a, b] += w
        expected[b, a] += w
    np.testing.assert_allclose(counts, expected)


def test_randomized_svd_finds_the_top_singular_pairs():
    import scipy.sparse as sp

    from rqvae_ids.cf.vectors import orthonormal, randomized_svd

    rng = np.random.default_rng(0)
    u0 = np.linalg.qr(rng.standard_normal((300, 8)))[0]
    dense = (u0 * np.array([50, 40, 30, 20, 10, 5, 2, 1.0])) @ u0.T + 1e-3 * rng.standard_normal((300, 300))
    u, s = randomized_svd(sp.csr_matrix(dense), 4, seed=0)
    exact_u, exact_s, _ = np.linalg.svd(dense)
    np.testing.assert_allclose(s, exact_s[:4], rtol=1e-4)
    np.testing.assert_allclose(np.abs(u.T @ exact_u[:, :4]), np.eye(4), atol=1e-3)  # same vectors up to sign
    # Nearly dependent columns fall back to Householder QR and stay orthonormal.
    a = np.repeat(rng.standard_normal((50, 1)), 3, axis=1) + 1e-12 * rng.standard_normal((50, 3))
    q = orthonormal(a)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-8)
