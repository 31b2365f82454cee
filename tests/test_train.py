"""The training loop and `rqvae-ids train` on tiny synthetic embeddings."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from rqvae_ids.cli import main
from rqvae_ids.core.errors import UserError
from rqvae_ids.models import ModelConfig, load_model
from rqvae_ids.core.embedding_table import write_embeddings
from rqvae_ids.train import TrainConfig, train_model

TINY = ModelConfig(kind="rqvae", levels=3, codebook_size=8, latent_dim=4, hidden=(32,))


def cfg(kind="rqvae", **kw):
    kw.setdefault("epochs", 3)
    kw.setdefault("checkpoint_every", 1)
    return TrainConfig(model=ModelConfig(**{**TINY.__dict__, "kind": kind}), batch_size=64, init_sample=500,
                       device="cpu", **kw)


@pytest.fixture
def emb(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 16))[np.arange(300) % 16] + 0.3 * rng.standard_normal((300, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    path = tmp_path / "embeddings.parquet"
    write_embeddings(path, [f"i{i}" for i in range(300)], ["h"] * 300, x, model="test-model")
    return path


@pytest.mark.parametrize("kind", ["rqvae", "vqvae", "vae", "ae", "rqkmeans"])
def test_train_writes_model_and_report(kind, emb, tmp_path):
    out = tmp_path / kind
    report = train_model(emb, out, cfg(kind), progress=False)
    for name in ("model.safetensors", "config.json", "metrics.parquet", "train_report.json"):
        assert (out / name).is_file(), name
    assert len(report["utilisation"]) == 3 and len(report["perplexity"]) == 3
    assert 0.0 <= report["colliding_share"] <= 1.0 and report["seconds"] > 0
    # 1 - distinct/N never exceeds the share of items in colliding tuples
    assert 0.0 <= report["duplicate_rate"] <= report["colliding_share"]
    assert not {"collision_rate", "distinct_collision_rate"} & set(report)  # only the new names are written
    assert 0.0 <= report["loop_seconds"] <= report["seconds"]
    conf = json.loads((out / "config.json").read_text())
    assert conf["kind"] == kind and conf["embedding_model"] == "test-model" and conf["embedding_dim"] == 16
    assert len(conf["data_sha256"]) == 64 and conf["train"]["model"]["kind"] == kind
    codes = load_model(out).encode_codes(np.random.default_rng(1).standard_normal((7, 16)).astype(np.float32))
    assert codes.shape == (7, 3) and codes.min() >= 0 and codes.max() < 8
    if kind != "rqkmeans":
        metrics = pq.read_table(out / "metrics.parquet").to_pandas()
        assert list(metrics["epoch"]) == [1, 2, 3]
        assert {"train_loss", "val_loss", "reseeded"} <= set(metrics.columns)
        if kind == "rqvae":
            assert {"utilisation_l2", "perplexity_l0", "colliding_share", "duplicate_rate"} <= set(metrics.columns)
            assert "collision_rate" not in metrics.columns
            last = metrics.iloc[-1]
            assert 0.0 <= last["duplicate_rate"] <= last["colliding_share"] <= 1.0


def test_same_seed_same_codes(emb, tmp_path):
    x = np.random.default_rng(2).standard_normal((50, 16)).astype(np.float32)
    runs = []
    for name in ("a", "b"):
        train_model(emb, tmp_path / name, cfg(seed=3), progress=False)
        runs.append(load_model(tmp_path / name).encode_codes(x))
    np.testing.assert_array_equal(runs[0], runs[1])
    sa = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert sa == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_nan_input_is_a_clear_error_and_writes_nothing(tmp_path):
    x = np.ones((30, 4), dtype=np.float32)
    x[5, 2] = np.nan
    path = tmp_path / "bad.parquet"
    write_embeddings(path, [str(i) for i in range(30)], ["h"] * 30, x, model="m")
    with pytest.raises(UserError, match="NaN"):
        train_model(path, tmp_path / "out", cfg(), progress=False)
    assert not (tmp_path / "out").exists()


def test_nan_loss_names_epoch_and_step_and_keeps_checkpoint(emb, tmp_path, monkeypatch):
    from rqvae_ids.models.rqvae import RQVAE

    real = RQVAE.forward
    calls = {"n": 0}

    def poisoned(self, x, kl_weight=None, **kw):
        out = real(self, x, kl_weight, **kw)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 7:  # 285 train items / 64 = 5 steps per epoch -> epoch 2, step 7
                return out._replace(loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(RQVAE, "forward", poisoned)
    out = tmp_path / "m"
    with pytest.raises(UserError, match=r"epoch 2, step 7"):
        train_model(emb, out, cfg(), progress=False)
    state = json.loads((out / "train_state.json").read_text())
    assert state["epoch"] == 1
    load_model(out)  # the epoch-1 checkpoint is intact


def test_resume_continues_from_saved_step(emb, tmp_path, monkeypatch):
    from rqvae_ids.models.rqvae import RQVAE

    full, part = tmp_path / "full", tmp_path / "part"
    train_model(emb, full, cfg(epochs=4), progress=False)
    real = RQVAE.forward
    calls = {"n": 0}

    def interrupted(self, x, kl_weight=None, **kw):
        out = real(self, x, kl_weight, **kw)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 13:  # in epoch 3: the run stops, epoch <= 2 checkpoint remains
                return out._replace(loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(RQVAE, "forward", interrupted)
    with pytest.raises(UserError):
        train_model(emb, part, cfg(epochs=4), progress=False)
    monkeypatch.setattr(RQVAE, "forward", real)
    saved = json.loads((part / "train_state.json").read_text())
    assert saved["step"] in (5, 10) and saved["epoch"] * 5 == saved["step"]
    t0 = time.perf_counter()
    report = train_model(emb, part, cfg(epochs=4), resume=True, progress=False)
    assert report["steps"] == 20 and report["epochs"] == 4
    # loop_seconds counts the loop of both invocations, like epochs and steps
    assert report["loop_seconds"] > saved["loop_seconds"] > 0
    assert report["loop_seconds"] - saved["loop_seconds"] <= time.perf_counter() - t0
    metrics = pq.read_table(part / "metrics.parquet").to_pandas()
    assert list(metrics["epoch"]) == [1, 2, 3, 4]
    # continuing from the saved step (weights, optimizer, RNG) reproduces the uninterrupted run
    assert (part / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()


def test_resume_refuses_other_data_or_corrupt_optimizer(emb, tmp_path):
    out = tmp_path / "m"
    train_model(emb, out, cfg(epochs=1), progress=False)
    other = tmp_path / "other.parquet"
    x = np.random.default_rng(5).standard_normal((40, 16)).astype(np.float32)
    write_embeddings(other, [str(i) for i in range(40)], ["h"] * 40, x, model="test-model")
    with pytest.raises(UserError, match="other data"):
        train_model(other, out, cfg(epochs=2), resume=True, progress=False)
    (out / "optimizer.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt checkpoint"):
        train_model(emb, out, cfg(epochs=2), resume=True, progress=False)
    with pytest.raises(UserError, match="no checkpoint"):
        train_model(emb, tmp_path / "fresh", cfg(), resume=True, progress=False)


def test_resume_without_a_kind_continues_the_checkpoints_kind(emb, tmp_path):
    out = tmp_path / "m"
    train_model(emb, out, cfg(epochs=2), progress=False)  # an RQ-VAE with its checkpoint
    auto = TrainConfig(model=ModelConfig(**{**TINY.__dict__, "kind": "auto"}), epochs=3, batch_size=64,
                       init_sample=500, checkpoint_every=1, device="cpu")
    report = train_model(emb, out, auto, resume=True, progress=False)
    assert report["kind"] == "rqvae" and report["epochs"] == 3  # not a k-means fit over the checkpoint
    with pytest.raises(UserError, match="rqkmeans is fitted by k-means in one step"):
        train_model(emb, out, cfg("rqkmeans"), resume=True, progress=False)
    assert load_model(out).kind == "rqvae"


def test_cli_train_and_bad_input(emb, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["train", "--embeddings", str(emb), "--model", "rqkmeans", "--out", str(out),
               "--codebook-size", "8", "--quiet", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "rqkmeans"
    rc = main(["train", "--embeddings", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "x")])
    assert rc == 2 and "error" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    rc = main(["train", "--embeddings", str(emb), "--out", str(tmp_path / "y"), "--levels", "0"])
    assert rc == 2 and "levels" in capsys.readouterr().err


def test_small_catalog_rqvae_does_not_collapse(tmp_path):
    """A few hundred unit-norm 384-d items, one step per epoch, dead-code re-seeding off so
    the model must keep its codes alive on its own. With the PCA-initialised linear path and
    EMA codebooks (the defaults) the codes stay spread; the plain TIGER MLP with gradient
    codebooks put every item on one tuple here (latents drift faster than codebooks follow)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 384))[np.arange(400) % 40] + 0.8 * rng.standard_normal((400, 384))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    path = tmp_path / "small.parquet"
    write_embeddings(path, [f"i{i}" for i in range(400)], ["h"] * 400, x, model="test-model")
    model = ModelConfig(kind="rqvae", codebook_size=16, dead_code_steps=0)
    assert model.pca_skip and model.ema  # the defaults under test
    train_model(path, tmp_path / "m", TrainConfig(model=model, epochs=10, patience=0, device="cpu"), progress=False)
    codes = load_model(tmp_path / "m").encode_codes(x)
    _, counts = np.unique(codes, axis=0, return_counts=True)
    assert counts.max() / len(x) < 0.05 and len(np.unique(codes[:, 0])) >= 12


def test_cli_set_reaches_every_config_field(emb, tmp_path, capsys):
    out = tmp_path / "set"
    rc = main(["train", "--embeddings", str(emb), "--out", str(out), "--model", "rqvae", "--codebook-size", "8",
               "--latent-dim", "4", "--epochs", "2", "--quiet", "--set", "pca_skip=false", "--set", "recon=cosine",
               "--set", "hidden=[32]", "--set", "patience=0", "--set", "lr=3e-4"])
    assert rc == 0, capsys.readouterr().err
    conf = json.loads((out / "config.json").read_text())
    assert conf["model"]["pca_skip"] is False and conf["model"]["recon"] == "cosine"
    assert conf["model"]["hidden"] == [32] and conf["train"]["patience"] == 0 and conf["train"]["lr"] == 3e-4
    for bad, word in ((["--set", "bogus=1"], "bogus"), (["--set", "pca_skip"], "KEY=VALUE"),
                      (["--set", "recon=l1"], "recon"), (["--set", "kind=ae"], "dedicated")):
        rc = main(["train", "--embeddings", str(emb), "--out", str(tmp_path / "bad"), "--quiet", *bad])
        assert rc == 2 and word in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_neighbour_term_trains_and_is_logged(emb, tmp_path):
    model = ModelConfig(**{**TINY.__dict__, "nbr_weight": 1.0, "nbr_k": 5})
    train_model(emb, tmp_path / "nbr", TrainConfig(model=model, epochs=2, batch_size=64, device="cpu"), progress=False)
    metrics = pq.read_table(tmp_path / "nbr" / "metrics.parquet").to_pandas()
    assert "train_nbr" in metrics.columns and (metrics["train_nbr"] > 0).all()
