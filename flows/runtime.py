"""The Prefect side of the CLI's `run` and `serve`: environment, server check, log handling.

Kept here, in flows/, so that the library (rqvae_ids/) never imports Prefect; the
commands import this module inside their handlers. Prefect itself is imported inside
each function: `prefect_env` must set the environment before Prefect reads its settings.
"""

from __future__ import annotations

import contextlib
import os


def prefect_env(verbose: bool = False) -> None:
    """Quiet, offline Prefect defaults for a CLI run (the user's own settings win)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect's client telemetry (and its first-run notice on a terminal) follows DO_NOT_TRACK:
    # off too, unless the user set DO_NOT_TRACK or turned analytics on.
    if "DO_NOT_TRACK" not in os.environ and os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"].lower() in ("false", "0"):
        os.environ["DO_NOT_TRACK"] = "1"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def require_prefect_server(hint: str) -> None:
    """When PREFECT_API_URL is set (environment or Prefect profile), the server must answer.

    Otherwise Prefect fails deep inside with a long httpx.ConnectError traceback.
    """
    from prefect.settings import PREFECT_API_URL

    from rqvae_ids.core.errors import UserError

    url = PREFECT_API_URL.value()
    if not url:
        return
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            error = client.api_healthcheck()
    except Exception as e:  # noqa: BLE001 - e.g. a malformed URL: the same advice applies
        error = e
    if error is not None:
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise UserError(f"cannot reach the Prefect server at {url} ({type(error).__name__}: {reason}); {hint}")


RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


@contextlib.contextmanager
def user_errors_without_prefect_logs(enabled: bool = True):
    """Keep Prefect's own failure report off the console when the flow fails with a UserError.

    Prefect's run engines log every failure at ERROR through the `prefect.flow_runs` /
    `prefect.task_runs` loggers ("Encountered exception during execution" with a
    traceback, "Finished in state Failed(...)") before the exception reaches the CLI,
    which prints a UserError as one line. While the flow runs, the console handlers
    those records reach hold them back; when the flow ends in a UserError or Ctrl-C
    ("Crash detected!") they are dropped, otherwise (success, a real bug) they are emitted in order, so an
    unexpected exception keeps its full log and traceback. Prefect's API handler is left
    alone: the UI still records the failure. enabled=False (--verbose) changes nothing.
    """
    if not enabled:
        yield
        return
    import logging

    from prefect.logging.handlers import APILogHandler

    from rqvae_ids.core.errors import UserError

    held: list[tuple[logging.Handler, logging.LogRecord]] = []

    class Hold(logging.Filter):
        def __init__(self, handler: logging.Handler):
            super().__init__()
            self.handler = handler

        def filter(self, record: logging.LogRecord) -> bool:
            if record.levelno >= logging.ERROR and record.name.startswith(RUN_LOGGERS):
                held.append((self.handler, record))
                return False
            return True

    handlers: list[logging.Handler] = []
    for name in RUN_LOGGERS:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            handlers += [h for h in logger.handlers if not isinstance(h, APILogHandler) and h not in handlers]
            logger = logger.parent if logger.propagate else None
    filters = [(h, Hold(h)) for h in handlers]
    for h, f in filters:
        h.addFilter(f)
    user_error = False
    try:
        yield
    except (UserError, KeyboardInterrupt):  # Ctrl-C: no "Crash detected!" lines, the CLI says it
        user_error = True
        raise
    finally:
        for h, f in filters:
            h.removeFilter(f)
        if not user_error:
            for h, record in held:
                h.handle(record)


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the Prefect profile; None when unset (temporary local API)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None
