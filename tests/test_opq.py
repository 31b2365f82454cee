"""The `opq` tokenizer (faiss OPQ + product quantizer) behind the Tokenizer interface."""

from __future__ import annotations

import numpy as np
import pytest

from rqvae_ids.core.errors import UserError
from rqvae_ids.models import MODELS, ModelConfig, build_model, fit_opq, load_model


def data(n=600, d=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32) @ rng.normal(size=(d, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_registered_shapes_and_roundtrip(tmp_path):
    assert MODELS["opq"].kind == "opq"
    x = data()
    m = fit_opq(x, ModelConfig(kind="opq", levels=8, codebook_size=16))
    codes = m.encode_codes(x)
    assert codes.shape == (600, 8) and codes.dtype == np.int64 and 0 <= codes.min() and codes.max() < 16
    recon = m.decode_codes(codes)
    assert recon.shape == x.shape
    err = np.mean(np.sum((recon - x) ** 2, 1))
    assert err < 0.5 * np.mean(np.sum(x ** 2, 1))  # far better than nothing
    assert [b.shape for b in m.codebooks()] == [(16, 32)] * 8
    m.save(tmp_path)
    again = load_model(tmp_path)
    assert np.array_equal(again.encode_codes(x), codes)


def test_residual_view_equals_product_quantization():
    """Each level's code is the nearest sub-space centroid of the rotated vector: PQ exactly."""
    x = data()
    m = fit_opq(x, ModelConfig(kind="opq", levels=4, codebook_size=8))
    codes = m.encode_codes(x)
    z = m.encode_latent(x)
    for level, book in enumerate(m.codebooks()):
        sl = slice(level * 8, (level + 1) * 8)
        d = ((z[:, None, sl] - book[None, :, sl]) ** 2).sum(-1)
        assert (codes[:, level] == d.argmin(1)).mean() > 0.99  # float near-ties aside


def test_seeded_fit_repeats_and_bad_shapes_fail():
    x = data()
    a = fit_opq(x, ModelConfig(kind="opq", levels=4, codebook_size=16), seed=3).encode_codes(x)
    b = fit_opq(x, ModelConfig(kind="opq", levels=4, codebook_size=16), seed=3).encode_codes(x)
    assert np.array_equal(a, b)
    with pytest.raises(UserError, match="multiple of the sub-spaces"):
        build_model(ModelConfig(kind="opq", input_dim=30, levels=4))
    with pytest.raises(UserError, match="power of two"):
        build_model(ModelConfig(kind="opq", input_dim=32, levels=4, codebook_size=100))
    with pytest.raises(UserError, match="at least codebook_size"):
        fit_opq(x[:10], ModelConfig(kind="opq", levels=4, codebook_size=16))


def test_cli_train_opq_with_subspaces(tmp_path, capsys):
    import json

    from rqvae_ids.cli import main
    from rqvae_ids.core.embedding_table import write_embeddings

    x = data()
    emb = tmp_path / "embeddings.parquet"
    write_embeddings(emb, [f"i{i}" for i in range(len(x))], ["0" * 64] * len(x), x, model="test")
    out = tmp_path / "opq"
    assert main(["train", "--embeddings", str(emb), "--model", "opq", "--subspaces", "8", "--codebook-size", "16",
                 "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "opq" and cfg["levels"] == 8
    assert load_model(out).encode_codes(x).shape == (600, 8)
    capsys.readouterr()
    assert main(["train", "--embeddings", str(emb), "--model", "rqkmeans", "--subspaces", "8",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--subspaces applies to --model opq only" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
