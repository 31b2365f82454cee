"""The item-level retrievers (rqvae_ids.retrieval.item.retriever) as comparison rows: the `sasrec`
row, `compare --with-parallel`'s `parallel/<model>` rows and `compare --with-hybrid`'s
`hybrid/<model>` rows plus the `hybrid/no-codes` ablation, like `tiger.py` does for
`tiger/<model>`. `sasrec_rows`, `parallel_rows` and `hybrid_rows` are their families' builders
(`families.FAMILIES`).

Checkpoints: OUT/retrievers/{parallel,hybrid}/<model>/ and OUT/retrievers/sasrec/. A rerun into the
same --out with the same config and the same training data (codes, split) reuses the
saved weights (the item trainer's own fingerprint check); anything else trains anew.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..core.config import to_dict
from .config import SASREC_EPOCHS, SASREC_MAX_MINUTES, ModelIds, RowContext, Rows, progress_to_stderr

if TYPE_CHECKING:
    from ..retrieval.item.trainer import ItemRetrieverConfig

__all__ = ["SASREC_EPOCHS", "SASREC_MAX_MINUTES", "CompareItem", "sasrec_rows", "parallel_rows", "hybrid_rows",
           "NO_CODES"]

NO_CODES = "hybrid/no-codes"  # the hybrid row without codes: what the codes add is measured against it


class CompareItem:
    """One item-level retriever as a comparison row (`parallel/<model>`, `hybrid/<model>` or `sasrec`).

    `scores_cold`: False for SASRec, whose item table has no row learned for a cold item
    (its cold_* metrics are reported as not applicable, NaN)."""

    history_extra = 0
    valid_hits = None  # hybrid rows: (U,) bool, each validation user's target in the top 10 (the report's advice)

    def __init__(self, name: str, n_items: int, cfg: ItemRetrieverConfig, out_dir: Path, codes=None,
                 progress: Callable[[str], None] = progress_to_stderr, position: str = "", item_vectors=None):
        from ..retrieval.item.retriever import ItemRetriever

        self.name, self.out_dir, self.progress, self.position = name, Path(out_dir), progress, position
        self.scores_cold = cfg.head != "sasrec"
        self.inner = ItemRetriever(n_items, cfg, codes=codes, item_vectors=item_vectors, out_dir=self.out_dir,
                                   name=name, log=lambda msg: progress(f"{name}: {msg}"), reuse=True)
        self.tuned: dict[str, Any] | None = None

    def fit(self, train_sequences, valid=None) -> "CompareItem":
        digits = "" if self.inner.codes is None else f" over {self.inner.codes.shape[1]} digits per item"
        self.progress(f"{self.name}{self.position}: {self.inner.cfg.head} retriever{digits} -> {self.out_dir}")
        self.inner.fit(train_sequences, valid)
        rep = self.inner.report
        self.tuned = {"epochs": rep["epochs"], "best_epoch": rep["best_epoch"],
                      "best_valid_ndcg@10": rep["best_valid_ndcg@10"]}
        if valid is not None and self.name.startswith("hybrid/"):
            self.valid_hits = self._hits(*valid)  # per validation user: which tokenizer to use (report)
            self.tuned["valid_recall@10"] = float(self.valid_hits.mean())
        return self

    def _hits(self, histories, targets):
        """(U,) bool: each user's validation target is in this retriever's top 10."""
        from ..evaluate.harness import recommend_split
        from ..evaluate.ranking import hit_ranks

        return hit_ranks(recommend_split(self, histories, 10), targets) >= 0

    def recommend(self, histories, k: int):
        return self.inner.recommend(histories, k)


def parallel_retrievers(model_ids: Sequence[ModelIds], n_items: int, out_dir: str | Path, cfg: ItemRetrieverConfig,
                        progress: Callable[[str], None] = progress_to_stderr) -> list[CompareItem]:
    """One `parallel/<kind>` retriever per ID model over its resolved IDs (level codes plus the
    collision suffix as a last digit, so no two items share a code tuple)."""
    from ..retrieval.tiger.generative import join_suffix

    n = len(model_ids)
    return [CompareItem(f"parallel/{m.name}", n_items, cfg, Path(out_dir) / "retrievers" / "parallel" / m.name,
                        codes=join_suffix(m.codes, m.suffix), progress=progress, position=f" ({i}/{n})")
            for i, m in enumerate(model_ids, 1)]


def hybrid_retrievers(ctx: RowContext, cfg: ItemRetrieverConfig) -> list[CompareItem]:
    """One `hybrid/<kind>` retriever per ID model (its resolved IDs, suffix digit included, as the
    codes part) and the `hybrid/no-codes` row (the same parts less the codes), all reading the
    comparison's text embeddings."""
    from ..retrieval.tiger.generative import join_suffix

    root, n, vectors, total = ctx.out_dir / "retrievers" / "hybrid", len(ctx.table), ctx.table.vectors, len(ctx.model_ids) + 1
    rows = [CompareItem(f"hybrid/{m.name}", n, cfg, root / m.name, codes=join_suffix(m.codes, m.suffix),
                        progress=ctx.progress, position=f" ({i}/{total})", item_vectors=vectors)
            for i, m in enumerate(ctx.model_ids, 1)]
    parts = tuple(p for p in cfg.parts if p != "codes")
    if parts and "codes" in cfg.parts:
        rows.append(CompareItem(NO_CODES, n, replace(cfg, parts=parts), root / "no-codes", progress=ctx.progress,
                                position=f" ({total}/{total})", item_vectors=vectors))
    return rows


def item_note(cfg: ItemRetrieverConfig, what: str) -> str:
    """The report note of the `sasrec` / `parallel/<model>` rows, with their budget."""
    budget = (f"d_model {cfg.d_model}, n_layer {cfg.n_layer}, at most {cfg.max_epochs} epochs and "
              f"{cfg.max_minutes:g} min of training, early stopping on validation NDCG@10 (patience {cfg.patience}), "
              f"seed {cfg.seed}")
    if what == "hybrid":
        return (f"`hybrid/<model>` rows (`--with-hybrid`, `--set hybrid.KEY=VALUE`): semantic IDs as item features, "
                f"an item's vector = its {' + '.join(cfg.parts)} parts ({cfg.compose}), tied in and out, exact "
                f"softmax over the catalog ({budget}); `{NO_CODES}` is the same model without the codes part: what "
                "each tokenizer's codes add is the difference to it (section below); checkpoints in "
                "retrievers/hybrid/<model>/.")
    if what == "sasrec":
        return (f"`sasrec` row: SASRec with full softmax over the catalog ({budget}; the compare's small budget, "
                "`--sasrec-epochs`/`--sasrec-max-minutes`, `--set sasrec.KEY=VALUE`; `--no-sasrec` skips it); "
                "checkpoint in retrievers/sasrec/.")
    return (f"`parallel/<model>` rows (`--with-parallel`, `--set parallel.KEY=VALUE`): the parallel semantic-ID "
            f"retriever over that model's "
            f"resolved IDs (levels + collision suffix as digits), exact full-catalog scoring ({budget}); "
            "checkpoints in retrievers/parallel/<model>/.")


def sasrec_rows(cfg: ItemRetrieverConfig, ctx: RowContext) -> Rows:
    """The `sasrec` row (an ItemRetrieverConfig with head sasrec)."""
    row = CompareItem("sasrec", len(ctx.table), cfg, ctx.out_dir / "retrievers" / "sasrec", progress=ctx.progress)
    return Rows([row], item_note(cfg, "sasrec"), to_dict(cfg))


def parallel_rows(cfg: ItemRetrieverConfig, ctx: RowContext) -> Rows:
    """The `parallel/<model>` rows (an ItemRetrieverConfig with head parallel)."""
    rows = parallel_retrievers(ctx.model_ids, len(ctx.table), ctx.out_dir, cfg, ctx.progress)
    return Rows(list(rows), item_note(cfg, "parallel"), to_dict(cfg))


def hybrid_rows(cfg: ItemRetrieverConfig, ctx: RowContext) -> Rows:
    """The `hybrid/<model>` rows and `hybrid/no-codes` (an ItemRetrieverConfig with head hybrid)."""
    return Rows(hybrid_retrievers(ctx, cfg), item_note(cfg, "hybrid"), to_dict(cfg))
