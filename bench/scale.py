"""What `rqvae-ids run` costs per stage as the catalog grows, and the daily refresh at scale.

    .venv/bin/python bench/scale.py --n 50000 --n 200000      # the growth curve
    .venv/bin/python bench/scale.py --n 200000 --refresh       # 1 % added + 1 % edited, on that run
    .venv/bin/python bench/scale.py --n 1000000 && .venv/bin/python bench/scale.py --n 1000000 --refresh
    .venv/bin/python bench/scale.py --n 1000000 --prefill-from 50000   # every stage after embedding

For each N: a synthetic catalog of N distinct texts with power-law interactions
(bench/scale_data.py, written once to bench/out/scale/data/<N>/), then `rqvae-ids run
--catalog ... --interactions ... --out bench/out/scale/runs/<N>` with every default, in a
fresh output folder (cold embedding cache). The run's `[run] <stage>: started` / end
lines on stderr time each stage (ingest, embed, cf embeddings, train, assign, evaluate);
a sampler reads the resident memory of the whole process tree (psutil, every 0.2 s), so
each stage gets its peak RSS. "startup" is process start to the first stage (imports,
preflight, the temporary Prefect API); "finish" the last stage's end to exit.
Per stage: seconds, items/s, peak RSS, and the time per item relative to N = 50k
(when 50k was measured, now or before: results merge into bench/out/scale.json).

--refresh: on the run of that N, a catalog with 1 % of items added (new texts) and 1 %
edited (a sentence appended to the description), then `rqvae-ids refresh` (no Prefect
server, the same function as the served refresh flow): stage times, and checks that
every unchanged item kept its ID, that only new and edited texts were encoded and that
nothing was trained. `latest` is set back to the pipeline run first, so it can be repeated.

Writes bench/out/scale.json and prints the tables; `uptime` load before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / "out" / "scale"
RESULTS = ROOT / "bench" / "out" / "scale.json"
BIN = Path(sys.executable).parent
BASE_N = 50_000
STAGE_LINE = re.compile(r"^\[(run|refresh)\] (.+?): (.*)$")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    import psutil

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version()}


class TreeRss:
    """Samples the resident memory of a process and all its descendants every `period` seconds."""

    def __init__(self, pid: int, period: float = 0.2):
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append((time.monotonic(), total))
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside, default=0)


def run_timed(cmd: list[str], log_path: Path) -> dict:
    """Run `cmd`, time its `[run]`/`[refresh]` stage lines, sample its process tree's RSS."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = load()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    rss = TreeRss(proc.pid)
    events: list[tuple[float, str, str]] = []
    with open(log_path, "w") as log:
        for line in proc.stderr:
            now = time.monotonic()
            log.write(f"{now - t0:9.2f} {line}")
            m = STAGE_LINE.match(line.rstrip("\n"))
            if m:
                events.append((now, m.group(2), m.group(3)))
        stdout = proc.stdout.read()
        log.write(stdout)
    code = proc.wait()
    t1 = time.monotonic()
    rss.stop()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}); log: {log_path}")
    stages, order, started = {}, [], {}
    for t, name, text in events:
        if text.startswith("started"):
            started[name] = t
        elif name in started:
            stages[name] = {"seconds": round(t - started[name], 2), "peak_rss_gib": round(rss.peak(started[name], t) / 2**30, 2)}
            order.append(name)
    first = min(started.values(), default=t1)
    last = max((started[n] + stages[n]["seconds"] for n in order), default=t0)
    stages = {"startup": {"seconds": round(first - t0, 2), "peak_rss_gib": round(rss.peak(t0, first) / 2**30, 2)},
              **{n: stages[n] for n in order},
              "finish": {"seconds": round(t1 - last, 2), "peak_rss_gib": round(rss.peak(last, t1) / 2**30, 2)}}
    run_folder = re.search(r"run folder: (\S+)", stdout)
    return {"seconds": round(t1 - t0, 2), "peak_rss_gib": round(rss.peak(t0, t1) / 2**30, 2), "stages": stages,
            "load_before": before, "load_after": load(), "run_dir": run_folder.group(1) if run_folder else None,
            "command": " ".join(cmd)}


def stage_key(name: str) -> str:
    """`train rqvae` -> `train`, `cf embeddings` -> `cf`: one key per stage whatever the kind."""
    return {"cf embeddings": "cf"}.get(name, name.split(" ")[0])


def pipeline_run(n: int, keep_cache: bool, prefill: Path | None = None, model: Path | None = None) -> dict:
    import scale_data

    data = scale_data.write(OUT / "data" / str(n), n)
    out = OUT / "runs" / str(n)
    if out.exists():
        cache = out / "cache"
        keep = (keep_cache or prefill is not None) and cache.is_dir()
        if keep:
            shutil.move(cache, OUT / f".cache-{n}")
        shutil.rmtree(out)
        if keep:
            out.mkdir(parents=True)
            shutil.move(OUT / f".cache-{n}", cache)
    filled = prefill_cache(n, prefill) if prefill is not None and not (out / "cache").is_dir() else None
    cmd = [str(BIN / "rqvae-ids"), "run", "--catalog", str(OUT / "data" / str(n) / "items.csv"),
           "--interactions", str(OUT / "data" / str(n) / "interactions.csv"), "--out", str(out)]
    if model is not None:
        cmd += ["--model-dir", str(model)]
    result = run_timed(cmd, OUT / f"run-{n}.log")
    result["stages"] = {stage_key(k): v for k, v in result["stages"].items()}
    result["data"] = data
    result["warm_cache"] = bool(keep_cache or prefill is not None)
    if prefill is not None:
        result["prefilled_cache"] = filled or "kept from an earlier prefill"
    if model is not None:
        result["reused_model"] = str(model)  # no cf or train stage: `model` copies it
    result["reports"] = stage_reports(Path(result["run_dir"]))
    return result


def prefill_cache(n: int, donor_run: Path) -> dict:
    """Put a substitute vector for every text of the N catalog into its run folder's embedding
    cache, so `rqvae-ids run` finds every text cached and times every stage after embedding at N
    without the hours the encoding takes on 2 cores (its cost per item is constant: measure it at
    a smaller N). Item i gets the real embedding of the donor run's item i mod N0 (same model,
    same synthetic generator), plus small seeded noise so no two vectors are equal, L2-normalised.
    The codes and metrics of such a run say nothing about quality; its times and memory do."""
    import numpy as np

    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.embed import append_cache, cache_identity, cache_key, resolve_model
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.pipeline.config import PipelineConfig

    t0 = time.perf_counter()
    donor = np.asarray(read_embeddings(donor_run / "embeddings.parquet").vectors, np.float32)
    texts = load_catalog(OUT / "data" / str(n) / "items.csv").texts
    cfg = PipelineConfig().embed
    identity = cache_identity(resolve_model(cfg.model), cfg)
    cache = OUT / "runs" / str(n) / "cache" / "embedding_cache.parquet"
    cache.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for s in range(0, len(texts), 100_000):
        block = texts[s:s + 100_000]
        v = donor[np.arange(s, s + len(block)) % len(donor)] + rng.normal(0, 0.02, (len(block), donor.shape[1]))
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        append_cache(cache, identity, [cache_key(identity, t) for t in block], v)
    return {"items": len(texts), "donor": str(donor_run), "donor_items": len(donor), "noise_sd": 0.02,
            "seconds": round(time.perf_counter() - t0, 1)}


def stage_reports(run_dir: Path) -> dict:
    """The few figures of each stage report worth keeping beside the times."""
    stages = json.loads((run_dir / "run_report.json").read_text())["stages"]
    train, assign, ev = stages.get("train", {}), stages.get("assign", {}), stages.get("evaluate", {})
    keep = {
        "embed": {k: stages["embed"].get(k) for k in ("encoded", "cached", "backend")},
        "train": {k: train.get(k) for k in ("epochs", "seconds", "train_items", "train_sample", "kind") if k in train},
        "assign": {"duplicate_rate": (assign.get("collisions") or {}).get("duplicate_rate"),
                   "stability": assign.get("stability")},
        "evaluate": {"metrics": {k: v for k, v in (ev.get("metrics") or {}).items()
                                 if k in ("neighbour_recall@10", "next_recall@10", "duplicate_rate_raw")},
                     "samples": ev.get("samples")},
    }
    return keep


# ----------------------------------------------------------------------------- refresh


def refresh_catalog(n: int, attempt: int) -> tuple[Path, dict]:
    """items.csv of N with 1 % added and 1 % edited; texts new to the cache on every attempt."""
    import numpy as np
    import pandas as pd

    import scale_data

    data = OUT / "data" / str(n)
    items = pd.read_csv(data / "items.csv", dtype=str, keep_default_na=False)
    k = max(1, n // 100)
    rng = np.random.default_rng(1000 + attempt)
    edited = rng.choice(n, size=k, replace=False)
    tag = f" Refreshed catalog entry {attempt}."
    items.loc[edited, "description"] = items.loc[edited, "description"] + tag
    fresh, _ = scale_data.make_items(4 * k, seed=1000 + attempt)
    text = lambda f: f["title"] + f["brand"] + f["categories"] + f["description"]  # noqa: E731
    fresh = fresh[~text(fresh).isin(set(text(items)))].head(k).copy()
    fresh["description"] = fresh["description"] + tag
    fresh["item_id"] = [f"NEW{attempt:03d}-{i:08d}" for i in range(len(fresh))]
    fresh["price"] = fresh["price"].astype(str)
    changed = pd.concat([items, fresh], ignore_index=True)
    path = data / f"items_refresh_{attempt}.csv"
    changed.to_csv(path, index=False)
    return path, {"items": len(changed), "added": len(fresh), "edited": int(k),
                  "edited_ids": set(items["item_id"].iloc[edited]), "added_ids": set(fresh["item_id"])}


def refresh_run(n: int, base: dict) -> dict:
    from rqvae_ids.ids import read_semantic_ids
    from rqvae_ids.core.io import sha256_file
    from rqvae_ids.pipeline import runs

    out = OUT / "runs" / str(n)
    base_run = Path(base["run_dir"])
    runs.publish_latest(out, base_run)  # repeatable: always refresh the pipeline run
    # Numbered by the refresh catalogs written so far (kept with the data, unlike the run folders a
    # new pipeline run of N deletes), so every attempt's texts are new to the cache.
    attempt = len(list((OUT / "data" / str(n)).glob("items_refresh_*.csv")))
    catalog, change = refresh_catalog(n, attempt)
    cmd = [str(BIN / "rqvae-ids"), "refresh", "--catalog", str(catalog), "--out", str(out),
           "--interactions", str(OUT / "data" / str(n) / "interactions.csv")]
    result = run_timed(cmd, OUT / f"refresh-{n}.log")
    run_dir = Path(result["run_dir"])
    old, new = read_semantic_ids(base_run / "semantic_ids.parquet"), read_semantic_ids(run_dir / "semantic_ids.parquet")
    old_sid, new_sid = dict(zip(old.item_ids.tolist(), old.sids.tolist())), dict(zip(new.item_ids.tolist(), new.sids.tolist()))
    unchanged = set(old_sid) - change["edited_ids"]
    stages = json.loads((run_dir / "run_report.json").read_text())["stages"]
    result["stages"] = {stage_key(k): v for k, v in result["stages"].items()}
    result["change"] = {k: v for k, v in change.items() if not k.endswith("_ids")}
    result["checks"] = {
        "unchanged_items": len(unchanged),
        "unchanged_kept": sum(new_sid.get(i) == old_sid[i] for i in unchanged),
        "new_and_edited_with_id": sum(i in new_sid for i in change["added_ids"] | change["edited_ids"]),
        "distinct_ids": len(set(new_sid.values())) == len(new_sid),
        "encoded": stages["embed"]["encoded"],
        "trained": "train" in stages,
        "same_checkpoint": sha256_file(base_run / "model" / "model.safetensors")
        == sha256_file(run_dir / "model" / "model.safetensors"),
        "evaluate_samples": stages.get("evaluate", {}).get("samples"),
    }
    return result


# ----------------------------------------------------------------------------- tables


def per_item_table(results: dict) -> str:
    """One table per kind of run (plain, or "-reused-model"), each against its own N = 50k run."""
    kinds = sorted({key.partition("-")[2] for key in results})
    return "\n\n".join(_table({k: v for k, v in results.items() if k.partition("-")[2] == kind},
                              results.get(f"{BASE_N}-{kind}" if kind else str(BASE_N)), kind) for kind in kinds)


def _table(results: dict, base: dict | None, kind: str) -> str:
    ns = sorted(results, key=lambda key: int(key.partition("-")[0]))
    names = []
    for n in ns:
        names += [s for s in results[n]["stages"] if s not in names]
    head = "| stage" + (f" ({kind})" if kind else "") + " | " + " | ".join(
        f"N = {int(n.partition('-')[0]):,}: s / items/s / peak GiB / ×50k per item" for n in ns) + " |"
    lines = [head, "|---|" + "---|" * len(ns)]
    for name in names + ["total"]:
        cells = []
        for n in ns:
            r, size = results[n], int(n.partition("-")[0])
            st = r if name == "total" else r["stages"].get(name)
            if st is None:
                cells.append("–")
                continue
            s, rate = st["seconds"], size / st["seconds"] if st["seconds"] else float("inf")
            ratio = "–"
            b = base if name == "total" else (base or {}).get("stages", {}).get(name)
            if b and b["seconds"]:
                ratio = f"{(s / size) / (b['seconds'] / BASE_N):.2f}"
            note = " (prefilled cache: lookup only)" if name == "embed" and r.get("prefilled_cache") else ""
            cells.append(f"{s:.1f} / {rate:,.0f} / {st['peak_rss_gib']:.2f} / {ratio}{note}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def refresh_table(refresh: dict) -> str:
    lines = ["| N | stage | s | peak GiB |", "|---|---|---|---|"]
    for n, r in sorted(refresh.items(), key=lambda kv: int(kv[0])):
        for name, st in [*r["stages"].items(), ("total", r)]:
            lines.append(f"| {int(n):,} | {name} | {st['seconds']:.1f} | {st['peak_rss_gib']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, action="append", required=True, help="catalog size (repeatable)")
    p.add_argument("--refresh", action="store_true", help="time the refresh on the existing run of each N")
    p.add_argument("--keep-cache", action="store_true",
                   help="keep the output folder's embedding cache (development: times every stage but embed)")
    p.add_argument("--prefill-from", type=int, metavar="N0",
                   help="fill the cache with substitute vectors from the run of N0 (see prefill_cache): "
                        "times every stage after embedding at N; the embedding's cost comes from N0's run")
    p.add_argument("--reuse-model", action="store_true",
                   help="run with --model-dir bench/out/scale/models/<N> (a model of an earlier run of N): "
                        "times every stage but cf and train, which it skips (time those with bench/cf_scale.py "
                        "and an earlier run)")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = machine()
    for n in args.n:
        if args.refresh:
            found = [results.get("runs", {}).get(key) for key in (f"{n}-reused-model", str(n))]
            base = next((r for r in found if r and Path(r["run_dir"]).is_dir()), None)  # the run still on disk
            if base is None:
                raise SystemExit(f"no pipeline run of N = {n} in {RESULTS}: run bench/scale.py --n {n} first")
            results.setdefault("refresh", {})[str(n)] = r = refresh_run(n, base)
            print(json.dumps({"n": n, "seconds": r["seconds"], "checks": r["checks"]}), flush=True)
        else:
            donor = Path(results["runs"][str(args.prefill_from)]["run_dir"]) if args.prefill_from else None
            model = OUT / "models" / str(n) if args.reuse_model else None
            if model is not None and not model.is_dir():
                raise SystemExit(f"--reuse-model: no {model} (copy an earlier run's model folder there)")
            key = str(n) + ("-reused-model" if model is not None else "")
            results.setdefault("runs", {})[key] = r = pipeline_run(n, args.keep_cache, donor, model)
            print(json.dumps({"n": n, "seconds": r["seconds"], "peak_rss_gib": r["peak_rss_gib"],
                              "load": [r["load_before"], r["load_after"]]}), flush=True)
        RESULTS.write_text(json.dumps(results, indent=2, default=list))
    print(per_item_table(results.get("runs", {})))
    if results.get("refresh"):
        print()
        print(refresh_table(results["refresh"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
