"""Tokenizer models, chosen by name from the `MODELS` registry; `load_model(dir)` reads one back.

`KINDS`, the registry's names, with `AUTO` and `resolve_kind` (the default kind), is importable
without torch, so the CLI offers them in --help without loading any model; every other name
(`MODELS`, `ModelConfig`, `build_model`, `load_model`, the model classes, ...) comes from
`registry.py`, loaded with torch on first use.
"""

from __future__ import annotations

from typing import Any

from .kinds import AUTO, KINDS, resolve_kind
_FROM_REGISTRY = ("MODELS", "ModelConfig", "ModelOutput", "Tokenizer", "build_model", "load_model", "fit_rqkmeans",
                  "fit_opq", "RQVAE", "VQVAE", "VAE", "AE", "RQKMeans", "RQKMeansCF", "OPQ", "WEIGHTS", "CONFIG")
__all__ = ["AUTO", "KINDS", "resolve_kind", *_FROM_REGISTRY]


def __getattr__(name: str) -> Any:
    """`rqvae_ids.models.load_model` and the other registry names, imported on first use (PEP 562)."""
    if name in _FROM_REGISTRY:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
