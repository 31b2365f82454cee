"""Generative retrieval benchmarks on a real catalog (numbers for bench/RESULTS.md).

  python bench/retrieval.py knn  --ids IDS --interactions FILE --embeddings FILE
      embedding-knn baseline through the harness (same split and history policy).
  python bench/retrieval.py arch --ids IDS --interactions FILE [--users 4000 --epochs 3]
      decoder-only vs encoder-decoder under the same data, width and epochs:
      train time per epoch, validation and test Recall/NDCG, inference users/s.
The full training runs go through `rqvae-ids retrieve-train` (commands in bench/out/retrieval_toys.md).
Writes bench/out/retrieval_<part>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load(ids_path, interactions, users: int = 0):
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
    from rqvae_ids.ids import read_semantic_ids
    from rqvae_ids.retrieval.tiger.generative import sid_codes

    ids = read_semantic_ids(ids_path)
    u, seqs, order = load_interactions(interactions, list(ids.item_ids))
    if users:
        u, seqs = u[:users], seqs[:users]
    return ids, sid_codes(ids), leave_one_out(u, seqs, 20, order_column=order)


def knn(args) -> dict:
    from rqvae_ids.evaluate.harness import fit_and_evaluate
    from rqvae_ids.evaluate.baselines import EmbeddingKnnRetriever, PopularityRetriever
    from rqvae_ids.core.embedding_table import read_embeddings

    ids, _, split = load(args.ids, args.interactions)
    emb = read_embeddings(args.embeddings)
    assert list(emb.item_ids) == list(ids.item_ids), "embeddings and IDs must share the catalog order"
    out = {}
    for r in (PopularityRetriever(len(emb)), EmbeddingKnnRetriever(emb.vectors)):
        m, s = fit_and_evaluate(r, split)
        out[r.name] = dict(m, seconds=s, **({"n": getattr(r, "n", None)} if hasattr(r, "n") else {}))
        print(r.name, out[r.name], flush=True)
    return out


def arch(args) -> dict:
    from rqvae_ids.evaluate.harness import evaluate_retriever
    from rqvae_ids.retrieval.tiger.generative import GenerativeRetriever
    from rqvae_ids.retrieval.tiger.trainer import RetrievalConfig

    _, codes, split = load(args.ids, args.interactions, args.users)
    base = RetrievalConfig(max_epochs=args.epochs, patience=args.epochs, valid_users=0, device=args.device)
    out = {}
    for a in ("decoder", "encdec"):
        r = GenerativeRetriever(codes, replace(base, arch=a), None)
        r.fit(split.train, (split.valid_histories, split.valid_targets))
        t0 = time.perf_counter()
        m = evaluate_retriever(r, split)
        inf = time.perf_counter() - t0
        h = r.report["history"]
        out[a] = dict(test=m, params=r.report["n_params"], examples=r.report["examples"],
                      train_s_per_epoch=sum(x["train_s"] for x in h) / len(h),
                      valid_ndcg10_per_epoch=[x["valid_next_ndcg@10"] for x in h],
                      infer_users_per_s=len(split.users) / inf, users=len(split.users))
        print(a, json.dumps(out[a]), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("knn", "arch"))
    p.add_argument("--ids", required=True)
    p.add_argument("--interactions", required=True)
    p.add_argument("--embeddings")
    p.add_argument("--users", type=int, default=4000, help="arch: first N users (sorted ids) only")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--name", default="")
    args = p.parse_args()
    res = {"knn": knn, "arch": arch}[args.part](args)
    res["command"] = " ".join(sys.argv)
    path = ROOT / "bench" / "out" / f"retrieval_{args.part}{args.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
