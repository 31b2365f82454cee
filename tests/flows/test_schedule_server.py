"""Schedules fire: a real `prefect server start` + `rqvae-ids serve` run a scheduled refresh.

The ephemeral API never fires schedules, so this test starts a Prefect server
on a free loopback port with its own PREFECT_HOME, serves the deployments with
a 5-second refresh interval, waits (bounded) until a scheduled refresh run
completed and moved `latest`, and always kills both process groups.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rqvae_ids.pipeline import runs

pytestmark = pytest.mark.timeout(420)

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, payload: dict | None = None):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL what is left after 15 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def test_served_refresh_runs_on_its_schedule(pipeline_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pipeline_run["out"], out, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    first = runs.latest_run(out)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    server_log, serve_log = tmp_path / "server.log", tmp_path / "serve.log"
    procs: list[subprocess.Popen] = []
    try:
        with open(server_log, "w") as log:
            procs.append(subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
            ))
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError, ValueError):
                if _api(f"{api}/health") is True:
                    break
            assert procs[0].poll() is None, f"prefect server exited:\n{_tail(server_log)}"
            assert time.monotonic() < deadline, f"prefect server not healthy in 120 s:\n{_tail(server_log)}"
            time.sleep(1)

        with open(serve_log, "w") as log:
            procs.append(subprocess.Popen(
                [str(BIN / "rqvae-ids"), "serve", "--catalog", str(pipeline_run["catalog"]), "--out", str(out),
                 "--refresh-every", "5", "--retrain-cron", ""],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
            ))
        deadline = time.monotonic() + 240
        completed = None
        while completed is None:
            flow_runs = _api(f"{api}/flow_runs/filter", {"sort": "EXPECTED_START_TIME_ASC", "limit": 50})
            for fr in flow_runs:
                state = (fr.get("state") or {}).get("type")
                assert state not in ("FAILED", "CRASHED"), f"scheduled run {state}:\n{_tail(serve_log)}"
                if state == "COMPLETED":
                    completed = fr
            assert procs[1].poll() is None, f"rqvae-ids serve exited:\n{_tail(serve_log)}"
            assert time.monotonic() < deadline, f"no scheduled run completed in 240 s:\n{_tail(serve_log)}"
            time.sleep(2)
        deployment = _api(f"{api}/deployments/{completed['deployment_id']}")
        assert deployment["name"] == "refresh-daily"
        assert completed["auto_scheduled"] is True  # fired by the schedule, not triggered by hand
        latest = runs.latest_run(out)
        assert latest != first and runs.read_status(latest)["kind"] == "refresh"
        assert (latest / "semantic_ids.parquet").is_file()
        # serve printed a line as the run started and one as it ended: state, run folder, IDs kept.
        name = completed["name"]
        deadline = time.monotonic() + 30
        while f"[serve] refresh-ids run '{name}': Completed" not in _tail(serve_log, 100_000):
            assert time.monotonic() < deadline, _tail(serve_log)
            time.sleep(1)
        log = _tail(serve_log, 100_000)
        assert f"[serve] refresh-ids run '{name}': started (items.csv -> {out})" in log, log
        end = next(l for l in log.splitlines() if l.startswith(f"[serve] refresh-ids run '{name}': Completed"))
        # the counts depend on what earlier tests of the session did to the shared catalog file
        assert f"run folder {out}/runs/" in end and re.search(r"; IDs kept \d+, new \d+, edited \d+, removed \d+$", end), end
    finally:
        for proc in reversed(procs):
            _stop(proc)
