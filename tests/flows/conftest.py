"""Prefect test harness for the flow tests.

Environment first (Prefect reads its settings when it is imported): an isolated
PREFECT_HOME for this pytest session, analytics off, quiet logs, a generous
ephemeral-server start-up timeout, and the server services a flow test never
needs (task-run recorder, event persister) off: measured, they double the time
of a handful of flow tests (../shared/PREFECT_NOTES.md).

`prefect_harness` starts one ephemeral API server (temporary SQLite database)
for the whole session; tests that run flows request it, the library-only tests
do not pay for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="rqvae-ids-prefect-home-")
os.environ["PREFECT_HOME"] = _HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# No PREFECT_API_URL from the developer's profile: the harness sets its own.
os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API server (temporary database) for the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def flows_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("flows")


TINY_CONFIG = """\
# tiny, fast settings for the flow tests
embed: {device: cpu, batch_size: 64}
train:
  epochs: 20
  batch_size: 64
  device: cpu
  seed: 0
  model: {levels: 3, codebook_size: 16, latent_dim: 16, hidden: [64, 32]}
evaluate: {neighbour_queries: 100, seed: 0}
"""


@pytest.fixture(scope="session")
def small_shop(flows_tmp):
    """A 300-item catalog, its interactions and a tiny config file."""
    import catalog_data

    rows = catalog_data.items(300, seed=1)
    data = flows_tmp / "shop"
    catalog = catalog_data.write_items(data / "items.csv", rows)
    interactions = catalog_data.write_interactions(data / "interactions.csv", rows, users=120)
    config = data / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    return {"rows": rows, "catalog": catalog, "interactions": interactions, "config": config}


@pytest.fixture(scope="session")
def pipeline_run(small_shop, flows_tmp, prefect_harness):
    """One `rqvae-ids run` through the flow on the small shop (shared by several tests)."""
    import contextlib
    import io
    import time

    from rqvae_ids.cli import main

    out = flows_tmp / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", "--catalog", str(small_shop["catalog"]), "--interactions", str(small_shop["interactions"]),
                     "--out", str(out), "--config", str(small_shop["config"])])  # fmt: skip
    assert code == 0, stdout.getvalue() + stderr.getvalue()
    return {"out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
            "seconds": time.perf_counter() - start, **small_shop}
