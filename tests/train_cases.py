"""Seeded `train_model` runs on tiny synthetic embeddings, one per branch of the training loop.

Shared by tests/test_train_cases.py (two runs of each give the same weights; the trained
model behaves) and bench/bit_identity.py (digests of each, recorded and re-checked on one
machine across a refactor). Not a test module: nothing here asserts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from rqvae_ids.core.embedding_table import write_embeddings
from rqvae_ids.models import ModelConfig, load_model
from rqvae_ids.train import TrainConfig, train_model

TINY = dict(kind="rqvae", levels=3, codebook_size=8, latent_dim=4, hidden=(32,))
# every trained kind, AE warm-up, neighbour and similarity terms, early stopping, adagrad
# ("resume": 2 epochs, then --resume to 4, is run_case's extra case)
CASES: dict[str, dict[str, Any]] = {
    "rqvae": dict(),
    "rqvae_warmup_nbr_stop": dict(ae_warmup_epochs=1, patience=1, nbr_weight=0.3, sim_weight=0.1),
    "rqvae_adagrad": dict(optimizer="adagrad", lr=0.05, weight_decay=1e-4),
    "vqvae": dict(kind="vqvae"),
    "vae": dict(kind="vae"),
    "ae": dict(kind="ae"),
    "rqkmeans": dict(kind="rqkmeans"),
}
NAMES = [*CASES, "resume"]
_MODEL_KEYS = set(ModelConfig.__dataclass_fields__)


def config(epochs: int = 4, seed: int = 0, **kw) -> TrainConfig:
    model = ModelConfig(**{**TINY, **{k: v for k, v in kw.items() if k in _MODEL_KEYS}})
    train = {k: v for k, v in kw.items() if k not in _MODEL_KEYS}
    return TrainConfig(model=model, epochs=epochs, batch_size=64, init_sample=500, checkpoint_every=1,
                       device="cpu", seed=seed, **train)


def data() -> np.ndarray:
    """300 unit vectors in 16-d: 16 clusters (a fixed generator) plus noise."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 16))[np.arange(300) % 16] + 0.3 * rng.standard_normal((300, 16))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def embeddings(path: Path) -> Path:
    write_embeddings(path, [f"i{i}" for i in range(300)], ["h"] * 300, data(), model="test-model")
    return path


def run_case(name: str, tmp: Path, seed: int = 0) -> tuple[Path, dict]:
    """Train case `name` into tmp/name; returns (model folder, train report)."""
    tmp.mkdir(parents=True, exist_ok=True)
    emb = embeddings(tmp / "embeddings.parquet")
    out = tmp / name
    if name == "resume":  # 2 epochs, then --resume to 4
        train_model(emb, out, config(epochs=2, seed=seed), progress=False)
        report = train_model(emb, out, config(epochs=4, seed=seed), resume=True, progress=False)
    else:
        report = train_model(emb, out, config(seed=seed, **CASES[name]), progress=False)
    return out, report


def metric_rows(out: Path) -> list[dict]:
    """metrics.parquet rows without the wall-clock column (empty for rqkmeans: no loop)."""
    import pyarrow.parquet as pq

    if not (out / "metrics.parquet").is_file():
        return []
    return [{k: v for k, v in r.items() if k != "seconds"} for r in pq.read_table(out / "metrics.parquet").to_pylist()]


def digest(out: Path, report: dict) -> dict[str, str]:
    """sha256 of the weights (sorted tensors), of the codes of a fixed input and of the metrics."""
    model = load_model(out)
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    x = np.random.default_rng(1).standard_normal((64, 16)).astype(np.float32)
    codes = hashlib.sha256(model.encode_codes(x).tobytes()).hexdigest()
    kept = {k: report[k] for k in ("epochs", "steps", "utilisation", "colliding_share", "final_val_loss")}
    text = json.dumps({"metrics": metric_rows(out), "report": kept}, sort_keys=True, default=repr)
    return {"weights": h.hexdigest(), "codes": codes, "metrics": hashlib.sha256(text.encode()).hexdigest()}


def behaviour(out: Path, report: dict) -> dict[str, Any]:
    """What a trained model should show on any machine: its losses, its code use, its reconstruction.

    recon_mse: mean over items of the squared distance between an embedding and the decoding
    of its own codes (the quantised reconstruction, every kind alike).
    """
    x = data()
    model = load_model(out)
    codes = model.encode_codes(x)
    recon = model.decode_codes(codes)
    rows = metric_rows(out)
    return {"train_loss": [r["train_loss"] for r in rows],
            "codes_per_level": [len(np.unique(codes[:, level])) for level in range(codes.shape[1])],
            "distinct_tuples": len(np.unique(codes, axis=0)),
            "recon_mse": float(((recon - x) ** 2).sum(1).mean()),
            "final_val_loss": report["final_val_loss"]}
