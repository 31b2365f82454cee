"""One model's IDs as the evaluation measures them (`ModelIds`), and `read_model_ids`: a trained
model folder and its semantic_ids.parquet read back into one.

The pipeline's evaluate stage and every row of a comparison read their IDs this one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # annotations only: importing this module stays light (the CLI lists the rows)
    import numpy as np
    import pandas as pd


@dataclass
class ModelIds:
    """One model's IDs in embeddings row order.

    codes: (N, L) int64 raw codes; suffix: (N,) int64 collision suffix or None;
    recon: (N, d) float32 reconstruction of the embeddings or None (random IDs);
    losses: per-epoch training metrics frame or None; seconds: time to build; info: what the
    builder knows besides (read_model_ids: the model's kind, levels, codebook_size; a comparison:
    whether the model was reused).
    """

    name: str
    codes: np.ndarray
    suffix: np.ndarray | None = None
    recon: np.ndarray | None = None
    losses: pd.DataFrame | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def read_model_ids(model_dir: str | Path, semantic_ids: str | Path, item_ids: Sequence[str], *,
                   name: str | None = None, where: str = "") -> ModelIds:
    """The IDs of `semantic_ids` (codes and suffix in `item_ids` order), the model's reconstruction of
    them (its `decode_codes`: rqkmeans-cf decodes the text part) and its per-epoch metrics.parquet
    (None if it wrote none); info: the model's kind, levels and codebook_size. name: the row name
    (None: the model's kind); where: names the IDs in the error when an item of `item_ids` has none."""
    import numpy as np
    import pandas as pd

    from ..ids import read_semantic_ids
    from ..models import load_model

    codes, suffix = read_semantic_ids(semantic_ids).codes_in_order(item_ids, where=where or str(semantic_ids))
    model = load_model(model_dir)
    recon = decode_chunked(model, codes)
    metrics = Path(model_dir) / "metrics.parquet"
    losses = pd.read_parquet(metrics) if metrics.is_file() else None
    info = {"kind": model.kind, "levels": int(model.levels), "codebook_size": int(model.codebook_size)}
    return ModelIds(name or model.kind, codes, suffix, recon, losses, info=info)


def decode_chunked(model, codes, chunk: int = 65_536):
    """(N, d) float32 reconstructions of `codes`, decoded a block at a time (the decoder's hidden
    layers for all of a 1M-item catalog at once would be 2 GB); the same values as one call.
    Written into one preallocated array: a list of blocks and their concatenation held two."""
    import numpy as np

    if len(codes) == 0:
        return np.asarray(model.decode_codes(codes), dtype=np.float32)
    first = np.asarray(model.decode_codes(codes[:chunk]), dtype=np.float32)
    out = np.empty((len(codes), first.shape[1]), dtype=np.float32)
    out[: len(first)] = first
    for s in range(chunk, len(codes), chunk):
        out[s:s + chunk] = model.decode_codes(codes[s:s + chunk])
    return out
