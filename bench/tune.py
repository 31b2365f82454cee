"""One tokenizer-tuning run on a real catalog: train with overrides, then measure the codes.

    .venv/bin/python bench/tune.py NAME --embeddings FILE [key=value ...]

key=value pairs override TrainConfig / ModelConfig fields (flat keys, e.g. `pca_skip=False
ema=False latent_dim=64 epochs=50 patience=0`). Trains into bench/out/tune/NAME, encodes every
item greedily (no collision resolution) and appends one JSON line to bench/out/tune.jsonl:
seconds, epochs run, per-level utilisation and perplexity, colliding share (items sharing
their full tuple), 1 - distinct/items, and neighbour recall@10/@100 (2,000 seeded queries,
exact cosine ground truth). Every attempt in bench/RESULTS.md ("RQ-VAE tuning") came from this.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # plain strings such as recon=cosine
    return out


def main() -> None:
    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.metrics import colliding_share, perplexity, utilisation
    from rqvae_ids.models import load_model
    from rqvae_ids.tables import read_embeddings
    from rqvae_ids.train import config_from_args, train_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--embeddings", required=True)
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = p.parse_args()
    overrides = parse_overrides(args.overrides)
    out = ROOT / "bench" / "out" / "tune" / args.name
    t = time.perf_counter()
    report = train_model(args.embeddings, out, config_from_args(**overrides), progress=False)
    seconds = time.perf_counter() - t
    x = np.asarray(read_embeddings(args.embeddings).vectors, dtype=np.float32)
    model = load_model(out)
    codes = model.encode_codes(x)
    nr = neighbour_recall(x, codes)
    row = {"name": args.name, "overrides": overrides, "seconds": round(seconds, 1), "epochs": report["epochs"],
           "utilisation": [round(u, 3) for u in utilisation(codes, model.codebook_size)],
           "perplexity": [round(v, 1) for v in perplexity(codes, model.codebook_size)],
           "colliding_share": round(colliding_share(codes), 4),
           "collision_rate": round(1 - len(np.unique(codes, axis=0)) / len(codes), 4),
           "neighbour_recall@10": round(nr["neighbour_recall@10"], 4),
           "neighbour_recall@100": round(nr["neighbour_recall@100"], 4)}
    print(json.dumps(row))
    log = ROOT / "bench" / "out" / "tune.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
