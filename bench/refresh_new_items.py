"""New items by the daily refresh on the demo catalog (issue 14's target), measured.

    .venv/bin/python bench/refresh_new_items.py [--added 100] [--kind rqvae] [--out bench/out/refresh_new_items]

The pipeline (configs/demo.yaml, the demo interactions: a collaborative model) runs on the demo
catalog without its last `--added` items (interactions of those items left out, as if they were
not yet sold); then `refresh-ids` runs on the whole catalog. Checked and printed as one JSON line
(also appended to bench/out/refresh_new_items.jsonl): the refresh did not train (same checkpoint
hash), every old item kept its ID, every new item got a unique ID whose codes are its text-only
codes under the frozen model; the wall time of both runs and the refresh's stage times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "data" / "demo"


def split_demo(data: Path, added: int) -> tuple[Path, Path, Path]:
    """(catalog without the last `added` items, whole catalog, interactions of the first part)."""
    items = pd.read_csv(DEMO / "items.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(DEMO / "interactions.csv", dtype={"user_id": str, "item_id": str})
    data.mkdir(parents=True, exist_ok=True)
    base = items.iloc[: len(items) - added]
    base.to_csv(data / "items_base.csv", index=False)
    items.to_csv(data / "items_all.csv", index=False)
    events[events["item_id"].isin(base["item_id"])].to_csv(data / "interactions_base.csv", index=False)
    return data / "items_base.csv", data / "items_all.csv", data / "interactions_base.csv"


def text_codes(model, vectors: np.ndarray) -> np.ndarray:
    """The codes an item gets from its text alone (rqkmeans-cf: the text part of its codebooks)."""
    return model.text_codes(vectors) if model.kind == "rqkmeans-cf" else model.encode_codes(vectors)


def check(first: Path, second: Path) -> dict:
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.ids import read_semantic_ids
    from rqvae_ids.core.io import sha256_file
    from rqvae_ids.models import load_model

    old, new = read_semantic_ids(first / "semantic_ids.parquet"), read_semantic_ids(second / "semantic_ids.parquet")
    old_sid = dict(zip(old.item_ids.tolist(), old.sids.tolist()))
    new_sid = dict(zip(new.item_ids.tolist(), new.sids.tolist()))
    emb = read_embeddings(second / "embeddings.parquet")
    added = [i for i in emb.item_ids if i not in old_sid]
    rows = pd.Index(list(emb.item_ids)).get_indexer(added)
    model = load_model(second / "model")
    codes, _ = new.codes_in_order(added, where=str(second))
    stages = json.loads((second / "run_report.json").read_text())["stages"]
    return {
        "retrained": "train" in stages,
        "same_checkpoint": sha256_file(first / "model" / "model.safetensors")
        == sha256_file(second / "model" / "model.safetensors"),
        "old_items": len(old_sid), "old_ids_kept": sum(new_sid.get(i) == s for i, s in old_sid.items()),
        "new_items": len(added), "unique_ids": len(set(new_sid.values())) == len(new_sid),
        "new_items_text_codes": bool(np.array_equal(codes, text_codes(model, np.asarray(emb.vectors[rows])))),
        "collaborative_model": json.loads((first / "model" / "config.json").read_text())["cf"]["used"],
        "refresh_embedded": stages["embed"]["encoded"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--added", type=int, default=100)
    p.add_argument("--kind", default="rqvae", help="train.model.kind of the pipeline run")
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "refresh_new_items"))
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from flows.pipeline import semantic_ids_pipeline
    from flows.refresh import refresh_ids

    out = Path(args.out)
    base, whole, events = split_demo(out / "data", args.added)
    overrides = {"train.model.kind": args.kind}
    t = time.perf_counter()
    first = Path(semantic_ids_pipeline(str(base), str(out / "ids"), str(events),
                                       config=str(ROOT / "configs" / "demo.yaml"), overrides=overrides))
    pipeline_s = time.perf_counter() - t
    t = time.perf_counter()
    second = Path(refresh_ids(str(whole), str(out / "ids")))
    refresh_s = time.perf_counter() - t
    stages = json.loads((second / "run_report.json").read_text())["stages"]
    row = {"kind": args.kind, "added": args.added, "pipeline_s": round(pipeline_s, 1), "refresh_s": round(refresh_s, 1),
           "refresh_assign_s": round(sum(stages["assign"]["timings"].values()), 2), **check(first, second)}
    print(json.dumps(row), flush=True)
    with (ROOT / "bench" / "out" / "refresh_new_items.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
