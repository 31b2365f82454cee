"""What limits ID quality on a catalog: the numbers behind bench/RESULTS.md's tuning analysis.

    .venv/bin/python bench/id_ceiling.py --embeddings FILE [--model-dir NAME=DIR ...]

Prints (and writes bench/out/id_ceiling.json):
1. near-duplicates: share of items whose vector equals another item's, and whose nearest
   neighbour has cosine >= 0.999 / 0.99 / 0.98 / 0.95 / 0.9 (faiss, exact);
2. the linear ceiling: residual k-means (L x K) on the top-d PCA components, for d in
   32 / 64 / 128 / all: neighbour recall@10 of level 0 alone and of the full tuple, collisions;
3. per --model-dir (a trained model directory): neighbour recall@10 of its codes cut to 1..L
   levels, the number of distinct prefixes, and the same with a balanced last level
   (`encode_codes(distinct_last=True)`): collisions and recall.
Neighbour recall: 2,000 seeded queries, exact-cosine top-10 ground truth.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def near_duplicates(x: np.ndarray) -> dict:
    import faiss

    from rqvae_ids.core.metrics import colliding_share

    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(xn.shape[1])
    index.add(xn)
    sims, _ = index.search(xn, 2)
    top = sims[:, 1]
    out = {"identical_vectors_share": colliding_share(x)}  # rows as tuples: identical vectors collide
    out.update({f"nn_cosine_ge_{t}": float((top >= t).mean()) for t in (0.999, 0.99, 0.98, 0.95, 0.9)})
    return out


def linear_ceiling(x: np.ndarray, levels: int, k: int) -> list[dict]:
    import torch

    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.core.metrics import colliding_share, duplicate_rate
    from rqvae_ids.quantizers import ResidualQuantizer

    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    rows = []
    for d in (32, 64, 128, x.shape[1]):
        z = torch.from_numpy(((x - mean) @ vt[:d].T).astype(np.float32))
        rq = ResidualQuantizer(levels, k, d)
        rq.init_embed_(z)
        codes = rq.encode(z).numpy()
        rows.append({"d": d, "variance_kept": float((s[:d] ** 2).sum() / (s ** 2).sum()),
                     "recall@10_level0": neighbour_recall(x, codes[:, :1])["neighbour_recall@10"],
                     "recall@10": neighbour_recall(x, codes)["neighbour_recall@10"],
                     "colliding_share": colliding_share(codes), "duplicate_rate": duplicate_rate(codes)})
    return rows


def model_depth(x: np.ndarray, model_dir: str) -> dict:
    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.core.metrics import colliding_share
    from rqvae_ids.models import load_model

    model = load_model(model_dir)
    codes = model.encode_codes(x)
    out = {"by_depth": [{"levels": l, "recall@10": neighbour_recall(x, codes[:, :l])["neighbour_recall@10"],
                         "prefixes": int(len(np.unique(codes[:, :l], axis=0)))} for l in range(1, codes.shape[1] + 1)],
           "colliding_share": colliding_share(codes)}
    balanced = model.encode_codes(x, distinct_last=True)
    out["distinct_last"] = {"colliding_share": colliding_share(balanced),
                            "recall@10": neighbour_recall(x, balanced)["neighbour_recall@10"]}
    return out


def main() -> None:
    from rqvae_ids.core.io import provenance
    from rqvae_ids.core.embedding_table import read_embeddings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--model-dir", "--model", dest="model", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--codebook-size", type=int, default=256)
    args = p.parse_args()
    x = np.array(read_embeddings(args.embeddings).vectors, dtype=np.float32)
    result = {"embeddings": args.embeddings, "items": len(x), "near_duplicates": near_duplicates(x),
              "linear_ceiling": linear_ceiling(x, args.levels, args.codebook_size), "models": {}}
    for spec in args.model:
        name, _, path = spec.partition("=")
        result["models"][name] = model_depth(x, path)
    result["provenance"] = provenance()
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    out = ROOT / "bench" / "out" / "id_ceiling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
