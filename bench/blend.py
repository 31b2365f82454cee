"""A design tried for issue 13's two missed parallel-retriever targets (above embedding-knn;
cold items >= 1/2 of knn's): score the catalog by the parallel head's log-probability PLUS a
text term, beta * cosine(mean of the last n history text embeddings, item), beta tuned on a
validation sample (beta = 0 is the plain parallel head). The text term reaches every item,
cold or not, through its own text; the parallel term carries what the interactions taught.

  python bench/blend.py --codes rqk4 --name blend_rqk4 [--cold-items 0.05] [--set KEY=VALUE ...]

Trains the parallel head on the (cold-filtered) leave-one-out training part exactly as
bench/item_retrieval.py does (weights cached in bench/out/blend/NAME and reused), tunes n_last
like embedding-knn and beta on 5,000 validation users, then reports validation (all users) and
test Recall/NDCG@10 for beta = 0, the tuned beta and knn alone, plus cold_* with --cold-items.
One JSON line on stdout, merged into bench/out/blend.json by --name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from item_retrieval import OUT, codes_for, load, parse_with_data  # bench/ is this script's directory

BETAS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


class TextBlend:
    """parallel log-probability + beta * text cosine, exact over the catalog, history excluded."""

    history_extra = 0

    def __init__(self, model, vectors: np.ndarray, n_last: int, beta: float, max_history: int = 20):
        self.model, self.n_last, self.beta, self.max_history = model, n_last, beta, max_history
        self.vectors = vectors  # (N, d), L2-normalised

    def recommend(self, histories, k: int) -> np.ndarray:
        import torch

        from rqvae_ids.retrieval.item.trainer import pad_histories

        n = len(self.vectors)
        self.model.eval()
        out = []
        with torch.inference_mode():
            for s in range(0, len(histories), 512):
                part = histories[s : s + 512]
                x, lengths = pad_histories(part, n, self.max_history)
                scores = self.model.score_last(torch.from_numpy(x), torch.from_numpy(lengths))
                if self.beta:
                    q = np.stack([self.vectors[np.asarray(h[-self.n_last :], np.int64)].mean(0) for h in part])
                    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
                    scores = scores + self.beta * torch.from_numpy(q @ self.vectors.T)
                for i, h in enumerate(part):
                    scores[i, torch.tensor(np.asarray(h), dtype=torch.long)] = -float("inf")
                out.append(torch.topk(scores, min(k, n), dim=1).indices.numpy())
        return np.concatenate(out)


def main() -> None:
    import torch

    from rqvae_ids.core.config import from_dict, parse_set, to_dict
    from rqvae_ids.evaluate.cold import choose_cold_items, cold_metrics, cold_split, cold_users
    from rqvae_ids.evaluate.harness import evaluate_retriever, recommend_split
    from rqvae_ids.evaluate.baselines import EmbeddingKnnRetriever, _tuning_sample, _valid_recall
    from rqvae_ids.retrieval.item.retriever import ItemRetriever
    from rqvae_ids.retrieval.item.trainer import ItemRetrieverConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codes", default="rqk4")
    p.add_argument("--name", required=True)
    p.add_argument("--cold-items", type=float, default=None)
    args = parse_with_data(p)
    torch.set_num_threads(int(__import__("os").environ.get("BENCH_THREADS", "1")))

    emb, split = load(args)
    n = len(emb)
    cold = choose_cold_items(n, args.cold_items, 0) if args.cold_items else None
    learn = cold_split(split, cold, n) if cold is not None else split
    valid = (learn.valid_histories, learn.valid_targets)
    cfg = from_dict(ItemRetrieverConfig, {"head": "parallel", **parse_set(args.set, ItemRetrieverConfig)}, where="--set")
    r = ItemRetriever(n, cfg, codes_for(args.codes, emb, args.embeddings), None, OUT / "blend" / args.name, name=args.name)
    t0 = time.perf_counter()
    r.fit(learn.train, valid)
    train_s = time.perf_counter() - t0

    knn = EmbeddingKnnRetriever(np.asarray(emb.vectors, np.float32)).fit(learn.train, valid)
    sample = _tuning_sample(valid, 5000, 0)
    tuning = {b: _valid_recall(TextBlend(r.model, knn.vectors, knn.n_last, b).recommend, sample) for b in BETAS}
    beta = max(tuning, key=lambda b: (tuning[b], -b))
    row = {"name": args.name, "codes": args.codes, "config": to_dict(cfg), "cold_items": args.cold_items,
           "train_seconds": train_s, "epochs": len(r.report["history"]), "n_last": knn.n_last,
           "beta": beta, "tuning_valid_recall@10": tuning}
    for label, ret in (("parallel", TextBlend(r.model, knn.vectors, knn.n_last, 0.0)),
                       ("blend", TextBlend(r.model, knn.vectors, knn.n_last, beta)), ("knn", knn)):
        row[label] = {"valid": evaluate_retriever(ret, learn, which="valid"),
                      "test": evaluate_retriever(ret, split, which="test")}
        if cold is not None:
            users = cold_users(split, cold)
            ranked = recommend_split(ret, [split.test_histories[i] for i in users], 10)
            row[label].update(cold_metrics(ranked, split.test_targets[users]), cold_users=len(users))
    row["command"] = "python bench/blend.py " + " ".join(sys.argv[1:])
    print(json.dumps(row), flush=True)
    path = OUT / "blend.json"
    runs = json.loads(path.read_text()) if path.is_file() else {}
    runs[args.name] = row
    path.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
