"""Harness (history policy, metrics) and the no-LM retrievers on hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rqvae_ids.evaluate.harness import evaluate_retriever, fit_retriever, rank_excluding_history, target_in_history_share
from rqvae_ids.evaluate.ranking import next_item_metrics
from rqvae_ids.evaluate.baselines import EmbeddingKnnRetriever, PopularityRetriever, SidPrefixRetriever
from rqvae_ids.evaluate.sequences import leave_one_out


def test_recall_and_ndcg_hand_checked():
    rec = np.array([[5, 1, 2, 3, 4, 6, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    m = next_item_metrics(rec, np.array([5, 2, 99]))
    assert m["next_recall@5"] == pytest.approx(2 / 3)
    assert m["next_ndcg@5"] == pytest.approx((1.0 + 1 / math.log2(3)) / 3)
    m = next_item_metrics(rec, np.array([7, 10, 0]))
    assert m["next_recall@5"] == 0 and m["next_recall@10"] == pytest.approx(2 / 3)
    assert m["next_ndcg@10"] == pytest.approx((1 / math.log2(8) + 1 / math.log2(11)) / 3)


def test_rank_excluding_history_drops_history_keeps_order_and_pads():
    def recommend(histories, k):
        assert k == 2 + 3  # k + longest history
        return np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [0, 1, -1, -1, -1]])

    out = rank_excluding_history(recommend, [np.array([1, 3, 9]), np.array([4]), np.array([0, 1])], 2)
    np.testing.assert_array_equal(out, [[0, 2], [3, 2], [-1, -1]])


def _split():
    # 4 users; train = seq[:-2], valid target = seq[-2], test target = seq[-1].
    seqs = [np.array([0, 2, 1, 3]), np.array([0, 1, 0]), np.array([4, 5, 4, 5]), np.array([3, 2, 1])]
    return leave_one_out(["a", "b", "c", "d"], seqs, max_history=20, order_column="position")


def test_popularity_uses_training_items_only():
    split = _split()
    r = fit_retriever(PopularityRetriever(6), split)
    # train items: [0,2], [0], [4,5], [3] -> 0 most popular, then by index.
    np.testing.assert_array_equal(r.recommend([np.array([1])], 3), [[0, 2, 3]])
    assert target_in_history_share(split) == pytest.approx(2 / 4)  # users b, c repeat an item


def test_sid_prefix_ranks_deeper_prefix_then_popularity():
    codes = np.array([[0, 0], [0, 0], [0, 1], [0, 1], [1, 0], [1, 1]])
    r = SidPrefixRetriever(codes, decays=(1.0,), bases=(2.0,))
    r.fit([np.array([3, 3, 5, 5]), np.array([2, 4])])  # popularity: 3 > 2, 5 > 4
    ranked = rank_excluding_history(r.recommend, [np.array([0])], 5)
    # 1 shares two levels with 0; 2, 3 share one (3 more popular); 4, 5 none (5 more popular).
    np.testing.assert_array_equal(ranked, [[1, 3, 2, 5, 4]])
    s = r.scores([np.array([0])])[0]
    assert s[1] == pytest.approx(3.0, abs=1e-6) and s[2] == pytest.approx(1.0, abs=1e-6)


def test_sid_prefix_recency_decay_prefers_recent_items():
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    r = SidPrefixRetriever(codes, decays=(0.5,), bases=(1.0,)).fit([np.array([0])])
    ranked = rank_excluding_history(r.recommend, [np.array([0, 2])], 2)  # 2 is the most recent
    np.testing.assert_array_equal(ranked, [[3, 1]])


def test_sid_prefix_tuning_uses_validation_and_better_ids_win():
    rng = np.random.default_rng(0)
    n, groups = 120, 12
    group = np.arange(n) % groups
    seqs = [rng.choice(np.flatnonzero(group == rng.integers(groups)), 6) for _ in range(200)]
    split = leave_one_out([str(i) for i in range(200)], seqs)
    good = np.stack([group, np.arange(n) // groups], axis=1)
    bad = np.stack([rng.permutation(group), np.arange(n) // groups], axis=1)
    rg = fit_retriever(SidPrefixRetriever(good, tune_users=100), split)
    rb = fit_retriever(SidPrefixRetriever(bad, tune_users=100), split)
    assert set(rg.tuned) >= {"decay", "base", "valid_recall@10"}
    assert evaluate_retriever(rg, split)["next_recall@10"] > 2 * evaluate_retriever(rb, split)["next_recall@10"]


def test_embedding_knn_tunes_n_on_validation():
    # Items on a circle; every user walks 2 steps a time: the next item is closest to the last one.
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    seqs = [(s + 2 * np.arange(8)) % 60 for s in range(60)]
    split = leave_one_out([str(i) for i in range(60)], seqs)
    r = fit_retriever(EmbeddingKnnRetriever(vectors, n_grid=(1, 2, 3)), split)
    assert r.n_last == 1 and r.tuned["valid_recall@10"][1] == 1.0
    assert evaluate_retriever(r, split)["next_recall@5"] == 1.0


def test_sid_prefix_sparse_ranking_equals_dense_scoring():
    # recommend ranks only the items sharing a prefix with the history and tops up by popularity;
    # it must give exactly the ranking of the dense (B, N) scores, including items whose tiny
    # decayed scores round to zero (decay 0.01 over long histories) and k beyond the scored items.
    rng = np.random.default_rng(3)
    n = 400
    codes = np.stack([rng.integers(0, 6, n), rng.integers(0, 4, n), rng.integers(0, 3, n)], axis=1)
    train = [rng.integers(0, n, rng.integers(2, 30)) for _ in range(300)]
    histories = [rng.integers(0, n, rng.integers(1, 25)) for _ in range(50)]
    for decay, base in [(0.01, 4.0), (0.5, 1.0), (1.0, 0.25)]:
        r = SidPrefixRetriever(codes, decays=(decay,), bases=(base,), batch_size=7).fit(train)
        for k in (5, 150, n + 3):
            dense = np.argsort(-r.scores(histories), axis=1, kind="stable")[:, : min(k, n)]
            got = r.recommend(histories, k)
            np.testing.assert_array_equal(got[:, : min(k, n)], dense)
            assert (got[:, n:] == -1).all()
