"""What an evaluation writes: comparison.parquet (long format + constant config columns), the PNG
plots, report.md and comparison.json, all atomically (`write_outputs`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.io import provenance, write_json_atomic, write_parquet_atomic, write_text_atomic
from . import plots
from .model_ids import ModelIds
from .report import build_report


@dataclass
class Measured:
    """What the measuring steps collect: long-frame rows, report notes, timings, tuned retriever
    knobs, and the names of the baseline and extra retriever rows."""

    notes: list[str]
    timings: dict[str, float]
    rows: list[tuple[str, str, float]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    baselines: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # rows of `retrievers`, after the ID models
    valid_hits: dict[str, np.ndarray] = field(default_factory=dict)  # row -> per-validation-user hit@10


def write_outputs(out_dir: Path, model_ids: Sequence[ModelIds], codebook_size: int, m: Measured,
                  order: list[str], config: dict[str, Any], command: str, progress: Callable[[str], None],
                  started_at: float | None) -> dict[str, Any]:
    """comparison.parquet, the PNG plots, report.md and comparison.json (returned), all atomic."""
    comparison = pd.DataFrame(m.rows, columns=["model", "metric", "value"])
    prov = provenance()
    progress("writing comparison.parquet, plots, report.md")
    _write_parquet(comparison, out_dir / "comparison.parquet", config, command, prov)
    written = write_plots(out_dir, comparison, model_ids, codebook_size, m.notes)
    m.timings.update({f"{ids.name}: train + assign IDs": ids.seconds for ids in model_ids if ids.seconds})
    if started_at is not None:
        m.timings["total"] = time.perf_counter() - started_at
    shown = {**config, "epochs": config.get("epochs") or epochs_run(model_ids) or config.get("epochs")}
    report = build_report(
        comparison, order, command=command, provenance=prov, config=shown, notes=m.notes,
        timings=m.timings, plots=written, details=m.details, valid_hits=m.valid_hits,
    )
    write_text_atomic(out_dir / "report.md", report)
    summary = {
        "command": command, "config": config, "notes": m.notes, "timings": m.timings,
        "tuned": m.details, "models": order, "plots": written, "provenance": prov,
        "metrics": {name: dict(zip(g["metric"], g["value"]))
                    for name, g in comparison.groupby("model", sort=False)},
    }
    write_json_atomic(out_dir / "comparison.json", summary)
    return summary


def write_plots(out_dir: Path, comparison: pd.DataFrame, model_ids: Sequence[ModelIds], codebook_size: int,
                notes: list[str]) -> list[str]:
    """The PNGs written (recall bars need next-item rows, loss curves per-epoch losses)."""
    written = []
    if plots.plot_recall_bars(comparison, out_dir / "recall_bars.png"):
        written.append("recall_bars.png")
    plots.plot_code_usage({ids.name: ids.codes for ids in model_ids}, codebook_size, out_dir / "code_usage.png")
    written.append("code_usage.png")
    if plots.plot_loss_curves({ids.name: ids.losses for ids in model_ids}, out_dir / "loss_curves.png"):
        written.append("loss_curves.png")
    else:
        notes.append("loss_curves.png not written: no model logged per-epoch losses.")
    return written


def epochs_run(model_ids: Sequence[ModelIds]) -> str | None:
    """The epochs the models actually trained, from their per-epoch losses, for the report's config
    line where the config left them to the default (one number if all agree, else per model)."""
    runs = {m.name: int(m.losses["epoch"].max()) for m in model_ids
            if m.losses is not None and "epoch" in m.losses.columns and len(m.losses)}
    if not runs:
        return None
    if len(set(runs.values())) == 1:
        return str(next(iter(runs.values())))
    return " / ".join(f"{name} {n}" for name, n in runs.items())


def _write_parquet(comparison: pd.DataFrame, path: Path, config: dict, command: str, prov: dict) -> None:
    """Long table plus constant config columns (levels, codebook_size, seed, epochs, ...)."""
    cols = {
        "model": pa.array(comparison["model"].tolist(), pa.string()),
        "metric": pa.array(comparison["metric"].tolist(), pa.string()),
        "value": pa.array(comparison["value"].to_numpy(dtype=np.float64), pa.float64()),
    }
    for key in ("levels", "codebook_size", "seed", "epochs", "embedding_model", "n_items"):
        if key in config:
            value = config[key]
            typ = pa.string() if key == "embedding_model" else pa.int64()
            cols[key] = pa.array([value] * len(comparison), typ)
    table = pa.table(cols)
    write_parquet_atomic(table, path, {"config": config, "command": command, "provenance": prov})
