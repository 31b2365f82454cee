"""The training inputs: the embeddings read and sampled, the CF embeddings cut to the sample, and
everything put on the device (`Data`: held-out split, k-means sample, neighbour tables)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..core.errors import UserError
from ..core.io import sha256_file
from .config import TrainConfig
from .files import STATE

@dataclass
class Data:
    """The training inputs on the device: all items, the held-out split, the k-means sample and
    (neighbour term only) each item's exact top-k neighbours plus one fixed one per held-out item."""

    x_all: np.ndarray  # (N, d) float32, catalog order
    x: Any  # torch (N, d)
    train_idx: Any
    val_idx: Any
    sample: Any  # items whose PCA / latents initialise the linear paths and codebooks
    device: str = "cpu"
    nbrs: Any = None  # (N, k) neighbour indices
    val_nbrs: Any = None  # (n_val, d) embeddings of the held-out items' fixed neighbours
    cf: Any = None  # (N, c) CF embeddings (zero rows where missing), collaborative term only
    cf_has: Any = None  # (N,) bool: the item has a CF embedding

    def cf_kwargs(self, idx) -> dict[str, Any]:
        """The model's CF arguments for the items idx ({} when training text-only)."""
        return {} if self.cf is None else {"cf": self.cf[idx], "cf_mask": self.cf_has[idx]}


class Inputs(NamedTuple):
    """What training keeps of the embeddings file besides the training vectors."""

    model: str  # embedding model name
    dim: int
    items: int  # items in the file
    rows: np.ndarray | None  # the sampled rows (sorted), None when training on every item


def read_inputs(embeddings_path, out: Path, resume: bool, cfg: TrainConfig, table=None):
    """(x (n, d) float32 writable: every item, or the `max_items` sample; Inputs; the file's sha256),
    refusing bad input; `table`: the embeddings already read (else read here). Only the sample is
    copied: at 1M items the full matrix is 1.5 GB."""
    from ..core.embedding_table import check_finite, read_embeddings

    table = read_embeddings(embeddings_path) if table is None else table
    check_finite(table.vectors, f"embeddings file {embeddings_path}")
    rows = sample_rows(len(table.vectors), cfg.max_items, cfg.seed)
    x_all = np.array(table.vectors if rows is None else table.vectors[rows], dtype=np.float32, order="C")
    if len(x_all) < 2:
        raise UserError(f"need at least 2 items to train, got {len(x_all)}")
    if resume and not (out / STATE).is_file():
        raise UserError(f"--resume: no checkpoint in {out} ({STATE} missing)")
    inputs = Inputs(table.model, int(table.vectors.shape[1]), len(table.vectors), rows)
    return x_all, inputs, sha256_file(embeddings_path)


def resumed_kind(cfg: TrainConfig, out: Path) -> TrainConfig:
    """--resume continues the checkpoint's own kind: `auto` (no kind asked for) takes it from
    OUT/config.json, so a plain `--resume` never fits another kind over an unfinished training; a
    kind fitted by k-means in one step has no training to resume."""
    from ..models.base import read_config, saved_model_config
    from ..models.kinds import AUTO, FITTED

    kind = cfg.model.kind
    if kind == AUTO:
        kind = saved_model_config(read_config(out), where=f"{out}/config.json: model").kind
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind=kind))
    if kind in FITTED:
        raise UserError(f"--resume: {kind} is fitted by k-means in one step, there is no training to resume "
                        "(rerun without --resume)")
    return cfg


def sample_rows(n: int, max_items: int, seed: int) -> np.ndarray | None:
    """Sorted seeded sample of `max_items` of n rows, or None when all n are used (max_items 0 or >= n).
    Its own RNG stream: a catalog under the cap trains exactly as before the cap existed."""
    if not max_items or n <= max_items:
        return None
    return np.sort(np.random.default_rng([seed, 27]).choice(n, size=max_items, replace=False))


def with_cf(cfg: TrainConfig, cf, n: int, rows: np.ndarray | None = None):
    """(cfg with model.kind resolved and model.cf_dim set, cf) when the kind learns from CF embeddings,
    else (cfg with model.kind resolved, None): the neural kinds add the InfoNCE term, rqkmeans-cf
    needs them, rqkmeans ignores them; `auto` is rqkmeans-cf with cf, rqkmeans without.
    n: items in the embeddings file; rows: the training sample (cf is cut to it)."""
    from ..models import MODELS, resolve_kind

    kind = resolve_kind(cfg.model.kind, cf is not None)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind=kind))
    if kind == "rqkmeans-cf" and cf is None:
        raise UserError("rqkmeans-cf needs CF embeddings: give the interactions (--interactions FILE)")
    if cf is None or kind not in MODELS or (kind != "rqkmeans-cf" and not MODELS[kind].neural):
        return cfg, None
    if len(cf.vectors) != n:
        raise UserError(f"CF embeddings cover {len(cf.vectors)} items, the embeddings file {n}: another catalog")
    if not cf.has.any():
        raise UserError("no item has a CF embedding: no collaborative signal to train on")
    if rows is not None:
        cf = dataclasses.replace(cf, vectors=cf.vectors[rows], has=cf.has[rows])
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, cf_dim=cf.dim)), cf


def cf_meta(cf) -> dict[str, Any]:
    """What config.json records about the collaborative signal."""
    if cf is None:
        return {"used": False}
    keys = ("interactions_sha256", "catalog_sha256", "items_with_cf", "items_total", "cf", "interactions")
    return {"used": True, **{k: cf.metadata.get(k) for k in keys}}


def prepare_data(x_all: np.ndarray, cfg: TrainConfig, device: str, neural: bool, cf=None) -> Data:
    """Seeded held-out split and k-means sample (in this order from one numpy RNG), the
    neighbour tables when the neighbour term is on, the CF embeddings when given."""
    import torch

    n = len(x_all)
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(n)
    n_val = int(round(n * cfg.val_fraction)) if n >= 20 else 0
    sample = rng.permutation(n)[: cfg.init_sample]
    data = Data(x_all, torch.from_numpy(x_all).to(device), torch.from_numpy(perm[n_val:]).to(device),
                torch.from_numpy(perm[:n_val]).to(device), torch.from_numpy(sample).to(device), device)
    if neural and cfg.model.nbr_weight > 0:
        add_neighbours(data, cfg, device, cf)
    if cf is not None and cfg.model.cf_weight > 0:
        data.cf = torch.from_numpy(np.ascontiguousarray(cf.vectors, np.float32)).to(device)
        data.cf_has = torch.from_numpy(np.asarray(cf.has, bool)).to(device)
    return data


def add_neighbours(data: Data, cfg: TrainConfig, device: str, cf=None) -> None:
    """Exact top-k cosine neighbours of every item (faiss, once), and one fixed neighbour per
    held-out item, so early stopping sees the term being trained. nbr_source "cf": neighbours
    in the CF embeddings (co-consumed items); an item without one is its own neighbour (no pull)."""
    import torch

    from ..core.knn import exact_neighbours

    n = len(data.x_all)
    k_nbr = min(cfg.model.nbr_k, n - 1)
    by_cf = cfg.model.nbr_source == "cf" and cf is not None
    nbrs = exact_neighbours(cf.vectors if by_cf else data.x_all, np.arange(n), k_nbr)
    if by_cf:
        nbrs[~cf.has] = np.flatnonzero(~cf.has)[:, None]
    data.nbrs = torch.from_numpy(nbrs).to(device)
    n_val = len(data.val_idx)
    if n_val:
        fixed = torch.randint(data.nbrs.shape[1], (n_val,), generator=torch.Generator().manual_seed(cfg.seed))
        data.val_nbrs = data.x[data.nbrs[data.val_idx, fixed.to(device)]]
