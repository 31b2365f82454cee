"""The train stage: one training loop for every tokenizer kind (`loop.train_model`).

`config` (TrainConfig, the flat key=value view) -> `inputs` (embeddings and CF embeddings read,
sampled and put on the device) -> `loop` (the loop, read top to bottom) -> `files` (what it writes
beside the model; `unfinished_checkpoint`).
"""

from .config import ITEMS_PER_CODE, TrainConfig, config_from_args, flat_keys, small_catalog_warning
from .files import unfinished_checkpoint
from .inputs import cf_meta
from .loop import train_model

__all__ = ["TrainConfig", "config_from_args", "flat_keys", "small_catalog_warning", "ITEMS_PER_CODE",
           "unfinished_checkpoint", "cf_meta", "train_model"]
