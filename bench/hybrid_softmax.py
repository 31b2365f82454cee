"""Where the hybrid head's sampled softmax pays: training-step time and peak memory of the full
softmax against the sampled one (R shared negatives, logQ-corrected popularity draws), and the
exact-scoring throughput (default hybrid config), on synthetic catalogs of N items (codes 3 x 256, 384-d text vectors,
Zipf-popular sequences of 5-50 items).

  python bench/hybrid_softmax.py --items 12000 200000 [--negatives 256 1024] [--steps 20]

Memory of one full-softmax step (float32): the (M, N) logits, their softmax and gradient,
~3 * M * N * 4 bytes with M target positions per batch (<= batch x history), plus the (N, d)
composed table and its gradient; the sampled softmax replaces N by R + 1 and composes only the
rows the step touches. Prints one JSON row per setting; merged into bench/out/hybrid_softmax.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"


def synthetic(n_items: int, users: int, seed: int = 0):
    """Zipf-popular sequences (5-50 items), 3 x 256 codes and unit 384-d text vectors."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop /= pop.sum()
    seqs = [rng.choice(n_items, rng.integers(5, 51), p=pop) for _ in range(users)]
    codes = rng.integers(0, 256, (n_items, 3))
    vec = rng.normal(size=(n_items, 384)).astype(np.float32)
    return seqs, codes, vec / np.linalg.norm(vec, axis=1, keepdims=True)


def step_cost(n_items: int, seqs, codes, vec, negatives: int, steps: int) -> dict:
    """Mean seconds per training step over `steps` steps (after 2 warm-up steps) and the peak RSS."""
    import torch

    from rqvae_ids.retrieval.item.model import ItemSeqModel
    from rqvae_ids.retrieval.item.trainer import NegativeSampler, item_config, model_config, seen_items, windows

    cfg = item_config("hybrid", {"negatives": negatives, "negative_sampling": "popularity"})
    x, y = windows(seqs, n_items, cfg.max_history)
    model = ItemSeqModel(model_config(cfg, n_items, codes, vec), codes, vec)
    seen = seen_items(seqs, n_items)
    model.set_seen(seen)
    sampler = NegativeSampler.build(cfg, y, seen)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    times = []
    for i in range(steps + 2):
        idx = rng.choice(len(x), cfg.batch_size, replace=False)
        neg = sampler.draw(rng, negatives) if sampler else (None, None)
        t0 = time.perf_counter()
        to = lambda a: None if a is None else torch.from_numpy(a)  # noqa: E731
        loss = model.loss(to(x[idx]), to(y[idx]), to(neg[0]), to(neg[1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return {"s_per_step": float(np.mean(times)), "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def scoring(n_items: int, seqs, codes, vec, users: int = 4096) -> float:
    """Users/s of exact full-catalog scoring (history excluded), untrained weights (same cost)."""
    from rqvae_ids.retrieval.item.model import ItemSeqModel
    from rqvae_ids.retrieval.item.trainer import item_config, model_config, recommend

    cfg = item_config("hybrid")  # the defaults: text-match channel included
    model = ItemSeqModel(model_config(cfg, n_items, codes, vec), codes, vec).eval()
    hist = [s[:-1] for s in seqs[:users]]
    recommend(model, hist[:512], 10, 20)
    t0 = time.perf_counter()
    recommend(model, hist, 10, 20)
    return len(hist) / (time.perf_counter() - t0)


def main() -> None:
    import subprocess

    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, nargs="+", default=[12000, 200000])
    p.add_argument("--negatives", type=int, nargs="+", default=[0, 256, 1024], help="0 = full softmax")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--one", nargs=2, type=int, metavar=("N", "R"), help=argparse.SUPPRESS)  # child process
    args = p.parse_args()
    if args.one:  # one setting per process, so each peak RSS is its own
        n, r = args.one
        seqs, codes, vec = synthetic(n, 4096)
        row = {"n_items": n, "negatives": r, "threads": torch.get_num_threads(),
               **step_cost(n, seqs, codes, vec, r, args.steps)}
        if r == 0:
            row["score_users_per_s"] = scoring(n, seqs, codes, vec)
        print(json.dumps(row), flush=True)
        return
    rows = []
    for n in args.items:
        for r in args.negatives:
            out = subprocess.run([sys.executable, __file__, "--one", str(n), str(r), "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "hybrid_softmax.json").write_text(json.dumps({"rows": rows, "command": "python bench/hybrid_softmax.py "
                                                         + " ".join(sys.argv[1:])}, indent=2) + "\n")


if __name__ == "__main__":
    main()
