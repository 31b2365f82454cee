"""The training sample cap (train.max_items), chosen by code quality on Amazon Toys.

    .venv/bin/python bench/train_cap.py [--sizes 1500 3000 6000] [--seeds 0 1]

The pipeline's default model (RQ-VAE 3 x 256, collaborative with the CF embeddings of the
interactions' training part, every other knob at its default) trained on a seeded sample
of S Toys items, then every one of the 11,924 items assigned with it (`assign_ids`, suffix
resolution), against the same model trained on the whole catalog (max_items 0; two
seeds give the noise level). Measured on all items: duplicate_rate before resolution,
neighbour_recall@10/@100 (2,000 seeded queries), recon_cosine, nmi_l0 (top category
below the shared root), and next_recall@10 of the sid-prefix retriever on the
leave-one-out split. Reads the Toys embeddings of the main checkout (read-only) and
../shared/data/amazon-toys/ (skips with a message where absent); writes
bench/out/train_cap.json.
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
EMB = Path("/work/main/bench/out/toys/emb/embeddings.parquet")
DATA = ROOT.parent / "shared" / "data" / "amazon-toys"
OUT = ROOT / "bench" / "out" / "train_cap"


def measure(model_dir: Path, ids_dir: Path, table, categories, split) -> dict:
    from rqvae_ids.evaluate import harness, quality
    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.evaluate.baselines import SidPrefixRetriever
    from rqvae_ids.ids import read_semantic_ids
    from rqvae_ids.models import load_model

    ids = read_semantic_ids(ids_dir / "semantic_ids.parquet")
    codes, _ = ids.codes_in_order(table.item_ids, where=str(ids_dir))
    model = load_model(model_dir)
    recon = np.asarray(model.decode_codes(codes), np.float32)
    out = {"duplicate_rate_raw": quality.code_usage_metrics(codes, model.codebook_size)["duplicate_rate_raw"],
           **quality.reconstruction_metrics(table.vectors, recon),
           **neighbour_recall(table.vectors, codes, max_queries=2000, seed=0)}
    levels = quality.category_levels(categories)
    out["nmi_l0"] = quality.category_metrics(codes, levels)["nmi_l0"]
    metrics, _ = harness.fit_and_evaluate(SidPrefixRetriever(codes, seed=0), split)
    out["next_recall@10"] = metrics["next_recall@10"]
    return {k: round(float(v), 4) for k, v in out.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1500, 3000, 6000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the full-catalog model")
    args = p.parse_args()
    if not EMB.is_file() or not (DATA / "interactions.csv").is_file():
        print(f"skipped: needs {EMB} and {DATA}/interactions.csv", file=sys.stderr)
        return 0
    import dataclasses

    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.cf import CFConfig, build_cf_table
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
    from rqvae_ids.ids import assign_ids
    from rqvae_ids.train import TrainConfig, train_model

    table = read_embeddings(EMB)
    catalog = load_catalog(DATA / "items.csv")
    row = {item: i for i, item in enumerate(catalog.item_ids)}
    categories = [catalog.categories[row[i]] for i in table.item_ids]
    users, seqs, order = load_interactions(DATA / "interactions.csv", table.item_ids)
    split = leave_one_out(users, seqs, 20, order)
    OUT.mkdir(parents=True, exist_ok=True)
    cf = build_cf_table(DATA / "interactions.csv", table.item_ids, OUT / "cf_embeddings.parquet", CFConfig())
    runs = [(0, seed) for seed in args.seeds] + [(s, 0) for s in args.sizes]
    results = []
    for size, seed in runs:
        name = f"S{size or 'all'}-seed{seed}"
        cfg = TrainConfig(max_items=size, seed=seed, device="cpu")
        t = time.perf_counter()
        report = train_model(EMB, OUT / name / "model", cfg, progress=False, cf=cf)
        train_s = time.perf_counter() - t
        assign_ids(OUT / name / "model", EMB, OUT / name)
        row_ = {"train_items": report["items"], "seed": seed, "epochs": report["epochs"],
                "train_seconds": round(train_s, 1),
                **measure(OUT / name / "model", OUT / name, table, categories, split)}
        results.append(row_)
        print(json.dumps(row_), flush=True)
    (ROOT / "bench" / "out" / "train_cap.json").write_text(json.dumps(
        {"embeddings": str(EMB), "items": len(table), "config": dataclasses.asdict(TrainConfig()), "rows": results},
        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
