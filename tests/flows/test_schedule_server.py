"""Schedules fire: a real `prefect server start` + `rqvae-ids serve` run a scheduled refresh.

The ephemeral API never fires schedules, so this test starts a Prefect server
on a free loopback port with its own PREFECT_HOME, serves the deployments with
a 5-second refresh interval, waits (bounded) until a scheduled refresh run
completed and moved `latest`, and always kills both process groups.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest
from prefect_server import api, start_serve, start_server, stop, tail

from rqvae_ids.pipeline import runs

pytestmark = pytest.mark.timeout(420)


def test_served_refresh_runs_on_its_schedule(pipeline_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pipeline_run["out"], out, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    first = runs.latest_run(out)
    serve_log = tmp_path / "serve.log"
    procs = []
    try:
        _, url, env = start_server(tmp_path, procs)
        start_serve(["--catalog", str(pipeline_run["catalog"]), "--out", str(out), "--refresh-every", "5",
                     "--retrain-cron", ""], env, serve_log, tmp_path, procs)
        deadline = time.monotonic() + 240
        completed = None
        while completed is None:
            flow_runs = api(f"{url}/flow_runs/filter", {"sort": "EXPECTED_START_TIME_ASC", "limit": 50})
            for fr in flow_runs:
                state = (fr.get("state") or {}).get("type")
                assert state not in ("FAILED", "CRASHED"), f"scheduled run {state}:\n{tail(serve_log)}"
                if state == "COMPLETED":
                    completed = fr
            assert procs[1].poll() is None, f"rqvae-ids serve exited:\n{tail(serve_log)}"
            assert time.monotonic() < deadline, f"no scheduled run completed in 240 s:\n{tail(serve_log)}"
            time.sleep(2)
        deployment = api(f"{url}/deployments/{completed['deployment_id']}")
        assert deployment["name"] == "refresh-daily"
        assert completed["auto_scheduled"] is True  # fired by the schedule, not triggered by hand
        latest = runs.latest_run(out)
        assert latest != first and runs.read_status(latest)["kind"] == "refresh"
        assert (latest / "semantic_ids.parquet").is_file()
        # serve printed a line as the run started and one as it ended: state, run folder, IDs kept.
        name = completed["name"]
        deadline = time.monotonic() + 30
        while f"[serve] refresh-ids run '{name}': Completed" not in tail(serve_log, 100_000):
            assert time.monotonic() < deadline, tail(serve_log)
            time.sleep(1)
        log = tail(serve_log, 100_000)
        assert f"[serve] refresh-ids run '{name}': started (items.csv -> {out})" in log, log
        end = next(l for l in log.splitlines() if l.startswith(f"[serve] refresh-ids run '{name}': Completed"))
        # the counts depend on what earlier tests of the session did to the shared catalog file
        assert f"run folder {out}/runs/" in end and re.search(r"; IDs kept \d+, new \d+, edited \d+, removed \d+$", end), end
    finally:
        for proc in reversed(procs):
            stop(proc)
