"""Next-item signal of trained tokenizers' codes: the evaluation harness's sid-prefix retriever.

    .venv/bin/python bench/sid_prefix.py --embeddings EMB/embeddings.parquet \\
        --interactions ../shared/data/amazon-toys/interactions.csv bench/out/tune/NAME ...

For every model directory: encode all items greedily (raw codes) and with a balanced last level
(`encode_codes(distinct_last=True)`), fit `SidPrefixRetriever` on the leave-one-out training
sequences (weights tuned on validation), and report test Recall/NDCG@5/10. One JSON line per
(model, codes) on stdout and appended to bench/out/sid_prefix.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from rqvae_ids.evaluate.harness import fit_and_evaluate
    from rqvae_ids.evaluate.baselines import SidPrefixRetriever
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
    from rqvae_ids.models import load_model
    from rqvae_ids.core.embedding_table import read_embeddings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="trained model directories")
    p.add_argument("--embeddings", required=True)
    p.add_argument("--interactions", required=True)
    args = p.parse_intermixed_args()
    for f in (args.embeddings, args.interactions):
        if not Path(f).is_file():
            sys.exit(f"skipped: {f} not found (the Toys data lives in ../shared/data, beside the checkout)")
    emb = read_embeddings(args.embeddings)
    x = np.asarray(emb.vectors, dtype=np.float32)
    users, seqs, order = load_interactions(args.interactions, list(emb.item_ids))
    split = leave_one_out(users, seqs, 20, order_column=order)
    log = ROOT / "bench" / "out" / "sid_prefix.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    for model_dir in args.models:
        model = load_model(model_dir)
        for mode in ("greedy", "balanced"):
            codes = model.encode_codes(x, distinct_last=mode == "balanced")
            metrics, seconds = fit_and_evaluate(SidPrefixRetriever(codes), split)
            row = {"model": str(model_dir), "codes": mode, **{k: round(v, 4) for k, v in metrics.items()},
                   "seconds": round(seconds, 1)}
            print(json.dumps(row), flush=True)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
