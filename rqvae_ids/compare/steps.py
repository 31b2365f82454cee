"""Library side of `flows/compare.py` (the compare-baselines flow): one model per call, then one evaluation of them all.

`build_one` trains and assigns one kind (`compare.comparison.build_model_ids`) and
turns a UserError (e.g. too many collisions) into a note, so one failing model
does not hide the others; `write_comparison` evaluates every built model on the
same embeddings and split and writes comparison.parquet, report.md and plots.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..catalog.items import read_items


def build_one(kind: str, embeddings: str | os.PathLike, out_dir: str | os.PathLike, cfg) -> Any:
    """ModelIds of `kind` (cfg: CompareConfig), or the error message (str) if it cannot be built."""
    from .comparison import build_model_ids
    from ..embedding_table import read_embeddings

    n_items = len(read_embeddings(embeddings))
    try:
        return build_model_ids(kind, Path(embeddings), Path(out_dir), cfg, n_items)
    except UserError as e:
        return f"{kind} left out: {e}"


def write_comparison(
    out_dir: str | os.PathLike,
    items: str | os.PathLike,
    embeddings: str | os.PathLike,
    built: list[Any],
    cfg,
    interactions: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Evaluate every built model (ModelIds) and write the comparison report into `out_dir`."""
    from .comparison import evaluate_and_write
    from ..embedding_table import read_embeddings

    table = read_embeddings(embeddings)
    models = [b for b in built if not isinstance(b, str)]
    notes = [b for b in built if isinstance(b, str)]
    if not models:
        raise UserError("every model failed: " + "; ".join(notes))
    ids, _, categories = read_items(items)
    category_of = dict(zip(ids, categories))
    cats = [category_of.get(i) for i in table.item_ids]
    split = None
    if interactions is not None:
        from ..evaluate.sequences import leave_one_out, load_interactions

        users, seqs, order = load_interactions(interactions, table.item_ids)
        split = leave_one_out(users, seqs, cfg.max_history, order_column=order)
    failed = [n.split(" ", 1)[0] for n in notes]
    return evaluate_and_write(
        out_dir, table.vectors, models, cfg, categories=cats if any(cats) else None, split=split,
        command="flows.compare.compare_baselines", notes=notes, failed=failed, progress=lambda msg: None,
        extra_config={"embedding_model": table.model, "n_items": len(table), "embeddings": str(embeddings)},
    )  # fmt: skip
