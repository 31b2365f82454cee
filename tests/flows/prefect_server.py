"""A real `prefect server start` for the tests that need one (schedules, a server that goes away).

`running_server(tmp_path)` starts it on a free loopback port with its own PREFECT_HOME and
yields (process, api url, environment for the processes that use it); `stop` ends a process
group (SIGTERM, then SIGKILL after 15 s), always called in the tests' `finally`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, payload: dict | None = None):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL what is left after 15 s."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the leader is gone; its children may not be
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def server_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    return env


def start_server(tmp_path: Path, procs: list[subprocess.Popen]) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """Start a server (appended to `procs` at once, so the caller's cleanup sees it) and wait until healthy."""
    port = free_port()
    env = server_env(tmp_path, port)
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )
    procs.append(proc)
    url = env["PREFECT_API_URL"]
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(OSError, ValueError):
            if api(f"{url}/health") is True:
                return proc, url, env
        assert proc.poll() is None, f"prefect server exited:\n{tail(log_path)}"
        assert time.monotonic() < deadline, f"prefect server not healthy in 120 s:\n{tail(log_path)}"
        time.sleep(1)


def start_serve(args: list[str], env: dict[str, str], log_path: Path, cwd: Path,
                procs: list[subprocess.Popen]) -> subprocess.Popen:
    """`rqvae-ids serve ARGS` in its own process group, output to `log_path`."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN / "rqvae-ids"), "serve", *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)
    procs.append(proc)
    return proc
