"""How far each evaluation target is from the training data: for the validation and the test
targets of the harness's leave-one-out split (and for the last history item of each query), the
share that never / at most twice occurs in the training part. Explains a valid/test gap of
item-ID models (bench/RESULTS.md, item-level retrievers, second round).

  python bench/split_shift.py [--embeddings bench/out/toys/emb/embeddings.parquet]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOYS = ROOT.parent / "shared" / "data" / "amazon-toys"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embeddings", default=str(ROOT / "bench" / "out" / "toys" / "emb" / "embeddings.parquet"))
    p.add_argument("--interactions", default=str(TOYS / "interactions.csv"))
    args = p.parse_args()
    for f in (args.embeddings, args.interactions):
        if not Path(f).is_file():
            sys.exit(f"skipped: {f} not found (embed ../shared/data/amazon-toys/items.csv with `rqvae-ids embed` first)")
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions

    emb = read_embeddings(args.embeddings)
    users, seqs, order = load_interactions(args.interactions, list(emb.item_ids))
    split = leave_one_out(users, seqs, 20, order_column=order)
    count = np.bincount(np.concatenate(split.train), minlength=len(emb))
    for name, hist, targets in (("valid", split.valid_histories, split.valid_targets),
                                ("test", split.test_histories, split.test_targets)):
        last = np.array([h[-1] for h in hist])
        for what, items in (("last history item", last), ("target", np.asarray(targets))):
            c = count[items]
            print(f"{name} {what}: never in training {np.mean(c == 0):.3f}, at most twice {np.mean(c <= 2):.3f}, "
                  f"median count {int(np.median(c))}")


if __name__ == "__main__":
    main()
