"""The training sample cap (train.max_items), chosen by code quality on Amazon Toys.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_cap.py [--sizes 1200 3000 6000] [--seeds 0 1] [--threads 1]

The RQ-VAE as the pipeline configured it then (3 x 256, collaborative with the CF embeddings of the
interactions' training part, every other knob at its default) trained on a seeded sample
of S Toys items, then every one of the 11,924 items assigned with it (`assign_ids`, suffix
resolution; text + alpha * CF inputs read from the model's cf_embeddings.parquet as in the
pipeline: without that file every item would be encoded from text alone), against the same
model trained on the whole catalog (max_items 0; the spread over its --seeds is the noise
level). Measured on all items: duplicate_rate before resolution, neighbour_recall@10/@100
(2,000 seeded queries), recon_cosine, nmi_l0 (top category below the shared root),
next_recall@10 of the sid-prefix retriever on the leave-one-out split, and recon_cosine of the
trained / held-out / outside-the-sample items (--recon-parts adds it to older rows).
--sample-epochs N and --match-steps S train the samples longer (a small sample takes few
steps per epoch); --table prints the rows grouped by size and variant (mean [min, max]). Reads the Toys embeddings of the main checkout (read-only) and
../shared/data/amazon-toys/ (skips with a message where absent); writes
bench/out/train_cap.json after every run (a killed run keeps the rows done so far).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EMB = Path("/work/main/bench/out/toys/emb/embeddings.parquet")
DATA = ROOT.parent / "shared" / "data" / "amazon-toys"
OUT = ROOT / "bench" / "out" / "train_cap"


def measure(model_dir: Path, ids_dir: Path, table, categories, split) -> dict:
    from rqvae_ids.evaluate import harness, quality
    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.evaluate.baselines import SidPrefixRetriever
    from rqvae_ids.ids import read_semantic_ids
    from rqvae_ids.models import load_model

    ids = read_semantic_ids(ids_dir / "semantic_ids.parquet")
    codes, _ = ids.codes_in_order(table.item_ids, where=str(ids_dir))
    model = load_model(model_dir)
    recon = np.asarray(model.decode_codes(codes), np.float32)
    out = {"duplicate_rate_raw": quality.code_usage_metrics(codes, model.codebook_size)["duplicate_rate_raw"],
           **quality.reconstruction_metrics(table.vectors, recon),
           **neighbour_recall(table.vectors, codes, max_queries=2000, seed=0)}
    levels = quality.category_levels(categories)
    out["nmi_l0"] = quality.category_metrics(codes, levels)["nmi_l0"]
    metrics, _ = harness.fit_and_evaluate(SidPrefixRetriever(codes, seed=0), split)
    out["next_recall@10"] = metrics["next_recall@10"]
    return {k: round(float(v), 4) for k, v in out.items()}


def recon_parts(model_dir: Path, ids_dir: Path, table, size: int, seed: int) -> dict:
    """recon_cosine of three parts of the catalog: `trained` (the items of the sample, or of the
    catalog, that gave gradients), `val` (the 5 % of them held out for early stopping: no gradient,
    but in the k-means init and the text -> CF ridge fit) and `outside` (not in the sample; none for
    the full model). outside ~ val says the sample generalises as the full model does to items it
    did not train on; outside < val says it is a worse model, not only a less fitted one."""
    from rqvae_ids.evaluate.quality import reconstruction_metrics
    from rqvae_ids.ids import read_semantic_ids
    from rqvae_ids.models import load_model
    from rqvae_ids.train import TrainConfig
    from rqvae_ids.train.inputs import sample_rows

    n = len(table.vectors)
    rows = sample_rows(n, size, seed)
    rows = np.arange(n) if rows is None else rows
    # prepare_data's split: the first draw of default_rng(seed) over the training rows
    perm = np.random.default_rng(seed).permutation(len(rows))
    n_val = int(round(len(rows) * TrainConfig().val_fraction))
    part = np.full(n, "outside", dtype=object)
    part[rows[perm[n_val:]]], part[rows[perm[:n_val]]] = "trained", "val"
    codes, _ = read_semantic_ids(ids_dir / "semantic_ids.parquet").codes_in_order(table.item_ids, where=str(ids_dir))
    recon = np.asarray(load_model(model_dir).decode_codes(codes), np.float32)
    return {f"recon_cosine_{name}": round(reconstruction_metrics(table.vectors[m], recon[m])["recon_cosine"], 4)
            for name in ("trained", "val", "outside") if (m := part == name).any()}


METRICS = ("duplicate_rate_raw", "neighbour_recall@10", "neighbour_recall@100", "recon_cosine", "nmi_l0",
           "next_recall@10")


def parts_cell(rs: list[dict]) -> str:
    """Mean recon_cosine of the trained / held-out (val) / outside-the-sample items."""
    return " / ".join(f"{np.mean([r[f'recon_cosine_{k}'] for r in rs]):.4f}" if f"recon_cosine_{k}" in rs[0] else "–"
                      for k in ("trained", "val", "outside"))


def markdown_table(rows: list[dict]) -> str:
    """Markdown: one line per (sample size, variant), the mean over its seeds with [min, max]."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["max_items"] or 10**9, r["variant"]), []).append(r)
    head = ["items trained", "variant", "seeds", "steps", *METRICS, "recon trained / val / outside", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (_, variant), rs in sorted(groups.items()):
        def cell(key: str, digits: int = 4) -> str:
            v = [r[key] for r in rs]
            mid = f"{np.mean(v):.{digits}f}"
            return mid if len(v) == 1 else f"{mid} [{min(v):.{digits}f}, {max(v):.{digits}f}]"
        seeds = ",".join(str(r["seed"]) for r in rs)
        steps = ",".join(str(r.get("steps", "?")) for r in rs)
        lines.append(f"| {rs[0]['train_items']:,} | {variant or 'default'} | {seeds} | {steps} | "
                     + " | ".join(cell(m) for m in METRICS) + f" | {parts_cell(rs)} | {cell('train_seconds', 1)} |")
    return "\n".join(lines)


def run_name(size: int, seed: int, variant: str) -> str:
    return f"S{size or 'all'}-seed{seed}" + (f"-{variant}" if variant else "")


def sample_runs(args, base) -> list[tuple[int, int, str, object]]:
    """(size, seed, variant, TrainConfig) of the sampled models. Variants: '' the defaults; 'eN'
    epoch cap N; 'stepsS' about S gradient steps whatever the size (epochs = S / steps per epoch,
    early stopping off): a small sample takes few steps per epoch, so these separate too few items
    from too few steps."""
    import math

    runs = []
    for size in args.sizes:
        per_epoch = math.ceil(round(size * (1 - base.val_fraction)) / base.batch_size)
        if args.match_steps:
            variant, over = f"steps{args.match_steps}", {"epochs": math.ceil(args.match_steps / per_epoch), "patience": 0}
        elif args.sample_epochs:
            variant, over = f"e{args.sample_epochs}", {"epochs": args.sample_epochs}
        else:
            variant, over = "", {}
        runs += [(size, seed, variant, dataclasses.replace(base, max_items=size, seed=seed, **over))
                 for seed in args.sample_seeds]
    return runs


def add_recon_parts(dest: Path) -> int:
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.train import TrainConfig

    doc, table, default = json.loads(dest.read_text()), read_embeddings(EMB), TrainConfig().epochs
    for r in doc["rows"]:
        r.setdefault("variant", "" if r.get("max_epochs", default) == default else f"e{r['max_epochs']}")
        run = OUT / run_name(r["max_items"], r["seed"], r["variant"])
        for k in ("recon_cosine_seen", "recon_cosine_unseen"):  # this script's first split, superseded
            r.pop(k, None)
        r.update(recon_parts(run / "model", run, table, r["max_items"], r["seed"]))
        # steps and the epoch cap of rows written before the script recorded them
        r.setdefault("max_epochs", default)
        r.setdefault("patience", TrainConfig().patience)
        r.setdefault("steps", json.loads((run / "model" / "train_report.json").read_text())["steps"])
    dest.write_text(json.dumps(doc, indent=2))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1200, 3000, 6000])
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="seeds of the full-catalog model")
    p.add_argument("--sample-seeds", type=int, nargs="+", default=[0], help="seeds of the sampled models")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--table", action="store_true", help="print the table of bench/out/train_cap.json and exit")
    p.add_argument("--recon-parts", action="store_true",
                   help="add recon_cosine_trained/val/outside to the rows of bench/out/train_cap.json from their models, exit")
    p.add_argument("--sample-epochs", type=int, default=None, help="epoch cap of the sampled models (variant eN)")
    p.add_argument("--match-steps", type=int, default=None,
                   help="train each sampled model for about this many steps, early stopping off (variant stepsS)")
    args = p.parse_args()
    dest = ROOT / "bench" / "out" / "train_cap.json"
    if args.table:
        from rqvae_ids.train import TrainConfig

        print(markdown_table(json.loads(dest.read_text())["rows"]))
        return 0
    if args.recon_parts:
        return add_recon_parts(dest)
    import torch

    torch.set_num_threads(args.threads)
    if not EMB.is_file() or not (DATA / "interactions.csv").is_file():
        print(f"skipped: needs {EMB} and {DATA}/interactions.csv", file=sys.stderr)
        return 0

    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.cf import CFConfig, build_cf_table
    from rqvae_ids.core.cf_table import CF_FILE
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
    from rqvae_ids.ids import assign_ids
    from rqvae_ids.models import ModelConfig
    from rqvae_ids.train import TrainConfig, train_model

    table = read_embeddings(EMB)
    catalog = load_catalog(DATA / "items.csv")
    row = {item: i for i, item in enumerate(catalog.item_ids)}
    categories = [catalog.categories[row[i]] for i in table.item_ids]
    users, seqs, order = load_interactions(DATA / "interactions.csv", table.item_ids)
    split = leave_one_out(users, seqs, 20, order)
    OUT.mkdir(parents=True, exist_ok=True)
    cf = build_cf_table(DATA / "interactions.csv", table.item_ids, OUT / CF_FILE, CFConfig())
    base = TrainConfig(model=ModelConfig(kind="rqvae"), device="cpu")  # the RQ-VAE it was measured on
    runs = ([(0, seed, "", dataclasses.replace(base, max_items=0, seed=seed)) for seed in args.seeds]
            + sample_runs(args, base))
    # rows of earlier invocations are kept (one slow run at a time on a shared machine); a rerun replaces its row
    results = json.loads(dest.read_text())["rows"] if dest.is_file() else []
    for size, seed, variant, cfg in runs:
        run = OUT / run_name(size, seed, variant)
        t = time.perf_counter()
        report = train_model(EMB, run / "model", cfg, progress=False, cf=cf)
        train_s = time.perf_counter() - t
        # beside the model, as `train --interactions` and the pipeline leave it: assign_ids then
        # encodes text + alpha * CF (the inputs the model was trained on), not text alone
        shutil.copyfile(OUT / CF_FILE, run / "model" / CF_FILE)
        assign_ids(run / "model", EMB, run)
        row_ = {"max_items": size, "train_items": report["items"], "seed": seed, "variant": variant,
                "max_epochs": cfg.epochs, "patience": cfg.patience,
                "epochs": report["epochs"], "steps": report["steps"],
                "train_seconds": round(train_s, 1),
                **measure(run / "model", run, table, categories, split),
                **recon_parts(run / "model", run, table, size, seed)}
        results = [r for r in results if (r["max_items"], r["seed"], r["variant"]) != (size, seed, variant)]
        results.append(row_)
        print(json.dumps(row_), flush=True)
        dest.write_text(json.dumps(
            {"embeddings": str(EMB), "items": len(table), "threads": args.threads,
             "config": dataclasses.asdict(TrainConfig()), "rows": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
