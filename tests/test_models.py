"""Every tokenizer kind: trains a few steps, codes (N, L) in [0, K), save/load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rqvae_ids.core.errors import UserError
from rqvae_ids.models import MODELS, ModelConfig, build_model, fit_rqkmeans, load_model

KINDS = ["rqvae", "vqvae", "vae", "ae", "rqkmeans", "rqkmeans-cf"]
TINY = dict(input_dim=16, levels=3, codebook_size=8, latent_dim=4, hidden=(32,))


def data(n=128, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, d))[np.arange(n) % 8] + 0.3 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_registry_lists_every_kind():
    # opq (M sub-spaces must divide the embedding size, 2^b codes) has its own tests: tests/test_opq.py
    assert sorted(MODELS) == sorted(KINDS + ["opq"])


@pytest.mark.parametrize("kind", KINDS)
def test_kind_trains_and_yields_codes(kind, tmp_path):
    torch.manual_seed(0)
    x = torch.from_numpy(data())
    model = build_model(ModelConfig(kind=kind, **TINY))
    model.init_codebooks_(x)
    params = [p for p in model.parameters() if p.requires_grad]
    if model.neural:
        opt = torch.optim.AdamW(params, lr=1e-2)
        losses = []
        for _ in range(5):
            out = model(x)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            losses.append(out.loss.item())
        assert np.isfinite(losses).all()
        assert out.recon.shape == x.shape
    else:
        assert not params
    model.fit_codebooks_(x)
    codes = model.encode_codes(x.numpy())
    assert codes.shape == (128, 3) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 8
    assert model.encode_latent(x.numpy()).shape == (128, model.latent_dim)
    books = model.codebooks()
    assert len(books) == 3 and books[0].shape == (8, model.latent_dim) and books[0].dtype == np.float32
    assert model.decode_codes(codes).shape == (128, 16)
    # save / load round trip gives the same codes
    model.meta = {"embedding_model": "test-model", "embedding_dim": 16}
    model.save(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["kind"] == kind and cfg["embedding_model"] == "test-model" and cfg["embedding_dim"] == 16
    assert (cfg["levels"], cfg["codebook_size"]) == (3, 8)
    again = load_model(tmp_path)
    assert again.kind == kind
    np.testing.assert_array_equal(again.encode_codes(x.numpy()), codes)


def test_rqkmeans_is_residual_kmeans_on_embeddings():
    x = data()
    model = fit_rqkmeans(x, ModelConfig(kind="rqkmeans", levels=2, codebook_size=8, input_dim=16))
    assert model.latent_dim == 16
    np.testing.assert_array_equal(model.encode_latent(x), x)
    codes = model.encode_codes(x)
    # reconstruction = sum of the codewords
    books = model.codebooks()
    np.testing.assert_allclose(model.decode_codes(codes), books[0][codes[:, 0]] + books[1][codes[:, 1]], atol=1e-6)


def test_corrupt_or_mismatched_checkpoint_is_a_user_error(tmp_path):
    model = build_model(ModelConfig(kind="rqvae", **TINY))
    model.save(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="corrupt checkpoint"):
        load_model(tmp_path)
    model.save(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model"]["latent_dim"] = 5
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="does not match"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{ truncated")
    with pytest.raises(UserError, match="corrupt"):
        load_model(tmp_path)
    with pytest.raises(UserError, match="not a model directory"):
        load_model(tmp_path / "nowhere")


def test_bad_codes_rejected():
    model = build_model(ModelConfig(kind="rqkmeans", **TINY))
    with pytest.raises(ValueError):
        model.decode_codes(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError):
        model.decode_codes(np.full((2, 3), 8))


def test_pca_skip_starts_from_the_pca_autoencoder():
    x = torch.from_numpy(data(n=200))
    model = build_model(ModelConfig(kind="ae", pca_skip=True, **TINY))  # latent 4 of 16 dims
    model.init_linear_(x)
    with torch.no_grad():
        z, _ = model.latent(x)
        recon = model.decoder(z).numpy()
    # MLP branches start at zero, so this is the linear PCA autoencoder: its error is the
    # optimum of any rank-4 linear map, the energy outside the top 4 principal components
    xc = x.numpy() - x.numpy().mean(0)
    s = np.linalg.svd(xc, compute_uv=False)
    optimum = float((s[4:] ** 2).sum())
    assert float(((recon - x.numpy()) ** 2).sum()) == pytest.approx(optimum, rel=1e-3)
    np.testing.assert_allclose(z.numpy().mean(0), 0.0, atol=1e-5)  # every latent dim centred


def test_pca_skip_vae_starts_with_small_variance_and_pca_mean():
    x = torch.from_numpy(data(n=200))
    model = build_model(ModelConfig(kind="vae", pca_skip=True, **TINY))
    model.init_linear_(x)
    with torch.no_grad():
        mu, logvar = model.encoder(x).chunk(2, dim=-1)
    assert float(logvar.max()) < -7.0  # sampling noise far below the PCA scales
    ae = build_model(ModelConfig(kind="ae", pca_skip=True, **TINY))
    ae.init_linear_(x)
    with torch.no_grad():
        np.testing.assert_allclose(mu.numpy(), ae.encoder(x).numpy(), atol=1e-5)


def test_pca_skip_with_fewer_items_than_latent_dims():
    x = torch.from_numpy(data(n=3))  # rank 2 after centring, latent 4
    model = build_model(ModelConfig(kind="rqvae", pca_skip=True, **TINY))
    model.init_linear_(x)
    with torch.no_grad():
        z, _ = model.latent(x)
    assert z.shape == (3, 4) and torch.isfinite(z).all()
    np.testing.assert_allclose(z[:, 3].numpy(), 0.0, atol=1e-6)  # no component left for it


def test_checkpoint_without_newer_keys_loads_as_it_was_built(tmp_path):
    """config.json files written before pca_skip/ema existed describe a plain MLP model."""
    old = build_model(ModelConfig(kind="rqvae", pca_skip=False, ema=False, **TINY))
    old.save(tmp_path)
    conf = json.loads((tmp_path / "config.json").read_text())
    del conf["model"]["pca_skip"], conf["model"]["ema"]
    (tmp_path / "config.json").write_text(json.dumps(conf))
    loaded = load_model(tmp_path)
    assert loaded.cfg.pca_skip is False and loaded.cfg.ema is False
    x = data(n=20)
    np.testing.assert_array_equal(loaded.encode_codes(x), old.encode_codes(x))


def test_neighbour_loss_rewards_close_neighbours_and_survives_a_batch_of_one():
    from rqvae_ids.models.base import neighbour_loss

    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    close = neighbour_loss(z, z + 0.01 * torch.randn(64, 8))
    far = neighbour_loss(z, torch.randn(64, 8))
    assert float(close) < 0.01 < 0.5 < float(far)
    assert float(neighbour_loss(z[:1], z[:1] + 1.0)) == 0.0
    # scale-free: the same geometry at 100x the scale gives the same loss
    assert float(neighbour_loss(100 * z, 100 * (z + 0.01))) == pytest.approx(float(neighbour_loss(z, z + 0.01)), rel=1e-4)


def test_forward_without_quantizer_is_the_plain_autoencoder():
    """quantize=False (AE warm-up): reconstruction from the latent itself, no codes, no quant loss."""
    x = torch.from_numpy(data())
    model = build_model(ModelConfig(kind="rqvae", **TINY))
    model.init_codebooks_(x, seed=0)
    model.eval()
    with torch.no_grad():
        plain = model(x, quantize=False)
        z, _ = model.latent(x)
        quantized = model(x)
    assert plain.codes is None and "quant" not in plain.parts
    torch.testing.assert_close(plain.recon, model.decoder(z))
    assert quantized.codes is not None and quantized.codes.shape == (len(x), 3)
