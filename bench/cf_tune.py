"""Collaborative tokenizers scored by VALIDATION next-item metrics (issue 14).

    .venv/bin/python bench/cf_tune.py NAME --embeddings EMB/embeddings.parquet \\
        --interactions ../shared/data/amazon-toys/interactions.csv [--cf] [--test] [key=value ...]

Trains one tokenizer (key=value: TrainConfig/ModelConfig overrides, as `rqvae-ids train --set`;
`kind=rqkmeans-cf` for residual k-means on [text, alpha * CF]) into bench/out/cf_tune/NAME,
with the CF embeddings of the interactions' leave-one-out training part when --cf is given
(cached in bench/out/cf_tune/cf_embeddings.parquet; its build time is reported once, as
`cf_seconds`, and counted in `train_seconds_with_cf`). Then, on the model's greedy codes:
the harness's sid-prefix retriever (weights tuned on a validation sample) scored on the
VALIDATION split (Recall/NDCG@10), text-neighbour recall@10 (2,000 seeded queries, exact
cosine ground truth on the text embeddings), colliding share (items sharing a full tuple),
per-level utilisation. --test also scores the test split (only for the final default).
--cf-source sasrec: the CF embeddings are instead the item table of a SASRec trained on the same
training part (LETTER's collaborative target; items never seen in training get none), cached
in bench/out/cf_tune/cf_sasrec.npz with its training seconds.
One JSON line on stdout and appended to bench/out/cf_tune.jsonl.
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


def codes_of(model, x, cf):
    """Greedy codes; rqkmeans-cf and (issue 25) rqvae trained with CF read [text, alpha * CF]
    (the cold CF part for items without CF)."""
    if getattr(model, "reads_cf", False) and cf is not None:
        return model.encode_codes(model.cf_inputs(x, cf.vectors, cf.has))
    return model.encode_codes(x)


def sasrec_cf(emb, interactions, base: Path, minutes: float):
    """LETTER's CF target: the (N, d) item table of a SASRec trained on the leave-one-out training
    part for `minutes` (best validation epoch kept), as a CFTable like PPMI-SVD's: unit rows, zero
    rows for items with no training interaction. Cached per budget with its training seconds
    (delete bench/out/cf_tune/cf_sasrec_*.npz when the embeddings or interactions change)."""
    from rqvae_ids.core.cf_table import CFTable
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
    from rqvae_ids.retrieval.item.trainer import ItemRetrieverConfig, train

    cache = base / f"cf_sasrec_{minutes:g}min.npz"
    if cache.is_file():
        z = np.load(cache)
        vectors, has, seconds = z["vectors"], z["has"], float(z["seconds"])
    else:
        t = time.perf_counter()
        users, seqs, order = load_interactions(interactions, list(emb.item_ids))
        split = leave_one_out(users, seqs, 20, order_column=order)
        cfg = ItemRetrieverConfig(head="sasrec", max_minutes=minutes)
        model, _ = train(len(emb), split.train, (split.valid_histories, split.valid_targets), None, cfg)
        vectors = model.items.weight[: len(emb)].detach().cpu().numpy().astype(np.float32)
        has = np.bincount(np.concatenate(split.train), minlength=len(emb)) > 0
        seconds = time.perf_counter() - t
        base.mkdir(parents=True, exist_ok=True)
        np.savez(cache, vectors=vectors, has=has, seconds=seconds)
    # the scale PPMI-SVD's table has (rqkmeans-cf concatenates alpha * CF with unit text vectors)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    vectors[~has] = 0.0
    return CFTable(vectors.astype(np.float32), has, {"cf": {"source": "sasrec"}}), seconds


def main() -> None:
    from rqvae_ids.cf import build_cf_table
    from rqvae_ids.core.config import parse_set
    from rqvae_ids.evaluate.harness import evaluate_retriever, fit_retriever
    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.evaluate.baselines import SidPrefixRetriever
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
    from rqvae_ids.core.metrics import colliding_share, utilisation
    from rqvae_ids.models import load_model
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.train import TrainConfig, config_from_args, train_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--embeddings", required=True)
    p.add_argument("--interactions", required=True)
    p.add_argument("--cf", action="store_true", help="train with the CF embeddings")
    p.add_argument("--test", action="store_true", help="also report test metrics (final default only)")
    p.add_argument("--cf-source", choices=("ppmi", "sasrec"), default="ppmi",
                   help="CF embeddings: PPMI-SVD (rqvae_ids.cf, the default) or a SASRec item table (LETTER)")
    p.add_argument("--sasrec-minutes", type=float, default=5.0, help="--cf-source sasrec: its training budget")
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args()
    for f in (args.embeddings, args.interactions):
        if not Path(f).is_file():
            sys.exit(f"skipped: {f} not found (the Toys data lives in ../shared/data, beside the checkout)")
    # the `train --set` grammar (bench/tune.py): a key bare (lr) or dotted (model.cf_weight)
    overrides = parse_set(args.overrides, TrainConfig, flag="key=value", bare=True, strip="train.")
    overrides = {k.rsplit(".", 1)[-1]: v for k, v in overrides.items()}
    base = ROOT / "bench" / "out" / "cf_tune"
    emb = read_embeddings(args.embeddings)
    x = np.asarray(emb.vectors, dtype=np.float32)
    row = {"name": args.name, "cf": args.cf, "overrides": overrides}
    cf = None
    if args.cf_source == "sasrec" and (args.cf or overrides.get("kind") == "rqkmeans-cf"):
        cf, row["cf_seconds"] = sasrec_cf(emb, args.interactions, base, args.sasrec_minutes)
        row["cf_source"], row["items_with_cf"] = "sasrec", int(cf.has.sum())
    elif args.cf or overrides.get("kind") == "rqkmeans-cf":
        t = time.perf_counter()
        cached = (base / "cf_embeddings.parquet").is_file()
        base.mkdir(parents=True, exist_ok=True)
        cf = build_cf_table(args.interactions, emb.item_ids, base / "cf_embeddings.parquet")
        row["cf_seconds"] = round(time.perf_counter() - t, 1)
        row["cf_cached"] = cached
        row["items_with_cf"] = int(cf.has.sum())
    t = time.perf_counter()
    # the RQ-VAE unless --set kind=... says otherwise (the pipeline's default kind is `auto` since issue 25)
    report = train_model(args.embeddings, base / args.name, config_from_args(**{"kind": "rqvae", **overrides}),
                         progress=False, cf=cf)
    row["train_seconds"] = round(time.perf_counter() - t, 1)
    row["cf"] = cf is not None
    row["epochs"] = report["epochs"]
    model = load_model(base / args.name)
    codes = codes_of(model, x, cf)
    users, seqs, order = load_interactions(args.interactions, emb.item_ids)
    split = leave_one_out(users, seqs, 20, order)
    retriever = fit_retriever(SidPrefixRetriever(codes), split)
    valid = evaluate_retriever(retriever, split, which="valid")
    row.update({f"valid_{k.removeprefix('next_')}": round(v, 4) for k, v in valid.items() if k.endswith("@10")})
    if args.test:
        test = evaluate_retriever(retriever, split, which="test")
        row.update({f"test_{k.removeprefix('next_')}": round(v, 4) for k, v in test.items()})
    row["neighbour_recall@10"] = round(neighbour_recall(x, codes)["neighbour_recall@10"], 4)
    row["colliding_share"] = round(colliding_share(codes), 4)
    row["utilisation"] = [round(u, 3) for u in utilisation(codes, model.codebook_size)]
    print(json.dumps(row), flush=True)
    with (ROOT / "bench" / "out" / "cf_tune.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
