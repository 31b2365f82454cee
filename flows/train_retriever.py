"""`train_retriever`: train a next-item retriever (thin flow).

The same choice as `rqvae-ids retrieve-train --retriever {hybrid,parallel,sasrec,tiger}` (same default):
all logic lives in `rqvae_ids.retrieval.choice.train_chosen`; the flow only names the inputs and
returns the report path.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from rqvae_ids.retrieval.choice import DEFAULT_RETRIEVER


@task(name="train-retriever", retries=0)
def train_retriever_task(ids: str | None, interactions: str, out: str, overrides: dict[str, Any] | None,
                         retriever: str, content_embeddings: str | None = None) -> str:
    """interactions (+ semantic_ids.parquet for parallel/tiger/hybrid, + embeddings.parquet for the
    hybrid's text part) -> retriever directory; returns train_report.json's path."""
    from rqvae_ids.retrieval.choice import train_chosen

    train_chosen(retriever, interactions, out, overrides, ids_path=ids, content_embeddings=content_embeddings)
    return f"{out}/train_report.json"


@flow(name="train_retriever", log_prints=True)
def train_retriever(ids: str | None, interactions: str, out: str, overrides: dict[str, Any] | None = None,
                    retriever: str = DEFAULT_RETRIEVER, content_embeddings: str | None = None) -> str:
    """Train (or reuse/resume) `retriever` in `out`; `overrides` are fields of its config
    (ItemRetrieverConfig for hybrid/parallel/sasrec, RetrievalConfig for tiger)."""
    from rqvae_ids.retrieval.choice import check_choice

    # a bad choice or a missing input fails before any task starts
    check_choice(retriever, ids, (overrides or {}).get("parts"), content_embeddings)
    return train_retriever_task(ids, interactions, out, overrides, retriever, content_embeddings)
