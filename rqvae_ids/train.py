"""The one training loop for every tokenizer kind (nanoGPT-style: read it top to bottom).

train_model(embeddings_path, out_dir, cfg) -> report dict. Writes into out_dir:
model.safetensors + config.json (the Tokenizer, see models/base.py), optimizer.pt
(optimizer + RNG state for --resume, loaded with torch.load(weights_only=True)),
train_state.json, metrics.parquet (one row per epoch) and train_report.json.

Early stopping (patience > 0) ends training after `patience` epochs without a lower
held-out loss; the model is the one of the last epoch run (checkpoints every
`checkpoint_every` epochs and at the end serve --resume).

PCA init (pca_skip, the default): before anything else the linear encoder/decoder paths are
set to the PCA autoencoder of the `init_sample` items, the MLP branches start at zero.

Codebook init: before the first step the trained levels are fitted by residual k-means
on the encoder outputs of a sample of `init_sample` items (all of a 12k catalog), not
one batch: one batch of 1024 spread over 256 codes leaves ~4 points per code, so many
codes start on outliers and die. With `ae_warmup_epochs` > 0 the autoencoder first trains
on reconstruction alone and the codebooks are fitted to the warmed-up latents.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .config import check, from_dict, to_dict
from .errors import UserError
from .io import provenance, sha256_file, write_json_atomic, write_parquet_atomic
from .models.base import ModelConfig

OPTIMIZER, STATE, METRICS, REPORT = "optimizer.pt", "train_state.json", "metrics.parquet", "train_report.json"


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
        check(self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        check(0 <= self.ae_warmup_epochs <= max(self.epochs, 0), "ae_warmup_epochs must be in [0, epochs]")


def get_lr(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Cosine decay from cfg.lr to cfg.lr * min_lr_ratio (pure function of the step)."""
    if total_steps <= 1:
        return cfg.lr
    t = min(step / (total_steps - 1), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def code_stats(codes: np.ndarray, k: int) -> dict[str, Any]:
    """Utilisation / perplexity per level, and collisions of full tuples under their two names:
    `colliding_share` (share of items sharing their tuple with another item) and `duplicate_rate`
    (1 - distinct/items). The old keys stay one release as aliases: `collision_rate` (=
    colliding_share) and `distinct_collision_rate` (= duplicate_rate)."""
    from .metrics import colliding_share, duplicate_rate, perplexity, utilisation

    share, dup = colliding_share(codes), duplicate_rate(codes)
    return {"utilisation": utilisation(codes, k), "perplexity": perplexity(codes, k),
            "colliding_share": share, "duplicate_rate": dup,
            "collision_rate": share, "distinct_collision_rate": dup}


def train_model(embeddings_path, out_dir, cfg: TrainConfig | None = None, resume: bool = False,
                progress: bool = True) -> dict[str, Any]:
    """Train cfg.model.kind on the embeddings file; see the module docstring for outputs."""
    import torch

    from .models import build_model, load_model
    from .models.base import read_config, saved_model_config
    from .runtime import resolve_device, seed_everything
    from .embedding_table import check_finite, read_embeddings

    cfg = cfg or TrainConfig()
    t0 = time.perf_counter()
    out = Path(out_dir)
    # -- inputs: validate everything before writing anything -------------------------------
    table = read_embeddings(embeddings_path)
    check_finite(table.vectors, f"embeddings file {embeddings_path}")
    x_all = np.array(table.vectors, dtype=np.float32, order="C")  # writable copy for torch
    n = len(x_all)
    if n < 2:
        raise UserError(f"need at least 2 items to train, got {n}")
    data_sha = sha256_file(embeddings_path)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, input_dim=table.dim))
    device = resolve_device(cfg.device)
    if resume and not (out / STATE).is_file():
        raise UserError(f"--resume: no checkpoint in {out} ({STATE} missing)")

    seed_everything(cfg.seed)
    model = build_model(cfg.model)
    cfg = dataclasses.replace(cfg, model=model.cfg)  # rqkmeans pins latent_dim
    meta = {"embedding_model": table.model, "embedding_dim": table.dim, "data_sha256": data_sha,
            "train": to_dict(cfg), "items": n, "provenance": provenance()}
    model.meta = meta
    x = torch.from_numpy(x_all).to(device)
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(n)
    n_val = int(round(n * cfg.val_fraction)) if n >= 20 else 0
    val_idx, train_idx = torch.from_numpy(perm[:n_val]).to(device), torch.from_numpy(perm[n_val:]).to(device)
    k = cfg.model.codebook_size

    def finish(history: list[dict], epochs_run: int, step: int, kmeans_s: float = 0.0,
               loop_s: float = 0.0) -> dict[str, Any]:
        tk = time.perf_counter()
        model.fit_codebooks_(x, seed=cfg.seed)  # untrained levels: residual k-means on latents
        kmeans_s += time.perf_counter() - tk
        codes = model.encode_codes(x_all)
        report = {"kind": model.kind, "levels": model.levels, "codebook_size": k, "items": n,
                  **code_stats(codes, k), "seconds": round(time.perf_counter() - t0, 3),
                  "epochs": epochs_run, "steps": step, "kmeans_seconds": round(kmeans_s, 3),
                  "loop_seconds": round(loop_s, 3), "reseeded": model.quantizer.reseeded(),
                  "final_val_loss": history[-1]["val_loss"] if history else None, "device": device}
        model.save(out)
        write_metrics(out / METRICS, history, meta)
        write_json_atomic(out / REPORT, report)
        return report

    if not model.neural:  # rqkmeans: no gradient steps
        return finish([], 0, 0)

    # -- optimizer, resume -------------------------------------------------------------------
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adagrad":
        opt = torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order
    state = {"epoch": 0, "step": 0, "best_val": None, "bad_epochs": 0, "history": [], "codebooks_fitted": False}
    if resume:
        saved = read_config(out)
        if saved.get("data_sha256") != data_sha:
            raise UserError(f"--resume: {out} was trained on other data (sha256 differs from {embeddings_path})")
        try:
            same = saved_model_config(saved) == model.cfg
        except UserError:
            same = False
        if not same:
            raise UserError(f"--resume: model config in {out} differs from the requested one")
        model = load_model(out).to(device)
        model.meta = meta
        params = [p for p in model.parameters() if p.requires_grad]
        opt = type(opt)(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        try:
            ck = torch.load(out / OPTIMIZER, weights_only=True, map_location="cpu")
            opt.load_state_dict(ck["optimizer"])
            state = json.loads((out / STATE).read_text())
            gen.set_state(ck["gen_rng"])
            torch.set_rng_state(ck["torch_rng"])
        except Exception as e:  # corrupt/truncated file, wrong keys, unpicklable content
            raise UserError(f"--resume: corrupt checkpoint in {out}: {type(e).__name__}: {e}") from None
    model.to(device)

    def save_checkpoint() -> None:
        model.save(out)
        from .io import atomic_path
        with atomic_path(out / OPTIMIZER) as tmp:
            torch.save({"optimizer": opt.state_dict(), "gen_rng": gen.get_state(),
                        "torch_rng": torch.get_rng_state()}, tmp)
        write_json_atomic(out / STATE, state)

    @torch.no_grad()
    def val_loss() -> float:
        """Loss on the held-out items (eval mode: VAE mean, no codebook updates)."""
        if not n_val:
            return float("nan")
        model.eval()
        vl = float(model(x[val_idx], kl_weight=cfg.model.kl_weight, neighbours=val_nbrs,
                         quantize=state["codebooks_fitted"]).loss)
        model.train()
        return vl

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else contextlib.nullcontext()
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    kl_steps = max(cfg.kl_warmup_epochs * steps_per_epoch, 1)
    sample = torch.from_numpy(rng.permutation(n)[: cfg.init_sample]).to(device)
    nbrs = None
    if cfg.model.nbr_weight > 0:  # exact top-k cosine neighbours of every item (faiss, once)
        from .knn import exact_neighbours

        k_nbr = min(cfg.model.nbr_k, n - 1)
        nbrs = torch.from_numpy(exact_neighbours(x_all, np.arange(n), k_nbr)).to(device)
    # One fixed neighbour per held-out item, so early stopping sees the term being trained.
    val_nbrs = None
    if nbrs is not None and n_val:
        fixed = torch.randint(nbrs.shape[1], (n_val,), generator=torch.Generator().manual_seed(cfg.seed))
        val_nbrs = x[nbrs[val_idx, fixed.to(device)]]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs, initial=state["epoch"], desc=f"train {model.kind}", unit="epoch")

    # -- the loop ------------------------------------------------------------------------------
    if not resume:
        model.init_linear_(x[sample])  # pca_skip: start from the PCA autoencoder
    model.train()
    epoch, step = state["epoch"], state["step"]
    # loop_seconds: the epoch loop (steps, per-epoch validation, metrics, checkpoints; k-means
    # inside it excluded), summed over resumed invocations like epochs and steps.
    loop_base, kmeans_before = state.get("loop_seconds", 0.0), state.get("kmeans_seconds", 0.0)
    t_loop = time.perf_counter()
    while epoch < cfg.epochs:
        if not state["codebooks_fitted"] and epoch >= cfg.ae_warmup_epochs:
            tk = time.perf_counter()
            model.init_codebooks_(x[sample], seed=cfg.seed)
            state["kmeans_seconds"] = state.get("kmeans_seconds", 0.0) + time.perf_counter() - tk
            state["codebooks_fitted"] = True
            # The loss gains its quantization terms from here: a new phase for early stopping.
            state["best_val"], state["bad_epochs"] = None, 0
        use_levels = model.trained_levels if state["codebooks_fitted"] else 0
        reseeded0 = model.quantizer.reseeded()
        sums: dict[str, float] = {}
        epoch_codes = []  # codes the training batches got: per-epoch health at no extra cost
        batch_order = train_idx[torch.randperm(len(train_idx), generator=gen).to(device)]
        for s in range(0, len(batch_order), cfg.batch_size):
            idx = batch_order[s: s + cfg.batch_size]
            xb = x[idx]
            xn = None
            if nbrs is not None:
                pick = torch.randint(nbrs.shape[1], (len(idx),), generator=gen).to(device)
                xn = x[nbrs[idx, pick]]
            lr = get_lr(step, total_steps, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            kl_w = cfg.model.kl_weight * min(1.0, (step + 1) / kl_steps)
            with amp:
                out_ = model(xb, kl_weight=kl_w, neighbours=xn, quantize=bool(use_levels))
            loss = out_.loss
            if not torch.isfinite(loss):
                raise UserError(f"training diverged: non-finite loss ({float(loss.detach())}) at epoch {epoch + 1}, "
                                f"step {step + 1}; last good checkpoint left in {out}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            if out_.codes is not None:
                epoch_codes.append(out_.codes.detach())
            for name, v in {"loss": loss, **out_.parts}.items():
                sums[name] = sums.get(name, 0.0) + float(v.detach()) * len(xb)
        epoch += 1
        val = val_loss()
        codes = torch.cat(epoch_codes).cpu().numpy() if epoch_codes else None
        row = {"epoch": epoch, "step": step, "lr": lr, "val_loss": val,
               **{f"train_{k_}": v / len(train_idx) for k_, v in sums.items()},
               "seconds": time.perf_counter() - t0}
        row["reseeded"] = int(sum(model.quantizer.reseeded()) - sum(reseeded0))
        if codes is not None:
            st = code_stats(codes, k)
            for l, (u, p) in enumerate(zip(st["utilisation"], st["perplexity"])):
                row[f"utilisation_l{l}"], row[f"perplexity_l{l}"] = u, p
            row["collision_rate"] = st["collision_rate"] if codes.shape[1] == model.levels else float("nan")
        state["history"].append(row)
        improved = state["best_val"] is None or not n_val or val < state["best_val"]
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        if improved:
            state["best_val"] = val
        state["epoch"], state["step"] = epoch, step
        kmeans_here = state.get("kmeans_seconds", 0.0) - kmeans_before
        state["loop_seconds"] = loop_base + time.perf_counter() - t_loop - kmeans_here
        stop = bool(cfg.patience) and state["bad_epochs"] >= cfg.patience
        if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs or stop:
            save_checkpoint()
        if bar is not None:
            bar.update(1)
            post = {"loss": f"{row['train_loss']:.4f}"}
            if codes is not None:
                post["util"] = "/".join(f"{u:.2f}" for u in st["utilisation"])
            bar.set_postfix(post)
        if stop:
            break
    if bar is not None:
        bar.close()
    loop_s = state.get("loop_seconds", 0.0)
    if not state["codebooks_fitted"]:
        model.init_codebooks_(x[sample], seed=cfg.seed)
    return finish(state["history"], epoch, step, state.get("kmeans_seconds", 0.0), loop_s)


def unfinished_checkpoint(out_dir) -> dict[str, Any] | None:
    """train_state.json of a training in out_dir that did not finish (interrupted, or still running),
    else None: a checkpoint that no train_report.json of the same epoch and step closes."""
    out = Path(out_dir)
    try:
        state = json.loads((out / STATE).read_text())
    except (OSError, ValueError):
        return None
    try:
        report = json.loads((out / REPORT).read_text())
    except (OSError, ValueError):
        return state
    done = report.get("epochs") == state.get("epoch") and report.get("steps") == state.get("step")
    return None if done else state


def write_metrics(path: Path, history: list[dict], meta: dict) -> None:
    """metrics.parquet: one row per epoch; columns absent in some rows are null."""
    import pyarrow as pa

    cols: list[str] = []
    for row in history:
        cols += [c for c in row if c not in cols]
    arrays = {c: [row.get(c) for row in history] for c in cols}
    table = pa.table(arrays) if cols else pa.table({"epoch": pa.array([], pa.int64())})
    write_parquet_atomic(table, path, {"kind": meta.get("train", {}).get("model", {}).get("kind"),
                                       "data_sha256": meta.get("data_sha256")})


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
