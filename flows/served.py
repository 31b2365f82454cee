"""A line on `rqvae-ids serve`'s console for every flow run it executes.

Prefect calls these state hooks in the flow-run process, whose output `serve` streams
to its own; they print only under `rqvae-ids serve` (it sets SERVE_LINES), not when a
flow is called from Python or a test:

    [serve] refresh-ids run 'crimson-fox': started (items.csv -> out/shop)
    [serve] refresh-ids run 'crimson-fox': Completed in 42 s, run folder out/shop/runs/...; IDs kept 4990, ...
"""

from __future__ import annotations

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
