"""`rqvae-ids refresh` (no Prefect, no server) and the served `refresh-ids` flow are one function.

On a 400-item slice of the demo catalog (tiny model): a first pipeline run, then a catalog
with 20 items added, 10 edited and 5 removed. The CLI refresh encodes only the 30 new or
edited texts, trains nothing, keeps every unchanged item's ID, gives new and edited items
unique IDs and moves `latest`; the flow, run from a copy of the same folder, writes the same IDs.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rqvae_ids.pipeline import runs

pytestmark = pytest.mark.timeout(300)

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
BASE, ADDED, EDITED, REMOVED = 400, 20, 10, 5


@pytest.fixture(scope="module")
def refreshed_catalog(flows_tmp, small_shop, prefect_harness):
    """(first run's output folder, the changed catalog, its interactions, changed item ids)."""
    from flows.pipeline import semantic_ids_pipeline

    items = pd.read_csv(DEMO / "items.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(DEMO / "interactions.csv", dtype={"user_id": str, "item_id": str})
    data = flows_tmp / "refresh_cli"
    data.mkdir()
    items.iloc[:BASE].to_csv(data / "items.csv", index=False)
    events[events["item_id"].isin(items["item_id"].iloc[:BASE])].to_csv(data / "interactions.csv", index=False)
    changed = items.iloc[REMOVED:BASE + ADDED].copy()
    edited = changed["item_id"].iloc[:EDITED].tolist()
    changed.loc[changed["item_id"].isin(edited), "title"] += " (new edition)"
    changed.to_csv(data / "items_changed.csv", index=False)
    out = flows_tmp / "refresh_cli_out"
    # K=32: at K=16 residual k-means (the default rqkmeans-cf) puts up to ~16-19 of this 400-item slice's
    # items on one code tuple (warm ones whose few interactions give near-equal CF vectors), at or over
    # what a K=16 suffix can tell apart
    semantic_ids_pipeline(str(data / "items.csv"), str(out), str(data / "interactions.csv"),
                          config=str(small_shop["config"]), overrides={"train.model.codebook_size": 32})
    return {"out": out, "catalog": data / "items_changed.csv", "interactions": data / "interactions.csv",
            "edited": set(edited), "added": set(items["item_id"].iloc[BASE:BASE + ADDED]),
            "removed": set(items["item_id"].iloc[:REMOVED])}


def _sids(run_dir: Path) -> dict[str, str]:
    from rqvae_ids.ids import read_semantic_ids

    ids = read_semantic_ids(run_dir / "semantic_ids.parquet")
    return dict(zip(ids.item_ids.tolist(), ids.sids.tolist()))


def _cli(*argv: str) -> tuple[int, str, str]:
    from rqvae_ids.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(argv))
    return code, stdout.getvalue(), stderr.getvalue()


def test_cli_refresh_embeds_only_changed_texts_and_keeps_every_unchanged_id(refreshed_catalog, tmp_path):
    from rqvae_ids.core.io import sha256_file

    out = tmp_path / "out"
    shutil.copytree(refreshed_catalog["out"], out, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    first = runs.latest_run(out)
    code, stdout, stderr = _cli("refresh", "--catalog", str(refreshed_catalog["catalog"]), "--out", str(out),
                                "--interactions", str(refreshed_catalog["interactions"]))
    assert code == 0, stdout + stderr
    second = runs.latest_run(out)
    assert second != first and runs.read_status(second)["kind"] == "refresh"
    assert f"run folder: {second}" in stdout and "[refresh] assign:" in stderr

    stages = json.loads((second / "run_report.json").read_text())["stages"]
    assert "train" not in stages and "cf" not in stages  # the frozen model, no training
    assert sha256_file(second / "model" / "model.safetensors") == sha256_file(first / "model" / "model.safetensors")
    assert stages["embed"]["encoded"] == ADDED + EDITED  # only new or edited texts went through the model
    assert stages["embed"]["cached"] == BASE - REMOVED - EDITED
    assert stages["assign"]["stability"]["kept"] == BASE - REMOVED - EDITED
    assert "neighbour_recall@10" in stages["evaluate"]["metrics"] and "next_recall@10" in stages["evaluate"]["metrics"]
    samples = stages["evaluate"]["samples"]  # the evaluation is bounded and says on what
    assert samples["items"] == BASE - REMOVED + ADDED and 0 < samples["test_users"] <= samples["test_users_total"]
    assert samples["test_users"] <= 2000 and samples["tune_users"] <= 500

    old, new = _sids(first), _sids(second)
    unchanged = set(old) - refreshed_catalog["edited"] - refreshed_catalog["removed"]
    assert all(new[i] == old[i] for i in unchanged)  # 100 % of unchanged items keep their ID
    assert set(new) == unchanged | refreshed_catalog["edited"] | refreshed_catalog["added"]
    assert len(set(new.values())) == len(new)  # new and edited items get unique IDs


def test_the_served_flow_and_the_cli_write_the_same_ids(refreshed_catalog, tmp_path, prefect_harness):
    from flows.refresh import refresh_ids

    by_cli, by_flow = tmp_path / "cli", tmp_path / "flow"
    for out in (by_cli, by_flow):
        shutil.copytree(refreshed_catalog["out"], out, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    assert _cli("refresh", "--catalog", str(refreshed_catalog["catalog"]), "--out", str(by_cli))[0] == 0
    flow_run = Path(refresh_ids(str(refreshed_catalog["catalog"]), str(by_flow)))
    assert runs.latest_run(by_flow) == flow_run
    assert _sids(runs.latest_run(by_cli)) == _sids(flow_run)
    cli_stages = json.loads((runs.latest_run(by_cli) / "run_report.json").read_text())["stages"]
    flow_stages = json.loads((flow_run / "run_report.json").read_text())["stages"]
    assert list(cli_stages) == list(flow_stages) == ["ingest", "embed", "model", "assign", "evaluate"]


def test_cli_refresh_without_a_successful_run_is_one_line_and_writes_nothing(tmp_path):
    catalog = tmp_path / "items.csv"
    catalog.write_text("item_id,title\na,red kite\nb,blue kite\n")
    out = tmp_path / "empty"
    code, stdout, stderr = _cli("refresh", "--catalog", str(catalog), "--out", str(out))
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and "has no successful run yet" in stderr, stderr
    assert not out.exists()
