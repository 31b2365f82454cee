"""The pipeline, refresh and retrain flows end to end on a 300-item shop (tiny config)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rqvae_ids.core.errors import UserError
from rqvae_ids.pipeline import runs

pytestmark = pytest.mark.timeout(300)


def _sids(run_dir):
    from rqvae_ids.ids import read_semantic_ids

    s = read_semantic_ids(run_dir / "semantic_ids.parquet")
    return dict(zip(s.item_ids.tolist(), s.sids.tolist()))


def test_run_writes_every_table_and_points_latest(pipeline_run):
    from rqvae_ids.ids import read_semantic_ids
    from rqvae_ids.models import load_model
    from rqvae_ids.core.embedding_table import read_embeddings

    out = pipeline_run["out"]
    run = runs.latest_run(out)
    assert run is not None and runs.read_status(run)["status"] == "succeeded"
    assert os.readlink(out / "latest") == f"runs/{run.name}"
    assert f"run folder: {run}" in pipeline_run["stdout"]
    assert "duplicate_rate before resolution" in pipeline_run["stdout"]
    # One line as each stage starts and ends, in order, on stderr (no bars: not a terminal).
    import re

    lines = [l for l in pipeline_run["stderr"].splitlines() if l.startswith("[run] ")]
    # with interactions the default kind (auto) is rqkmeans-cf on their CF embeddings
    stages = ["ingest", "embed", "cf embeddings", "train rqkmeans-cf", "assign", "evaluate"]
    assert [l.split(":")[0][6:] for l in lines] == [s for s in stages for _ in (0, 1)], lines
    assert all(lines[i].endswith(": started") or ": started (" in lines[i] for i in range(0, len(lines), 2))
    assert lines[1].startswith("[run] ingest: 300 items, ")
    assert re.fullmatch(r"\[run\] cf embeddings: \d+ of 300 items have one, [0-9.]+ s", lines[5]), lines[5]
    assert re.fullmatch(r"\[run\] train rqkmeans-cf: started \(300 items, CF embeddings for \d+\)", lines[6]), lines[6]
    assert re.fullmatch(r"\[run\] train rqkmeans-cf: k-means, [0-9.]+ s, codes used \d+/\d+/\d+ %", lines[7]), lines[7]
    assert re.fullmatch(r"\[run\] evaluate: [0-9.]+ s, neighbour_recall@10 0\.\d+, next_recall@10 0\.\d+", lines[11])
    assert "collaborative" in pipeline_run["stdout"]  # the summary's model row

    ids = [r["item_id"] for r in pipeline_run["rows"]]
    items = pq.read_table(run / "items.parquet")
    assert items.column("item_id").to_pylist() == ids
    emb = read_embeddings(run / "embeddings.parquet")
    assert list(emb.item_ids) == ids and emb.vectors.shape == (300, 384) and np.isfinite(emb.vectors).all()
    model = load_model(run / "model")
    assert (model.levels, model.codebook_size) == (3, 16)
    assert model.kind == "rqkmeans-cf" and model.reads_cf and (run / "model" / "cf_embeddings.parquet").is_file()
    assert json.loads((run / "config.json").read_text())["config"]["train"]["model"]["kind"] == "auto"  # as asked
    cf = json.loads((run / "model" / "config.json").read_text())["cf"]
    assert cf["used"] is True and len(cf["interactions_sha256"]) == 64
    sids = read_semantic_ids(run / "semantic_ids.parquet")
    assert sorted(sids.item_ids.tolist()) == sorted(ids)
    assert len(set(sids.sids.tolist())) == 300  # collision-free
    for name in ("tokens.txt", "collisions.parquet", "collision_report.json", "assign_report.json",
                 "embed_report.json", "run_report.json", "evaluation/report.md"):
        assert (run / name).is_file(), name
    comparison = pq.read_table(run / "evaluation" / "comparison.parquet").to_pandas()
    assert {"model", "metric", "value"} <= set(comparison.columns)
    assert "next_recall@10" in set(comparison["metric"]) and np.isfinite(comparison["value"]).all()
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["train"]["epochs"] == 20 and saved["train"]["model"]["codebook_size"] == 16
    assert saved["embed"]["cache"] == str(out / "cache" / "embedding_cache.parquet")
    assert (out / "cache" / "embedding_cache.parquet").is_file()


def test_artifacts_published(pipeline_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["semantic-ids-summary", "semantic-ids-metrics"])))
    kinds = {a.key: a.type for a in found}
    assert kinds.get("semantic-ids-summary") == "markdown" and kinds.get("semantic-ids-metrics") == "table"


def test_failing_stage_leaves_latest_and_marks_the_run(pipeline_run, monkeypatch, prefect_harness):
    from flows.pipeline import semantic_ids_pipeline
    from rqvae_ids.pipeline import stages

    out = pipeline_run["out"]
    before = runs.latest_run(out)

    def broken_assign(*args, **kwargs):
        raise UserError("assign exploded on purpose")

    monkeypatch.setattr(stages, "assign", broken_assign)
    with pytest.raises(UserError, match="exploded on purpose"):
        semantic_ids_pipeline(str(pipeline_run["catalog"]), str(out), config=str(pipeline_run["config"]),
                              model=str(before / "model"))
    assert runs.latest_run(out) == before
    failed = runs.list_runs(out)[-1]
    assert failed["status"] == "failed" and "exploded on purpose" in failed["error"]
    assert failed["completed_stages"] == ["ingest", "embed", "model"]
    assert (out / "runs" / failed["run_id"] / "FAILED").is_file()


def test_concurrent_run_is_refused_at_once(pipeline_run, prefect_harness):
    from flows.pipeline import semantic_ids_pipeline

    out = pipeline_run["out"]
    n_runs = len(runs.list_runs(out))
    with runs.output_lock(out, owner="other run"):
        # "at once": the error of a run that did not wait (a waiting one says it gave up), no clock
        with pytest.raises(runs.OutputLockedError, match="in use by another run .*run with --wait"):
            semantic_ids_pipeline(str(pipeline_run["catalog"]), str(out), config=str(pipeline_run["config"]))
    assert len(runs.list_runs(out)) == n_runs  # nothing written


def test_refresh_keeps_unchanged_ids_and_retrain_maps_them(pipeline_run, flows_tmp, prefect_harness):
    import catalog_data

    from flows.refresh import refresh_ids
    from flows.retrain import retrain

    out = pipeline_run["out"]
    before = runs.latest_run(out)
    old = _sids(before)
    rows = [dict(r) for r in pipeline_run["rows"]]
    edited = {rows[i]["item_id"] for i in (3, 50, 120, 200, 299)}
    for r in rows:
        if r["item_id"] in edited:
            r["title"] = "Refurbished " + r["title"]
    new_rows = [dict(r, item_id=f"NEW{i:03d}") for i, r in enumerate(catalog_data.items(20, seed=9))]
    catalog = catalog_data.write_items(flows_tmp / "shop2" / "items.csv", rows + new_rows)

    run_dir = Path(refresh_ids(str(catalog), str(out)))
    assert runs.latest_run(out) == run_dir
    report = json.loads((run_dir / "run_report.json").read_text())["stages"]
    assert report["embed"]["encoded"] == 25  # only the 5 edited and 20 new texts
    new = _sids(run_dir)
    unchanged = [i for i in old if i not in edited]
    assert all(new[i] == old[i] for i in unchanged)
    assert len(new) == 320 and len(set(new.values())) == 320

    assert "train" not in report and report["model"]["source"] == str(before / "model")  # not retrained

    # rqkmeans-cf: a collaborative retrain in seconds; the flow is the same for every kind
    fast = {"train.model.kind": "rqkmeans-cf", "train.epochs": 0}
    retrained = Path(retrain(str(catalog), str(out), str(pipeline_run["interactions"]), overrides=fast))
    assert json.loads((retrained / "model" / "config.json").read_text())["cf"]["used"] is True
    assign = json.loads((retrained / "run_report.json").read_text())["stages"]["assign"]
    assert assign["cf"]["items_with_cf"] > 0 and assign["cf"]["items_text_only"] >= 20  # the new items
    mapping = pq.read_table(retrained / "id_mapping.parquet").to_pandas()
    assert len(mapping) == 320 and set(mapping["item_id"]) == set(new)
    assert runs.latest_run(out) == retrained
    assert runs.read_status(retrained)["kind"] == "retrain"


def test_compare_baselines_is_the_cli_compare(small_shop, flows_tmp, prefect_harness):
    """The flow and the CLI `compare` take one path (run_comparison): same options, same comparison.parquet."""
    from flows.compare import compare_baselines
    from rqvae_ids.cli import main

    cli_out, flow_out = flows_tmp / "compare-cli", flows_tmp / "compare-flow"
    gen = {"n_layer": 1, "d_model": 32, "n_head": 2, "max_epochs": 1}
    flags = [a for key, value in gen.items() for a in ("--set", f"tiger.{key}={value}")]
    assert main(["compare", "--catalog", str(small_shop["catalog"]), "--out", str(cli_out),
                 "--interactions", str(small_shop["interactions"]), "--models", "rqkmeans,random",
                 "--codebook-size", "16", "--neighbour-queries", "100", "--tune-users", "60",
                 "--with-tiger", "--no-sasrec", "--with-parallel", "--parallel-epochs", "1",
                 "--cold-items", "0.2", *flags]) == 0
    embeddings = cli_out / "embeddings" / "embeddings.parquet"
    report = compare_baselines(str(small_shop["catalog"]), str(flow_out), str(small_shop["interactions"]),
                               models=["rqkmeans", "random"], codebook_size=16, config=str(small_shop["config"]),
                               neighbour_queries=100, tune_users=60, embeddings=str(embeddings),
                               with_tiger=True, tiger=gen, with_parallel=True,
                               parallel={"max_epochs": 1}, cold_items=0.2, with_sasrec=False)
    assert os.path.isfile(report)
    cli = pq.read_table(cli_out / "comparison.parquet").to_pandas()
    flow = pq.read_table(flow_out / "comparison.parquet").to_pandas()
    assert {"rqkmeans", "random", "popularity", "tiger/rqkmeans", "parallel/random"} <= set(flow["model"])
    assert "cold_recall@10" in set(flow["metric"])
    timing = [c for c in cli.columns if "second" in c or c.endswith("_s") or "per_s" in c]
    pd.testing.assert_frame_equal(cli.drop(columns=timing), flow.drop(columns=timing))