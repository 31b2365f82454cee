"""A tiny Tokenizer meeting the models contract, and helpers to put it on disk.

Used by the tests_ids_* modules so ID assignment is tested without a trained model:
z = x @ W, residual nearest-codeword codes over L random codebooks (K, D).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from rqvae_ids.core.embedding_table import write_embeddings


class FakeTokenizer:
    kind = "fake"

    def __init__(self, w: np.ndarray, books: list[np.ndarray]):
        self.w = w.astype(np.float32)
        self.books = [b.astype(np.float32) for b in books]
        self.levels = len(books)
        self.codebook_size = books[0].shape[0]
        self.latent_dim = books[0].shape[1]

    @classmethod
    def random(cls, d=16, latent=4, levels=3, k=16, seed=0):
        # codewords are latents / residuals of random unit vectors: data-like usage
        rng = np.random.default_rng(seed)
        w = (rng.standard_normal((d, latent)) / np.sqrt(d) * 3).astype(np.float32)
        pts = rng.standard_normal((k * levels, d)).astype(np.float32)
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        model = cls(w, [np.zeros((k, latent), np.float32)] * levels)
        r = pts @ w
        for l in range(levels):
            model.books[l] = r[l * k:(l + 1) * k].copy()
            c = model.encode_codes(pts)[:, l] if l + 1 < levels else None
            r = r - model.books[l][c] if c is not None else r
        return model

    def encode_latent(self, x):
        return np.asarray(x, np.float32) @ self.w

    def codebooks(self):
        return list(self.books)

    def encode_codes(self, x):
        r = self.encode_latent(x)
        codes = np.empty((len(r), self.levels), np.int64)
        for l, b in enumerate(self.books):
            d = ((r[:, None, :] - b[None]) ** 2).sum(-1)
            codes[:, l] = d.argmin(1)
            r = r - b[codes[:, l]]
        return codes

    def decode_codes(self, codes):
        z = sum(b[codes[:, l]] for l, b in enumerate(self.books))
        return z @ np.linalg.pinv(self.w)

    def save(self, out, embedding_model="fake-emb"):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"w": self.w, **{f"book{l}": b for l, b in enumerate(self.books)}}, out / "model.safetensors")
        (out / "config.json").write_text(json.dumps({
            "kind": self.kind, "levels": self.levels, "codebook_size": self.codebook_size,
            "latent_dim": self.latent_dim, "embedding_model": embedding_model,
            "embedding_dim": int(self.w.shape[0]), "data_sha256": "x"}))
        return out


def load_fake(model_dir):
    t = load_file(str(Path(model_dir) / "model.safetensors"))
    levels = json.loads((Path(model_dir) / "config.json").read_text())["levels"]
    return FakeTokenizer(t["w"], [t[f"book{l}"] for l in range(levels)])


def make_embeddings(path, n=300, d=16, seed=1, model="fake-emb", ids=None, texts=None):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = ids if ids is not None else [f"item{i:04d}" for i in range(n)]
    texts = texts if texts is not None else [f"h{i}" for i in range(n)]
    write_embeddings(path, ids, texts, v, model=model)
    return v
