"""Item-level retrievers (sasrec, parallel): exact scoring, ranking validity, learning,
reproducibility, and the harness protocol, on tiny catalogs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rqvae_ids.core.errors import UserError
from rqvae_ids.evaluate.harness import evaluate_retriever
from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
from rqvae_ids.retrieval.item.model import ItemModelConfig, ItemSeqModel, score_items
from rqvae_ids.retrieval.item.retriever import ItemRetriever
from rqvae_ids.retrieval.item.trainer import ItemRetrieverConfig, recommend, train, windows

REPO = Path(__file__).resolve().parents[1]
TINY = ItemRetrieverConfig(d_model=32, n_layer=1, n_head=2, dropout=0.1, batch_size=32, lr=5e-3, warmup_steps=5,
                           max_epochs=3, patience=10, max_minutes=0, device="cpu")
N = 40
QUIET = lambda m: None  # noqa: E731


def walk_data(seed=0, users=150):
    """Users walk the catalog in steps of +1 (mod N): the next item is obvious."""
    rng = np.random.default_rng(seed)
    seqs = [(rng.integers(N) + np.arange(rng.integers(4, 9))) % N for _ in range(users)]
    return leave_one_out([f"u{i}" for i in range(users)], seqs)


def tiny_codes(depth=3, width=4, seed=0):
    return np.random.default_rng(seed).integers(0, width, (N, depth))


def test_exact_scorer_equals_brute_force_loop():
    rng = np.random.default_rng(1)
    codes = tiny_codes(depth=4, width=5)
    logp = torch.log_softmax(torch.from_numpy(rng.normal(size=(3, 4, 5))).float(), -1)
    flat = torch.from_numpy(codes + np.arange(4) * 5)
    fast = score_items(logp, flat).numpy()
    for b in range(3):
        for n in range(N):
            expect = sum(float(logp[b, d, codes[n, d]]) for d in range(4))
            assert fast[b, n] == pytest.approx(expect, abs=1e-5)


def test_model_scores_match_per_digit_softmax():
    codes = tiny_codes()
    m = ItemSeqModel(ItemModelConfig(n_items=N, head="parallel", depth=3, width=4, d_model=16, n_head=2), codes).eval()
    x = torch.tensor([[1, 2, 3, N]])
    scores = m.score_last(x, torch.tensor([3]))
    lp = torch.log_softmax(m.logits(m(x)[0, 2:3]), -1)[0]  # (D, K)
    brute = torch.stack([sum(lp[d, codes[n, d]] for d in range(3)) for n in range(N)])
    assert torch.allclose(scores[0], brute, atol=1e-5)


@pytest.mark.parametrize("head", ["sasrec", "parallel"])
def test_ranking_is_valid_items_once_without_history(head):
    split = walk_data()
    r = ItemRetriever(N, replace(TINY, head=head, max_epochs=1), tiny_codes() if head == "parallel" else None, log=QUIET)
    r.fit(split.train)
    hist = split.test_histories[:50]
    rec = r.recommend(hist, 20)
    assert rec.shape == (50, 20)
    for h, row in zip(hist, rec):
        assert len(set(row.tolist())) == 20  # never an item twice
        assert ((row >= 0) & (row < N)).all()  # never a non-item
        assert not set(row.tolist()) & set(h.tolist())  # never the user's own history


def test_windows_score_every_target_once_with_truncated_history():
    seqs = [np.arange(7), np.arange(2)]
    x, y = windows(seqs, 100, 4)
    targets = sorted(y[y >= 0].tolist())
    assert targets == sorted(list(range(1, 7)) + [1])
    # the window ending at item 6 sees exactly items 2..5
    row = np.where((y == 6).any(1))[0][0]
    assert x[row][y[row] == 6].tolist() == [5] and x[row][:4].tolist() == [2, 3, 4, 5]


@pytest.mark.parametrize("head", ["sasrec", "parallel"])
def test_learns_the_obvious_next_item(head):
    split = walk_data()
    cfg = replace(TINY, head=head, max_epochs=25, dropout=0.0, lr=1e-2)
    codes = np.stack([np.arange(N) // 8, np.arange(N) % 8], 1) if head == "parallel" else None
    r = ItemRetriever(N, cfg, codes, log=QUIET).fit(split.train, (split.valid_histories, split.valid_targets))
    m = evaluate_retriever(r, split)
    assert m["next_recall@5"] > 0.5, m  # random: 5/40


def test_loss_goes_down_on_demo_catalog():

    import pandas as pd

    items = pd.read_csv(REPO / "data" / "demo" / "items.csv", dtype=str)["item_id"].tolist()
    users, seqs, order = load_interactions(REPO / "data" / "demo" / "interactions.csv", items, log=lambda m: None)
    split = leave_one_out(users[:300], seqs[:300])  # a slice keeps the test fast
    codes = np.random.default_rng(0).integers(0, 16, (len(items), 4))
    _, rep = train(len(items), split.train, None, None, replace(TINY, head="parallel", max_epochs=4), codes=codes,
                   log=lambda m: None)
    losses = [h["loss"] for h in rep["history"]]
    assert losses[-1] < losses[0] - 0.1, losses


@pytest.mark.parametrize("head", ["sasrec", "parallel"])
def test_seeded_cpu_runs_repeat_exactly(head):
    split = walk_data()
    codes = tiny_codes() if head == "parallel" else None
    outs = []
    for _ in range(2):
        model, rep = train(N, split.train, None, None, replace(TINY, head=head, max_epochs=2), codes=codes, log=lambda m: None)
        outs.append(([h["loss"] for h in rep["history"]], recommend(model, split.test_histories, 10, 20)))
    assert outs[0][0] == outs[1][0]
    assert np.array_equal(outs[0][1], outs[1][1])


def test_parallel_with_content_scores_through_codes_and_text():
    split = walk_data()
    vec = np.random.default_rng(0).normal(size=(N, 8)).astype(np.float32)
    r = ItemRetriever(N, replace(TINY, head="parallel", content=True, max_epochs=1), tiny_codes(), vec, log=QUIET)
    r.fit(split.train)
    assert r.recommend(split.test_histories[:3], 5).shape == (3, 5)


def test_checkpoint_is_reused_on_rerun(tmp_path):
    split = walk_data()
    cfg = replace(TINY, head="sasrec", max_epochs=1)
    logs: list[str] = []
    a = ItemRetriever(N, cfg, out_dir=tmp_path, log=logs.append).fit(split.train, (split.valid_histories, split.valid_targets))
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob(".*.tmp"))
    b = ItemRetriever(N, cfg, out_dir=tmp_path, log=logs.append).fit(split.train, (split.valid_histories, split.valid_targets))
    assert any("reusing" in m for m in logs)
    assert np.array_equal(a.recommend(split.test_histories, 10), b.recommend(split.test_histories, 10))


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError):
        ItemRetriever(N, replace(TINY, head="parallel"), None)
    with pytest.raises(UserError):
        ItemRetriever(N, replace(TINY, head="parallel"), np.zeros((N - 1, 3), np.int64))
    with pytest.raises(ValueError, match="multiple of n_head"):  # from_dict turns it into a UserError
        ItemRetrieverConfig(d_model=30, n_head=4)
    with pytest.raises(ValueError, match="parallel head only"):
        ItemRetrieverConfig(head="sasrec", content=True)
    with pytest.raises(UserError, match="too small"):
        ItemRetriever(5, replace(TINY, head="sasrec"))


def _write_cli_inputs(tmp_path, drop_item=None):
    split_seqs = [(np.random.default_rng(u).integers(N) + np.arange(6)) % N for u in range(60)]
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id,position\n" + "".join(
        f"u{u},i{i},{p}\n" for u, s in enumerate(split_seqs) for p, i in enumerate(s)))
    from rqvae_ids.ids.table import write_semantic_ids

    keep = [i for i in range(N) if i != drop_item]
    codes = np.stack([np.arange(N) // 8, np.arange(N) % 8 // 2, np.arange(N) % 2], 1)[keep]
    ids = tmp_path / "semantic_ids.parquet"
    write_semantic_ids(ids, [f"i{i}" for i in keep], codes[:, :2], codes[:, 2],
                       [f"<a_{a}><b_{b}><c_{c}>" for a, b, c in codes], ["x"] * len(keep),
                       {"kind": "test", "levels": 2, "codebook_size": 8, "suffix_token": True})
    return inter, ids


def test_cli_sasrec_trains_and_bad_input_writes_nothing(tmp_path, capsys):
    from rqvae_ids.cli import main

    inter, ids = _write_cli_inputs(tmp_path)
    out = tmp_path / "sas"
    base = ["retrieve-train", "--interactions", str(inter), "--layers", "1", "--d-model", "16", "--heads", "2",
            "--epochs", "1", "--device", "cpu"]
    assert main([*base, "--retriever", "sasrec", "--out", str(out)]) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert set(report["test"]) == {"next_recall@5", "next_ndcg@5", "next_recall@10", "next_ndcg@10"}
    assert {"model.safetensors", "config.json"} <= {p.name for p in out.iterdir()}
    for flags, words in ((["--retriever", "parallel"], "needs --ids"),
                         (["--retriever", "sasrec", "--beam", "20"], "--beam do(es) not apply"),
                         (["--retriever", "sasrec", "--temperature", "0.1"], "--temperature do(es) not apply")):
        capsys.readouterr()
        bad = tmp_path / "bad"
        assert main([*base, *flags, "--out", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rqvae-ids retrieve-train: error:") and words in err and "\n" not in err
        assert not bad.exists()


def test_cli_parallel_on_semantic_ids_and_coverage_error(tmp_path, capsys):
    from rqvae_ids.cli import main

    inter, ids = _write_cli_inputs(tmp_path)
    base = ["retrieve-train", "--interactions", str(inter), "--layers", "1", "--d-model", "16", "--heads", "2",
            "--epochs", "1", "--device", "cpu"]
    out = tmp_path / "par"
    assert main([*base, "--retriever", "parallel", "--ids", str(ids), "--out", str(out)]) == 0
    assert json.loads((out / "train_report.json").read_text())["retriever"] == "parallel"
    (tmp_path / "short").mkdir()
    _, short = _write_cli_inputs(tmp_path / "short", drop_item=5)
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main([*base, "--retriever", "parallel", "--ids", str(short), "--out", str(bad)]) == 2
    assert "do(es) not cover 1 item(s) of the interactions (e.g. 'i5')" in capsys.readouterr().err
    assert not bad.exists()
