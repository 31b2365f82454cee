"""`assign_ids`: embeddings + trained model -> unique, stable semantic IDs on disk.

Flow: validate inputs (model/embeddings match, finite, non-empty) -> chunked codes ->
carry previous IDs over -> collision check on the L-level tuples -> resolution
(suffix or reassign; uniqueness asserted) -> write every output atomically. Nothing is
written until all computation succeeded.

Outputs in `out_dir`: semantic_ids.parquet, tokens.txt, collisions.parquet,
collision_report.json, assign_report.json (report + config + provenance).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..core.errors import UserError
from ..core.io import prefetched, provenance, require_file, sha256_file, write_json_atomic, write_parquet_atomic
from ..core.embedding_table import EmbeddingTable, fill_vectors, iter_vectors, read_embeddings
from ..core.metrics import group_tuples
from .collisions import Groups, collision_report, collisions_table
from .encode import DEFAULT_CHUNK_SIZE, Encoded, LatentOracle, encode_chunked, encode_stream
from .balanced import resolve_balanced
from .lookup import MAX_POSITIONS, format_sids_arrow
from .resolve import Resolved, resolve_reassign, resolve_suffix
from .stability import carry_over, check_previous
from .table import read_semantic_ids, write_semantic_ids, write_tokens

RESOLVE_STRATEGIES = ("suffix", "reassign", "balanced")
WITH_SUFFIX = ("suffix", "balanced")  # strategies whose IDs carry the suffix token
_WEIGHT_SUFFIXES = (".safetensors", ".npz", ".pt", ".pth", ".npy", ".bin")


def read_model_config(model_dir: str | os.PathLike) -> dict[str, Any]:
    """config.json of a model directory, with the keys ID assignment relies on checked."""
    path = require_file(Path(model_dir) / "config.json", "model config")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in ("kind", "levels", "codebook_size", "embedding_model", "embedding_dim") if k not in cfg]
    if missing:
        raise UserError(f"{path}: missing key(s) {missing}")
    return cfg


def checkpoint_sha256(model_dir: str | os.PathLike) -> str:
    """sha256 of model.safetensors, else of the largest weights file, else of config.json."""
    d = Path(model_dir)
    main = d / "model.safetensors"
    if not main.is_file():
        weights = [p for p in d.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
                   and "optim" not in p.name]
        main = max(weights, key=lambda p: (p.stat().st_size, p.name)) if weights else d / "config.json"
    return sha256_file(main)


def check_match(cfg: dict[str, Any], table: EmbeddingTable, embeddings_path) -> None:
    """UserError unless the embeddings were made by the model the checkpoint was trained on."""
    if str(cfg["embedding_model"]) != table.model:
        raise UserError(
            f"model was trained on embeddings from {cfg['embedding_model']!r} but "
            f"{embeddings_path} holds {table.model!r} embeddings"
        )
    if int(cfg["embedding_dim"]) != table.dim:
        raise UserError(
            f"model expects {cfg['embedding_dim']}-d embeddings but {embeddings_path} holds {table.dim}-d"
        )


@dataclass
class Assignment:
    """Everything assign_ids writes, in memory. codes (N, L) int64, suffix (N,) int64, sids: (N,) pyarrow
    strings; raw_groups: group_tuples of raw_codes (None: grouped when written)."""

    item_ids: np.ndarray
    text_sha256: np.ndarray
    raw_codes: np.ndarray
    resolved: Resolved
    sids: Any
    metadata: dict[str, Any]
    report: dict[str, Any]
    raw_groups: Groups | None = None


def assign_table(model: Any, table: EmbeddingTable, *, resolve: str = "suffix", previous=None,
                 checkpoint: str = "", chunk_size: int = DEFAULT_CHUNK_SIZE,
                 inputs: np.ndarray | None = None, encoded: Encoded | None = None) -> Assignment:
    """Assign IDs to an in-memory embeddings table with a loaded Tokenizer (no files written).

    previous: a SemanticIds from the same checkpoint, or None. inputs: (N, d') float32 model
    inputs in table order when they are more than the text embedding (rqkmeans-cf: text ⊕ α·CF,
    see `model_inputs`); None: the table's vectors. encoded: `encode_chunked(model, vectors,
    chunk_size)` when the caller already ran it (assign_ids encodes while it reads); only
    without `previous`.
    """
    if encoded is not None and previous is not None:
        raise ValueError("encoded codes cover every item: not with previous IDs")
    vectors = table.vectors if inputs is None else inputs
    L, K = _code_budget(model)
    timings = {}
    t0 = time.perf_counter()
    held = held_codes = held_suffix = None
    stability = None
    if previous is not None:
        check_previous(previous, checkpoint_sha256=checkpoint, levels=L, codebook_size=K, resolve=resolve)
        carried = carry_over(previous, table.item_ids, table.text_sha256)
        held, held_codes, held_suffix, stability = carried.held, carried.codes, carried.suffix, carried.report
    codes = np.empty((len(table), L), dtype=np.int64)
    todo = np.arange(len(table)) if held is None else np.flatnonzero(~held)
    distance = np.full(len(table), np.nan, dtype=np.float32)  # NaN: not known from the encoding pass
    path = None
    if todo.size:
        enc = encoded if encoded is not None else encode_chunked(
            model, vectors if todo.size == len(table) else vectors[todo], chunk_size)
        codes[todo], path = enc.codes, enc.path
        if enc.distance is not None:
            distance[todo] = enc.distance
    if held is not None:
        codes[held] = held_codes[held]
    timings["encode_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    groups = group_tuples(codes, K)  # one grouping for the report, the resolution and collisions.parquet
    raw_report = collision_report(codes, K, groups)
    timings["collisions_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    oracle = LatentOracle(model, vectors, codes, chunk_size, distance)
    resolved = _resolve(resolve, codes, table, K, oracle, held, held_suffix, groups)
    columns = [resolved.codes[:, l] for l in range(L)] + ([resolved.suffix] if resolve in WITH_SUFFIX else [])
    timings["resolve_s"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    sids = format_sids_arrow(columns)
    timings["format_s"] = time.perf_counter() - t3

    metadata = {
        "kind": str(model.kind),
        "checkpoint_sha256": checkpoint,
        "levels": L,
        "codebook_size": K,
        "resolve": resolve,
        "suffix_token": resolve in WITH_SUFFIX,
        "suffix_size": K if resolve in WITH_SUFFIX else 0,
        "embedding_model": table.model,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "provenance": provenance(),
    }
    report = {
        "items": int(len(table)),
        "kind": str(model.kind),
        "checkpoint_sha256": checkpoint,
        "levels": L,
        "codebook_size": K,
        "resolve": resolve,
        "id_length": L + 1 if resolve in WITH_SUFFIX else L,
        "encode_path": path,
        "collisions": raw_report,
        "resolution": {**resolved.report, "duplicates_after": 0},
        "stability": stability,
        "timings": timings,
    }
    return Assignment(table.item_ids, table.text_sha256, codes, resolved, sids, metadata, report, groups)


def _code_budget(model: Any) -> tuple[int, int]:
    """(levels, codebook_size) of `model`, UserError when the output tables cannot hold them."""
    L, K = int(model.levels), int(model.codebook_size)
    if K > 65536:
        raise UserError(f"codebook_size {K} does not fit the uint16 code columns")
    if L + 1 > MAX_POSITIONS:
        raise UserError(f"{L} levels: SID tokens are lettered a..z, so at most {MAX_POSITIONS - 1} levels")
    return L, K


def _resolve(resolve: str, codes, table: EmbeddingTable, K: int, oracle, held, held_suffix, groups) -> Resolved:
    """Unique IDs from the raw codes by the chosen strategy (held items keep theirs)."""
    if resolve == "suffix":
        return resolve_suffix(codes, table.item_ids, K, oracle, held, held_suffix, groups)
    if resolve == "balanced":
        return resolve_balanced(codes, table.item_ids, table.text_sha256, K, oracle, held, held_suffix)
    return resolve_reassign(codes, table.item_ids, K, oracle, held)


def write_assignment(a: Assignment, out_dir: str | os.PathLike, config: dict[str, Any] | None = None) -> dict[str, str]:
    """Write every output of `a` atomically into out_dir; returns name -> path."""
    out = Path(out_dir)
    L, K = a.metadata["levels"], a.metadata["codebook_size"]
    paths = {name: str(out / name) for name in (
        "semantic_ids.parquet", "tokens.txt", "collisions.parquet", "collision_report.json", "assign_report.json")}
    item_ids = pa.array(np.asarray(a.item_ids, dtype=object), type=pa.string())  # once for both tables
    write_semantic_ids(paths["semantic_ids.parquet"], item_ids, a.resolved.codes, a.resolved.suffix,
                       a.sids, a.text_sha256, a.metadata)
    write_tokens(paths["tokens.txt"], L, K, a.metadata["suffix_size"])
    write_parquet_atomic(collisions_table(a.raw_codes, item_ids, K, a.raw_groups), paths["collisions.parquet"],
                         {k: a.metadata[k] for k in ("kind", "checkpoint_sha256", "levels", "codebook_size", "created_at")})
    write_json_atomic(paths["collision_report.json"], a.report["collisions"])
    write_json_atomic(paths["assign_report.json"], {
        **a.report, "outputs": paths, "config": config or {}, "provenance": a.metadata["provenance"]})
    return paths


def assign_ids(model_dir: str | os.PathLike, embeddings_path: str | os.PathLike, out_dir: str | os.PathLike,
               resolve: str = "suffix", previous: str | os.PathLike | None = None,
               chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, Any]:
    """Assign semantic IDs to every item of `embeddings_path` with the model in `model_dir`.

    resolve: "suffix" (L+1 tokens), "reassign" (L tokens) or "balanced" (L+1 tokens,
    suffix > 0 only within identical texts). previous: a
    semantic_ids.parquet from the same checkpoint whose unchanged items keep their IDs.
    Returns the report (also written to out_dir/assign_report.json). Bad input -> UserError,
    nothing written.
    """
    if resolve not in RESOLVE_STRATEGIES:
        raise UserError(f"resolve must be one of {list(RESOLVE_STRATEGIES)}, got {resolve!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise UserError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not Path(model_dir).is_dir():
        kind = "is a file, not a directory" if Path(model_dir).exists() else "not found"
        raise UserError(f"model directory {kind}: {model_dir}")
    cfg = read_model_config(model_dir)
    require_file(embeddings_path, "embeddings file")
    prev = read_semantic_ids(previous) if previous is not None else None
    table = read_embeddings(embeddings_path, with_vectors=False)  # vectors: read below
    check_match(cfg, table, embeddings_path)
    if len(table) == 0:
        raise UserError(f"{embeddings_path} holds no items: nothing to assign")
    import pandas as pd  # here, not at the top: the CLI reads ids.encode's chunk size for --help

    if not pd.Index(table.item_ids).is_unique:
        raise UserError(f"{embeddings_path} has duplicate item_id values")
    model = _load_model(model_dir)
    t = time.perf_counter()
    # reassign and balanced re-encode colliding items from their embeddings: those keep them
    encoded = _read_vectors(model, embeddings_path, table, chunk_size, encode=prev is None,
                            keep=resolve != "suffix")
    read_s = time.perf_counter() - t
    inputs, cf_report = model_inputs(model, model_dir, cfg, table)
    a = assign_table(model, table, resolve=resolve, previous=prev,
                     checkpoint=checkpoint_sha256(model_dir), chunk_size=chunk_size, inputs=inputs,
                     encoded=encoded)
    # encoded while read: the encoder's time is in read_and_encode_s, not in encode_s
    a.report["timings"]["read_s" if encoded is None else "read_and_encode_s"] = read_s
    config = {"model_dir": os.fspath(model_dir), "embeddings": os.fspath(embeddings_path),
              "out_dir": os.fspath(out_dir), "resolve": resolve,
              "previous": os.fspath(previous) if previous is not None else None, "chunk_size": chunk_size}
    return _write(a, cf_report, out_dir, config)


def assign_ids_from_table(model_dir: str | os.PathLike, table: EmbeddingTable, out_dir: str | os.PathLike, *,
                          resolve: str = "suffix", cf=None, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """`assign_ids` for embeddings already in memory (a comparison reads its file once for every
    model): the same outputs, encoded from `table.vectors`. cf: the CFTable (rows in table order) a
    CF-reading tokenizer (rqkmeans-cf) encodes with, as `inputs_with_cf`; None: `model_inputs`
    (model_dir/cf_embeddings.parquet, as assign_ids). config: recorded in assign_report.json."""
    cfg = read_model_config(model_dir)
    check_match(cfg, table, "the embeddings table")
    model = _load_model(model_dir)
    inputs, cf_report = model_inputs(model, model_dir, cfg, table) if cf is None else inputs_with_cf(model, table, cf)
    a = assign_table(model, table, resolve=resolve, checkpoint=checkpoint_sha256(model_dir), inputs=inputs)
    return _write(a, cf_report, out_dir, config)


def _write(a: Assignment, cf_report: dict[str, Any] | None, out_dir, config: dict[str, Any] | None) -> dict[str, Any]:
    """Write `a` (with its CF report, if any) into out_dir; returns the report."""
    if cf_report is not None:
        a.report["cf"] = cf_report
    a.report["outputs"] = write_assignment(a, out_dir, config)
    return a.report


def _read_vectors(model: Any, path, table: EmbeddingTable, chunk_size: int, encode: bool,
                  keep: bool = True) -> Encoded | None:
    """Read the embeddings (NaN/inf: UserError). When every item is encoded from its text
    embedding (`encode`, and not a CF-reading tokenizer), encode them as they are read (a
    background thread decodes the next batches, Arrow releases the GIL; the codes are
    `encode_chunked`'s) and keep them in `table.vectors` only when `keep` (a later step
    re-encodes some items) or when the encoder gives no distances; else `table.vectors` is
    None. Otherwise read them into `table.vectors` and return None."""
    what = f"embeddings {path}"
    if not encode or getattr(model, "reads_cf", False):
        for _ in fill_vectors(path, table.vectors, chunk_size, what=what):
            pass
        return None
    # Streamed through: no (N, d) matrix to fault in and fill (for 200k x 384, 300 MB whose
    # first touch cost 0.5-1 s of kernel time per command on 2 cores, bench/RESULTS.md issue 15),
    # and memory stays a few chunks whatever the catalog size.
    blocks = prefetched(iter_vectors(path, chunk_size, what), depth=2)
    encoded = encode_stream(model, blocks, len(table), chunk_size, keep=keep)
    table.vectors = encoded.vectors
    return encoded


def model_inputs(model: Any, model_dir, cfg: dict[str, Any], table: EmbeddingTable):
    """(inputs for assign_table or None, CF report or None). A tokenizer that reads CF embeddings
    besides text (`reads_cf`: rqkmeans-cf, and rqvae trained with CF since issue 25) gets those it
    was trained with, from `model_dir/cf_embeddings.parquet` (written there by `train --interactions`
    and the pipeline): items that have one are encoded from text ⊕ α·CF, the others (new since
    training) from their text and the model's cold CF part (config.json `inputs`). Every other
    kind reads text only."""
    from ..core.cf_table import CF_FILE, cf_for_items

    if not getattr(model, "reads_cf", False):
        return None, None
    path = Path(model_dir) / CF_FILE
    if not path.is_file():
        return None, {"items_with_cf": 0, "items_text_only": len(table),
                      "note": f"no {CF_FILE} beside the model: every item encoded from its text alone"}
    cf = cf_for_items(path, table.item_ids)
    trained_on = (cfg.get("cf") or {}).get("interactions_sha256")
    if trained_on is not None and cf.metadata.get("interactions_sha256") != trained_on:
        raise UserError(f"{path}: not the CF embeddings {model_dir} was trained with (interactions hash differs)")
    return inputs_with_cf(model, table, cf)


def inputs_with_cf(model: Any, table: EmbeddingTable, cf) -> tuple[np.ndarray, dict[str, Any]]:
    """(inputs, CF report) of a CF-reading tokenizer: text ⊕ α·CF for the items of the CFTable `cf`
    (rows in table order) that have a CF embedding, text alone for the others; (None, None) for a
    model that reads text only."""
    if not getattr(model, "reads_cf", False):
        return None, None
    with_cf = int(cf.has.sum())
    report = {"items_with_cf": with_cf, "items_text_only": len(table) - with_cf}
    if "items_gone" in cf.metadata:  # cf_for_items: CF rows of items no longer in the catalog
        report["cf_items_gone"] = cf.metadata["items_gone"]
    return model.cf_inputs(table.vectors, cf.vectors, cf.has), report


def _load_model(model_dir):
    # imported here: the models package pulls in torch, and tests swap this for a fake
    from ..models import load_model

    return load_model(model_dir)
