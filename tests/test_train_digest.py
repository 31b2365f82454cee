"""train_model keeps its seeded CPU results bit for bit across refactors of the loop.

tests/data/train_digests.json holds, for a few configurations covering every branch of the
loop (each trained kind, AE warm-up, neighbour term, early stopping, adagrad, resume), the
sha256 of the trained weights, of the codes and of the per-epoch metrics (timings left out).
They were captured with the loop as it was before its nanoGPT-style rewrite (issue 12 item 6):
`python tests/test_train_digest.py` rewrites the file; do so only for an intended change of
the training results, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rqvae_ids.models import ModelConfig, load_model  # noqa: E402
from rqvae_ids.embedding_table import write_embeddings  # noqa: E402
from rqvae_ids.train import TrainConfig, train_model  # noqa: E402

DIGESTS = Path(__file__).parent / "data" / "train_digests.json"
TINY = dict(levels=3, codebook_size=8, latent_dim=4, hidden=(32,))
CASES = {
    "rqvae": dict(),
    "rqvae_warmup_nbr_stop": dict(ae_warmup_epochs=1, patience=1, nbr_weight=0.3, sim_weight=0.1),
    "rqvae_adagrad": dict(optimizer="adagrad", lr=0.05, weight_decay=1e-4),
    "vqvae": dict(kind="vqvae"),
    "vae": dict(kind="vae"),
    "ae": dict(kind="ae"),
    "rqkmeans": dict(kind="rqkmeans"),
}
MODEL_KEYS = set(ModelConfig.__dataclass_fields__)
# The digests were recorded when metrics.parquet and the report called colliding_share
# `collision_rate` (and had no duplicate_rate column, a function of the same codes): hashed
# under the old name, so a rename alone leaves the recorded digests valid (issue 26).
OLD_NAMES = {"colliding_share": "collision_rate"}


def config(epochs: int = 4, **kw) -> TrainConfig:
    model = ModelConfig(**{**TINY, **{k: v for k, v in kw.items() if k in MODEL_KEYS}})
    train = {k: v for k, v in kw.items() if k not in MODEL_KEYS}
    return TrainConfig(model=model, epochs=epochs, batch_size=64, init_sample=500, checkpoint_every=1,
                       device="cpu", **train)


def embeddings(path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 16))[np.arange(300) % 16] + 0.3 * rng.standard_normal((300, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    write_embeddings(path, [f"i{i}" for i in range(300)], ["h"] * 300, x, model="test-model")
    return path


def digest(out: Path, report: dict) -> dict[str, str]:
    """sha256 of the weights (sorted tensors), the codes of a fixed input and the metrics."""
    import pyarrow.parquet as pq

    model = load_model(out)
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    x = np.random.default_rng(1).standard_normal((64, 16)).astype(np.float32)
    codes = hashlib.sha256(model.encode_codes(x).tobytes()).hexdigest()
    rows = pq.read_table(out / "metrics.parquet").to_pylist()
    rows = [{OLD_NAMES.get(k, k): v for k, v in r.items() if k not in ("seconds", "duplicate_rate")} for r in rows]
    kept = {k: report[k] for k in ("epochs", "steps", "utilisation", "final_val_loss")}
    kept["collision_rate"] = report["colliding_share"]
    text = json.dumps({"metrics": rows, "report": kept}, sort_keys=True, default=repr)
    return {"weights": h.hexdigest(), "codes": codes, "metrics": hashlib.sha256(text.encode()).hexdigest()}


def run_case(name: str, tmp: Path) -> dict[str, str]:
    emb = embeddings(tmp / "embeddings.parquet")
    if name == "resume":  # 2 epochs, then --resume to 4: must equal the straight 4-epoch run
        train_model(emb, tmp / name, config(epochs=2), progress=False)
        report = train_model(emb, tmp / name, config(epochs=4), resume=True, progress=False)
    else:
        report = train_model(emb, tmp / name, config(**CASES[name]), progress=False)
    return digest(tmp / name, report)


@pytest.mark.parametrize("name", [*CASES, "resume"])
def test_training_matches_the_recorded_digest(name, tmp_path):
    expected = json.loads(DIGESTS.read_text())[name]
    assert run_case(name, tmp_path) == expected


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as d:
        found = {name: run_case(name, Path(d) / name) for name in [*CASES, "resume"]
                 if (Path(d) / name).mkdir(parents=True) is None}
    DIGESTS.parent.mkdir(exist_ok=True)
    DIGESTS.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(json.dumps(found, indent=1))
