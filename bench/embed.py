"""Embedding throughput: raw SentenceTransformer.encode vs `rqvae-ids embed`, and the warm-cache rerun.

    .venv/bin/python bench/embed.py [--limit N] [--batch-size 64] [--repeat R] [--catalog PATH]

One process, same texts, same model object for every measurement: the bundled
all-MiniLM-L6-v2 is loaded once (load time excluded from all three timings) and
warmed up on one batch. Then, in order:
  raw   model.encode(texts, batch_size, normalize_embeddings=True)
  cold  embed_items(...) into a fresh folder (empty cache): hashing, cache
        lookup, encoding, cache + embeddings.parquet writes all included
  warm  the same embed_items call again (everything from the cache)
With --repeat R the raw/cold/warm triple runs R times (alternating, so drift on
a shared machine hits both sides) and the best time of each is kept.
Targets: cold throughput >= 0.95 x raw; warm time < 5 % of cold.
Writes bench/out/embed.json. Workload: ../shared/data/amazon-toys/items.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CATALOG = REPO.parent / "shared" / "data" / "amazon-toys" / "items.csv"
OUT = REPO / "bench" / "out" / "embed.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--limit", type=int, default=None, help="first N items only (quick runs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=1, help="alternating repeats; best time of each kept")
    args = parser.parse_args()
    if not args.catalog.is_file():
        print(f"bench/embed.py: skipped: workload {args.catalog} not found (../shared/data lives beside the checkout)")
        return 0

    import numpy as np
    import torch

    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.embed import EmbedConfig, embed_items, load_encoder, resolve_model
    from rqvae_ids.runtime import resolve_device
    from rqvae_ids.embedding_table import read_embeddings

    catalog = load_catalog(args.catalog)
    ids, texts = catalog.item_ids[: args.limit], catalog.texts[: args.limit]
    device = resolve_device(args.device)
    cfg = EmbedConfig(batch_size=args.batch_size, device=device, progress=False)

    t = time.perf_counter()
    model = load_encoder(resolve_model(None), device)  # the object embed_items will reuse
    load_s = time.perf_counter() - t
    model.encode(texts[: args.batch_size], batch_size=args.batch_size, show_progress_bar=False)  # warm-up

    raw_s = cold_s = warm_s = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        raw = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
        raw_s = min(raw_s, time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:  # a fresh folder: empty cache
            t = time.perf_counter()
            cold = embed_items(ids, texts, tmp, cfg)
            cold_s = min(cold_s, time.perf_counter() - t)
            t = time.perf_counter()
            warm = embed_items(ids, texts, tmp, cfg)
            warm_s = min(warm_s, time.perf_counter() - t)
            vectors = read_embeddings(Path(tmp) / "embeddings.parquet").vectors
            max_diff = float(np.abs(vectors - raw).max())

    n = len(texts)
    result = {
        "command": "python bench/embed.py" + (f" --limit {args.limit}" if args.limit else "")
                   + (f" --batch-size {args.batch_size}" if args.batch_size != 64 else "")
                   + (f" --repeat {args.repeat}" if args.repeat != 1 else ""),
        "workload": str(args.catalog.relative_to(REPO.parent)) if args.catalog.is_relative_to(REPO.parent) else str(args.catalog),
        "items": n,
        "batch_size": args.batch_size,
        "repeat": args.repeat,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "model_load_seconds_excluded": round(load_s, 3),
        "raw_seconds": round(raw_s, 3),
        "raw_items_per_s": round(n / raw_s, 1),
        "cold_seconds": round(cold_s, 3),
        "cold_items_per_s": round(n / cold_s, 1),
        "cold_encoded": cold["encoded"],
        "throughput_ratio": round(raw_s / cold_s, 3),
        "warm_seconds": round(warm_s, 3),
        "warm_encoded": warm["encoded"],
        "warm_fraction_of_cold": round(warm_s / cold_s, 4),
        "max_abs_diff_vs_raw": max_diff,
        "targets": {"throughput_ratio": ">= 0.95", "warm_fraction_of_cold": "< 0.05"},
        "pass": {"throughput_ratio": raw_s / cold_s >= 0.95, "warm_fraction_of_cold": warm_s / cold_s < 0.05},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{n} items, batch {args.batch_size}, {device}, {result['torch_threads']} torch threads "
          f"(model load {load_s:.2f}s excluded from all)")
    print(f"raw SentenceTransformer.encode : {raw_s:8.2f} s  {n / raw_s:7.1f} items/s")
    print(f"rqvae-ids embed, cold cache    : {cold_s:8.2f} s  {n / cold_s:7.1f} items/s  "
          f"ratio {raw_s / cold_s:.3f} (target >= 0.95)")
    print(f"rqvae-ids embed, warm cache    : {warm_s:8.2f} s  {warm_s / cold_s:.2%} of cold (target < 5%), "
          f"{warm['encoded']} encoded")
    print(f"max |cold - raw| = {max_diff:.2e}; wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
