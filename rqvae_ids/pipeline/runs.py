"""Run folders, the `latest` pointer and the per-output-folder lock.

Layout of an output folder `OUT/`::

    OUT/.lock                 fcntl lock file (holds the owner's pid and run id, for messages)
    OUT/cache/                state shared by runs (the embedding cache)
    OUT/runs/<run-id>/        one folder per run; `status.json` says running/succeeded/failed
    OUT/runs/<run-id>/FAILED  present only when the run failed (the error message)
    OUT/latest -> runs/<id>   relative symlink to the last *successful* run

`latest` is repointed atomically: a temporary symlink is created beside it and
renamed over it with `os.replace`, so a reader sees the old run or the new one,
never a missing or half-written pointer. Where symlinks are not available
(some network or Windows file systems) `latest` is a one-line text file holding
`runs/<id>` instead, written with the same tmp + rename; `latest_run` reads both.

The lock is `fcntl.flock` on `OUT/.lock`: it is released by the kernel when the
holder exits, even on a crash, so a stale lock never blocks the next run.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import secrets
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import UserError
from ..core.io import provenance, write_json_atomic, write_text_atomic

RUNS = "runs"
LATEST = "latest"
LOCK = ".lock"
STATUS = "status.json"
FAILED = "FAILED"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id(kind: str = "run") -> str:
    """Sortable, unique: `20250101-030000-123-pipeline-1a2b3c` (UTC time to ms, kind, random)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return f"{stamp}-{kind}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- lock


class OutputLockedError(UserError):
    """Another run holds the output folder's lock."""


@contextlib.contextmanager
def output_lock(
    out: str | os.PathLike, *, wait: bool = False, timeout_s: float | None = None, owner: str = ""
) -> Iterator[Path]:
    """Hold the exclusive lock of output folder `out` for the duration of the block.

    wait=False: a second run fails at once with `OutputLockedError` naming the holder.
    wait=True: block until the holder finishes (at most `timeout_s` seconds, if given).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, wait=wait, timeout_s=timeout_s)
        info = {"pid": os.getpid(), "owner": owner, "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, *, wait: bool, timeout_s: float | None) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if not wait or (deadline is not None and time.monotonic() >= deadline):
            holder = _describe_holder(path)
            hint = "wait for it to finish, or run with --wait" if not wait else "gave up waiting"
            raise OutputLockedError(
                f"output folder {path.parent} is in use by another run ({holder}); {hint}"
            )
        time.sleep(0.2)


def _describe_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "holder unknown"
    owner = f" {info['owner']}" if info.get("owner") else ""
    return f"pid {info.get('pid')}{owner}, since {info.get('since')}"


# --------------------------------------------------------------------------- runs


def start_run(out: str | os.PathLike, kind: str, config: dict[str, Any] | None = None) -> Path:
    """Create `OUT/runs/<run-id>/` with `status.json` (running) and `config.json` (resolved)."""
    out = Path(out)
    run_id = new_run_id(kind)
    run_dir = out / RUNS / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    write_json_atomic(
        run_dir / STATUS,
        {"run_id": run_id, "kind": kind, "status": "running", "started": _now(), "pid": os.getpid()},
    )
    if config is not None:
        write_json_atomic(run_dir / "config.json", {"config": config, "provenance": provenance()})
    return run_dir


class Run:
    """An open run: its folder and the reports of the stages finished so far (in order)."""

    def __init__(self, out: Path, run_dir: Path):
        self.out, self.dir = out, run_dir
        self.reports: dict[str, Any] = {}

    def record(self, stage: str, report: Any) -> Any:
        """Keep `report` as stage `stage`'s result (written to run_report.json); returns it."""
        self.reports[stage] = report
        return report

    @property
    def id(self) -> str:
        return self.dir.name


@contextlib.contextmanager
def open_run(
    out: str | os.PathLike,
    kind: str,
    config: dict[str, Any] | None = None,
    *,
    wait: bool = False,
    timeout_s: float | None = None,
) -> Iterator[Run]:
    """Lock `out`, create a run folder, yield it; publish it as `latest` only if the block succeeds.

    On any exception the run is marked failed (status.json + FAILED), `latest`
    is left as it was, and the exception propagates. The lock is held throughout.
    """
    out = Path(out)
    with output_lock(out, wait=wait, timeout_s=timeout_s, owner=kind):
        run = Run(out, start_run(out, kind, config))
        try:
            yield run
        except BaseException as e:
            mark_failed(run.dir, e, completed=list(run.reports))
            raise
        mark_succeeded(run.dir, {"run_id": run.id, "kind": kind, "stages": run.reports})
        publish_latest(out, run.dir)


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    p = Path(run_dir) / STATUS
    if not p.is_file():
        raise UserError(f"{run_dir} is not a run folder (no {STATUS})")
    return json.loads(p.read_text())


def _update_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    status = read_status(run_dir)
    status.update(fields)
    write_json_atomic(run_dir / STATUS, status)
    return status


def mark_failed(run_dir: str | os.PathLike, error: BaseException, completed: list[str] | None = None) -> None:
    """Record the failure in `status.json` (with the stages that did finish) and a `FAILED` file."""
    run_dir = Path(run_dir)
    message = f"{type(error).__name__}: {error}"
    _update_status(run_dir, status="failed", finished=_now(), error=message, completed_stages=completed or [])
    tb = "".join(traceback.format_exception(error))
    write_text_atomic(run_dir / FAILED, f"{message}\n\n{tb}")


def mark_succeeded(run_dir: str | os.PathLike, report: dict[str, Any] | None = None) -> None:
    run_dir = Path(run_dir)
    if report is not None:
        write_json_atomic(run_dir / "run_report.json", report)
    _update_status(run_dir, status="succeeded", finished=_now())


def publish_latest(out: str | os.PathLike, run_dir: str | os.PathLike) -> Path:
    """Atomically repoint `OUT/latest` at `run_dir` (which must be a succeeded run in OUT/runs)."""
    out = Path(out)
    run_dir = Path(run_dir)
    if run_dir.resolve().parent != (out / RUNS).resolve():
        raise UserError(f"{run_dir} is not a run folder of {out}")
    if read_status(run_dir).get("status") != "succeeded":
        raise UserError(f"refusing to point latest at {run_dir}: the run did not succeed")
    target = f"{RUNS}/{run_dir.name}"
    link = out / LATEST
    tmp = out / f".{LATEST}.{secrets.token_hex(4)}.tmp"
    try:
        os.symlink(target, tmp)
    except (OSError, NotImplementedError):
        write_text_atomic(tmp, target + "\n")  # pointer-file fallback, same rename below
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return link


def latest_run(out: str | os.PathLike) -> Path | None:
    """The run folder `OUT/latest` points at, or None when there is no successful run yet."""
    out = Path(out)
    link = out / LATEST
    if link.is_symlink():
        target = os.readlink(link)
    elif link.is_file():
        target = link.read_text().strip()
    else:
        return None
    run_dir = out / target
    return run_dir if run_dir.is_dir() else None


def require_latest(out: str | os.PathLike) -> Path:
    run = latest_run(out)
    if run is None:
        raise UserError(
            f"{out} has no successful run yet (no {Path(out) / LATEST}); run `rqvae-ids run` first"
        )
    return run


def runs_in_progress(out: str | os.PathLike, pids: set[int]) -> list[Path]:
    """Run folders of OUT whose status is still `running` and whose process is one of `pids`
    (a service's flow-run processes: what it has in progress, not another user's run)."""
    runs_dir = Path(out) / RUNS
    if not runs_dir.is_dir():
        return []
    found = []
    for d in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        with contextlib.suppress(UserError, ValueError, OSError):
            status = read_status(d)
            if status.get("status") == "running" and status.get("pid") in pids:
                found.append(d)
    return found


def list_runs(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Status of every run folder in OUT/runs, oldest first."""
    runs_dir = Path(out) / RUNS
    if not runs_dir.is_dir():
        return []
    rows = []
    for d in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        with contextlib.suppress(UserError, ValueError):
            rows.append({"path": str(d), **read_status(d)})
    return rows
