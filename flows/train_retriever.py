"""`train_retriever`: train the generative retriever on a semantic_ids.parquet (thin flow).

All logic lives in `rqvae_ids.retrieval.generative.train_retriever`; the flow only
names the inputs and returns the report path.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task


@task(name="train-retriever", retries=0)
def train_retriever_task(ids: str, interactions: str, out: str, overrides: dict[str, Any] | None) -> str:
    """semantic_ids.parquet + interactions -> retriever directory; returns train_report.json's path."""
    from rqvae_ids.config import from_dict
    from rqvae_ids.retrieval.generative import train_retriever as run
    from rqvae_ids.retrieval.trainer import RetrievalConfig

    cfg = from_dict(RetrievalConfig, overrides, where="train_retriever overrides")
    run(ids, interactions, out, cfg)
    return f"{out}/train_report.json"


@flow(name="train_retriever", log_prints=True)
def train_retriever(ids: str, interactions: str, out: str, overrides: dict[str, Any] | None = None) -> str:
    """Train (or resume) the generative retriever in `out`; `overrides` are RetrievalConfig fields."""
    return train_retriever_task(ids, interactions, out, overrides)
