"""Comparison outputs: parquet names, report rows, PNG plots, skipped-metric notes, end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rqvae_ids.compare.config import CompareConfig, CompareOptions, RetrieverRows
from rqvae_ids.evaluate.evaluation import EvaluationSettings, evaluate_and_write
from rqvae_ids.evaluate.model_ids import ModelIds
from rqvae_ids.evaluate.random_ids import random_codes
from rqvae_ids.evaluate.report import ordered_metrics, results_table
from rqvae_ids.evaluate.sequences import leave_one_out
from rqvae_ids.core.io import read_parquet_metadata

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fixture(n=300, d=12, users=150, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 6, n)
    x = (rng.normal(size=(6, d))[label] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    cats = [f"Root > C{c} > S{rng.integers(3)}" for c in label]
    seqs = [rng.choice(np.flatnonzero(label == rng.integers(6)), rng.integers(4, 9)) for _ in range(users)]
    split = leave_one_out([str(u) for u in range(users)], seqs, order_column="position")
    good = np.stack([label, rng.integers(0, 4, n), rng.integers(0, 8, n)], axis=1)
    models = [
        ModelIds("rqkmeans", good, np.zeros(n, np.int64), x + 0.01,
                 pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5]})),
        ModelIds("random", random_codes(n, 3, 8, 0), np.zeros(n, np.int64)),
    ]
    return x, cats, split, models


FIXED = {"neighbour_recall@10", "neighbour_recall@100", "duplicate_rate_raw", "duplicate_rate_resolved",
         "colliding_share_raw",
         "utilisation_l0", "perplexity_l2", "recon_mse", "nmi_l0"}
NEXT = {"next_recall@5", "next_recall@10", "next_ndcg@5", "next_ndcg@10"}
CONFIG = {"models": "rqkmeans,random", "levels": 3, "codebook_size": 8, "seed": 0, "epochs": None}


def test_outputs_names_report_and_plots(tmp_path):
    import matplotlib.image as mpimg

    x, cats, split, models = _fixture()
    settings = EvaluationSettings(codebook_size=8, neighbour_queries=100)
    evaluate_and_write(tmp_path, x, models, settings, config=CONFIG, categories=cats, split=split,
                       command="rqvae-ids compare ...", progress=lambda m: None)
    table = pd.read_parquet(tmp_path / "comparison.parquet")
    assert {"model", "metric", "value", "levels", "codebook_size", "seed"} <= set(table.columns)
    by_model = table.groupby("model")["metric"].apply(set)
    assert FIXED | NEXT <= by_model["rqkmeans"]
    assert NEXT <= by_model["popularity"] and NEXT <= by_model["embedding-knn"]
    assert "recon_mse" not in by_model["random"]
    assert read_parquet_metadata(tmp_path / "comparison.parquet")["command"] == "rqvae-ids compare ..."
    report = (tmp_path / "report.md").read_text()
    for model in ("popularity", "embedding-knn", "rqkmeans", "random"):
        assert f"| {model} |" in report
    assert "rqvae-ids compare ..." in report and "removed from every retriever" in report
    for name in ("code_usage.png", "loss_curves.png", "recall_bars.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert mpimg.imread(tmp_path / name).ndim == 3
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_no_categories_no_interactions_skip_with_notes(tmp_path):
    x, _, _, models = _fixture()
    settings = EvaluationSettings(codebook_size=8, neighbour_queries=100)
    summary = evaluate_and_write(tmp_path, x, models, settings, config=CONFIG, categories=None, split=None)
    metrics = set(pd.read_parquet(tmp_path / "comparison.parquet")["metric"])
    assert not metrics & NEXT and "nmi_l0" not in metrics and "neighbour_recall@10" in metrics
    report = (tmp_path / "report.md").read_text()
    assert "skipped: no interactions given" in report and "skipped: the catalog has no categories" in report
    assert summary["models"] == ["rqkmeans", "random"]


def test_report_marks_best_per_column():
    frame = pd.DataFrame(
        [("a", "duplicate_rate_raw", 0.1), ("b", "duplicate_rate_raw", 0.0), ("a", "next_recall@10", 0.2),
         ("b", "next_recall@10", 0.1), ("popularity", "next_recall@10", 0.3), ("a", "utilisation_l1", 1.0),
         ("a", "utilisation_l0", 0.5)],
        columns=["model", "metric", "value"],
    )
    table = results_table(frame, ["popularity", "a", "b"])
    lines = table.splitlines()
    assert lines[0] == "| model | next_recall@10 | duplicate_rate_raw | utilisation_l0 | utilisation_l1 |"
    assert "| popularity | **0.3000** | – |" in table
    assert "| a | 0.2000* | 0.1000 |" in table and "| b | 0.1000 | **0.0000** |" in table
    assert ordered_metrics(["perplexity_l10", "perplexity_l2", "zzz"]) == ["perplexity_l2", "perplexity_l10", "zzz"]


def _write_inputs(tmp_path, n=240, d=24, users=150, seed=0):
    from rqvae_ids.core.embedding_table import write_embeddings

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 6, n)
    x = (rng.normal(size=(6, d))[label] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"i{i}" for i in range(n)]
    write_embeddings(tmp_path / "emb.parquet", ids, ["h"] * n, x, "fake-model")
    rows = []
    for u in range(users):
        seq = rng.choice(np.flatnonzero(label == rng.integers(6)), rng.integers(4, 9))
        rows += [(f"u{u}", ids[i], p) for p, i in enumerate(seq)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "position"]).to_csv(tmp_path / "inter.csv", index=False)
    cats = [f"Toys > C{c} > S{rng.integers(3)}" for c in label]
    return ids, cats


def test_end_to_end_tiny_catalog(tmp_path):
    from types import SimpleNamespace

    from rqvae_ids.compare.comparison import run_comparison

    ids, cats = _write_inputs(tmp_path)
    catalog = SimpleNamespace(item_ids=ids, texts=["t"] * len(ids), categories=cats)
    cfg = CompareConfig(models=("ae", "rqkmeans", "random"), levels=3, codebook_size=16, epochs=1,
                        neighbour_queries=100, tune_users=100)
    given = dict(interactions=tmp_path / "inter.csv", embeddings=tmp_path / "emb.parquet",
                 rows=RetrieverRows(sasrec=None))
    summary = run_comparison(catalog, tmp_path / "out", CompareOptions(cfg, command="test", **given),
                             progress=lambda m: None)
    assert summary["models"] == ["popularity", "embedding-knn", "ae", "rqkmeans", "random"]
    table = pd.read_parquet(tmp_path / "out" / "comparison.parquet")
    assert set(table["model"]) == set(summary["models"])
    assert (FIXED | NEXT) <= set(table.loc[table["model"] == "rqkmeans", "metric"])
    assert table.loc[table["metric"] == "duplicate_rate_resolved", "value"].max() == 0.0
    # Only the new metric names are written (issue 26), in the table, the summary and the report.
    assert not table["metric"].str.startswith("collision_rate").any()
    assert not any(k.startswith("collision_rate") for k in summary["metrics"]["ae"])
    assert "collision_rate" not in (tmp_path / "out" / "report.md").read_text()
    m = summary["metrics"]
    assert m["rqkmeans"]["neighbour_recall@10"] > 3 * m["random"]["neighbour_recall@10"]
    assert (tmp_path / "out" / "loss_curves.png").read_bytes().startswith(PNG_SIGNATURE)
    # A rerun into the same folder reuses the trained model instead of training again.
    cfg = CompareConfig(models=("rqkmeans",), levels=3, codebook_size=16, epochs=1, neighbour_queries=100,
                        tune_users=100)
    again = run_comparison(catalog, tmp_path / "out", CompareOptions(cfg, **given), progress=lambda m: None)
    assert any("Reused" in n for n in again["notes"])
    assert again["metrics"]["rqkmeans"] == pytest.approx(m["rqkmeans"])
