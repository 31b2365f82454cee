"""EmbedConfig: how the embed stage turns item text into vectors (model, batch, device, cache, backend)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import check
from . import backends


@dataclass(frozen=True)
class EmbedConfig:
    """How to embed item text.

    model: None (the bundled all-MiniLM-L6-v2) or a local sentence-transformers directory.
    cache: cache Parquet path; None -> OUT/embedding_cache.parquet beside the outputs.
    progress: tqdm bar over texts; None -> only when stderr is a terminal.
    backend: torch, onnx, onnx-int8, openvino, openvino-bf16 or openvino-int8 (backends.py).
    min_cosine: the accuracy guard's threshold: a non-torch backend whose minimum cosine
      to torch vectors on a sample of the catalog is lower is refused.
    model_cache: folder of exported models; None -> $RQVAE_IDS_MODEL_CACHE or ~/.cache/rqvae-ids/models.
    """

    model: str | None = None
    batch_size: int = 64
    device: str = "auto"
    cache: str | None = None
    progress: bool | None = None
    backend: str = backends.DEFAULT_BACKEND
    min_cosine: float = 0.98
    model_cache: str | None = None

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        backends.check_backend(self.backend)
        check(0.0 < self.min_cosine <= 1.0, f"min_cosine must lie in (0, 1], got {self.min_cosine}")

