"""A line on `rqvae-ids serve`'s console for every flow run it executes.

Prefect calls these state hooks in the flow-run process, whose output `serve` streams
to its own; they print only under `rqvae-ids serve` (it sets SERVE_LINES), not when a
flow is called from Python or a test:

    [serve] refresh-ids run 'crimson-fox': started (items.csv -> out/shop)
    [serve] refresh-ids run 'crimson-fox': Completed in 42 s, run folder out/shop/runs/...; IDs kept 4990, ...
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rqvae_ids.pipeline import runs, summary

SERVE_LINES = "RQVAE_IDS_SERVE_LINES"


def _say(message: str) -> None:
    if os.environ.get(SERVE_LINES):
        print(f"[serve] {message}", flush=True)


def on_running(flow, flow_run, state) -> None:
    p = flow_run.parameters or {}
    _say(f"{flow.name} run '{flow_run.name}': started ({Path(str(p.get('catalog'))).name} -> {p.get('out')})")


def on_end(flow, flow_run, state) -> None:
    """End state, seconds, the run folder and (when it succeeded) the IDs kept or changed."""
    out = (flow_run.parameters or {}).get("out")
    run_dir = None
    try:
        result = state.result(raise_on_failure=False)
        run_dir = Path(result) if isinstance(result, str) else None
    except Exception:  # noqa: BLE001 - a crashed run has no result: fall back to the newest run folder
        pass
    if run_dir is None and out and (Path(out) / runs.RUNS).is_dir():
        folders = sorted(d for d in (Path(out) / runs.RUNS).iterdir() if d.is_dir())
        run_dir = folders[-1] if folders else None
    took = ""
    if flow_run.start_time is not None and state.timestamp is not None:
        took = f" in {(state.timestamp - flow_run.start_time).total_seconds():.0f} s"
    line = f"{flow.name} run '{flow_run.name}': {state.name}{took}, run folder {run_dir}"
    if state.is_completed() and run_dir is not None:
        ids = summary.ids_kept_changed(summary.read_run_report(run_dir).get("stages", {}))
        line += f"; {ids}" if ids else ""
    elif state.message:
        line += f"; {state.message.splitlines()[0][:200]}; latest unchanged"
    _say(line)


HOOKS = {"on_running": [on_running], "on_completion": [on_end], "on_failure": [on_end], "on_crashed": [on_end],
         "on_cancellation": [on_end]}


# --------------------------------------------------------------------------- stopping


STOP_GRACE_S = 4.0  # Prefect's own shutdown (cancel runs, pause schedules) gets this long...
KILL_GRACE_S = 2.0  # ...then flow-run processes get SIGTERM, and SIGKILL after this long: < 10 s in all


class ServeStopped(Exception):
    """Written into the FAILED file of a run that `serve` stopped before it finished."""


class BoundedStop:
    """`rqvae-ids serve` stops within STOP_GRACE_S + KILL_GRACE_S (+ ~1 s) of SIGTERM, server or not.

    Prefect's runner handles SIGTERM by cancelling its flow runs and pausing the schedules
    through the API; once the server has gone away those calls retry for minutes. `arm`
    (chained in front of Prefect's handler) lets that graceful path try for STOP_GRACE_S and
    starts a watchdog that then ends the flow-run processes itself, marks their run folders
    failed (the lock dies with them, `latest` was never moved) and leaves with os._exit.
    Either way `finish` prints one line saying what happened to a run in progress.
    """

    def __init__(self, out: str | os.PathLike | None, grace_s: float = STOP_GRACE_S,
                 kill_grace_s: float = KILL_GRACE_S):
        import threading

        self.out, self.grace_s, self.kill_grace_s = out, grace_s, kill_grace_s
        self.why: str | None = None
        self.started_at = 0.0
        self.in_progress: list[Path] = []
        self.line: str | None = None
        self._lock = threading.Lock()

    def arm(self, why: str) -> None:
        """Note the runs in progress and start the watchdog (once; a second signal changes nothing)."""
        import threading
        import time

        with self._lock:
            if self.why is not None:
                return
            self.why, self.started_at = why, time.monotonic()
            self.in_progress = self._runs_in_progress()
        threading.Thread(target=self._watchdog, name="serve-stop-watchdog", daemon=True).start()

    def chain(self, previous):
        """A SIGTERM handler that arms the watchdog, then calls `previous` (Prefect's graceful stop)."""
        import signal

        def handler(signum, frame):
            self.arm(signal.Signals(signum).name)
            if callable(previous):
                previous(signum, frame)
            else:  # no Python handler before it (serve not started yet): leave now
                raise SystemExit(0)

        handler.rqvae_ids_chain = True
        return handler

    async def keep_chained(self, period_s: float = 0.5) -> None:
        """Keep our handler in front of whichever SIGTERM handler Prefect installs (it sets its own
        when its runner starts), so the deadline holds however Prefect orders its start-up."""
        import asyncio
        import signal

        while True:
            current = signal.getsignal(signal.SIGTERM)
            if not getattr(current, "rqvae_ids_chain", False):
                signal.signal(signal.SIGTERM, self.chain(current))
            await asyncio.sleep(period_s)

    def _watchdog(self) -> None:
        import sys
        import time

        time.sleep(self.grace_s)
        self.finish()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # Prefect's shutdown is still waiting on the API: nothing left worth waiting for

    def _runs_in_progress(self) -> list[Path]:
        import psutil

        if not self.out:
            return []
        pids = {p.pid for p in psutil.Process().children(recursive=True)}
        return runs.runs_in_progress(self.out, pids)

    def finish(self) -> str:
        """End what is left of the flow-run processes, mark their runs failed, print and return the line."""
        import time

        with self._lock:
            if self.line is not None:
                return self.line
            if self.why is None:  # Ctrl-C (Prefect's KeyboardInterrupt path) or serve returned on its own
                self.why, self.started_at = "interrupt", time.monotonic()
                self.in_progress = self._runs_in_progress()
            _end_children(self.kill_grace_s)
            for run_dir in self.in_progress:
                if runs.read_status(run_dir).get("status") == "running":  # killed before it could say so
                    runs.mark_failed(run_dir, ServeStopped(f"serve stopped on {self.why} before the run finished"))
            self.line = stop_line(self.out, self.why, time.monotonic() - self.started_at, self.in_progress)
            print(f"[serve] {self.line}", flush=True)
            return self.line


def _end_children(grace_s: float) -> None:
    """SIGTERM every process below this one (flow runs and what they started), SIGKILL what is left."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=1.0)


def stop_line(out, why: str, seconds: float, in_progress: list[Path]) -> str:
    """What `serve` did on stopping, in one line: the runs it interrupted and where `latest` is."""
    latest = runs.latest_run(out) if out else None
    where = f"{str(out).rstrip('/')}/latest -> runs/{latest.name}" if latest else "no latest run"
    if not in_progress:
        return f"stopped on {why} in {seconds:.1f} s: no run in progress; {where}"
    done = []
    for run_dir in in_progress:
        status = runs.read_status(run_dir)
        if status.get("status") == "succeeded":
            done.append(f"{status.get('kind')} run {run_dir.name} had just finished")
        else:
            done.append(f"{status.get('kind')} run {run_dir.name} stopped and marked failed, left for the next schedule")
    untouched = " (unchanged)" if all(runs.read_status(d).get("status") != "succeeded" for d in in_progress) else ""
    return f"stopped on {why} in {seconds:.1f} s: {'; '.join(done)}; {where}{untouched}"
