"""Constrained beam search on hand-built scorers, and the model's incremental scoring."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rqvae_ids.retrieval.tiger.beam import constrained_beam_search
from rqvae_ids.retrieval.tiger.model import BOS, SeqModelConfig, SeqModel
from rqvae_ids.retrieval.tiger.trie import SidTrie


class TableScorer:
    """log-probs of position d given the prefix: a fixed table, prefix -> (K,) logits."""

    def __init__(self, width, depth, seed=0, favour_invalid=False):
        self.k, self.depth = width, depth
        g = torch.Generator().manual_seed(seed)
        self.table = {}
        for d in range(depth):
            for pre in itertools.product(range(width), repeat=d):
                logits = torch.randn(width, generator=g) * 3
                if favour_invalid:
                    logits[-1] = 50.0  # value K-1 is made invalid by the test's catalog
                self.table[pre] = F.log_softmax(logits, dim=0)

    def start(self, batch):
        self.prefixes = [()] * batch
        return None, torch.stack([self.table[()] for _ in range(batch)])

    def step(self, state, parents, values, pos):
        self.prefixes = [self.prefixes[p] + (int(v),) for p, v in zip(parents.tolist(), values.tolist())]
        return None, torch.stack([self.table[p] for p in self.prefixes])

    def score(self, code):
        return sum(float(self.table[tuple(code[:d])][code[d]]) for d in range(self.depth))


def test_exhaustive_beam_returns_the_exact_ranking():
    codes = np.array([c for c in itertools.product(range(4), repeat=3) if sum(c) % 3 != 0])
    trie, scorer = SidTrie(codes), TableScorer(4, 3, seed=1)
    items, scores = constrained_beam_search(scorer, 2, trie, beam=len(codes))
    want = np.argsort([-scorer.score(c) for c in codes], kind="stable")
    assert items.shape == (2, len(codes))
    assert items[0].tolist() == want.tolist() == items[1].tolist()
    assert np.allclose(scores[0].numpy(), [scorer.score(codes[i]) for i in want], atol=1e-5)


def test_small_beam_keeps_the_clear_winners_and_only_valid_ids():
    # value 3 is never valid at any position, yet the scorer puts almost all mass on it
    codes = np.array(list(itertools.product(range(3), repeat=3)))
    trie, scorer = SidTrie(codes), TableScorer(4, 3, seed=2, favour_invalid=True)
    items, _ = constrained_beam_search(scorer, 3, trie, beam=5)
    assert (items >= 0).all() and (items < len(codes)).all()
    assert len(set(items[0].tolist())) == 5
    best = int(np.argmax([scorer.score(c) for c in codes]))
    assert items[0, 0] == best


def test_beam_larger_than_catalog_pads_with_minus_one():
    codes = np.array([[0, 1], [1, 0], [1, 1]])
    items, scores = constrained_beam_search(TableScorer(2, 2), 1, SidTrie(codes), beam=5)
    assert sorted(items[0, :3].tolist()) == [0, 1, 2] and items[0, 3:].tolist() == [-1, -1]
    assert torch.isinf(scores[0, 3:]).all()


@pytest.mark.parametrize("arch", ["decoder", "encdec"])
def test_incremental_scoring_matches_full_forward(arch):
    torch.manual_seed(0)
    cfg = SeqModelConfig(depth=3, width=5, arch=arch, dropout=0.0, n_layer=2, d_model=32)
    m = SeqModel(cfg).eval()
    hist = torch.tensor([[0, 0, 0, 2, 8, 12, 3, 9, 15], [2, 7, 13, 4, 8, 14, 3, 9, 15]])  # left-padded
    st, _ = m.start(hist)
    v0, v1 = torch.tensor([1, 2, 3, 3]), torch.tensor([0, 4, 1, 2])
    st, lp1 = m.step(st, torch.tensor([0, 0, 1, 1]), v0, 1)  # two beams per user
    st, lp2 = m.step(st, torch.arange(4), v1, 2)
    for r in range(4):
        h = hist[r // 2][hist[r // 2] != 0]
        gen = torch.stack([v0[r] + cfg.offset(0), v1[r] + cfg.offset(1)])
        if arch == "decoder":
            logits, _ = m(torch.cat([h, gen])[None])
            rows = logits[0, len(h) : len(h) + 2]
        else:
            logits, _ = m(h[None], torch.cat([torch.tensor([BOS]), gen])[None])
            rows = logits[0, 1:3]
        for row, lp, pos in ((rows[0], lp1[r], 1), (rows[1], lp2[r], 2)):
            o = cfg.offset(pos)
            assert torch.allclose(F.log_softmax(row[o : o + 5], -1), lp, atol=1e-5)
