"""report.md of an evaluation (one run's model, or a comparison of several): one table (models
as rows, metrics as columns), best marked.

Bold = best value of the column over all rows, where there is something to beat
(at least two values, not all tied); a trailing `*` marks the best ID model where a
no-ID baseline (popularity, embedding-knn) is best overall.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

BASELINES = ("popularity", "embedding-knn", "sasrec")  # rows that need no IDs
LOWER_IS_BETTER = ("duplicate_rate_raw", "duplicate_rate_resolved", "colliding_share_raw", "recon_mse")
# Column order of the table; per-level metrics are expanded in place of {i}.
METRIC_ORDER = (
    "neighbour_recall@10", "neighbour_recall@100",
    "next_recall@5", "next_recall@10", "next_ndcg@5", "next_ndcg@10", "cold_recall@10", "cold_ndcg@10",
    "duplicate_rate_raw", "colliding_share_raw", "duplicate_rate_resolved",
    "utilisation_l{i}", "perplexity_l{i}",
    "recon_mse", "recon_cosine",
    "nmi_l0", "purity_l0", "nmi_l01", "purity_l01",
)


def ordered_metrics(metrics: Sequence[str]) -> list[str]:
    """The metrics present, in table order (unknown names last, sorted)."""
    present = set(metrics)
    out: list[str] = []
    for pattern in METRIC_ORDER:
        if "{i}" in pattern:
            rx = re.compile("^" + re.escape(pattern).replace(r"\{i\}", r"(\d+)") + "$")
            found = sorted((int(rx.match(m).group(1)), m) for m in present if rx.match(m))
            out += [m for _, m in found]
        elif pattern in present:
            out.append(pattern)
    return out + sorted(present - set(out))


def _fmt(v: float, metric: str) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    if metric.startswith("perplexity"):
        return f"{v:.1f}"
    if metric == "recon_mse":
        return f"{v:.2e}"
    return f"{v:.4f}"


def results_table(comparison: pd.DataFrame, models: Sequence[str]) -> str:
    """Markdown table of a long (model, metric, value) frame; rows in `models` order."""
    wide = comparison.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    metrics = ordered_metrics(list(wide.columns))
    rows = list(dict.fromkeys(models))  # a model without values (failed) still gets its row
    wide = wide.reindex(index=rows, columns=metrics)
    best: dict[str, set[str]] = {}
    best_id: dict[str, set[str]] = {}
    for metric in metrics:
        col = wide[metric].astype(float)
        best[metric] = _argbest(col, metric)
        id_col = col[[m for m in rows if m not in BASELINES]]
        best_id[metric] = _argbest(id_col, metric) if best[metric] & set(BASELINES) else set()
    lines = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for model in rows:
        cells = []
        for metric in metrics:
            text = _fmt(wide.at[model, metric], metric)
            if model in best[metric]:
                text = f"**{text}**"
            elif model in best_id[metric]:
                text += "*"
            cells.append(text)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _argbest(col: pd.Series, metric: str) -> set[str]:
    """The rows holding the column's best value; none where there is nothing to beat (one
    value, or every row tied), so a lone model's row is not bold everywhere."""
    col = col.dropna()
    target = col.min() if metric in LOWER_IS_BETTER else col.max()
    best = set(col.index[np.isclose(col.to_numpy(), target, rtol=1e-9, atol=1e-12)]) if len(col) else set()
    return best if len(best) < len(col) else set()


def _compact(v: Any) -> str:
    """Tuning details on one line, floats rounded to 4 digits."""
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_compact(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


NO_CODES = "hybrid/no-codes"


def codes_added(comparison: pd.DataFrame) -> list[str]:
    """Report lines: what each tokenizer's codes add to the hybrid retriever, `hybrid/<model>` minus
    `hybrid/no-codes` (the same model without the codes part) on the test users; [] without it."""
    wide = comparison.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    if NO_CODES not in wide.index:
        return []
    metrics = [m for m in ("next_recall@10", "next_ndcg@10", "cold_recall@10", "cold_ndcg@10") if m in wide.columns]
    rows = [m for m in wide.index if m.startswith("hybrid/") and m != NO_CODES]
    lines = ["## What the codes add (hybrid retriever)", "",
             f"`hybrid/<model>` minus `{NO_CODES}` (same model, same budget, no codes part), test users:", "",
             "| tokenizer | " + " | ".join(f"Δ {m}" for m in metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    for row in rows:
        deltas = [wide.at[row, m] - wide.at[NO_CODES, m] for m in metrics]
        lines.append(f"| {row.removeprefix('hybrid/')} | " + " | ".join(
            "–" if not np.isfinite(d) else f"{d:+.4f}" for d in deltas) + " |")
    return lines + [""]


def tokenizer_advice(valid_hits: Mapping[str, np.ndarray]) -> list[str]:
    """The report's last line: which tokenizer to use for this catalog, by the validation Recall@10
    of its `hybrid/<model>` row, with its lead over the runner-up and over `hybrid/no-codes` and
    whether each lead is beyond one paired standard error; [] without hybrid rows."""
    rows = {k: v for k, v in valid_hits.items() if k.startswith("hybrid/") and k != NO_CODES}
    if not rows:
        return []
    ranked = sorted(rows, key=lambda k: -float(np.mean(rows[k])))
    best = ranked[0]

    def lead(other: str) -> str:
        d = np.asarray(rows[best], float) - np.asarray(valid_hits[other], float)
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        noise = "beyond one standard error" if d.mean() > se else f"within noise, one standard error {se:.4f}"
        return f"{d.mean():+.4f} over `{other.removeprefix('hybrid/')}` ({noise})"

    leads = [lead(o) for o in (ranked[1:2] + ([NO_CODES] if NO_CODES in valid_hits else []))]
    return ["## Which tokenizer", "",
            f"Use `{best.removeprefix('hybrid/')}` for this catalog: validation Recall@10 of its hybrid retriever "
            f"{float(np.mean(rows[best])):.4f}" + (", " + "; ".join(leads) if leads else "") + ".", ""]


def build_report(
    comparison: pd.DataFrame,
    models: Sequence[str],
    *,
    command: str,
    provenance: Mapping[str, Any],
    config: Mapping[str, Any],
    notes: Sequence[str],
    timings: Mapping[str, float],
    plots: Sequence[str],
    details: Mapping[str, Any] | None = None,
    valid_hits: Mapping[str, np.ndarray] | None = None,
) -> str:
    """The whole report.md as text."""
    versions = ", ".join(f"{k} {v}" for k, v in provenance.get("versions", {}).items() if v)
    parts = [
        "# Semantic-ID comparison",
        "",
        "## Command",
        "",
        f"```\n{command}\n```",
        "",
        f"Python {provenance.get('python')}; {versions}; git commit `{provenance.get('git_commit')}`.",
        "",
        "Config: " + ", ".join(f"`{k}={v}`" for k, v in config.items()),
        "",
        "## Results",
        "",
        "Bold: best of the column (where rows differ); `*`: best ID model where a no-ID baseline is best overall. "
        "`next_*` of ID models come from the sid-prefix retriever over that model's IDs; "
        "`popularity`, `embedding-knn` and `sasrec` need no IDs. Resolved IDs append a collision suffix.",
        "",
        results_table(comparison, models),
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in notes],
        "",
    ]
    parts += codes_added(comparison)
    if details:
        parts += ["## Tuned retriever settings (validation only)", ""]
        parts += [f"- {k}: {_compact(v)}" for k, v in details.items()]
        parts.append("")
    parts += ["## Timings (seconds)", "", "| stage | s |", "|---|---:|"]
    parts += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    parts += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    parts += tokenizer_advice(valid_hits or {})
    return "\n".join(parts)
