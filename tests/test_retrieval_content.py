"""Item content in the generative retriever (RetrievalConfig.content): where the projected
item vectors enter (never at a target item's own tokens), beam search reading the same
history, training, saving/loading with the vectors inside the weights, and the wiring of
`retrieve-train --content-embeddings` and `compare --set tiger.content=true`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from rqvae_ids.core.errors import UserError
from rqvae_ids.evaluate.sequences import leave_one_out
from rqvae_ids.retrieval.tiger.data import (build_examples, content_index, decoder_batch, encdec_batch, history_tokens,
                                      item_tokens)
from rqvae_ids.retrieval.tiger.generative import GenerativeRetriever
from rqvae_ids.retrieval.tiger.model import BOS, SeqModelConfig, SeqModel
from rqvae_ids.retrieval.tiger.trainer import CHECKPOINT, RetrievalConfig, train

N_ITEMS, DIM = 48, 24
TINY = RetrievalConfig(n_layer=1, d_model=32, n_head=2, batch_size=32, max_epochs=2, warmup_steps=5,
                       lr=5e-3, beam=10, valid_users=0, patience=5, device="cpu", content=True)
quiet = lambda *_: None  # noqa: E731


def catalog(seed=0):
    """(N, 3) codes (4 x 4 top levels + suffix), item vectors, users walking +1 (mod N)."""
    rng = np.random.default_rng(seed)
    codes = np.stack([np.arange(N_ITEMS) // 12, (np.arange(N_ITEMS) // 3) % 4, np.arange(N_ITEMS) % 3], axis=1)
    vectors = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    users = [f"u{i}" for i in range(120)]
    seqs = [(rng.integers(N_ITEMS) + np.arange(rng.integers(4, 9))) % N_ITEMS for _ in users]
    return codes, vectors, users, seqs


@pytest.fixture(scope="module")
def data():
    codes, vectors, users, seqs = catalog()
    return codes, vectors, leave_one_out(users, seqs)


def model(arch, seed=0, user_buckets=0):
    torch.manual_seed(seed)
    cfg = SeqModelConfig(depth=3, width=4, arch=arch, dropout=0.0, n_layer=2, d_model=32, user_buckets=user_buckets)
    vectors = torch.randn(N_ITEMS, DIM, generator=torch.Generator().manual_seed(seed))
    return SeqModel(cfg, vectors).eval()


def test_content_index_marks_the_last_token_for_the_decoder_every_token_for_the_encoder():
    dec = SeqModelConfig(depth=3, width=4)
    assert content_index([5, 7], dec).tolist() == [0, 0, 6, 0, 0, 8]
    assert content_index([5, 7], replace(dec, arch="encdec")).tolist() == [6, 6, 6, 8, 8, 8]
    codes = catalog()[0]
    tokens = item_tokens(codes, dec)
    ex = build_examples([np.array([5, 7, 9])], "decoder")
    x, tgt, c = decoder_batch([np.array([5, 7, 9])], None, ex, np.arange(1), tokens, dec)
    # The window's tokens minus the last (only a target): item 9's content never enters.
    assert x[0].tolist() == tokens[[5, 7, 9]].reshape(-1)[:-1].tolist()
    assert c[0].tolist() == [0, 0, 6, 0, 0, 8, 0, 0]
    x, c = history_tokens([np.array([5, 7]), np.array([9])], tokens, dec)  # left-padded
    assert c.tolist() == [[0, 0, 6, 0, 0, 8], [0, 0, 0, 0, 0, 10]] and (x[1, :3] == 0).all()
    users = replace(dec, user_buckets=3)
    x, c = history_tokens([np.array([5])], item_tokens(codes, users), users, ["u"])
    assert x.shape == (1, 4) and c.tolist() == [[0, 0, 0, 6]]  # the user token gets no content


def _loss_on(m, x, c, targets, positions):
    t = torch.full_like(targets, -100)
    t[:, positions] = targets[:, positions]
    return m(x, targets=t, content=c)[1]


def test_decoder_never_sees_the_content_of_the_item_it_predicts():
    m = model("decoder")
    tokens = item_tokens(catalog()[0], m.cfg)
    seq = [np.array([5, 7, 9, 11])]
    x, targets, c = decoder_batch(seq, None, build_examples(seq, "decoder"), np.arange(1), tokens, m.cfg)
    item7 = [2, 3, 4]  # positions whose targets are item 7's tokens (x[2] = item 5's last token)
    logits, before = m(x, content=c)[0], _loss_on(m, x, c, targets, item7)
    with torch.no_grad():
        m.item_vectors[7] += 5.0  # the target's own content changes ...
    after_logits = m(x, content=c)[0]
    assert torch.equal(after_logits[:, :5], logits[:, :5])  # ... nothing up to its last token moves
    assert torch.equal(_loss_on(m, x, c, targets, item7), before)
    assert not torch.allclose(after_logits[:, 5:], logits[:, 5:])  # item 9's tokens do see item 7
    with torch.no_grad():
        m.item_vectors[5] += 5.0  # a history item's content does change the prediction
    assert not torch.allclose(_loss_on(m, x, c, targets, item7), before)


def test_encdec_reads_content_on_history_tokens_only():
    m = model("encdec")
    tokens = item_tokens(catalog()[0], m.cfg)
    seq = [np.array([5, 7, 9])]
    ex = build_examples(seq, "encdec")
    src, dec_in, tgt, c = encdec_batch(seq, None, ex, np.array([1]), tokens, m.cfg)  # history 5, 7 -> 9
    assert c.tolist() == [[6, 6, 6, 8, 8, 8]]
    _, before = m(src, dec_in, tgt, content=c)
    with torch.no_grad():
        m.item_vectors[9] += 5.0  # the target: in no encoder token, and decoder tokens get none
    assert torch.equal(m(src, dec_in, tgt, content=c)[1], before)
    with torch.no_grad():
        m.item_vectors[7] += 5.0
    assert not torch.allclose(m(src, dec_in, tgt, content=c)[1], before)


@pytest.mark.parametrize("arch", ["decoder", "encdec"])
def test_beam_start_injects_the_history_content_as_training_does(arch):
    m = model(arch, seed=1)
    tokens = item_tokens(catalog()[0], m.cfg)
    hists = [np.array([5, 7]), np.array([1, 2, 9])]
    hist, content = history_tokens(hists, tokens, m.cfg)
    st, lp0 = m.start(hist, content)
    assert not torch.allclose(lp0, m.start(hist, torch.zeros_like(content))[1])  # content is read
    v0 = torch.tensor([1, 2, 3, 0])
    st, lp1 = m.step(st, torch.tensor([0, 0, 1, 1]), v0, 1)  # two beams per user
    for r in range(4):
        keep = hist[r // 2] != 0
        h, c = hist[r // 2][keep], content[r // 2][keep]
        gen = (v0[r] + m.cfg.offset(0))[None]
        if arch == "decoder":  # generated tokens get no content
            rows = m(torch.cat([h, gen])[None], content=torch.cat([c, torch.zeros(1, dtype=c.dtype)])[None])[0][0]
            rows = rows[len(h) - 1 : len(h) + 1]
        else:
            rows = m(h[None], torch.cat([torch.tensor([BOS]), gen])[None], content=c[None])[0][0]
        for row, lp, pos in ((rows[0], lp0[r // 2], 0), (rows[1], lp1[r], 1)):
            o = m.cfg.offset(pos)
            assert torch.allclose(F.log_softmax(row[o : o + 4], -1), lp, atol=1e-5)


@pytest.mark.parametrize("arch", ["decoder", "encdec"])
def test_training_with_content_reduces_the_loss(data, arch):
    codes, vectors, split = data
    _, rep = train(codes, split.train, None, None, replace(TINY, arch=arch, max_epochs=4), log=quiet,
                   item_vectors=vectors)
    losses = [h["loss"] for h in rep["history"]]
    assert losses[-1] < 0.9 * losses[0]


def test_seeded_content_runs_repeat_exactly(data):
    codes, vectors, split = data
    valid = (split.valid_histories, split.valid_targets)
    (m1, r1), (m2, r2) = (train(codes, split.train, valid, None, TINY, log=quiet, item_vectors=vectors)
                          for _ in range(2))
    assert [h["loss"] for h in r1["history"]] == [h["loss"] for h in r2["history"]]
    assert {"content.weight", "item_vectors"} <= set(m1.state_dict())
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k


def test_content_retriever_recommends_saves_and_loads_without_the_embeddings(data, tmp_path):
    codes, vectors, split = data
    r = GenerativeRetriever(codes, replace(TINY, max_epochs=3), tmp_path, log=quiet, item_vectors=vectors)
    r.fit(split.train, (split.valid_histories, split.valid_targets))
    rec = r.recommend(split.test_histories, 10)
    assert rec.shape == (len(split.test_histories), 10) and ((rec >= 0) & (rec < N_ITEMS)).all()
    assert all(len(set(row)) == 10 for row in rec.tolist())
    again = GenerativeRetriever.load(tmp_path, device="cpu", log=quiet)  # no vectors given
    assert np.array_equal(again.model.item_vectors.numpy(), vectors)
    assert np.array_equal(again.recommend(split.test_histories, 10), rec)
    # Other vectors: another model, so its checkpoint is not resumed.
    with pytest.raises(UserError, match="other IDs, sequences or item vectors"):
        train(codes, split.train, None, tmp_path, TINY, log=quiet, item_vectors=vectors[::-1])


def test_content_off_keeps_the_model_and_resumes_old_checkpoints(data, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    codes, vectors, split = data
    off = replace(TINY, content=False, max_epochs=1)
    m, _ = train(codes, split.train, None, tmp_path, off, log=quiet, item_vectors=vectors)  # vectors unused
    assert m.content is None and not any("content" in k or "item_vectors" in k for k in m.state_dict())
    # A checkpoint written before the knob existed (no "content" in its config) still resumes.
    path = tmp_path / CHECKPOINT
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["rqvae_ids"])
    del meta["config"]["content"]
    save_file(load_file(str(path)), str(path), metadata={"rqvae_ids": json.dumps(meta)})
    lines = []
    train(codes, split.train, None, tmp_path, replace(off, max_epochs=2), log=lines.append)
    assert any("resumed" in str(x) for x in lines)


def test_content_needs_aligned_vectors(data):
    codes, vectors, _ = data
    with pytest.raises(UserError, match="content=True needs the item vectors"):
        GenerativeRetriever(codes, TINY)
    with pytest.raises(UserError, match="one row per item"):
        GenerativeRetriever(codes, TINY, item_vectors=vectors[:-1])


def _write_inputs(tmp_path, codes, vectors, users, seqs, drop_item=None):
    from test_retrieval_train import write_ids_and_interactions

    from rqvae_ids.core.embedding_table import write_embeddings

    items = [f"i{i}" for i in range(N_ITEMS)]
    ids, inter = write_ids_and_interactions(tmp_path, codes, users, seqs)
    keep = [i for i in range(N_ITEMS)[::-1] if i != drop_item]  # another row order than the IDs
    emb = tmp_path / "embeddings.parquet"
    write_embeddings(emb, [items[i] for i in keep], ["x"] * len(keep), vectors[keep], "test")
    return ids, inter, emb


def test_retrieve_train_content_embeddings(tmp_path, capsys):
    from rqvae_ids.cli import main

    codes, vectors, users, seqs = catalog(1)
    ids, inter, emb = _write_inputs(tmp_path, codes, vectors, users, seqs)
    out = tmp_path / "retr"
    base = ["retrieve-train", "--retriever", "tiger", "--ids", str(ids), "--interactions", str(inter), "--layers", "1", "--d-model", "32",
            "--heads", "2", "--epochs", "1", "--beam", "10", "--device", "cpu"]
    assert main([*base, "--out", str(out), "--content-embeddings", str(emb)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["retrieval"]["content"] is True and config["content_embeddings"] == str(emb)
    r = GenerativeRetriever.load(out, device="cpu", log=quiet)
    assert np.array_equal(r.model.item_vectors.numpy(), vectors)  # aligned to the IDs' item order
    (tmp_path / "bad").mkdir()
    _, _, bad = _write_inputs(tmp_path / "bad", codes, vectors, users, seqs, drop_item=3)
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "r2"), "--content-embeddings", str(bad)]) == 2
    assert "no embedding for 1 item(s) of the semantic IDs, e.g. 'i3'" in capsys.readouterr().err


DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def test_compare_generative_content_passes_the_embeddings_and_keys_the_reuse(tmp_path, capsys):
    """--models random on 300 demo items with random 16-d embeddings (no embedding model)."""
    from rqvae_ids.cli import main
    from rqvae_ids.core.embedding_table import write_embeddings

    items = pd.read_csv(DEMO / "items.csv", dtype=str, keep_default_na=False).head(300)
    inter = pd.read_csv(DEMO / "interactions.csv", dtype={"user_id": str, "item_id": str})
    inter = inter[inter["item_id"].isin(set(items["item_id"]))]
    items.to_csv(tmp_path / "items.csv", index=False)
    inter.to_csv(tmp_path / "interactions.csv", index=False)
    vectors = np.random.default_rng(0).normal(size=(len(items), 16)).astype(np.float32)
    write_embeddings(tmp_path / "emb.parquet", items["item_id"], ["x"] * len(items), vectors, "test")
    out = tmp_path / "cmp"
    args = ["compare", "--catalog", str(tmp_path / "items.csv"), "--interactions", str(tmp_path / "interactions.csv"),
            "--embeddings", str(tmp_path / "emb.parquet"), "--out", str(out), "--models", "random", "--levels", "3",
            "--codebook-size", "16", "--neighbour-queries", "50", "--tune-users", "50", "--with-tiger",
            "--set", "tiger.max_epochs=1", "--set", "tiger.n_layer=1", "--set", "tiger.d_model=16",
            "--set", "tiger.n_head=2", "--set", "tiger.beam=10", "--no-sasrec"]
    content = ["--set", "tiger.content=true"]
    assert main([*args, *content]) == 0
    ckpt = out / "retrievers" / "tiger" / "random"
    r = GenerativeRetriever.load(ckpt, device="cpu", log=quiet)
    assert np.array_equal(r.model.item_vectors.numpy(), vectors)
    assert json.loads((ckpt / "compare_key.json").read_text())["retrieval"]["content"] is True
    report = (out / "report.md").read_text()
    assert "tiger.content=true" in report and "d_model 16, item content" in report
    capsys.readouterr()
    assert main([*args, *content]) == 0
    assert "resuming/reusing the TIGER retriever" in capsys.readouterr().err
    assert main(args) == 0  # content off: another retriever, trained from scratch
    assert "training the TIGER retriever" in capsys.readouterr().err
    # A marker written before the knob existed (content off then) is still reused.
    key = json.loads((ckpt / "compare_key.json").read_text())
    del key["retrieval"]["content"]
    (ckpt / "compare_key.json").write_text(json.dumps(key))
    assert main(args) == 0
    assert "resuming/reusing the TIGER retriever" in capsys.readouterr().err
