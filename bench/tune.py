"""One tokenizer-tuning run on a real catalog: train with overrides, then measure the codes.

    .venv/bin/python bench/tune.py NAME --embeddings FILE [--reference FILE] [key=value ...]

key=value pairs override TrainConfig / ModelConfig fields (flat keys, parsed like
`rqvae-ids train --set`, e.g. `pca_skip=false ema=false latent_dim=64 epochs=50 patience=0`).
--reference: embeddings whose exact-cosine neighbours are the ground truth (default: the
trained-on file; the std_* rows trained on a standardised copy and scored on the raw file).
Trains into bench/out/tune/NAME, encodes every
item greedily (no collision resolution) and appends one JSON line to bench/out/tune.jsonl:
seconds, epochs run, per-level utilisation and perplexity, colliding share (items sharing
their full tuple), 1 - distinct/items, and neighbour recall@10/@100 (2,000 seeded queries,
exact cosine ground truth), and the colliding share and recall@10 of the same model's codes
with a balanced last level (`encode_codes(distinct_last=True)`). The rows of bench/RESULTS.md ("RQ-VAE tuning") were measured by
this same procedure (its first version lived outside the repo; the numbers match its log).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from rqvae_ids.core.config import parse_set
    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.core.metrics import colliding_share, duplicate_rate, perplexity, utilisation
    from rqvae_ids.models import load_model
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.train import TrainConfig, config_from_args, train_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--embeddings", required=True)
    p.add_argument("--reference", default=None, help="ground-truth embeddings (default: --embeddings)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = p.parse_intermixed_args()  # overrides may follow --embeddings, as documented
    # the `train --set` grammar: a key bare (lr) or dotted (model.recon), typed by its field
    overrides = parse_set(args.overrides, TrainConfig, flag="key=value", bare=True, strip="train.")
    overrides = {k.rsplit(".", 1)[-1]: v for k, v in overrides.items()}
    out = ROOT / "bench" / "out" / "tune" / args.name
    t = time.perf_counter()
    # the RQ-VAE unless --set kind=... says otherwise (the pipeline's default kind is `auto` since issue 25)
    report = train_model(args.embeddings, out, config_from_args(**{"kind": "rqvae", **overrides}), progress=False)
    seconds = time.perf_counter() - t
    x = np.asarray(read_embeddings(args.embeddings).vectors, dtype=np.float32)
    truth = np.asarray(read_embeddings(args.reference).vectors, dtype=np.float32) if args.reference else x
    model = load_model(out)
    codes = model.encode_codes(x)
    nr = neighbour_recall(truth, codes)
    row = {"name": args.name, "overrides": overrides, "seconds": round(seconds, 1), "epochs": report["epochs"],
           "utilisation": [round(u, 3) for u in utilisation(codes, model.codebook_size)],
           "perplexity": [round(v, 1) for v in perplexity(codes, model.codebook_size)],
           "colliding_share": round(colliding_share(codes), 4),
           "duplicate_rate": round(duplicate_rate(codes), 4),
           "neighbour_recall@10": round(nr["neighbour_recall@10"], 4),
           "neighbour_recall@100": round(nr["neighbour_recall@100"], 4)}
    # The LETTER-style balanced last level (batch-level, see encode_codes) on the same model.
    balanced = model.encode_codes(x, distinct_last=True)
    row["balanced_colliding_share"] = round(colliding_share(balanced), 4)
    row["balanced_recall@10"] = round(neighbour_recall(truth, balanced)["neighbour_recall@10"], 4)
    print(json.dumps(row))
    log = ROOT / "bench" / "out" / "tune.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
