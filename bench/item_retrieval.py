"""Item-level retrievers (`sasrec`, `parallel`, `hybrid`) on a real catalog: numbers for bench/RESULTS.md.

  python bench/item_retrieval.py run --head sasrec --name sasrec [--set lr=0.002 ...]
  python bench/item_retrieval.py run --head parallel --codes opq16 --name par_opq16 [--set ...]
  python bench/item_retrieval.py run --head hybrid --codes rqk3 --name hyb [--set parts=id,codes,text ...]
  python bench/item_retrieval.py run ... --cold-items 0.05   (hold 5 % of items out; adds cold_* metrics,
      on test and on the validation users whose validation target is cold)
  python bench/item_retrieval.py knn
  python bench/item_retrieval.py paired A B [--cold-items 0.05]   (paired SEs from bench/out/hits/)
  python bench/item_retrieval.py speed --codes opq16

--codes: opqM (faiss OPQ, M sub-spaces x 256), rqkL (residual k-means, L levels x 256, +suffix
digit when --suffix), randomD (D uniform random digits x 256, the ablation), ids:PATH
(semantic_ids.parquet, levels + suffix), rqkcfL (residual k-means on [text, 0.7 CF], CF from
the run's training sequences only; rqkcfLsS: k-means seed S, default 0). Codes are cached in
bench/out/toys/codes_<spec>.npy.
Every run fits on the leave-one-out training sequences, early-stops on validation and
reports validation (all users) and test Recall/NDCG@5/10 through the harness, training
minutes and inference users/s. Results are merged into bench/out/item_retrieval.json by --name.
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
TOYS = ROOT.parent / "shared" / "data" / "amazon-toys"
OUT = ROOT / "bench" / "out"


def parse_with_data(p: argparse.ArgumentParser) -> argparse.Namespace:
    """Add --set/--embeddings/--interactions to `p`, parse, and exit with a skip message when the
    data is absent (shared by this script and bench/blend.py)."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--embeddings", default=str(OUT / "toys" / "emb" / "embeddings.parquet"))
    p.add_argument("--interactions", default=str(TOYS / "interactions.csv"))
    args = p.parse_args()
    for f in (args.embeddings, args.interactions):
        if not Path(f).is_file():
            sys.exit(f"skipped: {f} not found (embed ../shared/data/amazon-toys/items.csv with `rqvae-ids embed` first)")
    return args


def load(args):
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
    from rqvae_ids.core.embedding_table import read_embeddings

    emb = read_embeddings(args.embeddings)
    users, seqs, order = load_interactions(args.interactions, list(emb.item_ids))
    return emb, leave_one_out(users, seqs, 20, order_column=order)


def codes_cache(spec: str, embeddings: str) -> Path:
    """Where the codes of `spec` for this embeddings file are cached: Toys' in bench/out/toys/,
    any other catalog's under bench/out/codes/<hash of the embeddings path>/."""
    name = f"codes_{spec.replace(':', '_').replace('/', '_')}.npy"
    if Path(embeddings).resolve() == (OUT / "toys" / "emb" / "embeddings.parquet").resolve():
        return OUT / "toys" / name
    import hashlib

    return OUT / "codes" / hashlib.sha256(str(Path(embeddings).resolve()).encode()).hexdigest()[:12] / name


def codes_for(spec: str, emb, embeddings: str, train=None, tag: str = "") -> np.ndarray:
    """(N, D) codes in the embeddings' catalog order, cached per embeddings file (and `tag`: the
    cold-item hold-out, which changes the CF that rqkcf codes read). train: the training sequences
    (catalog indices) that rqkcf's CF embeddings are built from."""
    cache = codes_cache(spec + tag, embeddings)
    if cache.is_file():
        return np.load(cache)
    x = np.asarray(emb.vectors, dtype=np.float32)
    t0 = time.perf_counter()
    if spec.startswith("opq"):
        from rqvae_ids.models import ModelConfig, fit_opq

        codes = fit_opq(x, ModelConfig(kind="opq", levels=int(spec[3:]))).encode_codes(x)
    elif spec.startswith("rqkcf"):  # rqkcfL, or rqkcfLsS: k-means seed S (default 0)
        levels, _, seed = spec[5:].partition("s")
        codes = rqkmeans_cf_codes(x, int(levels), train, int(seed or 0))
    elif spec.startswith("rqk"):
        from rqvae_ids.models import ModelConfig, fit_rqkmeans

        codes = fit_rqkmeans(x, ModelConfig(kind="rqkmeans", levels=int(spec[3:]))).encode_codes(x)
    elif spec.startswith("random"):
        codes = np.random.default_rng(0).integers(0, 256, (len(x), int(spec[6:])))
    elif spec.startswith("ids:"):
        from rqvae_ids.ids import read_semantic_ids
        from rqvae_ids.retrieval.tiger.generative import sid_codes

        ids = read_semantic_ids(spec[4:])
        assert list(ids.item_ids) == list(emb.item_ids), "IDs and embeddings must share the catalog order"
        codes = sid_codes(ids)
    else:
        raise SystemExit(f"unknown --codes {spec!r}")
    print(f"codes {spec}: {codes.shape}, {len({tuple(r) for r in codes})} distinct, {time.perf_counter() - t0:.0f}s",
          flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, codes)
    return codes


def rqkmeans_cf_codes(x: np.ndarray, levels: int, train, seed: int = 0) -> np.ndarray:
    """rqkmeans-cf codes: residual k-means on [text, alpha * CF], CF embeddings (PPMI + SVD, the
    pipeline's defaults) from `train` only, so no validation or test target leaks into the codes.
    seed: the k-means seed (the tokenizer's `--seed`; the CF embeddings keep CFConfig's)."""
    from rqvae_ids.cf import CFConfig, cf_vectors
    from rqvae_ids.models import ModelConfig, build_model

    cf, has = cf_vectors(train, len(x), CFConfig())
    # cf_cold zero: the rule these spec rows were recorded with (the pipeline's default became regress later)
    model = build_model(ModelConfig(kind="rqkmeans-cf", levels=levels, input_dim=x.shape[1], cf_dim=cf.shape[1],
                                    cf_cold="zero"))
    inputs = model.cf_inputs(x, cf, has)
    model.fit_codebooks_(__import__("torch").from_numpy(inputs), seed=seed)
    return model.encode_codes(inputs)


def cold_rows(r, split, cold) -> dict:
    """cold_recall@10 / cold_ndcg@10 over the test users whose target is a held-out item."""
    from rqvae_ids.evaluate.cold import cold_metrics, cold_users
    from rqvae_ids.evaluate.harness import recommend_split

    users = cold_users(split, cold)
    ranked = recommend_split(r, [split.test_histories[i] for i in users], 10)
    return dict(cold_metrics(ranked, split.test_targets[users]), cold_users=len(users))


def valid_cold_rows(r, split, cold, name: str) -> dict:
    """cold_recall@10 / cold_ndcg@10 over the validation users of the full split (not cold_split's,
    which leaves them out) whose validation target is a held-out item: the validation counterpart of
    cold_rows, so a cold-item setting can be chosen without test numbers. The run never learnt on
    those items (cold_split removes them from the training sequences and from early stopping).
    Per-user hits go to NAME_validcold.npy / NAME_validcold_ndcg.npy (`paired`)."""
    from rqvae_ids.evaluate.cold import cold_metrics
    from rqvae_ids.evaluate.harness import recommend_split

    users = np.flatnonzero(np.isin(split.valid_targets, cold))
    ranked = recommend_split(r, [split.valid_histories[i] for i in users], 10)
    write_hits(ranked, split.valid_targets[users], f"{name}_validcold")
    return dict(cold_metrics(ranked, split.valid_targets[users]), cold_users=len(users))


def write_hits(ranked: np.ndarray, targets, stem: str) -> None:
    """Per-user hit@10 (0/1) and NDCG@10 of (U, 10) recommendations: bench/out/hits/STEM.npy, STEM_ndcg.npy."""
    match = ranked == np.asarray(targets)[:, None]
    ndcg = (match / np.log2(np.arange(2, ranked.shape[1] + 2))[None, :]).sum(1)
    (OUT / "hits").mkdir(parents=True, exist_ok=True)
    np.save(OUT / "hits" / f"{stem}.npy", match.any(1))
    np.save(OUT / "hits" / f"{stem}_ndcg.npy", ndcg)


def save_hits(r, split, name: str, which: str = "test") -> None:
    """Per-user hit@10 (0/1) and NDCG@10 of `which` ("test": bench/out/hits/NAME.npy and
    NAME_ndcg.npy; "valid": NAME_valid.npy and NAME_valid_ndcg.npy, over the validation users of
    the split the run learnt on): paired standard errors between runs
    (`python bench/item_retrieval.py paired A B`)."""
    from rqvae_ids.evaluate.harness import recommend_split

    hist, targets = ((split.test_histories, split.test_targets) if which == "test"
                     else (split.valid_histories, split.valid_targets))
    write_hits(recommend_split(r, hist, 10), targets, name if which == "test" else f"{name}_{which}")


def paired_hits(ha: np.ndarray, hb: np.ndarray) -> dict:
    d = ha.astype(np.float64) - hb.astype(np.float64)
    return {"a": float(ha.mean()), "b": float(hb.mean()), "diff": float(d.mean()),
            "paired_se": float(d.std(ddof=1) / np.sqrt(len(d))), "users": len(d)}


def paired(a: str, b: str, cold_users: np.ndarray | None = None) -> dict:
    """Recall@10 of runs a and b on the same test users, their difference and its paired standard
    error; the same for NDCG@10 ("ndcg@10"), on the validation users ("valid", "valid_ndcg@10")
    and on the validation users whose target is cold ("valid_cold_recall@10", "valid_cold_ndcg@10",
    runs with --cold-items) where both runs saved those. cold_users (test-user indices): also
    "cold_recall@10" / "cold_ndcg@10" over those users alone (`paired A B --cold-items 0.05`)."""
    out = {"a": a, "b": b}
    for key, suffix in (("recall@10", ""), ("ndcg@10", "_ndcg"), ("valid_recall@10", "_valid"),
                        ("valid_ndcg@10", "_valid_ndcg"), ("valid_cold_recall@10", "_validcold"),
                        ("valid_cold_ndcg@10", "_validcold_ndcg")):
        files = [OUT / "hits" / f"{n}{suffix}.npy" for n in (a, b)]
        if all(f.is_file() for f in files):
            hits = [np.load(f) for f in files]
            out[key] = paired_hits(*hits)
            if cold_users is not None and not key.startswith("valid"):
                out[f"cold_{key}"] = paired_hits(*(h[cold_users] for h in hits))
    return out


def paired_cold_users(args) -> np.ndarray | None:
    """Test users whose target is one of the --cold-items held-out items (None without it)."""
    if not args.cold_items:
        return None
    from rqvae_ids.evaluate.cold import choose_cold_items, cold_users

    emb, split = load(args)
    return cold_users(split, choose_cold_items(len(emb), args.cold_items, 0))


def run(args) -> dict:
    from rqvae_ids.core.config import parse_set, to_dict
    from rqvae_ids.evaluate.cold import choose_cold_items, cold_split
    from rqvae_ids.evaluate.harness import evaluate_retriever
    from rqvae_ids.retrieval.item.retriever import ItemRetriever
    from rqvae_ids.retrieval.item.trainer import ItemRetrieverConfig, item_config

    emb, split = load(args)
    cfg = item_config(args.head, parse_set(args.set, ItemRetrieverConfig), where="--set")
    cold = choose_cold_items(len(emb), args.cold_items, 0) if args.cold_items else None
    learn = cold_split(split, cold, len(emb)) if cold is not None else split
    tag = f"_cold{args.cold_items}" if cold is not None and args.codes.startswith("rqkcf") else ""
    codes = codes_for(args.codes, emb, args.embeddings, learn.train, tag) if cfg.needs_codes else None
    r = ItemRetriever(len(emb), cfg, codes, np.asarray(emb.vectors) if cfg.needs_text else None, None, name=args.name)
    r.fit(learn.train, (learn.valid_histories, learn.valid_targets))
    valid = evaluate_retriever(r, learn, which="valid")
    t0 = time.perf_counter()
    test = evaluate_retriever(r, split, which="test")
    infer = time.perf_counter() - t0
    save_hits(r, split, args.name)
    save_hits(r, learn, args.name, "valid")
    if cold is not None:
        test.update(cold_rows(r, split, cold))
        valid.update(valid_cold_rows(r, split, cold, args.name))
    h = r.report["history"]
    return {"head": args.head, "codes": args.codes if codes is not None else None, "config": to_dict(cfg),
            "cold_items": args.cold_items,
            "valid": valid, "test": test, "train_minutes": r.report["train_seconds"] / 60,
            "epochs": len(h), "best_epoch": r.report["best_epoch"], "n_params": r.report["n_params"],
            "s_per_epoch": float(np.mean([x["train_s"] for x in h])),
            "valid_ndcg10_curve": [round(x.get("valid_next_ndcg@10", 0), 4) for x in h],
            "infer_users_per_s": len(split.users) / infer, "users": len(split.users)}


def knn(args) -> dict:
    from rqvae_ids.evaluate.cold import choose_cold_items, cold_split
    from rqvae_ids.evaluate.harness import evaluate_retriever, fit_retriever
    from rqvae_ids.evaluate.baselines import EmbeddingKnnRetriever

    emb, split = load(args)
    cold = choose_cold_items(len(emb), args.cold_items, 0) if args.cold_items else None
    learn = cold_split(split, cold, len(emb)) if cold is not None else split
    r = fit_retriever(EmbeddingKnnRetriever(emb.vectors), learn)
    test = evaluate_retriever(r, split)
    save_hits(r, split, args.name or "knn")
    if cold is not None:
        test.update(cold_rows(r, split, cold))
    return {"valid": evaluate_retriever(r, learn, which="valid"), "test": test, "cold_items": args.cold_items}


def speed(args) -> dict:
    """Exact full-catalog scoring throughput of an untrained parallel/sasrec model (same cost as trained)."""
    import torch

    from rqvae_ids.retrieval.item.model import ItemModelConfig, ItemSeqModel
    from rqvae_ids.retrieval.item.trainer import recommend

    emb, split = load(args)
    n = len(emb)
    out = {"threads": torch.get_num_threads(), "n_items": n}
    hist = split.test_histories[:4096]
    for head in ("sasrec", "parallel"):
        codes = codes_for(args.codes, emb, args.embeddings) if head == "parallel" else None
        d, k = (codes.shape[1], 256) if codes is not None else (0, 0)
        m = ItemSeqModel(ItemModelConfig(n_items=n, head=head, depth=d, width=k), codes).eval()
        recommend(m, hist[:512], 10, 20)
        t0 = time.perf_counter()
        recommend(m, hist, 10, 20)
        out[head] = {"users_per_s": len(hist) / (time.perf_counter() - t0), "digits": d}
        print(head, out[head], flush=True)
    return out


def main() -> None:
    import torch

    # One thread: on this shared 2-core machine (load 8-10 from other work) a 2-thread torch step
    # measured 3.0 s against 0.33 s with one thread (OpenMP threads wait on each other).
    torch.set_num_threads(int(__import__("os").environ.get("BENCH_THREADS", "1")))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("run", "knn", "speed", "paired"))
    p.add_argument("runs", nargs="*", help="paired: the two run names to compare")
    p.add_argument("--head", default="parallel", choices=("sasrec", "parallel", "hybrid"))
    p.add_argument("--cold-items", type=float, default=None, help="hold this share of items out (cold)")
    p.add_argument("--codes", default="opq16")
    p.add_argument("--name", default="")
    args = parse_with_data(p)
    if args.part == "paired":
        print(json.dumps(paired(*args.runs, cold_users=paired_cold_users(args))))
        return
    res = {"run": run, "knn": knn, "speed": speed}[args.part](args)
    res["command"] = "python bench/item_retrieval.py " + " ".join(sys.argv[1:])
    print(json.dumps(res), flush=True)
    path = OUT / "item_retrieval.json"
    all_runs = json.loads(path.read_text()) if path.is_file() else {}
    all_runs[args.name or args.part] = res
    path.write_text(json.dumps(all_runs, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
