"""Which next-item retriever to train: the one choice shared by `rqvae-ids retrieve-train` and the
`train_retriever` flow (same names, same default, same checks).

- `sasrec`: item-ID embeddings, full softmax over the catalog (needs no semantic IDs).
- `parallel`: RPG-style, all digits of the next item's semantic ID predicted at once.
- `tiger`: one position per ID token, constrained beam search (the TIGER baseline).
- `hybrid`: semantic IDs as item features: an item's vector is its ID, code and text
  embeddings composed, tied in and out, exact softmax over the catalog.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import UserError

RETRIEVERS = ("hybrid", "parallel", "sasrec", "tiger")
DEFAULT_RETRIEVER = "hybrid"
WHY_DEFAULT = ("best validation Recall@10 on Amazon Toys on 2 CPU cores: 0.115 (item ID + collaborative semantic IDs "
               "+ text, 8 epochs; test 0.101) vs 0.104 without the codes, 0.094 sasrec, 0.093 embedding-knn, 0.065 "
               "parallel (bench/RESULTS.md, hybrid retriever); it needs --ids and --content-embeddings and scores "
               "new items too; choose sasrec for a model of interactions alone, parallel or tiger for the "
               "generative baselines")


def check_choice(retriever: str, ids_path, parts=None, content_embeddings=None) -> None:
    """One-line errors for a retriever name that does not exist or inputs it needs and lacks
    (parts: the hybrid item parts, default id,codes,text)."""
    if retriever not in RETRIEVERS:
        raise UserError(f"unknown retriever {retriever!r}; choose one of {', '.join(RETRIEVERS)}")
    if retriever == "hybrid":
        from .item.features import PARTS, check_parts

        try:
            parts = check_parts(PARTS if parts is None else parts)
        except ValueError as e:
            raise UserError(f"--item-parts: {e}") from None
        if "codes" in parts and ids_path is None:
            raise UserError("--retriever hybrid with codes needs --ids semantic_ids.parquet (its semantic IDs)")
        if "text" in parts and content_embeddings is None:
            raise UserError("--retriever hybrid with text needs --content-embeddings embeddings.parquet")
        return
    if retriever != "sasrec" and ids_path is None:
        raise UserError(f"--retriever {retriever} needs --ids semantic_ids.parquet (its semantic IDs)")


def train_chosen(retriever: str, interactions_path, out_dir, overrides: dict[str, Any] | None = None, ids_path=None,
                 content_embeddings=None, resume: bool = True, log=print) -> dict:
    """Train `retriever` into out_dir with config fields `overrides`; returns its report (train_report.json).
    Every setting is validated before anything is trained or written."""
    from ..core.config import from_dict

    given = dict(overrides or {})
    check_choice(retriever, ids_path, given.get("parts"), content_embeddings)
    if content_embeddings is not None and retriever in ("tiger", "parallel"):
        given["content"] = True
    if retriever == "tiger":
        from .tiger.generative import train_retriever
        from .tiger.trainer import RetrievalConfig

        cfg = from_dict(RetrievalConfig, given, where=f"{retriever} settings")
        return train_retriever(ids_path, interactions_path, out_dir, cfg, resume=resume, log=log,
                               content_embeddings=content_embeddings)
    from .item.retriever import train_item_retriever
    from .item.trainer import item_config

    cfg = item_config(retriever, given, where=f"{retriever} settings")
    return train_item_retriever(interactions_path, out_dir, cfg, ids_path=ids_path,
                                content_embeddings=content_embeddings, log=log, reuse=resume)
