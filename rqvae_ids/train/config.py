"""TrainConfig, the train stage's typed config, and the flat key=value view the CLI and tune scripts use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..core.config import check, from_dict
from ..core.errors import UserError
from ..models.base import ModelConfig

@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 100
    batch_size: int = 1024
    optimizer: Literal["adamw", "adagrad"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio over the epochs
    grad_clip: float = 1.0  # 0 disables
    val_fraction: float = 0.05  # held-out items for early stopping
    patience: int = 10  # stop after this many epochs without a better val loss (0: never)
    checkpoint_every: int = 5  # epochs between checkpoints (the last epoch is always saved)
    init_sample: int = 20000  # items whose encoder outputs seed the codebooks by k-means
    # Train on a seeded sample of at most this many items (0: all); every item is still assigned.
    # A cost bound: training stops growing with N. Not quality-neutral: on Amazon Toys a 50 % sample
    # (6,000 items) matched the full-catalog model only when given as many steps, and 10-25 %
    # samples stayed below it (bench/RESULTS.md, "Training sample cap"); 100k is ~16x that 6,000.
    max_items: int = 100_000
    ae_warmup_epochs: int = 0  # reconstruction-only epochs before the codebooks are fitted
    kl_warmup_epochs: int = 10  # VAE: KL weight rises linearly to model.kl_weight
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        check(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(0.0 <= self.val_fraction < 0.5, f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        check(self.patience >= 0 and self.init_sample >= 1, "patience must be >= 0, init_sample >= 1")
        check(self.max_items >= 0, f"max_items must be >= 0 (0: every item), got {self.max_items}")
        check(self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        check(0 <= self.ae_warmup_epochs <= max(self.epochs, 0), "ae_warmup_epochs must be in [0, epochs]")


def flat_keys() -> list[str]:
    """Every key `config_from_args` accepts: the TrainConfig fields (but the nested `model`)
    and the ModelConfig fields, sorted."""
    return sorted((set(TrainConfig.__dataclass_fields__) - {"model"}) | set(ModelConfig.__dataclass_fields__))


# Fewer items than this many per code and most codes of a level stay unused (301 items with
# K = 256 used 2.7 % of one level's codes): worth a warning.
ITEMS_PER_CODE = 4


def small_catalog_warning(items: int, codebook_size: int, flag: str = "--codebook-size") -> str | None:
    """One line when `items` is small for K codes per level (items < ITEMS_PER_CODE * K), else None;
    suggests the largest power-of-two K that leaves ITEMS_PER_CODE items per code."""
    if items >= ITEMS_PER_CODE * codebook_size:
        return None
    k = 2 ** max(1, int(math.log2(max(items // ITEMS_PER_CODE, 2))))
    if k >= codebook_size:  # already as small as it gets
        return None
    return (f"warning: {items} items for {codebook_size} codes per level (fewer than {ITEMS_PER_CODE} items per "
            f"code): most codes will stay unused; try {flag}{'' if flag.endswith('=') else ' '}{k}")


def config_from_args(**overrides) -> TrainConfig:
    """TrainConfig from flat overrides (model keys go to the nested ModelConfig)."""
    unknown = sorted(set(overrides) - set(flat_keys()))
    if unknown:
        raise UserError(f"unknown key(s) {unknown}; known: {flat_keys()}")
    model_keys = set(ModelConfig.__dataclass_fields__)
    model = {k: v for k, v in overrides.items() if k in model_keys and v is not None}
    train = {k: v for k, v in overrides.items() if k not in model_keys and v is not None}
    return from_dict(TrainConfig, {**train, "model": model})
