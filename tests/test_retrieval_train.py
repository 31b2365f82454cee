"""Training the generative retriever on a tiny synthetic catalog: loss goes down, seeded
runs repeat exactly, a resumed run equals an uninterrupted one, the retriever meets the
harness protocol, and the CLI writes its outputs without importing torch for --help."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from rqvae_ids.evaluate.ranking import next_item_metrics
from rqvae_ids.evaluate.sequences import leave_one_out
from rqvae_ids.retrieval.tiger.generative import GenerativeRetriever
from rqvae_ids.retrieval.tiger.trainer import CHECKPOINT, RetrievalConfig, train

N_ITEMS = 48
TINY = RetrievalConfig(n_layer=1, d_model=32, n_head=2, batch_size=32, max_epochs=2, warmup_steps=5,
                       lr=5e-3, beam=10, valid_users=0, patience=5, device="cpu")


def catalog(seed=0):
    """(N, 3) codes: 4 x 4 top levels + a suffix; users walk the catalog in steps of +1 (mod N)."""
    rng = np.random.default_rng(seed)
    codes = np.stack([np.arange(N_ITEMS) // 12, (np.arange(N_ITEMS) // 3) % 4, np.arange(N_ITEMS) % 3], axis=1)
    users = [f"u{i}" for i in range(120)]
    seqs = [(rng.integers(N_ITEMS) + np.arange(rng.integers(4, 9))) % N_ITEMS for _ in users]
    return codes, users, seqs


@pytest.fixture(scope="module")
def data():
    codes, users, seqs = catalog()
    return codes, leave_one_out(users, seqs)


@pytest.mark.parametrize("arch", ["decoder", "encdec"])
def test_training_reduces_the_loss(data, arch):
    codes, split = data
    _, rep = train(codes, split.train, None, None, replace(TINY, arch=arch, max_epochs=4), log=lambda *_: None)
    losses = [h["loss"] for h in rep["history"]]
    assert losses[-1] < 0.9 * losses[0]


def test_seeded_runs_repeat_exactly(data):
    codes, split = data
    valid = (split.valid_histories, split.valid_targets)
    (m1, r1), (m2, r2) = (train(codes, split.train, valid, None, TINY, log=lambda *_: None) for _ in range(2))
    assert [h["loss"] for h in r1["history"]] == [h["loss"] for h in r2["history"]]
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_equals_an_uninterrupted_run(data, tmp_path):
    codes, split = data
    quiet = lambda *_: None  # noqa: E731
    full, _ = train(codes, split.train, None, tmp_path / "a", TINY, log=quiet)

    def crash_after_epoch_1(line):
        if str(line).startswith("epoch=1"):
            raise KeyboardInterrupt  # killed right after the epoch-1 checkpoint was written

    with pytest.raises(KeyboardInterrupt):
        train(codes, split.train, None, tmp_path / "b", TINY, log=crash_after_epoch_1)
    assert (tmp_path / "b" / CHECKPOINT).is_file()
    lines = []
    resumed, rep = train(codes, split.train, None, tmp_path / "b", TINY, log=lines.append)
    assert any("resumed" in str(x) for x in lines)
    assert rep["epochs"] == 2 and len(rep["history"]) == 2
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_retriever_meets_the_protocol(data, tmp_path):
    codes, split = data
    r = GenerativeRetriever(codes, replace(TINY, max_epochs=3), tmp_path, log=lambda *_: None)
    assert r.name == "generative" and r.history_extra == 0
    r.fit(split.train, (split.valid_histories, split.valid_targets))
    rec = r.recommend(split.test_histories, 10)
    assert rec.shape == (len(split.test_histories), 10) and rec.dtype == np.int64
    assert ((rec >= 0) & (rec < N_ITEMS)).all()
    assert all(len(set(row)) == 10 for row in rec.tolist())
    assert not any(set(row) & set(h.tolist()) for row, h in zip(rec.tolist(), split.test_histories))
    m = next_item_metrics(rec, split.test_targets)
    assert set(m) == {"next_recall@5", "next_ndcg@5", "next_recall@10", "next_ndcg@10"}
    assert m["next_recall@10"] > 10 / N_ITEMS  # the +1 walk is learnable: beat a random ranking
    again = GenerativeRetriever.load(tmp_path, device="cpu", log=lambda *_: None)
    assert np.array_equal(again.recommend(split.test_histories, 10), rec)


def write_ids_and_interactions(tmp_path, codes, users, seqs):
    """semantic_ids.parquet (items i0.., 2 levels + suffix) and interactions.csv in tmp_path."""
    from rqvae_ids.ids.table import write_semantic_ids

    items = [f"i{i}" for i in range(len(codes))]
    ids = tmp_path / "semantic_ids.parquet"
    write_semantic_ids(ids, items, codes[:, :2], codes[:, 2], [f"<a_{a}><b_{b}><c_{c}>" for a, b, c in codes],
                       ["x"] * len(codes), {"kind": "test", "levels": 2, "codebook_size": 4, "suffix_token": True})
    inter = tmp_path / "interactions.csv"
    inter.write_text("user_id,item_id,position\n" + "".join(
        f"{u},{items[i]},{p}\n" for u, s in zip(users, seqs) for p, i in enumerate(s)))
    return ids, inter


def test_cli_trains_and_help_does_not_import_torch(tmp_path):
    from rqvae_ids.cli import main

    codes, users, seqs = catalog(1)
    ids, inter = write_ids_and_interactions(tmp_path, codes, users, seqs)
    out = tmp_path / "retr"
    rc = main(["retrieve-train", "--retriever", "tiger", "--ids", str(ids), "--interactions", str(inter), "--out", str(out),
               "--layers", "1", "--d-model", "32", "--heads", "2", "--epochs", "1", "--beam", "10", "--device", "cpu"])
    assert rc == 0
    report = json.loads((out / "train_report.json").read_text())
    assert set(report["test"]) == {"next_recall@5", "next_ndcg@5", "next_recall@10", "next_ndcg@10"}
    assert {"model.safetensors", "checkpoint.safetensors", "codes.npy", "config.json"} <= {p.name for p in out.iterdir()}
    assert main(["retrieve-train", "--retriever", "tiger", "--ids", str(ids), "--interactions", str(inter), "--out", str(out),
                 "--beam", "5"]) == 2  # bad config: one-line error, exit 2
    probe = "import sys; from rqvae_ids.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


# Every optional branch of the loop at once: user tokens, validation with early stopping, dropout.
# bench/bit_identity.py digests this run (one thread) to re-check bit identity across a refactor.
FULL = replace(TINY, max_epochs=3, user_buckets=8, valid_users=30, dropout=0.1, patience=2)


def full_run(data, arch, out, seed=0):
    """The FULL config trained on `data` with `arch` and `seed` into `out`: (model, report)."""
    codes, split = data
    cfg = replace(FULL, arch=arch, seed=seed)
    return train(codes, split.train, (split.valid_histories, split.valid_targets), out, cfg,
                 users=list(split.users), log=lambda *_: None)


# Last-epoch mean training loss of the FULL run at seed 0 on an AMD EPYC, torch 2.13 CPU, and its
# tolerance: the largest |seed s - seed 0| over seeds 0-9 x 1 and 2 torch threads there, times 1.5,
# rounded up (`bench/bit_identity.py spread`; seeds: decoder 1.138-1.267, encdec 0.920-1.198).
# Another CPU's float sums can move a run like another seed; measured, thread count moved nothing
# here and torch's AVX2 or generic kernels instead of AVX-512 moved the last loss by <= 1.2e-5.
FULL_LOSS = {"decoder": (1.177, 0.14), "encdec": (1.016, 0.28)}


@pytest.mark.parametrize("arch", ["decoder", "encdec"])
def test_full_config_repeats_exactly_and_learns(data, arch, tmp_path):
    """Two seeded runs with every branch on give the same weights and history (on the machine at
    hand; across machines only the behaviour below is expected), and the loss falls to where it
    falls on any CPU, within the seed spread."""
    (m1, r1), (m2, r2) = (full_run(data, arch, tmp_path / name) for name in "ab")
    untimed = [[{k: v for k, v in h.items() if k not in ("seconds", "train_s")} for h in r["history"]] for r in (r1, r2)]
    assert untimed[0] == untimed[1] and (r1["epochs"], r1["best_epoch"]) == (r2["epochs"], r2["best_epoch"])
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    losses = [h["loss"] for h in r1["history"]]
    assert losses[-1] < 0.95 * losses[0]  # seeds 0-9: 0.75-0.92
    assert all("valid_next_ndcg@10" in h for h in r1["history"])
    recorded, tolerance = FULL_LOSS[arch]
    assert abs(losses[-1] - recorded) <= tolerance, (losses, recorded)


def test_width_comes_from_the_ids_codebook_size_and_old_retrievers_still_load(tmp_path):
    """IDs whose data never use the top codes keep K = the stored codebook_size (not max code + 1)
    in the trained retriever; a retriever saved before K was stored loads with the derived K."""
    from rqvae_ids.ids.table import write_semantic_ids
    from rqvae_ids.retrieval.tiger.generative import train_retriever

    codes, users, seqs = catalog(2)  # codes < 4 on the levels, suffix < 3
    ids, inter = write_ids_and_interactions(tmp_path, codes, users, seqs)
    items = [f"i{i}" for i in range(len(codes))]
    write_semantic_ids(ids, items, codes[:, :2], codes[:, 2], [f"<a_{a}><b_{b}><c_{c}>" for a, b, c in codes],
                       ["x"] * len(codes), {"kind": "test", "levels": 2, "codebook_size": 8, "suffix_token": True,
                                            "suffix_size": 8})
    out = tmp_path / "retr"
    train_retriever(ids, inter, out, replace(TINY, max_epochs=1), log=lambda *_: None)
    assert json.loads((out / "config.json").read_text())["codebook_size"] == 8
    loaded = GenerativeRetriever.load(out, device="cpu", log=lambda *_: None)
    assert loaded.trie.width == 8 and loaded.model.cfg.width == 8
    # An old retriever: trained without a stored K (derived: 4), config.json without codebook_size.
    old = tmp_path / "old"
    split = leave_one_out(users, seqs)
    GenerativeRetriever(codes, replace(TINY, max_epochs=1), old, log=lambda *_: None).fit(
        split.train, (split.valid_histories, split.valid_targets))
    config = json.loads((old / "config.json").read_text())
    del config["codebook_size"]
    (old / "config.json").write_text(json.dumps(config))
    again = GenerativeRetriever.load(old, device="cpu", log=lambda *_: None)
    assert again.trie.width == 4 and again.recommend([np.array([0, 1])], 5).shape == (1, 5)
