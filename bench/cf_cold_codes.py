"""Codes of new items from text alone vs. once they have interactions (issue 25).

    OMP_NUM_THREADS=2 .venv/bin/python bench/cf_cold_codes.py --embeddings EMB/embeddings.parquet \\
        --interactions ../shared/data/amazon-toys/interactions.csv --out bench/out/toys/cf_cold [NAME ...]

5 % of the items (evaluate/cold.py `choose_cold_items`, seed 0) are held out as cold: the CF
embeddings are computed from the leave-one-out training sequences without them (`cold_split`),
so they have none. Each variant (VARIANTS; NAME picks some) is trained on those, then every
cold item is coded twice with the same model:
- cold: from its text alone (the model's cold CF part: zero or predicted);
- warm: with its CF vector once its interactions are in, folded into the trained CF space
  (its PPMI row of the full training part, projected on the cold-split SVD: v = m V S^-1/2,
  the fold-in of a new row into an SVD; `fold_in_check` reports how well the fold-in
  reproduces the trained vectors of warm items).
Reported: `same_l0` (share of cold items whose first-level code is the same both ways),
`same_tuple` (whole tuple), and `l0_overlap` (for cold item i, the share of the warm items
that share i's cold first-level code and also share its warm one: for one model this equals
same_l0; for the text-only model, whose codes never change, it is measured against each CF
model's warm codes, the reference the issue's target compares with). Also, on warm items:
`cf_nbr_l0` (share of each item's 10 nearest CF neighbours with its first-level code) and
`text_nbr_l0` (the same for text neighbours), and the training seconds.
Results: OUT/results.json (one entry per variant, merged across runs) and a markdown table.
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

# name -> (kind, overrides); the CF variants read [text, cf_alpha * CF] (issue 25)
VARIANTS = {
    "rqvae_p0.3_zero": ("rqvae", {"cf_dropout": 0.3, "cf_cold": "zero"}),
    "rqvae_p0_regress": ("rqvae", {"cf_dropout": 0.0, "cf_cold": "regress"}),
    "rqvae_p0.5_zero": ("rqvae", {"cf_dropout": 0.5, "cf_cold": "zero"}),
    "rqvae_p0.3_regress": ("rqvae", {"cf_dropout": 0.3, "cf_cold": "regress"}),
    "rqvae_p0.5_regress": ("rqvae", {"cf_dropout": 0.5, "cf_cold": "regress"}),
    "rqvae_p0_zero": ("rqvae", {"cf_dropout": 0.0, "cf_cold": "zero"}),
    "rqvae_p0.3_zero_nonce": ("rqvae", {"cf_dropout": 0.3, "cf_cold": "zero", "cf_weight": 0.0}),
    "rqvae_p0_regress_nonce": ("rqvae", {"cf_dropout": 0.0, "cf_cold": "regress", "cf_weight": 0.0}),
    "rqvae_infonce_only": ("rqvae", {"cf_input": False}),  # issue 14's model: text in, CF as target
    "rqkmeans-cf_zero": ("rqkmeans-cf", {"cf_cold": "zero"}),
    "rqkmeans-cf_regress": ("rqkmeans-cf", {"cf_cold": "regress"}),
    # a second k-means draw of both cold rules (the tokenizer's seed; the cold items and CF stay)
    "rqkmeans-cf_zero_s1": ("rqkmeans-cf", {"cf_cold": "zero", "seed": 1}),
    "rqkmeans-cf_regress_s1": ("rqkmeans-cf", {"cf_cold": "regress", "seed": 1}),
    "rqvae-text": ("rqvae", {}),  # trained without CF
}
TEXT = "rqvae-text"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"variants to run (default: all): {', '.join(VARIANTS)}")
    p.add_argument("--embeddings", required=True)
    p.add_argument("--interactions", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--cold", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="epoch budget of the neural variants (default: train's)")
    p.add_argument("--sid-prefix", nargs="+", metavar="IDS_DIR", default=None,
                   help="instead: VALIDATION sid-prefix Recall/NDCG@10 (bench/cf_tune.py's harness) of the "
                        "raw codes in each IDS_DIR/semantic_ids.parquet")
    return p.parse_args(argv)


def cf_matrices(train, n: int, cfg):
    """(PPMI csr, has) of training sequences, as rqvae_ids.cf.cf_vectors builds them."""
    from rqvae_ids.cf.vectors import cooccurrence, ppmi

    m = ppmi(cooccurrence(train, n, cfg.window), cfg.smoothing, cfg.shift)
    return m, np.asarray((m != 0).sum(axis=1)).ravel() > 0


def fold_in(rows, m, cfg, has) -> np.ndarray:
    """Unit CF vectors of the PPMI `rows` (csr, k x n) in the SVD space of `m` (the trained CF):
    v = rows V S^-1/2, V = M^T U S^-1 (U, S: cf_vectors' randomized SVD of m)."""
    from rqvae_ids.cf.vectors import randomized_svd

    rank = min(cfg.dim, int(has.sum()) - 1)
    u, s = randomized_svd(m.astype(np.float64), rank, cfg.seed)
    v_right = (m.T @ u) / s[None, :]
    out = np.asarray(rows @ v_right) / np.sqrt(s)[None, :]
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    full = np.zeros((rows.shape[0], cfg.dim), np.float32)
    full[:, :rank] = out
    return full


def cold_setup(interactions, item_ids, frac: float, seed: int):
    """(cold indices, CFTable of the cold split (cold items without CF), (n_cold, c) fold-in CF
    vectors of the cold items from the full training part, fold-in check on warm items)."""
    from rqvae_ids.cf import CFConfig, CFTable, cf_vectors
    from rqvae_ids.evaluate.cold import choose_cold_items, cold_split
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions

    users, seqs, order = load_interactions(interactions, item_ids)
    split = leave_one_out(users, seqs, 20, order)
    n, cfg = len(item_ids), CFConfig(seed=seed)
    cold = choose_cold_items(n, frac, seed)
    vectors, has = cf_vectors(cold_split(split, cold, n).train, n, cfg)
    m_cold, has_m = cf_matrices(cold_split(split, cold, n).train, n, cfg)
    m_full, _ = cf_matrices(split.train, n, cfg)
    warm_cf = fold_in(m_full[cold], m_cold, cfg, has_m)
    table = CFTable(vectors, has, {"interactions_sha256": "cold-split", "items_with_cf": int(has.sum()),
                                   "items_total": n})
    return cold, table, warm_cf, fold_in_check(m_cold, cfg, has_m, vectors, has, seed)


def fold_in_check(m, cfg, has_m, vectors, has, seed: int) -> float:
    """Mean cosine between 500 warm items' trained CF vectors and their fold-in from their own PPMI rows."""
    idx = np.random.default_rng(seed).choice(np.flatnonzero(has), 500, replace=False)
    folded = fold_in(m[idx], m, cfg, has_m)
    return float((folded * vectors[idx]).sum(1).mean())


def train_variant(name: str, emb_path, table, cf, out: Path, epochs: int | None) -> tuple[object, float]:
    """Train VARIANTS[name] into out/name (seed 0 unless the variant sets one, default budget but `epochs`)
    -> (loaded model, train seconds)."""
    from rqvae_ids.core.cf_table import CF_FILE, write_cf_table
    from rqvae_ids.models import load_model
    from rqvae_ids.train import config_from_args, train_model

    kind, overrides = VARIANTS[name]
    overrides = {"seed": 0, **overrides}
    model_dir = out / name
    t = time.perf_counter()
    train_model(emb_path, model_dir, config_from_args(kind=kind, epochs=epochs, **overrides), progress=False,
                cf=None if name == TEXT else cf, table=table)
    seconds = time.perf_counter() - t
    if name != TEXT:
        ids = np.asarray(table.item_ids)
        write_cf_table(model_dir / CF_FILE, ids[cf.has], cf.vectors[cf.has], cf.metadata)
    return load_model(model_dir), seconds


def all_codes(model, text, cf, cold, warm_cf) -> tuple[np.ndarray, np.ndarray]:
    """(codes of every item with the cold items coded from text alone, the cold items' warm codes)."""
    if not getattr(model, "reads_cf", False):
        codes = model.encode_codes(text)
        return codes, codes[cold]
    codes = model.encode_codes(model.cf_inputs(text, cf.vectors, cf.has))
    warm = model.encode_codes(model.cf_inputs(text[cold], warm_cf, np.ones(len(cold), bool)))
    return codes, warm


def l0_overlap(first_a: np.ndarray, first_ref: np.ndarray, ref_cold_l0: np.ndarray, cold: np.ndarray) -> float:
    """Mean over cold items i of |A(i) ∩ R(i)| / |A(i)|: A(i) the warm items sharing i's first code
    under codes `first_a`, R(i) the warm items whose `first_ref` code is i's reference (warm) code."""
    warm = np.ones(len(first_a), bool)
    warm[cold] = False
    shares = []
    for i, ref in zip(cold, ref_cold_l0):
        group = warm & (first_a == first_a[i])
        shares.append((first_ref[group] == ref).mean() if group.any() else 0.0)
    return float(np.mean(shares))


def nbr_l0(codes: np.ndarray, vectors: np.ndarray, items: np.ndarray, k: int = 10) -> float:
    """Share of the k nearest neighbours (cosine on `vectors`, among `items`) sharing the first code."""
    from rqvae_ids.core.knn import exact_neighbours

    nb = exact_neighbours(vectors[items], np.arange(len(items)), k)
    first = codes[items, 0]
    return float((first[nb] == first[:, None]).mean())


def score(codes, warm, cold, text, cf) -> dict:
    """same_l0 / same_tuple / l0_overlap of the cold items, neighbour purity of the warm items."""
    warm_items = np.setdiff1d(np.flatnonzero(cf.has), cold)
    return {"same_l0": float((codes[cold, 0] == warm[:, 0]).mean()),
            "same_tuple": float((codes[cold] == warm).all(1).mean()),
            "l0_overlap": l0_overlap(codes[:, 0], codes[:, 0], warm[:, 0], cold),
            "cf_nbr_l0": nbr_l0(codes, cf.vectors, warm_items),
            "text_nbr_l0": nbr_l0(codes, text, warm_items)}


def text_reference(results: dict, codes_by_name: dict, cold, out) -> None:
    """The text-only model's l0_overlap against each CF model's warm codes (in results[TEXT])."""
    for name in results:  # variants of earlier runs into the same --out
        saved = Path(out) / name / "cold_codes.npz"
        if name not in codes_by_name and saved.is_file():
            with np.load(saved) as z:
                codes_by_name[name] = (z["codes"], z["warm"])
    if TEXT not in codes_by_name:
        return
    text_first = codes_by_name[TEXT][0][:, 0]
    results[TEXT]["l0_overlap_vs"] = {
        name: l0_overlap(text_first, codes[:, 0], warm[:, 0], cold)
        for name, (codes, warm) in codes_by_name.items() if name != TEXT}


def table_md(results: dict) -> str:
    head = "| variant | train s | same_l0 | same_tuple | l0_overlap | cf_nbr_l0 | text_nbr_l0 |\n|---|---:|---:|---:|---:|---:|---:|"
    rows = [f"| {n} | {r['train_seconds']:.1f} | {r['same_l0']:.3f} | {r['same_tuple']:.3f} | {r['l0_overlap']:.3f} "
            f"| {r['cf_nbr_l0']:.3f} | {r['text_nbr_l0']:.3f} |" for n, r in results.items() if "same_l0" in r]
    return "\n".join([head, *rows])


def load_avg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def sid_prefix_valid(ids_dirs, item_ids, interactions) -> dict:
    """IDS_DIR -> validation sid-prefix recall/ndcg@10 of its codes (suffix left out), as bench/cf_tune.py."""
    from rqvae_ids.evaluate.baselines import SidPrefixRetriever
    from rqvae_ids.evaluate.harness import evaluate_retriever, fit_retriever
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
    from rqvae_ids.ids import read_semantic_ids

    users, seqs, order = load_interactions(interactions, item_ids)
    split = leave_one_out(users, seqs, 20, order)
    out = {}
    for d in ids_dirs:
        sids = read_semantic_ids(Path(d) / "semantic_ids.parquet")
        row = {i: n for n, i in enumerate(sids.item_ids.tolist())}
        codes = np.asarray(sids.codes)[[row[i] for i in item_ids]]
        valid = evaluate_retriever(fit_retriever(SidPrefixRetriever(codes), split), split, which="valid")
        out[str(d)] = {k: round(v, 4) for k, v in valid.items() if k.endswith("@10")}
        print(d, json.dumps(out[str(d)]), flush=True)
    return out


def main(argv=None) -> None:
    from rqvae_ids.core.embedding_table import read_embeddings

    args = parse_args(argv)
    if args.sid_prefix:
        item_ids = read_embeddings(args.embeddings, with_vectors=False).item_ids
        sid_prefix_valid(args.sid_prefix, list(item_ids), args.interactions)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = read_embeddings(args.embeddings)
    text = np.asarray(table.vectors, np.float32)
    cold, cf, warm_cf, check = cold_setup(args.interactions, table.item_ids, args.cold, args.seed)
    print(f"cold items {len(cold)}, with CF {int(cf.has.sum())}/{len(text)}, fold-in cos {check:.3f}", flush=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    codes_by_name = {}
    for name in args.names or list(VARIANTS):
        load_before = load_avg()
        model, seconds = train_variant(name, args.embeddings, table, cf, out, args.epochs)
        codes_by_name[name] = all_codes(model, text, cf, cold, warm_cf)
        np.savez(out / name / "cold_codes.npz", codes=codes_by_name[name][0], warm=codes_by_name[name][1])
        run = json.loads((out / name / "train_report.json").read_text())["epochs"]
        results[name] = {"train_seconds": seconds, "epochs": args.epochs, "epochs_run": run, "load_before": load_before, "load_after": load_avg(),
                         **score(*codes_by_name[name], cold, text, cf), "fold_in_cos": check}
        print(name, json.dumps(results[name]), flush=True)
        path.write_text(json.dumps(results, indent=1))
    text_reference(results, codes_by_name, cold, out)
    path.write_text(json.dumps(results, indent=1))
    print(table_md(results))


if __name__ == "__main__":
    main()
