"""Embedding throughput: raw SentenceTransformer.encode vs `rqvae-ids embed`, and the warm-cache rerun.

    .venv/bin/python bench/embed.py [--limit N] [--batch-size 64] [--repeat R] [--catalog toys|demo|PATH]

One process, same texts, same model object for every measurement: the bundled
all-MiniLM-L6-v2 is loaded once (load time excluded from all three timings) and
warmed up on one batch. Then, in order:
  raw   model.encode(texts, batch_size, normalize_embeddings=True)
  cold  embed_items(...) into a fresh folder (empty cache): hashing, cache
        lookup, encoding, cache + embeddings.parquet writes all included
  warm  the same embed_items call again (everything from the cache)
With --repeat R the raw/cold/warm triple runs R times (alternating, so drift on
a shared machine hits both sides) and the best time of each is kept.
Targets: cold throughput >= 0.95 x raw; warm time < 5 % of cold.
Writes bench/out/embed.json. Workload (--catalog): `toys` = ../shared/data/amazon-toys/items.csv
(the default), `demo` = data/demo/items.csv (the bundled demo shop), or any catalog file.

With --backends all (or a comma list: onnx,onnx-int8,openvino,openvino-bf16,openvino-int8) it
measures the embedding backends instead (issue 15), in one process on the same texts:
  export   each backend exported cold into a fresh model cache (seconds reported apart),
           then loaded warm; the accuracy guard's numbers; the precision each computes in
           (read back from the compiled model for OpenVINO, issue 23)
  speed    per --chunk of texts, raw torch `encode` and every backend alternate on the
           same texts (order flipped every chunk), --repeat times; the median time per
           chunk is summed: items/s and ratio to raw torch robust to a shared machine
  quality  mean/min cosine to torch; neighbour recall@10 (truth: torch neighbours) of
           residual k-means codes (L=3, K=256) fitted on each backend's vectors; with
           --rqvae-codes also of the codes of the default RQ-VAE (`rqvae_ids.train.train_model`,
           default TrainConfig, seed 0, CPU) trained on each backend's vectors
  path     embed_items with the default backend (the command's own path)
and the CPU flags (avx2/avx512*/vnni/amx) that decide what to expect elsewhere. A backend
qualifies (issue 15) when its mean cosine is >= 0.99 and each measured code recall is within
0.005 of torch's. Writes bench/out/embed_backends.json (Toys) or embed_backends_<catalog>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CATALOGS = {"toys": REPO.parent / "shared" / "data" / "amazon-toys" / "items.csv",
            "demo": REPO / "data" / "demo" / "items.csv"}
RECALL_TOLERANCE = 0.005  # issue 15: code neighbour recall@10 within this of torch's
OUT = REPO / "bench" / "out" / "embed.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default="toys",
                        help="toys (../shared/data/amazon-toys, the default), demo (data/demo) or a catalog file")
    parser.add_argument("--limit", type=int, default=None, help="first N items only (quick runs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=1, help="alternating repeats; best time of each kept")
    parser.add_argument("--backends", default=None, help="'all' or a comma list: measure the embedding backends")
    parser.add_argument("--chunk", type=int, default=1024, help="texts per interleaved timing chunk (--backends)")
    parser.add_argument("--rqvae-codes", action="store_true",
                        help="with --backends: also train the default RQ-VAE on each backend's vectors and "
                             "compare the neighbour recall@10 of its codes")
    args = parser.parse_args()
    args.catalog_name = args.catalog if args.catalog in CATALOGS else Path(args.catalog).parent.name
    args.catalog = CATALOGS.get(args.catalog, Path(args.catalog))
    if not args.catalog.is_file():
        print(f"bench/embed.py: skipped: workload {args.catalog} not found (../shared/data lives beside the checkout)")
        return 0
    if args.backends:
        return backends_main(args)
    result = throughput(args)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print_throughput(result)
    return 0


def throughput(args) -> dict:
    """Raw SentenceTransformer.encode against `embed_items` with a cold and a warm cache, alternating
    --repeat times (best of each kept); the model load is timed apart and excluded from all."""
    import numpy as np
    import torch

    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.embed import EmbedConfig, embed_items, load_torch_text_encoder, resolve_model
    from rqvae_ids.core.runtime import resolve_device
    from rqvae_ids.core.embedding_table import read_embeddings

    catalog = load_catalog(args.catalog)
    ids, texts = catalog.item_ids[: args.limit], catalog.texts[: args.limit]
    device = resolve_device(args.device)
    cfg = EmbedConfig(batch_size=args.batch_size, device=device, progress=False)

    t = time.perf_counter()
    model = load_torch_text_encoder(resolve_model(None), device)  # the object embed_items will reuse
    load_s = time.perf_counter() - t
    model.encode(texts[: args.batch_size], batch_size=args.batch_size, show_progress_bar=False)  # warm-up

    raw_s = cold_s = warm_s = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        raw = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
        raw_s = min(raw_s, time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:  # a fresh folder: empty cache
            t = time.perf_counter()
            cold = embed_items(ids, texts, tmp, cfg)
            cold_s = min(cold_s, time.perf_counter() - t)
            t = time.perf_counter()
            warm = embed_items(ids, texts, tmp, cfg)
            warm_s = min(warm_s, time.perf_counter() - t)
            vectors = read_embeddings(Path(tmp) / "embeddings.parquet").vectors
            max_diff = float(np.abs(vectors - raw).max())

    n = len(texts)
    return {
        "command": "python bench/embed.py" + catalog_flag(args) + (f" --limit {args.limit}" if args.limit else "")
                   + (f" --batch-size {args.batch_size}" if args.batch_size != 64 else "")
                   + (f" --repeat {args.repeat}" if args.repeat != 1 else ""),
        "workload": str(args.catalog.relative_to(REPO.parent)) if args.catalog.is_relative_to(REPO.parent) else str(args.catalog),
        "items": n,
        "batch_size": args.batch_size,
        "repeat": args.repeat,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "model_load_seconds_excluded": round(load_s, 3),
        "raw_seconds": round(raw_s, 3),
        "raw_items_per_s": round(n / raw_s, 1),
        "cold_seconds": round(cold_s, 3),
        "cold_items_per_s": round(n / cold_s, 1),
        "cold_encoded": cold["encoded"],
        "throughput_ratio": round(raw_s / cold_s, 3),
        "warm_seconds": round(warm_s, 3),
        "warm_encoded": warm["encoded"],
        "warm_fraction_of_cold": round(warm_s / cold_s, 4),
        "max_abs_diff_vs_raw": max_diff,
        "targets": {"throughput_ratio": ">= 0.95", "warm_fraction_of_cold": "< 0.05"},
        "pass": {"throughput_ratio": raw_s / cold_s >= 0.95, "warm_fraction_of_cold": warm_s / cold_s < 0.05},
    }


def print_throughput(r: dict) -> None:
    n = r["items"]
    print(f"{n} items, batch {r['batch_size']}, {r['device']}, {r['torch_threads']} torch threads "
          f"(model load {r['model_load_seconds_excluded']:.2f}s excluded from all)")
    print(f"raw SentenceTransformer.encode : {r['raw_seconds']:8.2f} s  {n / r['raw_seconds']:7.1f} items/s")
    print(f"rqvae-ids embed, cold cache    : {r['cold_seconds']:8.2f} s  {n / r['cold_seconds']:7.1f} items/s  "
          f"ratio {r['raw_seconds'] / r['cold_seconds']:.3f} (target >= 0.95)")
    print(f"rqvae-ids embed, warm cache    : {r['warm_seconds']:8.2f} s  {r['warm_seconds'] / r['cold_seconds']:.2%} "
          f"of cold (target < 5%), {r['warm_encoded']} encoded")
    print(f"max |cold - raw| = {r['max_abs_diff_vs_raw']:.2e}; wrote {OUT.relative_to(REPO)}")


# ---------------------------------------------------------------- backends (issue 15)


def cpu_flags() -> dict:
    """The CPU's model name and the flags that decide int8 / fp32 speed (from /proc/cpuinfo, as lscpu shows them)."""
    name, flags = "", []
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not name:
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    keep = [f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "avx_vnni", "fma", "f16c")]
    return {"model_name": name, "int8_relevant_flags": keep}


def backends_main(args) -> int:
    """Raw torch encode vs every backend, interleaved chunk by chunk, plus export cost and code quality."""
    import torch

    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.embed import load_torch_text_encoder, resolve_model
    from rqvae_ids.embed.backends import BACKENDS, DEFAULT_BACKEND
    catalog = load_catalog(args.catalog)
    ids, texts = catalog.item_ids[: args.limit], catalog.texts[: args.limit]
    n, bs = len(texts), args.batch_size
    spec = resolve_model(None)
    # raw torch `encode` is the reference timed below, never one of the compared backends
    names = [b for b in (BACKENDS if args.backends == "all" else args.backends.split(",")) if b != "torch"]
    torch_model = load_torch_text_encoder(spec, "cpu", quiet=True)
    torch_model.encode(texts[:bs], batch_size=bs, show_progress_bar=False)  # warm-up
    cache_root = tempfile.mkdtemp(prefix="bench-embed-models-")  # cold: nothing exported yet
    res: dict = {"backends": {}}
    text_encoders = load_backends(spec, names, texts, bs, cache_root, res["backends"])
    # Interleaved timing: for every chunk and repeat, torch then each backend on the same texts.
    runners = {"torch": lambda c: torch_model.encode(c, batch_size=bs, normalize_embeddings=True,
                                                      convert_to_numpy=True, show_progress_bar=False)}
    runners.update({b: (lambda c, e=text_encoders[b]: e.encode(c, batch_size=bs, normalize_embeddings=True)) for b in names})
    times, vectors = interleaved_times(runners, texts, args.repeat, args.chunk)
    backend_rows(res["backends"], times, vectors, code_quality(vectors, args.rqvae_codes), n)
    ok = qualifying(res["backends"], names)
    res["qualifying"] = ok
    res["qualifying_rule"] = f"mean cosine >= 0.99 and every code recall@10 within {RECALL_TOLERANCE} of torch's"
    res["fastest_qualifying"] = max(ok, key=lambda b: res["backends"][b]["items_per_s"]) if ok else "torch"
    # The command's own path for the default backend (hashing, cache, Parquet), export already made.
    path_report, path_s = default_backend_path(ids, texts, bs, cache_root)
    secs_torch = sum(statistics.median(c) for c in times["torch"])
    res["default_backend"] = DEFAULT_BACKEND
    res["default_precision"] = path_report.get("precision")
    res["default_embed_items_items_per_s"] = round(n / path_s, 1)
    res["default_embed_items_ratio_to_raw_torch"] = round(secs_torch / path_s, 3)
    res.update({"command": "python bench/embed.py --backends " + args.backends + catalog_flag(args)
                + (f" --limit {args.limit}" if args.limit else "") + f" --repeat {args.repeat} --chunk {args.chunk}"
                + (" --rqvae-codes" if args.rqvae_codes else ""),
                "catalog": str(args.catalog), "items": n, "batch_size": bs, "repeat": args.repeat, "chunk": args.chunk,
                "timing": "per chunk, torch and every backend alternate on the same texts; median over repeats, summed",
                "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "cpu": cpu_flags(),
                "loadavg_1m_at_end": os.getloadavg()[0]})
    write_backends_result(res, args)
    return 0


def load_backends(spec, names, texts, bs: int, cache_root: str, rows: dict) -> dict:
    """backend -> its warmed-up text encoder; rows[backend] gets the export cost, cold and warm load times, guard."""
    from rqvae_ids.embed import EmbedConfig, load_text_encoder
    from rqvae_ids.embed import text_encoder as E

    text_encoders = {}
    for b in names:
        cfg = EmbedConfig(batch_size=bs, device="cpu", progress=False, backend=b, model_cache=cache_root)
        t = time.perf_counter()
        enc, info = load_text_encoder(spec, cfg, "cpu", texts)  # export + load + accuracy guard (256 texts)
        first_s = time.perf_counter() - t
        E._LOADED.pop((info["export_dir"], b), None)
        t = time.perf_counter()
        enc, _ = load_text_encoder(spec, cfg, "cpu", texts)  # warm: the export exists, only loaded
        warm_load_s = time.perf_counter() - t
        enc.encode(texts[:bs], batch_size=bs)  # warm-up
        text_encoders[b] = enc
        rows[b] = {"precision": info["precision"], "export_seconds": info["export_seconds"],
                   "cold_first_use_seconds": round(first_s, 2),  # export + load + guard
                   "warm_load_seconds": round(warm_load_s, 2), "guard": info["accuracy_vs_torch"]}
    return text_encoders


def interleaved_times(runners: dict, texts, repeat: int, chunk: int):
    """(runner -> per-chunk lists of seconds over the repeats, runner -> (n, 384) vectors of the first repeat);
    chunk by chunk every runner encodes the same texts, in alternating order."""
    import numpy as np

    n = len(texts)
    times = {b: [[] for _ in range(0, n, chunk)] for b in runners}
    vectors = {b: np.empty((n, 384), np.float32) for b in runners}
    for r in range(repeat):
        for ci, s in enumerate(range(0, n, chunk)):
            part = texts[s:s + chunk]
            for b, run in (runners.items() if (r + ci) % 2 == 0 else reversed(list(runners.items()))):
                t = time.perf_counter()
                v = run(part)
                times[b][ci].append(time.perf_counter() - t)
                if r == 0:
                    vectors[b][s:s + len(part)] = v
        print(f"repeat {r + 1}/{repeat} done", flush=True)
    return times, vectors


def backend_rows(rows: dict, times: dict, vectors: dict, quality: dict, n: int) -> None:
    """rows[backend] += speed (vs raw torch), cosine to torch and code quality; one printed line each."""
    secs = {b: sum(statistics.median(c) for c in times[b]) for b in times}
    for b in times:
        cos = (vectors[b] * vectors["torch"]).sum(1)
        row = rows.setdefault(b, {})
        row.update({"items_per_s": round(n / secs[b], 1), "ratio_to_raw_torch": round(secs["torch"] / secs[b], 3),
                    "chunk_ratio_median": round(statistics.median(
                        statistics.median(tt) / statistics.median(tb) for tt, tb in zip(times["torch"], times[b])), 3),
                    "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), **quality[b]})
        print(f"{b:14s} {rows[b].get('precision', 'fp32'):9s} {n / secs[b]:7.1f} items/s  x{secs['torch'] / secs[b]:.2f} raw torch  "
              f"cos mean {cos.mean():.5f} min {cos.min():.5f}  "
              + "  ".join(f"{k.split('_')[0]} R@10 {v:.4f}" for k, v in quality[b].items() if k.endswith("@10")),
              flush=True)


def default_backend_path(ids, texts, bs: int, cache_root: str):
    """(embed_items' report, seconds) for the default backend, its export already in cache_root."""
    from rqvae_ids.embed import EmbedConfig, embed_items
    from rqvae_ids.embed.backends import DEFAULT_BACKEND

    with tempfile.TemporaryDirectory() as tmp:
        cfg = EmbedConfig(batch_size=bs, device="cpu", progress=False, backend=DEFAULT_BACKEND, model_cache=cache_root)
        t = time.perf_counter()
        report = embed_items(ids, texts, tmp, cfg)
        return report, time.perf_counter() - t


def write_backends_result(res: dict, args) -> None:
    out = REPO / "bench" / "out" / ("embed_backends.json" if args.catalog_name == "toys"
                                    else f"embed_backends_{args.catalog_name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"default {res['default_backend']} ({res['default_precision']}): embed_items {res['default_embed_items_items_per_s']} items/s "
          f"(x{res['default_embed_items_ratio_to_raw_torch']} raw torch); fastest qualifying: "
          f"{res['fastest_qualifying']}; wrote {out.relative_to(REPO)}")


def catalog_flag(args) -> str:
    return "" if args.catalog_name == "toys" else f" --catalog {args.catalog_name if args.catalog_name == 'demo' else args.catalog}"


def code_quality(vectors: dict, rqvae: bool) -> dict:
    """backend -> {"rqkmeans_neighbour_recall@10": r, ["rqvae_neighbour_recall@10": r, "rqvae_train": {...}]}.
    Codes are built from each backend's own vectors; the truth is torch's neighbours (the user's
    reference space), 2,000 seeded queries."""
    from rqvae_ids.evaluate.neighbours import neighbour_recall
    from rqvae_ids.ids.encode import encode_codes_chunked
    from rqvae_ids.models import ModelConfig, fit_rqkmeans

    def recall(codes):
        return neighbour_recall(vectors["torch"], codes, ks=(10,), max_queries=2000, seed=0)["neighbour_recall@10"]

    mcfg = ModelConfig(kind="rqkmeans", levels=3, codebook_size=256)
    out = {}
    for b, x in vectors.items():
        out[b] = {"rqkmeans_neighbour_recall@10": recall(encode_codes_chunked(fit_rqkmeans(x, mcfg, seed=0), x))}
        if rqvae:
            codes, summary = rqvae_codes(x)
            out[b].update({"rqvae_neighbour_recall@10": recall(codes), "rqvae_train": summary})
    return out


def rqvae_codes(x):
    """Codes (N, L) of the default-configured RQ-VAE trained (train_model, seed 0, CPU) on the
    vectors `x`, and a summary of its training."""
    from rqvae_ids.core.embedding_table import write_embeddings
    from rqvae_ids.ids.encode import encode_codes_chunked
    from rqvae_ids.models import ModelConfig, load_model
    from rqvae_ids.train import TrainConfig, train_model

    with tempfile.TemporaryDirectory() as tmp:
        emb, model_dir = Path(tmp) / "embeddings.parquet", Path(tmp) / "rqvae"
        ids = [f"i{i}" for i in range(len(x))]
        write_embeddings(emb, ids, ids, x, model="bench")
        cfg = TrainConfig(model=ModelConfig(kind="rqvae"), device="cpu", seed=0)  # the RQ-VAE, named: `auto` is k-means
        report = train_model(emb, model_dir, cfg, progress=False)
        codes = encode_codes_chunked(load_model(model_dir), x)
    return codes, {k: report.get(k) for k in ("kind", "epochs", "seconds", "colliding_share")}


def qualifying(rows: dict, names) -> list:
    """Backends with mean cosine >= 0.99 and every measured code recall@10 within tolerance of torch's."""
    keys = [k for k in rows["torch"] if k.endswith("neighbour_recall@10")]
    return [b for b in names if rows[b]["mean_cosine"] >= 0.99
            and all(abs(rows[b][k] - rows["torch"][k]) <= RECALL_TOLERANCE for k in keys)]


if __name__ == "__main__":
    sys.exit(main())
