"""A run's short summary: rows for the CLI table and the Prefect artifacts.

Reads only the stage reports a run recorded (`run_report.json`), so it works
for any finished run folder, with or without Prefect.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..models.kinds import fitted_by


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, (list, tuple)):
        return " / ".join(_fmt(v) for v in value)
    return str(value)


def summary_rows(stages: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows from a run's stage reports (keys: ingest, embed, train/model, assign, ...)."""
    rows: list[tuple[str, Any]] = []
    ingest = stages.get("ingest") or {}
    embed = stages.get("embed") or {}
    train = stages.get("train") or {}
    model = stages.get("model") or {}
    assign = stages.get("assign") or {}
    if ingest:
        rows.append(("items", ingest.get("items")))
    if embed:
        rows.append(("embedded (encoded / from cache)", f"{embed.get('encoded')} / {embed.get('cached')}"))
    cf = stages.get("cf") or {}
    if cf:
        rows.append(("CF embeddings (items with one)", f"{cf.get('items_with_cf')} of {cf.get('items')}"))
    if train:
        rows.append(("model", f"{train.get('kind')} {train.get('levels')}x{train.get('codebook_size')}, "
                              f"{fitted_by(train.get('kind'), train.get('epochs'))}, {train.get('seconds')} s"
                              + (", collaborative" if train.get("cf") else ", text only")))
        if train.get("final_val_loss") is not None:
            rows.append(("final val loss", train["final_val_loss"]))
    elif model:
        rows.append(("model", f"frozen, from {model.get('source')}"))
    if assign:
        coll = assign.get("collisions") or {}
        rows.append(("ID length (tokens)", assign.get("id_length")))
        rows.append(("duplicate_rate before resolution", coll.get("duplicate_rate", coll.get("collision_rate"))))
        rows.append(("colliding_share before resolution", coll.get("colliding_share")))
        rows.append(("largest colliding group", coll.get("largest_group")))
        rows.append(("codebook utilisation per level", coll.get("utilisation")))
        rows.append(("perplexity per level", coll.get("perplexity")))
        stability = assign.get("stability")
        if stability:
            rows.append(("stability", ", ".join(f"{k} {_fmt(v)}" for k, v in stability.items()
                                                if not isinstance(v, (dict, list)))))
    mapping = stages.get("id_mapping")
    if mapping:
        rows.append(("IDs changed vs previous run", f"{mapping.get('changed')} of {mapping.get('items_common')} "
                                                     f"({mapping.get('changed_share', 0):.1%})"))
    evaluation = stages.get("evaluate") or {}
    for name, value in (evaluation.get("metrics") or {}).items():
        if "recall" in name or "ndcg" in name or name.startswith(("nmi", "purity", "recon")):
            rows.append((name, value))
    return [(name, _fmt(value)) for name, value in rows if value is not None]


def ids_kept_changed(stages: dict[str, Any]) -> str | None:
    """How the run's IDs relate to the previous run's, in a few words (None for a first run)."""
    stability = (stages.get("assign") or {}).get("stability")
    if stability:
        return (f"IDs kept {stability['kept']}, new {stability['new']}, edited {stability['edited']}, "
                f"removed {stability['removed']}")
    mapping = stages.get("id_mapping")
    if mapping:
        return (f"IDs changed {mapping['changed']} of {mapping['items_common']} "
                f"({mapping.get('changed_share', 0):.1%}), id_mapping.parquet written")
    return None


def read_run_report(run_dir: str | os.PathLike) -> dict[str, Any]:
    p = Path(run_dir) / "run_report.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def format_table(rows: list[tuple[str, str]]) -> str:
    """Plain two-column text table."""
    if not rows:
        return "(no summary)"
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows)


def markdown_summary(run_dir: str | os.PathLike, title: str) -> str:
    """Markdown for the Prefect UI: the summary rows plus where the files are."""
    report = read_run_report(run_dir)
    rows = summary_rows(report.get("stages", {}))
    lines = [f"# {title}", "", f"Run folder: `{run_dir}`", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    evaluation = (report.get("stages", {}).get("evaluate") or {}).get("path")
    if evaluation:
        lines += ["", f"Full evaluation report: `{Path(evaluation) / 'report.md'}`"]
    return "\n".join(lines) + "\n"


def metrics_records(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every evaluation metric of the run (this model and the baselines) as table rows."""
    evaluation = read_run_report(run_dir).get("stages", {}).get("evaluate") or {}
    records = []
    models = {evaluation.get("model", "model"): evaluation.get("metrics") or {}, **(evaluation.get("baselines") or {})}
    for model, metrics in models.items():
        for name, value in metrics.items():
            records.append({"model": model, "metric": name, "value": round(float(value), 6)})
    return records
