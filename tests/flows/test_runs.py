"""Run folders, `latest`, and the output-folder lock (library only, no Prefect)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rqvae_ids.core.errors import UserError
from rqvae_ids.pipeline import runs


def test_run_folder_lifecycle(tmp_path):
    out = tmp_path / "out"
    assert runs.latest_run(out) is None
    first = runs.start_run(out, "pipeline", {"seed": 1})
    assert runs.read_status(first)["status"] == "running"
    assert (first / "config.json").is_file()
    with pytest.raises(UserError, match="did not succeed"):
        runs.publish_latest(out, first)

    runs.mark_succeeded(first, {"ok": True})
    link = runs.publish_latest(out, first)
    assert link.is_symlink() and os.readlink(link) == f"runs/{first.name}"
    assert runs.latest_run(out) == out / "runs" / first.name

    second = runs.start_run(out, "pipeline")
    runs.mark_failed(second, RuntimeError("boom"), completed=["ingest"])
    status = runs.read_status(second)
    assert status["status"] == "failed" and status["completed_stages"] == ["ingest"]
    assert "boom" in (second / "FAILED").read_text()
    assert runs.latest_run(out).name == first.name  # untouched
    assert [r["status"] for r in runs.list_runs(out)] == ["succeeded", "failed"]
    assert not list(out.glob(".latest.*"))  # no temp pointer left behind


def test_lock_refuses_second_holder_with_clear_message(tmp_path):
    out = tmp_path / "out"
    with runs.output_lock(out, owner="run A"):
        with pytest.raises(runs.OutputLockedError, match=r"in use by another run \(pid \d+ run A"):
            with runs.output_lock(out):
                pass
        with pytest.raises(runs.OutputLockedError, match="gave up waiting"):
            with runs.output_lock(out, wait=True, timeout_s=0.3):
                pass
    with runs.output_lock(out):  # released
        pass


def test_lock_held_by_another_process(tmp_path):
    out = tmp_path / "out"
    code = textwrap.dedent(
        f"""
        import sys, time
        from rqvae_ids.pipeline.runs import output_lock
        with output_lock({str(out)!r}, owner="other"):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(runs.OutputLockedError, match=f"pid {proc.pid} other"):
            with runs.output_lock(out):
                pass
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
        with runs.output_lock(out, wait=True, timeout_s=10):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_open_run_publishes_only_on_success(tmp_path):
    out = tmp_path / "out"
    with runs.open_run(out, "pipeline", {"a": 1}) as run:
        run.record("ingest", {"items": 3})
    assert runs.latest_run(out) == run.dir
    assert runs.read_status(run.dir)["status"] == "succeeded"
    with pytest.raises(ValueError):
        with runs.open_run(out, "pipeline") as failed:
            failed.record("ingest", {})
            raise ValueError("stage exploded")
    assert runs.latest_run(out) == run.dir
    status = runs.read_status(failed.dir)
    assert status["status"] == "failed" and status["completed_stages"] == ["ingest"]
    assert "stage exploded" in status["error"]
    with runs.output_lock(out):  # the lock was released after the failure
        pass
