"""SidTrie: every path it allows ends on an existing ID, and it allows every ID."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rqvae_ids.core.errors import UserError
from rqvae_ids.retrieval.tiger.trie import SidTrie


@st.composite
def code_sets(draw):
    depth = draw(st.integers(1, 4))
    width = draw(st.integers(1, 6))
    tuples = draw(st.sets(st.tuples(*[st.integers(0, width - 1)] * depth), min_size=1, max_size=60))
    order = draw(st.permutations(sorted(tuples)))
    return np.array(order, dtype=np.int64).reshape(-1, depth)


@settings(max_examples=40, deadline=None)
@given(codes=code_sets(), seed=st.integers(0, 2**31 - 1))
def test_random_walks_only_reach_existing_ids(codes, seed):
    trie = SidTrie(codes)
    ids = {tuple(c) for c in codes.tolist()}
    rng = np.random.default_rng(seed)
    for _ in range(20):  # a walk choosing uniformly among allowed values never dead-ends
        node, path = 0, []
        for _d in range(trie.depth):
            allowed = np.flatnonzero(trie.allowed(np.array([node]))[0])
            assert len(allowed) > 0
            v = int(rng.choice(allowed))
            path.append(v)
            node = int(trie.step(np.array([node]), np.array([v]))[0])
        assert tuple(path) in ids
        assert node - trie.n_internal == trie.lookup(np.array([path]))[0]
    # every ID is reachable and maps to its own row; allowed sets are exactly the ID prefixes
    assert (trie.lookup(codes) == np.arange(len(codes))).all()
    for d in range(trie.depth):
        prefixes = {tuple(c[:d]) for c in codes.tolist()}
        for pre in prefixes:
            node = 0
            for v in pre:
                node = int(trie.step(np.array([node]), np.array([v]))[0])
            want = {c[d] for c in codes.tolist() if tuple(c[:d]) == pre}
            assert set(np.flatnonzero(trie.allowed(np.array([node]))[0]).tolist()) == want


@settings(max_examples=30, deadline=None)
@given(codes=code_sets(), probe=st.lists(st.integers(-1, 7), min_size=1, max_size=4))
def test_lookup_rejects_non_ids(codes, probe):
    trie = SidTrie(codes)
    probe = (probe * 4)[: trie.depth]
    got = trie.lookup(np.array([probe]))[0]
    ids = {tuple(c): i for i, c in enumerate(codes.tolist())}
    assert got == ids.get(tuple(probe), -1)


def test_duplicate_ids_are_refused():
    with pytest.raises(UserError, match="unique"):
        SidTrie(np.array([[0, 1], [0, 1], [1, 0]]))


def test_join_suffix_only_when_the_ids_carry_a_suffix_token():
    from rqvae_ids.retrieval.tiger.generative import join_suffix

    codes, suffix = np.array([[1, 2], [1, 2]]), np.array([0, 1])
    assert join_suffix(codes, suffix).tolist() == [[1, 2, 0], [1, 2, 1]]
    assert join_suffix(codes, suffix, suffix_token=False).tolist() == [[1, 2], [1, 2]]
    assert join_suffix(codes, None).tolist() == [[1, 2], [1, 2]]


def test_width_is_the_stored_codebook_size_not_the_largest_code():
    codes = np.array([[0, 1], [2, 0], [1, 2]])  # codebook of 8, but no item uses a code above 2
    assert SidTrie(codes).width == 3  # no width stored (old checkpoints): derived from the data
    trie = SidTrie(codes, width=8)
    assert trie.width == 8 and trie.next_node.shape[1] == 8
    assert (trie.lookup(codes) == np.arange(3)).all() and trie.lookup(np.array([[7, 7]]))[0] == -1
    with pytest.raises(UserError, match="does not fit the codebook size 2"):
        SidTrie(codes, width=2)


def test_sid_width_reads_the_ids_metadata():
    from types import SimpleNamespace

    from rqvae_ids.retrieval.tiger.generative import sid_width

    assert sid_width(SimpleNamespace(metadata={"codebook_size": 16, "suffix_size": 16}, suffix_token=True)) == 16
    assert sid_width(SimpleNamespace(metadata={"codebook_size": 16, "suffix_size": 0}, suffix_token=False)) == 16
    assert sid_width(SimpleNamespace(metadata={}, suffix_token=True)) is None  # older files: derived from codes
