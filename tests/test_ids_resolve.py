import numpy as np
import pytest

from rqvae_ids.core.errors import UserError
from rqvae_ids.ids.resolve import resolve_reassign, resolve_suffix


class TableOracle:
    """Hand-made latent geometry: a residual before the last level per item, and a last codebook."""

    def __init__(self, residual, last_codebook, codes):
        self.residual = np.asarray(residual, np.float32)
        self.last_codebook = np.asarray(last_codebook, np.float32)
        self.codes = codes
        self.calls = []

    def residual_before_last(self, idx):
        self.calls.append(np.asarray(idx).tolist())
        return self.residual[idx]

    def distance(self, idx):
        r = self.residual_before_last(idx)
        return np.linalg.norm(r - self.last_codebook[self.codes[idx, -1]], axis=1)


# last-level codebook on a line: code k sits at x = k
BOOK = np.array([[0.0], [1.0], [2.0], [3.0]])


def test_suffix_orders_by_distance_then_item_id():
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [1, 1]])
    ids = np.array(["z", "y", "s", "x", "w"], dtype=object)
    # distances to codeword 1: |r - 1| -> z 0.5, y 0.1, x 0.5 (tie with z; x < z)
    oracle = TableOracle([[1.5], [1.1], [3.0], [0.5], [1.0]], BOOK, codes)
    res = resolve_suffix(codes, ids, 4, oracle)
    assert res.suffix.tolist() == [2, 0, 0, 1, 0]
    assert oracle.calls == [[0, 1, 3]]  # only colliding items need their latent
    assert res.report["items_with_suffix_gt0"] == 2 and res.report["max_suffix"] == 2
    again = resolve_suffix(codes, ids, 4, TableOracle(oracle.residual, BOOK, codes))
    assert np.array_equal(again.suffix, res.suffix)


def test_suffix_group_larger_than_suffix_space_is_clear_error():
    codes = np.zeros((5, 2), np.int64)
    oracle = TableOracle(np.zeros((5, 1)), BOOK, codes)
    with pytest.raises(UserError, match=r"5 items share codes <a_0><b_0>.*4 values.*bigger codebook_size or more levels"):
        resolve_suffix(codes, np.array(list("abcde"), dtype=object), 4, oracle)


def test_suffix_free_items_skip_held_suffixes():
    codes = np.array([[0, 1]] * 4)
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    held = np.array([True, False, True, False])
    held_suffix = np.array([0, 0, 2, 0])
    oracle = TableOracle([[1.0], [1.3], [1.0], [1.1]], BOOK, codes)
    res = resolve_suffix(codes, ids, 4, oracle, held, held_suffix)
    # held keep 0 and 2; free d (closer) then b take the free 1 and 3
    assert res.suffix.tolist() == [0, 3, 2, 1]


def test_reassign_moves_to_nearest_free_code_and_reports_distortion():
    codes = np.array([[0, 1], [0, 1], [0, 2], [1, 1]])
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    # a is closer to code 1 than b; b's nearest free code under prefix 0 is 0 (2 is taken by c)
    oracle = TableOracle([[1.0], [1.4], [2.0], [1.0]], BOOK, codes)
    res = resolve_reassign(codes, ids, 4, oracle)
    assert res.codes.tolist() == [[0, 1], [0, 0], [0, 2], [1, 1]]
    assert res.suffix.tolist() == [0, 0, 0, 0]
    r = res.report
    assert r["items_moved"] == 1
    assert r["distortion_before_mean_moved"] == pytest.approx(0.4, abs=1e-6)
    assert r["distortion_after_mean_moved"] == pytest.approx(1.4, abs=1e-6)
    assert r["distortion_added_mean_moved"] == pytest.approx(1.0, abs=1e-6)


def test_reassign_greedy_is_global_within_prefix_and_respects_held():
    codes = np.array([[0, 1]] * 3 + [[0, 3]])
    ids = np.array(["a", "b", "c", "h"], dtype=object)
    held = np.array([False, False, False, True])
    # held h owns (0,3); a keeps (0,1) (closest); b at 2.9 wants 3 (held) -> 2; c at 0.2 -> 0
    oracle = TableOracle([[1.0], [2.9], [0.2], [3.0]], BOOK, codes)
    res = resolve_reassign(codes, ids, 4, oracle, held)
    assert res.codes[:, 1].tolist() == [1, 2, 0, 3]


def test_reassign_full_prefix_is_clear_error():
    codes = np.array([[0, 0]] * 5)
    oracle = TableOracle(np.zeros((5, 1)), BOOK, codes)
    with pytest.raises(UserError, match="share the prefix <a_0>.*only 4 last-level codes"):
        resolve_reassign(codes, np.array(list("abcde"), dtype=object), 4, oracle)


def test_both_resolutions_unique_on_random_codes():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 8, size=(50, 3))
    codes[:, 1] //= 4  # crowd the prefixes (16 of them) so many tuples collide
    ids = np.array([f"i{j}" for j in range(50)], dtype=object)
    book = np.arange(8.0)[:, None]
    oracle = TableOracle(rng.standard_normal((50, 1)) * 3, book, codes)
    s = resolve_suffix(codes, ids, 8, oracle)
    assert s.report["max_suffix"] > 0
    full = np.concatenate([s.codes, s.suffix[:, None]], 1)
    assert len(np.unique(full, axis=0)) == 50
    r = resolve_reassign(codes, ids, 8, oracle)
    assert r.report["items_moved"] > 0
    assert len(np.unique(r.codes, axis=0)) == 50
    assert np.array_equal(r.codes[:, :2], codes[:, :2])  # only the last level moves
    r2 = resolve_reassign(codes, ids, 8, oracle)
    assert np.array_equal(r.codes, r2.codes)
