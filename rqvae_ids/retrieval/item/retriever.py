"""`ItemRetriever`: the item-level sequence models (`sasrec`, `parallel`) behind the harness's
`Retriever` protocol, and `train_item_retriever`, the library function of
`rqvae-ids retrieve-train --retriever {sasrec,parallel}`.

A retriever directory holds `model.safetensors` (best weights; the parallel head's codes
and item vectors are buffers inside it), `config.json` and `train_report.json`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ...core.errors import UserError
from ...core.io import provenance, write_json_atomic
from .trainer import ItemRetrieverConfig

MIN_ITEMS = 11  # a top-10 plus at least one item to leave out


def check_codes(codes, n_items: int) -> np.ndarray:
    """(N, D) int code matrix in catalog order, checked: one row per item, codes in [0, 65535]."""
    c = np.asarray(codes)
    if c.ndim != 2 or len(c) != n_items or c.shape[1] < 1:
        raise UserError(f"codes must be one row of digits per catalog item, ({n_items}, D); got {c.shape}")
    if not np.issubdtype(c.dtype, np.integer) or (c.size and (c.min() < 0 or c.max() > 65535)):
        raise UserError("codes must be integers in [0, 65535]")
    return c.astype(np.int64)


class ItemRetriever:
    """SASRec (head="sasrec", no codes) or the parallel semantic-ID retriever (head="parallel",
    codes (N, D) in catalog order, any tokenizer, any depth, with or without a suffix digit).

    Ranks the whole catalog exactly; never returns the user's own history items, so the
    harness need not ask for extra (`history_extra = 0`).
    """

    history_extra = 0

    def __init__(self, n_items: int, cfg: ItemRetrieverConfig | None = None, codes=None, item_vectors=None,
                 out_dir=None, name: str | None = None, log=print, reuse: bool = True):
        self.cfg = cfg or ItemRetrieverConfig()
        self.n_items = int(n_items)
        if self.n_items < MIN_ITEMS:
            raise UserError(f"a catalog of {self.n_items} item(s) is too small to rank a top-10 (need >= {MIN_ITEMS})")
        self.reuse = reuse
        if self.cfg.needs_codes:
            if codes is None:
                raise UserError(f"the {self.cfg.head} retriever needs item codes (--ids semantic_ids.parquet)")
            codes = check_codes(codes, self.n_items)
        self.codes = codes if self.cfg.needs_codes else None
        self.item_vectors = None
        if self.cfg.needs_text:
            if item_vectors is None:
                raise UserError(f"the {self.cfg.head} retriever's text part needs the items' text embeddings "
                                "(--content-embeddings FILE)")
            v = np.array(item_vectors, dtype=np.float32)
            if v.ndim != 2 or len(v) != self.n_items or not np.isfinite(v).all():
                raise UserError(f"item vectors must be finite, one row per catalog item ({self.n_items}, d); got {v.shape}")
            self.item_vectors = v
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.name = name or self.cfg.head
        self.log, self.model, self.report = log, None, None

    def fit(self, train_sequences: Sequence[np.ndarray], valid=None) -> "ItemRetriever":
        from ...core.config import to_dict
        from .trainer import train

        self.model, self.report = train(self.n_items, train_sequences, valid, self.out_dir, self.cfg,
                                        codes=self.codes, item_vectors=self.item_vectors, log=self.log,
                                        reuse=self.reuse)
        if self.out_dir is not None:
            write_json_atomic(self.out_dir / "config.json", {"retriever": self.cfg.head, "item_retrieval": to_dict(self.cfg),
                                                              "n_items": self.n_items, "provenance": provenance()})
        return self

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> np.ndarray:
        """(U, k) int64 catalog indices, best first, exact over the catalog, history excluded."""
        if self.model is None:
            raise UserError(f"{self.name}: call fit() first")
        from .trainer import recommend

        return recommend(self.model, list(histories), k, self.cfg.max_history)


def train_item_retriever(interactions_path, out_dir, cfg: ItemRetrieverConfig, ids_path=None,
                         content_embeddings=None, catalog_ids=None, log=print, reuse: bool = True) -> dict:
    """interactions (+ semantic_ids.parquet for parallel) -> trained retriever in out_dir + test metrics.

    The catalog is the IDs' items (parallel) or `catalog_ids` / the interactions' items (sasrec).
    Every input is checked before anything is written. Returns the report (also train_report.json).
    """
    from ...evaluate.sequences import leave_one_out, load_interactions

    codes, item_ids = None, catalog_ids
    if ids_path is not None:
        from ...ids import read_semantic_ids
        from ..tiger.generative import sid_codes

        ids = read_semantic_ids(ids_path)
        item_ids, codes = list(ids.item_ids), sid_codes(ids) if cfg.needs_codes else None
    elif cfg.needs_codes:
        raise UserError(f"--retriever {cfg.head} needs --ids semantic_ids.parquet")
    if item_ids is None and cfg.needs_text and content_embeddings is not None:
        from ...core.embedding_table import read_embeddings

        item_ids = list(read_embeddings(content_embeddings).item_ids)  # the catalog of the text vectors
    if item_ids is None:
        item_ids = _interaction_items(interactions_path)
    else:
        _check_coverage(interactions_path, item_ids, "--ids" if ids_path is not None else "the catalog")
    vectors = None
    if cfg.needs_text:
        if content_embeddings is None:
            raise UserError(f"--retriever {cfg.head} with text needs --content-embeddings FILE")
        from ..tiger.generative import content_vectors_for

        vectors = content_vectors_for(content_embeddings, item_ids)
    users, seqs, order = load_interactions(interactions_path, item_ids, log=log)
    split = leave_one_out(users, seqs, cfg.max_history, order_column=order)
    r = ItemRetriever(len(item_ids), cfg, codes, vectors, out_dir, log=log, reuse=reuse)
    r.fit(split.train, (split.valid_histories, split.valid_targets))
    from ...evaluate.harness import evaluate_retriever

    t0 = time.perf_counter()
    test = evaluate_retriever(r, split, which="test")
    infer_s = time.perf_counter() - t0
    report = dict(r.report, test=test, test_users=len(split.users), infer_seconds=infer_s,
                  infer_users_per_s=len(split.users) / infer_s, retriever=cfg.head,
                  ids=os.fspath(ids_path) if ids_path is not None else None, provenance=provenance())
    write_json_atomic(Path(out_dir) / "train_report.json", report)
    log("test " + " ".join(f"{k}={v:.4f}" for k, v in test.items())
        + f" | train {report['train_seconds']:.0f}s, inference {report['infer_users_per_s']:.0f} users/s")
    return report


def _read_items_column(path) -> list[str]:
    from ...evaluate.sequences import _read_table
    from ...core.io import require_file

    frame = _read_table(require_file(path, "interactions file"))
    if "item_id" not in frame.columns or "user_id" not in frame.columns:
        raise UserError(f"{path}: missing column(s) user_id/item_id; found {list(frame.columns)}")
    if frame.empty:
        raise UserError(f"{path}: the interactions file has no rows")
    return frame["item_id"].astype(str).tolist()


def _interaction_items(path) -> list[str]:
    """SASRec without a catalog: the items of the interactions, sorted (a stable catalog order)."""
    return sorted(set(_read_items_column(path)))


def _check_coverage(path, item_ids, what: str) -> None:
    """The IDs must name every item the interactions use: an uncovered item would silently
    vanish from the users' sequences and bias every metric."""
    known = set(map(str, item_ids))
    missing = sorted(set(_read_items_column(path)) - known)
    if missing:
        raise UserError(f"{what} do(es) not cover {len(missing):,} item(s) of the interactions "
                        f"(e.g. {missing[0]!r}); assign IDs to the whole catalog first")
