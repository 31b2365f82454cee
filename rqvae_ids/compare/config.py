"""What a comparison is given and what it builds: its knobs (`CompareConfig`), the retriever rows
asked for (`RetrieverRows`), everything together (`CompareOptions`, the one argument of
`run_comparison`), and what a family of retriever rows is built from and gives back (`RowContext`,
`Rows`).

The bottom of the compare package: `comparison`, `build`, `families`, `tiger` and `item` import from here,
never from each other's privates. Importing it is light (no numpy/pandas/torch), so the CLI reads
`MODEL_KINDS` from here for its --help.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..core.config import check
from ..evaluate.model_ids import ModelIds

if TYPE_CHECKING:  # annotations only
    from ..embed import EmbedConfig
    from ..core.embedding_table import EmbeddingTable
    from ..evaluate.protocol import Retriever
    from ..retrieval.item.trainer import ItemRetrieverConfig
    from ..retrieval.tiger.trainer import RetrievalConfig

# The comparison's rows (issue 14): `rqvae` is collaborative whenever interactions are given
# (text-only without), `rqvae-text` always text only, `rqkmeans` text, `rqkmeans-cf` residual
# k-means on [text, alpha * CF]; the rest are the text-only baselines (compare/build.py).
MODEL_KINDS = ("rqvae", "rqvae-text", "vqvae", "vae", "ae", "rqkmeans", "rqkmeans-cf", "random")
# Rows that only exist with interactions (left out, with a report note, without them).
CF_ROWS = ("rqvae-text", "rqkmeans-cf")

__all__ = ["MODEL_KINDS", "CF_ROWS", "CompareConfig", "ModelIds", "RetrieverRows", "CompareOptions", "RowContext",
           "Rows", "progress_to_stderr"]


@dataclass(frozen=True)
class CompareConfig:
    """Knobs of a comparison; every model gets the same levels, codebook size, seed and epochs."""

    models: tuple[str, ...] = MODEL_KINDS
    levels: int = 3
    codebook_size: int = 256
    seed: int = 0
    epochs: int | None = None  # None: TrainConfig's default budget
    max_history: int = 20  # TIGER's history truncation
    neighbour_queries: int = 2000
    tune_users: int = 3000  # validation users sampled for tuning retriever knobs

    def __post_init__(self):
        unknown = sorted(set(self.models) - set(MODEL_KINDS))
        check(not unknown, f"unknown model(s) {unknown}; known: {list(MODEL_KINDS)}")
        check(len(self.models) > 0, "at least one model is needed")
        check(len(set(self.models)) == len(self.models), "models listed twice")
        check(self.levels >= 1 and self.codebook_size >= 2, "levels >= 1 and codebook_size >= 2 needed")
        check(self.epochs is None or self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.max_history >= 1, f"max_history must be >= 1, got {self.max_history}")
        check(self.neighbour_queries >= 1, f"neighbour_queries must be >= 1, got {self.neighbour_queries}")
        check(self.tune_users >= 0, f"tune_users must be >= 0, got {self.tune_users}")


# The compare's default SASRec budget: small, so a default-on row costs little on the CLI
# (stated in report.md); retrieve-train --retriever sasrec is the full-budget run.
SASREC_EPOCHS, SASREC_MAX_MINUTES = 10, 2.0


def default_sasrec() -> ItemRetrieverConfig:
    """The `sasrec` row's default: on, at the compare's small budget."""
    from ..retrieval.item.trainer import ItemRetrieverConfig

    return ItemRetrieverConfig(head="sasrec", max_epochs=SASREC_EPOCHS, max_minutes=SASREC_MAX_MINUTES)


@dataclass(frozen=True)
class RetrieverRows:
    """The trained-retriever rows of a comparison, one field per family (None: no such rows), in
    report order. Each family's rows need interactions; every config is seeded with the
    comparison's seed when its rows are built.

    tiger: the TIGER-style generative retriever over each ID model's IDs (`tiger/<model>` rows);
    sasrec: the item-ID SASRec row (on by default, at the compare's small budget; dropped without
    interactions); parallel: the parallel semantic-ID retriever over each ID model's IDs
    (`parallel/<model>` rows); hybrid: the hybrid retriever (codes as item features) over each ID
    model's IDs plus its no-codes ablation (`hybrid/<model>`, `hybrid/no-codes`). A new family is a field here plus its `Family` in
    `families.FAMILIES` (see `Rows`).
    """

    tiger: RetrievalConfig | None = None
    sasrec: ItemRetrieverConfig | None = field(default_factory=default_sasrec)
    parallel: ItemRetrieverConfig | None = None
    hybrid: ItemRetrieverConfig | None = None

    def asked(self) -> list[str]:
        """The families with rows, in report order."""
        return [name for name in self.__dataclass_fields__ if getattr(self, name) is not None]


@dataclass(frozen=True)
class CompareOptions:
    """Everything a comparison is given besides the catalog and the output folder.

    interactions: the interactions file (None: no next-item metrics, no collaborative or trained
    retriever rows); embeddings: an embeddings.parquet of the catalog to use instead of embedding
    it (rows in any order, every row a catalog item); embed: how to embed otherwise (None: the
    defaults); catalog_kwargs: `load_catalog` options when the catalog is given as a path;
    cold_items: share of the catalog held out of training and validation, in (0, 0.5) (adds
    cold_* metrics); command: the command line recorded in the report.
    """

    config: CompareConfig = field(default_factory=CompareConfig)
    interactions: Path | None = None
    embeddings: Path | None = None
    embed: EmbedConfig | None = None
    catalog_kwargs: Mapping[str, Any] = field(default_factory=dict)
    rows: RetrieverRows = field(default_factory=RetrieverRows)
    cold_items: float | None = None
    command: str = ""


@dataclass(frozen=True)
class RowContext:
    """What every family of retriever rows is built from: the built ID models, the comparison's
    embeddings (read once, rows in the models' codes order), its folder, knobs and progress line."""

    model_ids: Sequence[ModelIds]
    table: EmbeddingTable
    out_dir: Path
    cfg: CompareConfig
    progress: Callable[[str], None]


@dataclass(frozen=True)
class Rows:
    """One family's contribution: its retrievers (evaluated after the ID models, in this order),
    the report note explaining them and the config recorded under the family's name in
    comparison.json."""

    retrievers: list[Retriever]
    note: str
    config: dict[str, Any]


def progress_to_stderr(msg: str) -> None:
    """The default progress line of a comparison: `[compare] MSG` on stderr."""
    print(f"[compare] {msg}", file=sys.stderr, flush=True)
