"""The `hybrid` item-level retriever: semantic-ID codes (and ID, and text) as item features.

The composed table against a brute-force loop, new items (ID part exactly zero, never a
training negative), every parts subset trains, learning, seeded repeatability, sampled
softmax with logQ, bad input, and the CLI."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from rqvae_ids.core.config import from_dict
from rqvae_ids.core.errors import UserError
from rqvae_ids.evaluate.harness import evaluate_retriever
from rqvae_ids.retrieval.item.features import PARTS
from rqvae_ids.retrieval.item.model import ItemModelConfig, ItemSeqModel
from rqvae_ids.retrieval.item.retriever import ItemRetriever
from rqvae_ids.retrieval.item.trainer import ItemRetrieverConfig, NegativeSampler, recommend, seen_items, train

from test_item_retrievers import N, QUIET, TINY, _write_cli_inputs, walk_data

HYB = replace(TINY, head="hybrid")
SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(PARTS, r)]


def features(depth=3, width=4, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, width, (N, depth)), rng.normal(size=(N, dim)).astype(np.float32)


def hybrid_model(parts=PARTS, **kw):
    codes, vec = features()
    cfg = ItemModelConfig(n_items=N, head="hybrid", depth=3, width=4, d_model=16, n_head=2, content_dim=8,
                          parts=parts, **kw)
    return ItemSeqModel(cfg, codes, vec), codes, vec


@pytest.mark.parametrize("compose", ["sum", "concat"])
def test_composed_table_equals_brute_force_loop(compose):
    m, codes, vec = hybrid_model(compose=compose)
    seen = np.ones(N, bool)
    seen[[3, 7]] = False
    m.set_seen(seen)
    m.eval()
    f = m.features
    table = m.item_table().detach()
    for n in range(N):
        parts = [f.ids.weight[n] * float(seen[n]),
                 sum(f.codes.weight[d * 4 + codes[n, d]] for d in range(3)),
                 f.text.weight @ torch.from_numpy(vec[n])]
        expect = sum(parts) if compose == "sum" else f.mix.weight @ torch.cat(parts)
        assert torch.allclose(table[n], expect.detach(), atol=1e-5)


def test_new_item_id_part_is_exactly_zero_at_scoring():
    m, codes, vec = hybrid_model(item_bias=True)
    seen = np.ones(N, bool)
    seen[5] = False
    m.set_seen(seen)
    m.eval()
    with torch.no_grad():
        m.bias.fill_(1.0)
        before = m.score_last(torch.tensor([[1, 2, N]]), torch.tensor([2]))
        m.features.ids.weight[5].normal_(std=10.0)  # an untrained ID row must not matter
        after = m.score_last(torch.tensor([[1, 2, N]]), torch.tensor([2]))
    assert torch.equal(before[:, 5], after[:, 5])
    h = m(torch.tensor([[1, 2]]), m.item_table())[0, 1]
    no_id = m.features.codes(m.features.flat_codes[5]).sum(0) + m.features.text(m.features.item_vectors[5])
    assert torch.allclose(after[0, 5], h @ no_id, atol=1e-5)  # codes + text only, bias 0 for a new item


def test_unseen_items_are_no_training_negatives():
    split = walk_data()
    cold = np.array([4, 9])
    train_seqs = [s[~np.isin(s, cold)] for s in split.train]
    model, _ = train(N, train_seqs, None, None, replace(HYB, max_epochs=2), *features(), log=QUIET)
    seen = seen_items(train_seqs, N)
    assert not seen[cold].any() and model.seen.numpy().tolist() == seen.tolist()
    model.train()
    x = torch.tensor([[0, 1, 2, 3]])
    y = torch.tensor([[1, 2, 3, 5]])
    model.zero_grad()
    model.loss(x, y).backward()
    # a cold item's ID row gets no gradient (never an input, never in the softmax)
    assert model.features.ids.weight.grad[cold].abs().max() == 0
    sampler = NegativeSampler.build(replace(HYB, negatives=30), np.array([1, 2, 3]), seen)
    drawn, log_q = sampler.draw(np.random.default_rng(0), 500)
    assert log_q is None and not np.isin(drawn, cold).any()


@pytest.mark.parametrize("parts", SUBSETS, ids=[",".join(s) for s in SUBSETS])
def test_every_parts_subset_trains_and_ranks(parts):
    split = walk_data()
    codes, vec = features()
    r = ItemRetriever(N, replace(HYB, parts=parts, max_epochs=1), codes, vec, log=QUIET).fit(split.train)
    assert np.isfinite(r.report["history"][0]["loss"])
    rec = r.recommend(split.test_histories[:20], 10)
    for h, row in zip(split.test_histories[:20], rec):
        assert len(set(row.tolist())) == 10 and not set(row.tolist()) & set(h.tolist())


@pytest.mark.parametrize("parts", [("id", "codes", "text"), ("codes", "text")])
def test_learns_the_obvious_next_item(parts):
    split = walk_data()
    codes = np.stack([np.arange(N) // 8, np.arange(N) % 8], 1)
    vec = np.eye(N, 8, dtype=np.float32)
    cfg = replace(HYB, parts=parts, max_epochs=25, dropout=0.0, lr=1e-2)
    r = ItemRetriever(N, cfg, codes, vec, log=QUIET).fit(split.train, (split.valid_histories, split.valid_targets))
    assert evaluate_retriever(r, split)["next_recall@5"] > 0.5  # random: 5/40


def test_loss_goes_down_on_demo_catalog():
    from test_item_retrievers import REPO

    import pandas as pd

    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions

    items = pd.read_csv(REPO / "data" / "demo" / "items.csv", dtype=str)["item_id"].tolist()
    users, seqs, order = load_interactions(REPO / "data" / "demo" / "interactions.csv", items, log=QUIET)
    split = leave_one_out(users[:300], seqs[:300])
    rng = np.random.default_rng(0)
    codes, vec = rng.integers(0, 16, (len(items), 3)), rng.normal(size=(len(items), 8)).astype(np.float32)
    _, rep = train(len(items), split.train, None, None, replace(HYB, max_epochs=4, id_dropout=0.2), codes, vec,
                   log=QUIET)
    losses = [h["loss"] for h in rep["history"]]
    assert losses[-1] < losses[0] - 0.1, losses


@pytest.mark.parametrize("sampling", [None, "uniform", "popularity"])
def test_seeded_cpu_runs_repeat_exactly(sampling):
    split = walk_data()
    cfg = replace(HYB, max_epochs=2, id_dropout=0.3)
    if sampling:
        cfg = replace(cfg, negatives=16, negative_sampling=sampling)
    outs = []
    for _ in range(2):
        model, rep = train(N, split.train, None, None, cfg, *features(), log=QUIET)
        outs.append(([h["loss"] for h in rep["history"]], recommend(model, split.test_histories, 10, 20)))
    assert outs[0][0] == outs[1][0]
    assert np.array_equal(outs[0][1], outs[1][1])


def test_popularity_sampler_gives_logq_of_its_draws():
    seen = np.ones(N, bool)
    y = np.array([0, 0, 0, 1, -100])
    s = NegativeSampler.build(replace(HYB, negatives=4, negative_sampling="popularity"), y, seen)
    items, log_q = s.draw(np.random.default_rng(0), 4)
    assert set(items.tolist()) <= {0, 1}
    assert np.allclose(log_q, np.log(4 * np.where(items == 0, 0.75, 0.25)))


def test_bad_parts_are_one_line_errors():
    for parts, words in (([], "at least one"), (["id", "colour"], "unknown item part"), (["id", "id"], "repeat")):
        with pytest.raises(UserError, match=words):
            from_dict(ItemRetrieverConfig, {"head": "hybrid", "parts": parts}, where="--set")
    with pytest.raises(UserError, match="needs item codes"):
        ItemRetriever(N, HYB, None, features()[1])
    with pytest.raises(UserError, match="text embeddings"):
        ItemRetriever(N, HYB, features()[0], None)


def test_cli_hybrid_trains_and_bad_parts_write_nothing(tmp_path, capsys):
    from rqvae_ids.cli import main
    from rqvae_ids.core.embedding_table import write_embeddings

    inter, ids = _write_cli_inputs(tmp_path)
    emb = tmp_path / "embeddings.parquet"
    vec = np.random.default_rng(0).normal(size=(N, 8)).astype(np.float32)
    write_embeddings(emb, [f"i{i}" for i in range(N)], [f"{i:064x}" for i in range(N)],
                     vec / np.linalg.norm(vec, axis=1, keepdims=True), "test")
    base = ["retrieve-train", "--interactions", str(inter), "--layers", "1", "--d-model", "16", "--heads", "2",
            "--epochs", "1", "--device", "cpu", "--retriever", "hybrid"]
    out = tmp_path / "hyb"
    assert main([*base, "--ids", str(ids), "--content-embeddings", str(emb), "--out", str(out)]) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["retriever"] == "hybrid" and report["config"]["parts"] == ["id", "codes", "text"]
    from rqvae_ids.retrieval.item.trainer import HEAD_DEFAULTS

    assert {k: report["config"][k] for k in HEAD_DEFAULTS["hybrid"] if k != "max_epochs"} == {
        k: v for k, v in HEAD_DEFAULTS["hybrid"].items() if k != "max_epochs"}  # the hybrid's own defaults
    out2 = tmp_path / "notext"
    assert main([*base, "--ids", str(ids), "--item-parts", "id,codes", "--out", str(out2)]) == 0
    for flags, words in ((["--item-parts", ""], "at least one"), (["--item-parts", "id,size"], "unknown item part"),
                         (["--item-parts", "id,codes"], "needs --ids"),
                         (["--ids", str(ids)], "needs --content-embeddings")):
        capsys.readouterr()
        bad = tmp_path / "bad"
        assert main([*base, *flags, "--out", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rqvae-ids retrieve-train: error:") and words in err and "\n" not in err, err
        assert not bad.exists()


def test_text_match_adds_scaled_cosine_to_the_mean_of_the_last_items():
    m, codes, vec = hybrid_model(text_match=2)
    m.eval()
    x, lengths = torch.tensor([[1, 2, 3, N], [4, N, N, N]]), torch.tensor([3, 1])
    with torch.no_grad():
        scores = m.score_last(x, lengths)
        table = m.item_table()
        h = m(x, table)
        unit = torch.from_numpy(vec / np.linalg.norm(vec, axis=1, keepdims=True))
        for b, (last, items) in enumerate(((2, [2, 3]), (0, [4]))):
            q = unit[items].sum(0)
            q = q / q.norm()
            expect = h[b, last] @ table.t() + m.match_scale * (unit @ q)
            assert torch.allclose(scores[b], expect, atol=1e-4)
