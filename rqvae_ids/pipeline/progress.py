"""A pipeline run's stages on the console, one line as each starts and ends (stderr):

    [run] train rqvae: started (5000 items, up to 40 epochs)
    [run] train rqvae: 40 epochs, 31 s, codes used 100/100/100 %

the same `[name] ...` style as `rqvae-ids compare`. Off by default, so library calls,
served flow runs and bench/ print nothing; `rqvae-ids run` / `demo` call `enable()`. The
switch is process-wide on purpose: the Prefect tasks that call the stages run in threads
of the CLI's process. Progress bars (training epochs, evaluation steps) are shown only
when stderr is a terminal, where they redraw in place instead of filling a log.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, Iterator

from ..models.kinds import fitted_by

_STATE: dict[str, Any] = {"prefix": None}


def enable(prefix: str = "run") -> None:
    _STATE["prefix"] = prefix


def disable() -> None:
    _STATE["prefix"] = None


def enabled() -> bool:
    return _STATE["prefix"] is not None


def bars() -> bool:
    """Progress bars: only for a console run on a terminal."""
    return enabled() and sys.stderr.isatty()


def say(message: str) -> None:
    if enabled():
        print(f"[{_STATE['prefix']}] {message}", file=sys.stderr, flush=True)


def seconds(s: float) -> str:
    """0.4 s, 31 s, 4 min 12 s."""
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    return f"{int(s // 60)} min {int(s % 60)} s"


def _pct(values) -> str:
    return "/".join(f"{100 * v:.0f}" for v in values) + " %"


def end_line(stage: str, report: dict[str, Any], s: float) -> str:
    """The line that closes a stage: its count, the time, and the figure worth seeing first."""
    took = seconds(s)
    if stage == "ingest":
        dropped = report.get("dropped_empty", 0) + report.get("dropped_duplicates", 0)
        return f"{report['items']} items, {took}" + (f", {dropped} rows dropped" if dropped else "")
    if stage == "embed":
        return f"{report['items']} items, {took}, {report['encoded']} encoded, {report['cached']} from cache"
    if stage == "train":
        used = f", codes used {_pct(report['utilisation'])}" if report.get("utilisation") else ""
        return f"{fitted_by(report.get('kind'), report.get('epochs'))}, {took}{used}"
    if stage == "cf embeddings":
        return f"{report['items_with_cf']} of {report['items']} items have one, {took}"
    if stage == "model":
        return f"frozen copy of {report.get('source')}, {took}"
    if stage == "assign":
        line = f"{report['items']} IDs, {took}"
        coll = report.get("collisions") or {}
        if "duplicate_rate" in coll:
            line += f", duplicate_rate {coll['duplicate_rate']:.2%} before resolution"
        st = report.get("stability")
        if st:
            line += f"; kept {st['kept']}, new {st['new']}, edited {st['edited']}, removed {st['removed']}"
        return line
    if stage == "id mapping":
        return f"{report['changed']} of {report['items_common']} IDs changed, {took}"
    if stage == "evaluate":
        m = report.get("metrics") or {}
        figures = [f"{k} {m[k]:.3f}" for k in ("neighbour_recall@10", "next_recall@10") if k in m]
        return ", ".join([took, *figures])
    return took


@contextlib.contextmanager
def stage(name: str, start: str = "", kind: str | None = None) -> Iterator[dict[str, Any]]:
    """Print `name: started (start)`, run the block, print `name: end_line(...)` from the report
    the block puts in the yielded dict under "report" (kind: end_line's stage, default name)."""
    box: dict[str, Any] = {}
    say(f"{name}: started" + (f" ({start})" if start else ""))
    t = time.perf_counter()
    try:
        yield box
    except Exception:
        say(f"{name}: failed after {seconds(time.perf_counter() - t)}")
        raise
    if "report" in box:
        say(f"{name}: {end_line(kind or name, box['report'], time.perf_counter() - t)}")


@contextlib.contextmanager
def steps(name: str, total: int) -> Iterator[Callable[[str], None]]:
    """A callback for step messages (`evaluate_and_write(progress=...)`): a bar over `total`
    steps on a terminal, nothing elsewhere."""
    if not bars():
        yield lambda message: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=name, unit="step", leave=False)
    first = [True]

    def step(message: str) -> None:
        if not first[0]:
            bar.update(1)
        first[0] = False
        bar.set_postfix_str(message[:60])

    try:
        yield step
    finally:
        bar.update(bar.total - bar.n)
        bar.close()
