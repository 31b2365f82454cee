"""The collaborative input layout [text ⊕ α·CF] of the neural tokenizers (issue 25): the cold CF
part (zero or predicted from text), CF-part dropout, the saved layout, and assignment of new
items from text alone by a model trained with CF (refresh keeps old IDs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_cf_assign import interactions, write_emb  # noqa: E402  the same 80 users over items i0..i199

from rqvae_ids.core.cf_table import CF_FILE, read_cf_table  # noqa: E402
from rqvae_ids.cli import main  # noqa: E402
from rqvae_ids.ids import assign_ids, read_semantic_ids  # noqa: E402
from rqvae_ids.models import ModelConfig, build_model, load_model  # noqa: E402
from rqvae_ids.models.base import saved_model_config  # noqa: E402
from rqvae_ids.models.cf_input import fit_ridge  # noqa: E402

N, D, C = 240, 16, 8


def small(kind="rqvae", **kw):
    return ModelConfig(**{**dict(kind=kind, input_dim=D, levels=2, codebook_size=8, latent_dim=4, hidden=(32,),
                                 cf_dim=C), **kw})


def linear_cf(seed=0):
    """Text and unit CF vectors that are a linear function of the text (a ridge fits them)."""
    rng = np.random.default_rng(seed)
    text = rng.standard_normal((N, D)).astype(np.float32)
    cf = text @ rng.standard_normal((D, C)) + 0.5
    return text, (cf / np.linalg.norm(cf, axis=1, keepdims=True)).astype(np.float32)


def test_cold_rows_get_a_zero_cf_part_and_warm_rows_alpha_cf():
    text, cf = linear_cf()
    has = np.arange(N) % 3 > 0
    for kind in ("rqvae", "rqkmeans-cf"):
        model = build_model(small(kind, cf_alpha=0.5, cf_cold="zero"))
        assert model.reads_cf
        x = model.cf_inputs(text, cf, has)
        assert x.shape == (N, D + C)
        np.testing.assert_array_equal(x[:, :D], text)
        np.testing.assert_allclose(x[has, D:], 0.5 * cf[has], rtol=1e-6)
        assert not x[~has, D:].any()
        # text-only rows are the same as rows without CF
        text_only = x.copy()
        text_only[:, D:] = 0
        np.testing.assert_array_equal(model.cf_inputs(text, None, None), text_only)


def test_cold_rows_get_the_predicted_cf_part_with_the_regress_rule():
    text, cf = linear_cf()
    has = np.arange(N) % 3 > 0
    w, b = fit_ridge(text, cf, has, 1e-3)
    assert w.shape == (D, C) and b.shape == (C,)
    for kind in ("rqvae", "rqkmeans-cf"):
        model = build_model(small(kind, cf_cold="regress", cf_alpha=0.5, cf_ridge=1e-3))
        x = model.fit_cf_inputs_(text, cf, has)
        np.testing.assert_allclose(x[has, D:], 0.5 * cf[has], rtol=1e-6)
        cold = x[~has, D:] / 0.5
        # predicted from text: unit rows pointing where the held-out CF vectors point
        np.testing.assert_allclose(np.linalg.norm(cold, axis=1), 1.0, rtol=1e-4)
        assert (cold * cf[~has]).sum(1).min() > 0.95
        np.testing.assert_allclose(model.cf_inputs(text[~has], None, None), x[~has], rtol=1e-5, atol=1e-6)


def test_cf_dropout_replaces_the_cf_part_of_warm_rows_in_training_only():
    text, cf = linear_cf()
    has = np.arange(N) % 4 > 0
    model = build_model(small(cf_dropout=0.5, cf_cold="zero"))
    x = torch.from_numpy(model.cf_inputs(text, cf, has))
    torch.manual_seed(0)
    dropped = model.cf_dropped(x)
    gone = (dropped[:, D:] != x[:, D:]).any(1).numpy()
    assert 0.3 < gone[has].mean() < 0.7 and not gone[~has].any()
    assert not dropped[gone, D:].any()  # the cold part of the zero rule
    torch.testing.assert_close(dropped[:, :D], x[:, :D])  # the text part is never touched
    # the target stays the full row: the loss of the forward pass is finite with or without dropout
    model.train()
    assert torch.isfinite(model(x, quantize=False).loss)
    assert build_model(small(cf_dropout=0.0)).cf_dropped(x) is x


def test_auto_cold_rule_is_the_kinds_own_and_is_saved_resolved():
    assert build_model(small()).cfg.cf_cold == "regress"
    assert build_model(small("rqkmeans-cf")).cfg.cf_cold == "regress"
    assert build_model(small(cf_cold="zero")).cfg.cf_cold == "zero"


def test_text_only_configs_and_models_from_before_issue_25_read_text():
    assert not build_model(small(cf_input=False)).reads_cf
    assert not build_model(small(cf_dim=0)).reads_cf
    old = {"kind": "rqvae", **{k: v for k, v in vars(small()).items() if k not in ("cf_input", "cf_dropout",
                                                                                    "cf_cold", "cf_ridge")}}
    assert saved_model_config({"model": old}).cf_input is False  # issue 14's model: text in, CF as target


def test_rqkmeans_cf_models_from_before_the_cold_rule_load_with_the_text_part_rule(tmp_path):
    build_model(small("rqkmeans-cf", cf_cold="zero")).save(tmp_path)
    conf = json.loads((tmp_path / "config.json").read_text())
    del conf["model"]["cf_cold"]  # written before the rule existed: no ridge weights in the file
    (tmp_path / "config.json").write_text(json.dumps(conf))
    assert load_model(tmp_path).cfg.cf_cold == "zero"
    no_kind = {k: v for k, v in conf["model"].items() if k != "kind"}
    assert saved_model_config({"model": no_kind}).kind == "rqvae"  # the default before `auto`


def test_a_kind_must_be_named_or_auto_and_auto_is_never_built():
    from rqvae_ids.core.errors import UserError
    from rqvae_ids.models import KINDS, MODELS
    from rqvae_ids.models.kinds import FITTED

    with pytest.raises(ValueError, match="unknown model kind 'rqvea'"):
        ModelConfig(kind="rqvea")
    with pytest.raises(UserError, match="'auto' is chosen when training starts"):
        build_model(ModelConfig())
    assert set(FITTED) == {k for k in KINDS if not MODELS[k].neural}  # the kinds printed as "k-means"


@pytest.fixture(scope="module", params=["zero", "regress"])
def trained(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"cfinput_{request.param}")
    text = np.random.default_rng(1).standard_normal((N, D)).astype(np.float32)
    ids = [f"i{i}" for i in range(N)]
    emb = write_emb(tmp / "embeddings.parquet", ids, text)
    model_dir = tmp / "model"
    assert main(["train", "--embeddings", str(emb), "--out", str(model_dir), "--model", "rqvae",
                 "--interactions", str(interactions(tmp / "inter.csv")), "--levels", "2", "--codebook-size", "16",
                 "--latent-dim", "4", "--epochs", "4", "--quiet", "--set", "hidden=[32]",
                 "--set", f"cf_cold={request.param}"]) == 0
    return {"tmp": tmp, "text": text, "ids": ids, "emb": emb, "model_dir": model_dir, "cold": request.param}


def test_saved_model_records_its_input_layout_and_round_trips(trained):
    model_dir = trained["model_dir"]
    conf = json.loads((model_dir / "config.json").read_text())
    cf = read_cf_table(model_dir / CF_FILE, trained["ids"])
    assert conf["inputs"]["cf_dim"] == cf.dim and conf["inputs"]["cold"] == trained["cold"]
    assert conf["inputs"]["text_dim"] == D and conf["inputs"]["cf_alpha"] == conf["model"]["cf_alpha"]
    model = load_model(model_dir)
    assert model.reads_cf and model.cfg.cf_cold == trained["cold"]
    assert model.encoder.linear.in_features == D + cf.dim
    if trained["cold"] == "regress":  # the regression travels in model.safetensors
        assert model.cf_reg_w.abs().sum() > 0
    again = load_model(model_dir)
    x = model.cf_inputs(trained["text"], cf.vectors, cf.has)
    np.testing.assert_array_equal(model.encode_codes(x), again.encode_codes(x))
    assert model.decode_codes(model.encode_codes(x)).shape == (N, D)  # the text part


def test_model_trained_with_cf_assigns_new_items_from_text_and_refresh_keeps_old_ids(trained):
    tmp, model_dir, text, ids = trained["tmp"], trained["model_dir"], trained["text"], trained["ids"]
    first = tmp / "ids1"
    report = assign_ids(model_dir, trained["emb"], first)
    cf = read_cf_table(model_dir / CF_FILE, ids)
    assert report["cf"]["items_with_cf"] == int(cf.has.sum()) > 150 and not cf.has[200:].any()
    new_text = np.random.default_rng(7).standard_normal((20, D)).astype(np.float32)
    new_ids = [f"n{i}" for i in range(20)]
    emb2 = write_emb(tmp / "embeddings2.parquet", ids + new_ids, np.vstack([text, new_text]))
    report = assign_ids(model_dir, emb2, tmp / "ids2", previous=first / "semantic_ids.parquet")
    assert report["stability"]["kept"] == N and report["stability"]["new"] == 20
    assert report["cf"]["items_text_only"] == N + 20 - int(cf.has.sum())
    old, new = read_semantic_ids(first / "semantic_ids.parquet"), read_semantic_ids(tmp / "ids2" / "semantic_ids.parquet")
    old_sid = dict(zip(old.item_ids.tolist(), old.sids.tolist()))
    new_sid = dict(zip(new.item_ids.tolist(), new.sids.tolist()))
    assert all(new_sid[i] == old_sid[i] for i in ids)
    # new items: the codes of their text with the cold CF part
    model = load_model(model_dir)
    codes = dict(zip(new.item_ids.tolist(), map(tuple, new.codes.tolist())))
    assert [codes[i] for i in new_ids] == list(map(tuple, model.encode_codes(new_text).tolist()))
