"""Comparison plots (matplotlib, Agg backend), each written atomically as PNG.

- code_usage.png: per model (row) and level (column), items per code sorted by
  use: a flat bar means even use, a spike then zeros means collapse.
- loss_curves.png: per-epoch losses of every trained model (log scale).
- recall_bars.png: neighbour recall@10/@100 and next-item Recall@10 per model.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import numpy as np
import pandas as pd

from ..core.io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    plt = _plt()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_code_usage(codes_by_model: Mapping[str, np.ndarray], codebook_size: int, path) -> None:
    """codes_by_model: model -> (N, L) int codes. One row of panels per model."""
    plt = _plt()
    models = list(codes_by_model)
    levels = max(c.shape[1] for c in codes_by_model.values())
    fig, axes = plt.subplots(len(models), levels, figsize=(3.2 * levels, 1.9 * len(models) + 0.6), squeeze=False)
    for r, model in enumerate(models):
        codes = codes_by_model[model]
        for level in range(levels):
            ax = axes[r, level]
            if level >= codes.shape[1]:
                ax.axis("off")
                continue
            counts = np.sort(np.bincount(codes[:, level], minlength=codebook_size))[::-1]
            used = int((counts > 0).sum())
            ax.bar(np.arange(codebook_size), counts, width=1.0, color="C0")
            ax.axhline(len(codes) / codebook_size, color="C3", lw=0.8, ls="--")
            ax.set_title(f"{model} l{level}: {used}/{codebook_size} used", fontsize=8)
            ax.tick_params(labelsize=6)
            if level == 0:
                ax.set_ylabel("items", fontsize=7)
            if r == len(models) - 1:
                ax.set_xlabel("code rank (by use)", fontsize=7)
    fig.suptitle("Items per code, codes sorted by use (dashed: perfectly even use)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _is_loss(column: str) -> bool:
    name = column.lower()
    return bool(re.search(r"loss|recon|quant|kl", name)) and not re.search(r"_l\d+$", name)


# (dash, marker) per loss column, in column order.
LOSS_STYLES = (("-", None), ("--", "o"), (":", "s"), ("-.", "^"), ((0, (5, 1, 1, 1)), "D"), ((0, (1, 1)), "v"))


def plot_loss_curves(metrics_by_model: Mapping[str, pd.DataFrame], path) -> bool:
    """metrics_by_model: model -> per-epoch frame (an `epoch` column + loss columns).

    Plots every numeric loss column (total, recon, quant, kl; not per-level parts). Returns False (and writes
    nothing) when no model has a loss column (e.g. only rqkmeans/random).
    """
    plt = _plt()
    series = {}
    for model, frame in metrics_by_model.items():
        if frame is None or frame.empty:
            continue
        cols = [c for c in frame.columns if _is_loss(c) and pd.api.types.is_numeric_dtype(frame[c])]
        if cols:
            x = frame["epoch"].to_numpy() if "epoch" in frame.columns else np.arange(len(frame))
            series[model] = (x, frame[cols])
    if not series:
        return False
    ncols = min(3, len(series))
    nrows = -(-len(series) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(series):]:
        ax.axis("off")
    names = list(dict.fromkeys(c for _, losses in series.values() for c in losses.columns))
    for ax, (model, (x, losses)) in zip(axes.flat, series.items()):
        for col in losses.columns:
            i = names.index(col)  # one style per loss name in every panel
            # Colour, dash and marker all differ, and later lines are thinner, so a curve
            # drawn on top of another (train_loss ~ train_recon) leaves the one below visible.
            style, marker = LOSS_STYLES[i % len(LOSS_STYLES)]
            y = losses[col].to_numpy(dtype=float)
            draw = ax.semilogy if np.all(y > 0) else ax.plot
            draw(x, y, label=col, color=f"C{i}", ls=style, marker=marker, markevery=max(1, len(x) // 12),
                 markersize=5, lw=max(1.2, 3.0 - 0.5 * i))
        ax.set_title(model, fontsize=11)
        ax.set_xlabel("epoch", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.tick_params(labelsize=9)
        ax.legend(fontsize=9, loc="best")
    fig.suptitle("Training losses per epoch", fontsize=12)
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_recall_bars(comparison: pd.DataFrame, path) -> bool:
    """comparison: long frame (model, metric, value). Returns False when no recall metric exists."""
    plt = _plt()
    panels = [m for m in ("neighbour_recall@10", "neighbour_recall@100", "next_recall@10") if m in set(comparison["metric"])]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], panels):
        rows = comparison[comparison["metric"] == metric]
        models, values = rows["model"].tolist(), rows["value"].to_numpy(dtype=float)
        # <family>/<kind> rows (tiger/, parallel/) take their ID model's colour (tiger/random is a baseline too)
        colors = ["C1" if m.split("/")[-1] in ("popularity", "embedding-knn", "random") else "C0" for m in models]
        bars = ax.bar(range(len(models)), values, color=colors)
        for bar, v in zip(bars, values):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{v:.3f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=35, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.set_ylim(0, max(values.max() * 1.18, 1e-3))
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("Recall per model (orange: baselines)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return True
