"""The collaborative term of the RQ-VAE, rqkmeans-cf and `rqvae-ids train --interactions`."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rqvae_ids.cf import CFTable  # noqa: E402
from rqvae_ids.cli import main  # noqa: E402
from rqvae_ids.models import ModelConfig, load_model  # noqa: E402
from rqvae_ids.models.base import info_nce  # noqa: E402
from rqvae_ids.core.embedding_table import write_embeddings  # noqa: E402
from rqvae_ids.train import TrainConfig, train_model  # noqa: E402

N, D, C = 240, 16, 8


def text_and_cf(seed=0):
    """Text whose large variance says nothing about the CF groups; the 4 CF groups are written
    faintly into its last 4 dims: text-only codes follow the variance, collaborative codes
    should find the faint group signal."""
    rng = np.random.default_rng(seed)
    group = rng.permutation(N) % 4
    text = rng.standard_normal((N, D)).astype(np.float32)
    text[:, -4:] = 0.05 * rng.standard_normal((N, 4)) + 0.25 * np.eye(4)[group]
    cf = rng.standard_normal((4, C))[group] + 0.1 * rng.standard_normal((N, C))
    cf = (cf / np.linalg.norm(cf, axis=1, keepdims=True)).astype(np.float32)
    return text.astype(np.float32), cf, group


def emb_file(tmp_path, text):
    path = tmp_path / "embeddings.parquet"
    write_embeddings(path, [f"i{i}" for i in range(len(text))], ["h"] * len(text), text, model="test")
    return path


def cfg(kind="rqvae", epochs=20, **model):
    base = dict(kind=kind, levels=2, codebook_size=8, latent_dim=4, hidden=(32,))
    return TrainConfig(model=ModelConfig(**{**base, **model}), epochs=epochs, batch_size=64, init_sample=500,
                       device="cpu", patience=0, lr=1e-2)


def test_info_nce_pulls_paired_latents_together():
    torch.manual_seed(0)
    p = torch.randn(32, 6, requires_grad=True)
    t = torch.randn(32, 6)
    opt = torch.optim.SGD([p], lr=0.5)
    before = torch.nn.functional.cosine_similarity(p, t).mean().item()
    for _ in range(50):
        opt.zero_grad()
        info_nce(p, t, 0.1).backward()
        opt.step()
    after = torch.nn.functional.cosine_similarity(p, t).mean().item()
    assert after > before + 0.5
    assert info_nce(p[:1], t[:1], 0.1).item() == 0.0  # no negative: no term


def test_cf_term_aligns_codes_with_cf_groups_and_cold_items_train(tmp_path):
    text, cf, group = text_and_cf()
    has = np.ones(N, bool)
    has[::5] = False  # a fifth of the items have no CF embedding
    table = CFTable(np.where(has[:, None], cf, 0.0).astype(np.float32), has, {"interactions_sha256": "x"})
    emb = emb_file(tmp_path, text)

    def latent_purity(out):
        """Share of each item's 10 latent-space neighbours in its own CF group."""
        from rqvae_ids.core.knn import exact_neighbours

        z = load_model(out).encode_latent(text)
        return (group[exact_neighbours(z, np.arange(N), 10)] == group[:, None]).mean()

    train_model(emb, tmp_path / "text", cfg(), progress=False)
    report = train_model(emb, tmp_path / "cf", cfg(cf_weight=10.0), progress=False, cf=table)
    assert np.isfinite(report["final_val_loss"])
    # chance is 0.25; the collaborative term pulls items of one CF group together
    assert latent_purity(tmp_path / "cf") > latent_purity(tmp_path / "text") + 0.1
    # nbr_source=cf: the neighbour term samples co-consumed items (CF neighbours); cold items
    # are their own neighbours
    from rqvae_ids.train.inputs import prepare_data

    data = prepare_data(text, cfg(nbr_weight=1.0, nbr_source="cf"), "cpu", neural=True, cf=table)
    nbrs = data.nbrs.numpy()
    assert (group[nbrs[has]] == group[has][:, None]).mean() > 0.95
    assert (nbrs[~has] == np.flatnonzero(~has)[:, None]).all()
    conf = json.loads((tmp_path / "cf" / "config.json").read_text())
    assert conf["cf"]["used"] is True and conf["cf"]["interactions_sha256"] == "x"
    assert conf["model"]["cf_dim"] == C
    assert json.loads((tmp_path / "text" / "config.json").read_text())["cf"] == {"used": False}
    import pyarrow.parquet as pq
    assert "train_cf" in pq.read_table(tmp_path / "cf" / "metrics.parquet").column_names


def test_rqkmeans_cf_uses_cf_for_warm_items_and_text_for_cold(tmp_path):
    text, cf, group = text_and_cf()
    has = np.ones(N, bool)
    has[:40] = False
    table = CFTable(np.where(has[:, None], cf, 0.0).astype(np.float32), has, {})
    emb = emb_file(tmp_path, text)
    train_model(emb, tmp_path / "m", cfg("rqkmeans-cf", cf_alpha=3.0, cf_cold="zero"), progress=False, cf=table)
    model = load_model(tmp_path / "m")
    warm = model.encode_codes(model.cf_inputs(text, table.vectors, table.has))
    # warm items: level 0 follows the heavily weighted CF groups
    c0 = warm[has, 0]
    purity = sum(np.bincount(group[has][c0 == c]).max() for c in np.unique(c0)) / has.sum()
    assert purity > 0.9
    # cold items: text-only rows give the codes of the text part, equal to the explicit path
    cold_codes = model.encode_codes(text[:40])
    np.testing.assert_array_equal(cold_codes, warm[:40])
    np.testing.assert_array_equal(cold_codes, model.text_codes(text[:40]))
    assert model.decode_codes(cold_codes).shape == (40, D)


def test_cli_train_with_interactions(tmp_path, capsys):
    text, _, _ = text_and_cf()
    emb = emb_file(tmp_path, text)
    rng = np.random.default_rng(0)
    lines = ["user_id,item_id,position"]
    for u in range(80):
        start = (u % 8) * 30
        for p, j in enumerate(rng.choice(30, size=6, replace=False)):
            lines.append(f"u{u},i{start + j},{p}")
    inter = tmp_path / "inter.csv"
    inter.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m"
    args = ["train", "--embeddings", str(emb), "--out", str(out), "--epochs", "2", "--levels", "2",
            "--codebook-size", "8", "--latent-dim", "4", "--quiet", "--json", "--interactions", str(inter)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["cf"] is True and report["kind"] == "rqkmeans-cf"  # the default `auto` with interactions
    conf = json.loads((out / "config.json").read_text())
    assert conf["cf"]["used"] and len(conf["cf"]["interactions_sha256"]) == 64
    assert (out / "cf_embeddings.parquet").is_file()
    assert main(["train", "--embeddings", str(emb), "--out", str(tmp_path / "k"), "--model", "rqkmeans-cf"]) == 2
    assert "--interactions" in capsys.readouterr().err and not (tmp_path / "k").exists()


def test_default_kind_is_rqkmeans_cf_with_cf_embeddings_and_rqkmeans_without(tmp_path):
    from rqvae_ids.models import AUTO, resolve_kind

    text, cf, _ = text_and_cf()
    table = CFTable(cf, np.ones(N, bool), {})
    emb = emb_file(tmp_path, text)
    default = TrainConfig(model=ModelConfig(levels=2, codebook_size=8), device="cpu")
    assert default.model.kind == AUTO
    for name, cf_table, kind in (("cf", table, "rqkmeans-cf"), ("text", None, "rqkmeans")):
        report = train_model(emb, tmp_path / name, default, progress=False, cf=cf_table)
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert report["kind"] == load_model(tmp_path / name).kind == kind
        assert saved["model"]["kind"] == kind and saved["cf"]["used"] is (cf_table is not None)
    # a kind asked for by name is trained as asked, with or without CF embeddings
    assert [resolve_kind(k, w) for k in ("rqvae", "opq") for w in (True, False)] == ["rqvae"] * 2 + ["opq"] * 2


def test_prefix_target_pulls_co_consumed_items_into_one_first_code(tmp_path):
    """cf_target=prefix aligns the level-0 codeword alone: the first code follows the CF groups."""
    text, cf, group = text_and_cf()
    table = CFTable(cf, np.ones(N, bool), {})
    emb = emb_file(tmp_path, text)

    def first_code_purity(out):
        c0 = load_model(out).encode_codes(text)[:, 0]
        return sum(np.bincount(group[c0 == c]).max() for c in np.unique(c0)) / N

    train_model(emb, tmp_path / "text", cfg(), progress=False)
    train_model(emb, tmp_path / "prefix", cfg(cf_weight=30.0, cf_target="prefix"), progress=False, cf=table)
    # measured 0.42 vs 0.33 (chance 0.25): a straight-through pull, weaker than on the latent
    assert first_code_purity(tmp_path / "prefix") > first_code_purity(tmp_path / "text") + 0.05
