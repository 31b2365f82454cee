"""Every input of a pipeline run checked before Prefect starts and before anything is written.

`rqvae-ids run` / `demo` call `check_run_inputs` first: a bad config, catalog,
interactions file, --model-dir or embedding model fails in seconds with one line,
instead of after a temporary Prefect API started (~20 s) and a run folder was
created and marked failed. The catalog and interactions are read here with the
run's own options, so the checks are the stages' checks, not a second copy of them.
"""

from __future__ import annotations

import os
from typing import Any


def check_run_inputs(
    catalog: str | os.PathLike,
    interactions: str | os.PathLike | None,
    config: str | os.PathLike | None,
    overrides: dict[str, Any] | None,
    model_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Raise a UserError for the first bad input; return warnings worth a line (small catalog)."""
    from ..catalog import load_catalog
    from ..embed import resolve_model
    from .config import load_pipeline_config

    cfg = load_pipeline_config(config, overrides)
    if model_dir is not None:
        from ..models import load_model

        load_model(model_dir)  # a broken --model-dir fails named as given, not after embedding
    items = load_catalog(catalog, **cfg.catalog.kwargs()).item_ids
    if interactions is not None:
        # Unknown items are a note, said once by the evaluate stage; an unusable file is an error now.
        # One read of the file either way (7M rows: ~8 s at 1M items).
        if model_dir is None and cfg.cf.enabled:
            from ..cf import check_interactions

            check_interactions(interactions, items, cfg.cf.embedding)  # training reads their CF embeddings
        else:
            from ..evaluate.sequences import load_interactions

            load_interactions(interactions, items, log=lambda message: None)
    resolve_model(cfg.embed.model)  # a missing --embed-model folder
    warnings = []
    if model_dir is None:
        from ..train import small_catalog_warning

        message = small_catalog_warning(len(items), cfg.train.model.codebook_size, "--set train.model.codebook_size=")
        if message:
            warnings.append(message)
    return warnings
