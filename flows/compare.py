"""`compare_baselines`: RQ-VAE against its baselines on one catalog, one task per model.

A thin wrapper over the library call the CLI `compare` makes
(`rqvae_ids.compare.comparison.run_comparison`), with the same options
(`with_tiger` and the `tiger` RetrievalConfig fields included): the
flow only adds Prefect's view of it, one task per model. The model tasks are
submitted together, so the task runner runs them in parallel (threads by
default; `compare_baselines.with_options(task_runner=dask_runner(...))` spreads
them over a Dask cluster). Outputs in `out`, as the CLI's: comparison.parquet,
comparison.json, report.md, plots, models/, ids/, embeddings/.

Model tasks hand back `ModelIds` (codes, and reconstructions for the recon
metrics) rather than paths: they are consumed once by the evaluation, and
`NO_CACHE` keeps Prefect from hashing them.
"""

from __future__ import annotations

from typing import Any, Callable

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import tasks
from rqvae_ids.compare.comparison import compare_options, run_comparison
from rqvae_ids.compare.config import MODEL_KINDS
from rqvae_ids.core.errors import UserError


@task(name="train and assign", task_run_name="train and assign {kind}", cache_policy=NO_CACHE)
def build_model(build: Callable[[str], Any], kind: str) -> Any:
    """Train one tokenizer kind and assign its IDs (a UserError comes back as the result)."""
    return build(kind)


def one_task_per_model(build: Callable[[str], Any], kinds: list[str]) -> list[Any]:
    futures = [build_model.submit(build, kind) for kind in kinds]
    return [f.result() for f in futures]


@flow(name="compare-baselines")
def compare_baselines(
    catalog: str,
    out: str,
    interactions: str | None = None,
    models: list[str] = list(MODEL_KINDS),
    levels: int = 3,
    codebook_size: int = 256,
    epochs: int | None = None,
    seed: int = 0,
    config: str | None = None,
    neighbour_queries: int | None = None,
    tune_users: int | None = None,
    embeddings: str | None = None,
    with_tiger: bool = False,
    tiger: dict[str, Any] | None = None,
    with_parallel: bool = False,
    parallel: dict[str, Any] | None = None,
    with_sasrec: bool = True,
    sasrec: dict[str, Any] | None = None,
    with_hybrid: bool = False,
    hybrid: dict[str, Any] | None = None,
    cold_items: float | None = None,
    with_generative: bool = False,
    generative: dict[str, Any] | None = None,
) -> str:
    """Compare tokenizers on `catalog`; returns the path of report.md.

    config: pipeline config file whose catalog and embed sections apply (the models
    share levels, codebook_size, epochs and seed given here). neighbour_queries,
    tune_users: None for the CLI's defaults. tiger: RetrievalConfig fields of the
    TIGER-style generative retrievers (with_tiger; the CLI's --set tiger.*).
    parallel: ItemRetrieverConfig fields of the parallel/<model> rows (with_parallel).
    with_sasrec: the `sasrec` row, on by default whenever interactions are given, as in the
    CLI and `run_comparison` (False: the CLI's --no-sasrec); sasrec: its ItemRetrieverConfig
    fields (None: the compare's small budget). hybrid: ItemRetrieverConfig fields of the
    hybrid/<model> and hybrid/no-codes rows (with_hybrid). cold_items: --cold-items.
    with_generative / generative: the old names of with_tiger / tiger (deprecated, one release).
    """
    log = get_run_logger()
    if with_generative or generative:
        log.warning("compare_baselines: with_generative/generative are deprecated and go in the next release: "
                    "use with_tiger/tiger")
        with_tiger, tiger = with_tiger or with_generative, {**(generative or {}), **(tiger or {})}
    for name, on, given in (("tiger", with_tiger, tiger), ("parallel", with_parallel, parallel),
                            ("hybrid", with_hybrid, hybrid)):
        if given and not on:
            raise UserError(f"{name} options need with_{name}=True")
    if sasrec and not with_sasrec:
        raise UserError("sasrec options have no effect with with_sasrec=False")
    cfg = tasks.load_config(out, config)
    knobs = {"models": tuple(models), "levels": levels, "codebook_size": codebook_size, "epochs": epochs,
             "seed": seed, "neighbour_queries": neighbour_queries, "tune_users": tune_users}
    rows = {name: dict(given or {}) if on else None
            for name, on, given in (("tiger", with_tiger, tiger), ("sasrec", with_sasrec, sasrec),
                                    ("parallel", with_parallel, parallel), ("hybrid", with_hybrid, hybrid))}
    options = compare_options(knobs, rows, interactions=interactions, embeddings=embeddings, embed=cfg.embed,
                              catalog_kwargs=cfg.catalog.kwargs(), cold_items=cold_items,
                              command="flows.compare.compare_baselines")
    run_comparison(catalog, out, options, progress=log.info, map_models=one_task_per_model)
    return f"{out}/report.md"
