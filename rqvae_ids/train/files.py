"""The files a training writes beside the model (optimizer.pt, train_state.json, metrics.parquet,
train_report.json), and reading back whether a training there finished."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.io import write_parquet_atomic

OPTIMIZER, STATE, METRICS, REPORT = "optimizer.pt", "train_state.json", "metrics.parquet", "train_report.json"


def unfinished_checkpoint(out_dir) -> dict[str, Any] | None:
    """train_state.json of a training in out_dir that did not finish (interrupted, or still running),
    else None: a checkpoint that no train_report.json of the same epoch and step closes."""
    out = Path(out_dir)
    try:
        state = json.loads((out / STATE).read_text())
    except (OSError, ValueError):
        return None
    try:
        report = json.loads((out / REPORT).read_text())
    except (OSError, ValueError):
        return state
    done = report.get("epochs") == state.get("epoch") and report.get("steps") == state.get("step")
    return None if done else state


def write_metrics(path: Path, history: list[dict], meta: dict) -> None:
    """metrics.parquet: one row per epoch; columns absent in some rows are null."""
    import pyarrow as pa

    cols: list[str] = []
    for row in history:
        cols += [c for c in row if c not in cols]
    arrays = {c: [row.get(c) for row in history] for c in cols}
    table = pa.table(arrays) if cols else pa.table({"epoch": pa.array([], pa.int64())})
    write_parquet_atomic(table, path, {"kind": meta.get("train", {}).get("model", {}).get("kind"),
                                       "data_sha256": meta.get("data_sha256")})
