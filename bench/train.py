"""Training-loop benchmark: our train_model vs a bare PyTorch loop over the same model.

    .venv/bin/python bench/train.py [--embeddings FILE] [--epochs 20] [--threads 2] [--repeats 2]

Prints and writes bench/out/train.json:
- items/s of `train_model`, twice: the whole run (reading + hashing the file, PCA init,
  val loss, per-epoch metrics, checkpoints, final encoding and saving; only the k-means
  time is taken out and reported on its own) and its epoch loop alone (`loop_seconds` of
  the report: steps + per-epoch validation, metrics and checkpoints), against a bare loop
  (randperm, forward, backward, AdamW step) over the same model; target ratio >= 0.9,
- k-means initialisation (codebooks fitted on encoder outputs) as a share of the
  training run's wall time; target <= 5 %.
Best of --repeats runs each, alternating, to damp noise on a shared machine.
Without --embeddings a seeded synthetic 12,000 x 384 clustered catalog is used.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def synthetic(path: Path, n: int = 12000, d: int = 384, seed: int = 0) -> None:
    from rqvae_ids.core.embedding_table import write_embeddings

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, d))
    x = centres[rng.integers(0, 300, n)] + 0.5 * rng.standard_normal((n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    write_embeddings(path, [f"i{i}" for i in range(n)], ["-"] * n, x, model="synthetic")


def bare_loop(x, cfg, n_train: int) -> float:
    """Seconds for cfg.epochs of the same model and optimizer, nothing else."""
    import torch

    from rqvae_ids.models import build_model

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    xt = torch.from_numpy(x[:n_train].copy())
    sample = torch.from_numpy(np.random.default_rng(cfg.seed).permutation(n_train)[: cfg.init_sample])
    # the same kind of start as train_model: PCA path (if enabled), k-means codebooks on a sample
    model.init_linear_(xt[sample])
    model.init_codebooks_(xt[sample], seed=cfg.seed)  # not timed: it is measured on its own
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    model.train()
    t = time.perf_counter()
    for _ in range(cfg.epochs):
        perm = torch.randperm(n_train)
        for s in range(0, n_train, cfg.batch_size):
            loss = model(xt[perm[s:s + cfg.batch_size]]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embeddings", default=None)
    ap.add_argument("--model", default="rqvae")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch

    from rqvae_ids.core.io import provenance
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.train import TrainConfig, config_from_args, train_model

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    emb = Path(args.embeddings) if args.embeddings else tmp / "embeddings.parquet"
    if not args.embeddings:
        synthetic(emb)
    table = read_embeddings(emb)
    x = table.vectors
    cfg: TrainConfig = config_from_args(kind=args.model, epochs=args.epochs, patience=0, device="cpu",
                                        input_dim=table.dim)
    n_train = len(x) - int(round(len(x) * cfg.val_fraction))
    ours, loop, bare, kmeans_share, reports = [], [], [], [], []
    for r in range(args.repeats):
        rep = train_model(emb, tmp / f"run{r}", cfg, progress=False)
        reports.append(rep)
        ours.append(n_train * rep["epochs"] / (rep["seconds"] - rep["kmeans_seconds"]))
        loop.append(n_train * rep["epochs"] / rep["loop_seconds"])
        kmeans_share.append(rep["kmeans_seconds"] / rep["seconds"])
        bare.append(n_train * cfg.epochs / bare_loop(x, cfg, n_train))
    result = {
        "embeddings": str(emb) if args.embeddings else "synthetic 12000 x 384",
        "items": len(x), "model": args.model, "epochs": args.epochs, "threads": args.threads,
        "ours_items_per_s": round(max(ours), 1), "bare_items_per_s": round(max(bare), 1),
        "ratio": round(max(ours) / max(bare), 3),
        "loop_items_per_s": round(max(loop), 1), "loop_ratio": round(max(loop) / max(bare), 3),
        "kmeans_share": round(max(kmeans_share), 4),  # the worst run
        "train_seconds": [r["seconds"] for r in reports], "kmeans_seconds": [r["kmeans_seconds"] for r in reports],
        "all_ours_items_per_s": [round(v, 1) for v in ours], "all_bare_items_per_s": [round(v, 1) for v in bare],
        "targets": {"ratio": ">= 0.9", "kmeans_share": "<= 0.05"},
        "provenance": provenance(),
    }
    print(f"whole run {result['ours_items_per_s']:.0f} items/s (ratio {result['ratio']:.3f}), epoch loop "
          f"{result['loop_items_per_s']:.0f} items/s (ratio {result['loop_ratio']:.3f}), bare "
          f"{result['bare_items_per_s']:.0f} items/s; k-means init {100 * result['kmeans_share']:.1f}% of the run "
          f"({args.epochs} epochs, {args.threads} threads)")
    out = ROOT / "bench" / "out" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
