"""prefect.yaml's deployments are valid without a server or a cluster, and a refresh configured
for Dask shards its embedding (on a local 2-worker cluster here: the same code path as an address).

For each deployment: its entrypoint is a flow, its parameters pass the flow's own validation,
its config overrides pass the pipeline config's validation, its cron schedules parse, and
`to_deployment` builds it (no server needed). The Dask deployment's runner points at the
cluster address in its overrides; nothing connects to it.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from rqvae_ids.pipeline import runs

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


def _deployments() -> list[dict]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]


def _flow(entrypoint: str):
    path, name = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


@pytest.mark.parametrize("dep", _deployments(), ids=lambda d: d["name"])
def test_every_prefect_yaml_deployment_validates_without_a_server(dep):
    from prefect.client.schemas.schedules import CronSchedule

    from rqvae_ids.pipeline.config import load_pipeline_config

    flow = _flow(dep["entrypoint"])
    params = dep["parameters"]
    flow.validate_parameters(params)  # types and names, as Prefect checks them when a run starts
    config = params.get("config")
    load_pipeline_config(REPO / config if config else None, params.get("overrides"))
    for schedule in dep.get("schedules", []):
        CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
    flow.to_deployment(name=dep["name"], parameters=params,
                       **({"cron": dep["schedules"][0]["cron"]} if dep.get("schedules") else {}))


def test_the_dask_deployment_points_its_runner_at_the_cluster():
    from flows.embed_sharded import dask_runner
    from rqvae_ids.pipeline.config import load_pipeline_config

    (dep,) = [d for d in _deployments() if d["name"] == "refresh-daily-dask"]
    cfg = load_pipeline_config(None, dep["parameters"]["overrides"])
    assert cfg.dask.enabled and cfg.dask.address == "tcp://dask-scheduler:8786"
    runner = dask_runner(cfg.dask)
    assert runner.address == "tcp://dask-scheduler:8786"  # built without connecting


def test_a_refresh_configured_for_dask_shards_its_embedding(pipeline_run, tmp_path, prefect_harness):
    import catalog_data

    from flows.refresh import refresh_ids

    out = tmp_path / "out"
    shutil.copytree(pipeline_run["out"], out, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    rows = catalog_data.items(300, seed=1)
    for row in rows[:7]:
        row["title"] += " (sharded edition)"
    catalog = catalog_data.write_items(tmp_path / "items.csv", rows)
    run_dir = Path(refresh_ids(str(catalog), str(out), overrides={
        "dask.enabled": True, "dask.n_workers": 2, "dask.shard_size": 4}))
    assert runs.latest_run(out) == run_dir
    embed = json.loads((run_dir / "run_report.json").read_text())["stages"]["embed"]
    assert embed["encoded"] == 7 and embed["shards"] == 2  # 7 edited texts in shards of 4
