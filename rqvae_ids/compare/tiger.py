"""`compare --with-tiger`: the TIGER-style generative retriever (rqvae_ids.retrieval.tiger.generative)
over each ID model's IDs, as comparison rows `tiger/<model>`; `tiger_rows` is the family's builder
(`comparison.FAMILIES`). Checkpoints in OUT/retrievers/tiger/<model>/."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..core.config import to_dict
from ..core.io import read_json_or_none, write_json_atomic
from .config import ModelIds, RowContext, Rows, progress_to_stderr

if TYPE_CHECKING:
    from ..retrieval.tiger.trainer import RetrievalConfig


class CompareTiger:
    """The TIGER-style generative retriever over one ID model's resolved IDs, as a comparison row.

    Named `tiger/<kind>`; trained (levels + collision-suffix token, the same
    RetrievalConfig for every kind) by `fit` on the comparison's split, checkpoints in
    `out_dir` (OUT/retrievers/tiger/<kind>/). A rerun into the same --out with the same
    retrieval config, IDs and split reuses (or resumes) that retriever; anything else
    starts it over. Meets the harness's `Retriever` protocol (history items are already
    filtered by the retriever, so `history_extra = 0`).
    """

    history_extra = 0

    def __init__(self, model: ModelIds, cfg: RetrievalConfig, out_dir: Path,
                 progress: Callable[[str], None] = progress_to_stderr, position: str = "", item_vectors=None,
                 width: int | None = None):
        from ..retrieval.tiger.generative import retriever_for

        self.kind, self.out_dir, self.progress, self.position = model.name, Path(out_dir), progress, position
        self.name = f"tiger/{model.name}"
        self.inner = retriever_for(model.name, model.codes, model.suffix, cfg=cfg, out_dir=self.out_dir,
                                   log=lambda msg: progress(f"{self.name}: {msg}"), item_vectors=item_vectors,
                                   width=width)
        self.tuned: dict[str, Any] | None = None

    def fit(self, train_sequences, valid=None) -> "CompareTiger":
        from ..retrieval.tiger.trainer import CHECKPOINT, RESUMABLE_KEYS, data_fingerprint, defaults_filled

        codes = self.inner.trie.codes
        # Budget knobs (epochs, minutes, patience, device) may change and still resume; the item
        # vectors (content on) are part of the data.
        cfg = {k: v for k, v in to_dict(self.inner.cfg).items() if k not in RESUMABLE_KEYS}
        data = data_fingerprint(codes, train_sequences, self.inner.item_vectors, self.inner.trie.width)
        key = {"retrieval": cfg, "data_sha256": data}
        if valid is not None:
            key["valid_sha256"] = data_fingerprint(codes, list(valid[0]) + [np.asarray(valid[1])])
        key = json.loads(json.dumps(key))
        marker = self.out_dir / "compare_key.json"
        saved = read_json_or_none(marker)
        if isinstance(saved, dict) and isinstance(saved.get("retrieval"), dict):
            # Older markers kept budget knobs and lack newer knobs (which then were at their defaults).
            old = defaults_filled(saved["retrieval"])
            saved["retrieval"] = {k: v for k, v in old.items() if k not in RESUMABLE_KEYS}
        self.inner.resume = saved == key  # else: start over (other IDs, split or config)
        if not self.inner.resume:  # a checkpoint of other IDs/config must not meet the new marker
            (self.out_dir / CHECKPOINT).unlink(missing_ok=True)
        how = "resuming/reusing" if self.inner.resume else "training"
        self.progress(f"{self.name}{self.position}: {how} the TIGER retriever on {self.kind}'s IDs "
                      f"({codes.shape[1]} tokens per item) -> {self.out_dir}")
        write_json_atomic(marker, key)
        self.inner.fit(train_sequences, valid)
        rep = self.inner.report
        self.tuned = {"epochs": rep["epochs"], "best_epoch": rep["best_epoch"],
                      "best_valid_ndcg@10": rep["best_valid_ndcg@10"]}
        return self

    def recommend(self, histories, k: int) -> np.ndarray:
        return self.inner.recommend(histories, k)


def tiger_retrievers(model_ids: Sequence[ModelIds], out_dir: str | Path, cfg: RetrievalConfig,
                     progress: Callable[[str], None] = progress_to_stderr, item_vectors=None,
                     width: int | None = None) -> list[CompareTiger]:
    """The retrievers of --with-tiger: one `CompareTiger` per ID model, checkpoints in
    out_dir/retrievers/tiger/<kind>/. cfg: a RetrievalConfig shared by all; item_vectors: (N, d)
    embeddings in the models' codes order (read when cfg.content); width: the comparison's
    codebook size K (every model's codes and suffixes are below it)."""
    n = len(model_ids)
    for m in model_ids:
        _move_old_checkpoint(Path(out_dir), m.name)
    return [CompareTiger(m, cfg, Path(out_dir) / "retrievers" / "tiger" / m.name, progress, f" ({i}/{n})",
                         item_vectors, width) for i, m in enumerate(model_ids, 1)]


def _move_old_checkpoint(out_dir: Path, kind: str) -> None:
    """A `generative/<kind>` row's checkpoint of a comparison before issue 26 (OUT/retrievers/<kind>/)
    moves to OUT/retrievers/tiger/<kind>/, so a rerun into that --out still reuses or resumes it."""
    old, new = out_dir / "retrievers" / kind, out_dir / "retrievers" / "tiger" / kind
    if (old / "compare_key.json").is_file() and not new.exists():
        new.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, new)


def tiger_note(cfg: RetrievalConfig) -> str:
    """The report note explaining the `tiger/<kind>` rows."""
    content = ", item content" if getattr(cfg, "content", False) else ""
    return (
        f"`tiger/<model>` rows: the TIGER-style generative retriever (`--with-tiger`, `--set tiger.KEY=VALUE`; "
        f"{cfg.arch}, n_layer {cfg.n_layer}, d_model {cfg.d_model}{content}, early stopping on validation "
        f"NDCG@10, beam {cfg.beam}, seed {cfg.seed}) trained on that model's resolved IDs (levels + collision-suffix "
        "token), the same sequence model for every ID model; next_* metrics only; checkpoints in "
        "retrievers/tiger/<model>/; epochs actually trained (a rerun may reuse a longer-trained retriever) under "
        "\"Tuned retriever settings\"."
    )


def tiger_rows(cfg: RetrievalConfig, ctx: RowContext) -> Rows:
    """The `tiger/<model>` rows (a RetrievalConfig, stamped with the comparison's seed, tuning users
    and history length: `families.FAMILIES`); item content from the comparison's embeddings when
    `cfg.content`."""
    vectors = ctx.table.vectors if cfg.content else None  # rows = the models' codes order
    rows = tiger_retrievers(ctx.model_ids, ctx.out_dir, cfg, ctx.progress, item_vectors=vectors,
                            width=ctx.cfg.codebook_size)
    return Rows(list(rows), tiger_note(cfg), to_dict(cfg))
