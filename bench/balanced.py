"""Collision resolutions side by side on trained model directories (issue 14, balanced last level).

    .venv/bin/python bench/balanced.py --embeddings EMB/embeddings.parquet MODEL_DIR ...

For each model: `assign_ids` with --resolve suffix, reassign and balanced; per resolution the
share of items sharing a full L-code tuple (all items, and excluding items whose text is
identical to another item's, which must share), the items with an identical text, the
text-neighbour recall@10 of the resolved L codes next to that of the greedy codes, items
moved and seconds. One JSON line per (model, resolution), appended to bench/out/balanced.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sharing(codes: np.ndarray, text_keys: np.ndarray) -> tuple[float, float, int]:
    """(share of items sharing a tuple, same excluding identical-text sharers, identical-text sharers)."""
    from rqvae_ids.ids.balanced import _same_text_share
    from rqvae_ids.core.metrics import colliding_share

    k = int(codes.max()) + 1
    same = _same_text_share(codes, text_keys, k)
    from rqvae_ids.ids.collisions import group_tuples

    inverse, sizes, _ = group_tuples(codes, k)
    shared = sizes[inverse] > 1
    return colliding_share(codes), float((shared & ~same).mean()), int(same.sum())


def main() -> None:
    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.ids import assign_ids, read_semantic_ids
    from rqvae_ids.models import load_model
    from rqvae_ids.core.embedding_table import read_embeddings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--embeddings", required=True)
    args = p.parse_args()
    emb = read_embeddings(args.embeddings)
    x = np.asarray(emb.vectors, np.float32)
    keys = np.asarray(emb.text_sha256, dtype=object)
    log = ROOT / "bench" / "out" / "balanced.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    for model_dir in args.models:
        greedy = load_model(model_dir).encode_codes(x)
        base = neighbour_recall(x, greedy)["neighbour_recall@10"]
        for resolve in ("suffix", "reassign", "balanced"):
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                rep = assign_ids(model_dir, args.embeddings, d, resolve=resolve)
                seconds = time.perf_counter() - t
                codes = read_semantic_ids(Path(d) / "semantic_ids.parquet").codes
            all_share, excl, same = sharing(codes, keys)
            row = {"model": Path(model_dir).name, "resolve": resolve, "seconds": round(seconds, 1),
                   "sharing_share": round(all_share, 5), "sharing_share_excl_identical_text": round(excl, 5),
                   "identical_text_items_sharing": same, "greedy_neighbour_recall@10": round(base, 4),
                   "neighbour_recall@10": round(neighbour_recall(x, codes)["neighbour_recall@10"], 4),
                   "items_moved": rep["resolution"].get("items_moved", 0)}
            print(json.dumps(row), flush=True)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
