"""The tokenizer registry: `MODELS` (kind -> class, in `KINDS` order), `build_model(cfg)`, and
`load_model(dir)` reading a saved one back. Reached as `rqvae_ids.models.<name>` (the package
loads this module, and torch, on first use)."""

from __future__ import annotations

from pathlib import Path

from .kinds import AUTO, KINDS
from .ae import AE
from .base import CONFIG, WEIGHTS, ModelConfig, ModelOutput, Tokenizer, load_state, read_config, saved_model_config
from .opq import OPQ, fit_opq
from .rqkmeans import RQKMeans, fit_rqkmeans
from .rqkmeans_cf import RQKMeansCF
from .rqvae import RQVAE
from .vae import VAE
from .vqvae import VQVAE

MODELS: dict[str, type[Tokenizer]] = {m.kind: m for m in (RQVAE, VQVAE, VAE, AE, RQKMeans, RQKMeansCF, OPQ)}
assert tuple(MODELS) == KINDS, "models.KINDS lists the registry's kinds, in its order"


def build_model(cfg: ModelConfig) -> Tokenizer:
    """A fresh (untrained) tokenizer of kind cfg.kind."""
    from ..core.errors import UserError

    if cfg.kind == AUTO:
        raise UserError("model kind 'auto' is chosen when training starts (models.resolve_kind: rqkmeans-cf "
                        "with CF embeddings, rqkmeans without); build a named kind")
    if cfg.kind not in MODELS:
        raise UserError(f"unknown model kind {cfg.kind!r}; choose from {sorted(MODELS)}")
    return MODELS[cfg.kind](cfg)


def load_model(model_dir: str | Path) -> Tokenizer:
    """Read a model directory (config.json + model.safetensors) into a Tokenizer in eval mode.

    Corrupt or mismatched files raise UserError. Never unpickles anything.
    """
    meta = read_config(model_dir)
    cfg = saved_model_config(meta, where=f"{Path(model_dir) / CONFIG}: model")
    model = build_model(cfg)
    load_state(model, Path(model_dir) / WEIGHTS)
    model.meta = {k: meta.get(k) for k in ("embedding_model", "embedding_dim", "data_sha256", "train", "cf")}
    return model.eval()


__all__ = ["MODELS", "ModelConfig", "ModelOutput", "Tokenizer", "build_model", "load_model", "fit_rqkmeans", "fit_opq",
           "RQVAE", "VQVAE", "VAE", "AE", "RQKMeans", "RQKMeansCF", "OPQ", "WEIGHTS", "CONFIG"]
