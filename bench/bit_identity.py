"""Bit identity of seeded training across a refactor, on ONE machine; and the cross-run spread.

    .venv/bin/python bench/bit_identity.py record [--file bench/out/bit_identity.json]
    ... refactor the training loop(s) ...
    .venv/bin/python bench/bit_identity.py check  [--file bench/out/bit_identity.json]
    .venv/bin/python bench/bit_identity.py spread [--seeds 10]

record: trains every case of tests/train_cases.py (`train_model`: each kind, AE warm-up,
  neighbour term, early stopping, adagrad, resume) and the FULL config of the generative
  retriever (tests/test_retrieval_train.py: decoder and encdec, one torch thread), and writes
  the sha256 of each one's trained weights, codes and metrics to --file, with the machine
  (CPU model, flags) and the torch/numpy versions.
check: trains the same cases again and compares with --file: exit 0 when every digest is
  equal, 1 (naming the cases) when any differs. Refused (exit 2) when the file was recorded
  on another CPU or torch/numpy build: digests of float results only compare on the machine
  and build that made them (another CPU's BLAS kernels give other low bits), which is why
  they are a tool for a refactor and not tests (tests/README.md).
spread: the behaviour numbers the tests assert (tests/test_train_cases.py RECORDED,
  tests/test_retrieval_train.py FULL_LOSS) for seeds 0..N-1 at 1 and 2 torch threads, and
  their range: how the tolerances there were chosen. Writes bench/out/bit_identity_spread.json.

Run record before the change (on the old code) and check after it, on the same machine.
Nothing here is part of `make test`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
DEFAULT_FILE = REPO / "bench" / "out" / "bit_identity.json"
ARCHS = ("decoder", "encdec")


def machine() -> dict:
    """What decides the low bits of float results: CPU model and flags, torch and numpy builds."""
    import numpy as np
    import torch

    name, flags = platform.processor(), []
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not flags:
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = sorted(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {"cpu": name, "cpu_flags_sha256": hashlib.sha256(" ".join(flags).encode()).hexdigest(),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def retriever_data():
    from rqvae_ids.evaluate.sequences import leave_one_out
    from test_retrieval_train import catalog

    codes, users, seqs = catalog()
    return codes, leave_one_out(users, seqs)


def one_thread(fn):
    """fn() with torch on one thread (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def retriever_digest(model, report) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps([[r["loss"], r.get("valid_next_ndcg@10")] for r in report["history"]]).encode())
    h.update(json.dumps([report["epochs"], report["best_epoch"]]).encode())
    return h.hexdigest()


def digests() -> dict:
    """case -> digests, for every train_model case and both retriever architectures."""
    import train_cases
    from test_retrieval_train import full_run

    out: dict = {}
    data = retriever_data()
    with tempfile.TemporaryDirectory() as tmp:
        for name in train_cases.NAMES:
            out[f"train_model/{name}"] = train_cases.digest(*train_cases.run_case(name, Path(tmp) / name))
        for arch in ARCHS:
            model, report = one_thread(lambda: full_run(data, arch, Path(tmp) / arch))
            out[f"retriever/{arch}"] = {"weights_and_history": retriever_digest(model, report)}
    return out


def record(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), "digests": digests()}, indent=1, sort_keys=True) + "\n")
    print(f"recorded {path}")
    return 0


def check(path: Path) -> int:
    saved = json.loads(path.read_text())
    here = machine()
    if saved["machine"] != here:
        print(f"refused: {path} was recorded on {saved['machine']}, this is {here}; "
              "digests only compare on the same machine and build: record again here")
        return 2
    now = digests()
    differ = [k for k in saved["digests"] if now.get(k) != saved["digests"][k]]
    for k in now:
        print(f"{k:40s} {'DIFFERS' if k in differ else 'identical'}")
    return 1 if differ else 0


def spread(seeds: int) -> int:
    """Behaviour numbers over seeds x {1, 2} threads: the basis of the tests' tolerances."""
    import torch

    import train_cases
    from test_retrieval_train import full_run

    data, rows = retriever_data(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for seed in range(seeds):
                for name in train_cases.NAMES:
                    b = train_cases.behaviour(*train_cases.run_case(name, Path(tmp) / f"{seed}-{threads}", seed))
                    rows.setdefault(name, []).append({"seed": seed, "threads": threads, **b})
                for arch in ARCHS:
                    _, rep = full_run(data, arch, Path(tmp) / f"{arch}-{seed}-{threads}", seed)
                    rows.setdefault(f"retriever/{arch}", []).append(
                        {"seed": seed, "threads": threads, "train_loss": [h["loss"] for h in rep["history"]]})
    summary = {name: summarise(r) for name, r in rows.items()}
    for name, s in summary.items():
        print(name, json.dumps(s))
    out = REPO / "bench" / "out" / "bit_identity_spread.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "seeds": seeds, "summary": summary, "runs": rows}, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO)}")
    return 0


def summarise(runs: list[dict]) -> dict:
    """Seed 0 at 1 thread, and min/max over all runs, of the numbers the tests assert."""
    def stat(get):
        values = [get(r) for r in runs]
        return {"seed0_1thread": get(runs[0]), "min": min(values), "max": max(values),
                "max_abs_from_seed0": max(abs(v - get(runs[0])) for v in values)}

    out = {}
    if runs[0]["train_loss"]:
        out["last_train_loss"] = stat(lambda r: r["train_loss"][-1])
        out["fall_ratio_last_over_first"] = stat(lambda r: r["train_loss"][-1] / r["train_loss"][0])
    if "recon_mse" in runs[0]:
        out["recon_mse"] = stat(lambda r: r["recon_mse"])
        out["min_codes_per_level"] = stat(lambda r: min(r["codes_per_level"]))
        out["distinct_tuples"] = stat(lambda r: r["distinct_tuples"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("record", "check", "spread"))
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="digest file (record/check)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (spread)")
    args = parser.parse_args()
    if args.action == "record":
        return record(args.file)
    if args.action == "check":
        return check(args.file)
    return spread(args.seeds)


if __name__ == "__main__":
    sys.exit(main())
