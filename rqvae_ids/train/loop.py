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

Layout: `train_model` is the whole story (inputs -> model -> optimizer/resume -> epochs ->
finish); each named step below it is a small function over a `Run` (what the steps share)
and its `LoopState` (what --resume restores); the inputs are read and put on the device by
`inputs.py`, the files beside the model are named in `files.py`. Seeded CPU runs repeat bit for
bit on one machine (tests/test_train_cases.py); bench/bit_identity.py checks a refactor keeps them so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..core.config import to_dict
from ..core.errors import UserError
from ..core.io import provenance, write_json_atomic
from .config import TrainConfig
from .files import METRICS, OPTIMIZER, REPORT, STATE, write_metrics
from .inputs import Data, cf_meta, prepare_data, read_inputs, resumed_kind, with_cf


def get_lr(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Cosine decay from cfg.lr to cfg.lr * min_lr_ratio (pure function of the step)."""
    if total_steps <= 1:
        return cfg.lr
    t = min(step / (total_steps - 1), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def code_stats(codes: np.ndarray, k: int) -> dict[str, Any]:
    """Utilisation / perplexity per level, and the collisions of full tuples: `colliding_share`
    (share of items sharing their tuple with another item) and `duplicate_rate` (1 - distinct/items),
    both from `metrics.duplicate_and_colliding`. (Reports written before issue 26 called colliding_share
    `collision_rate` and duplicate_rate `distinct_collision_rate`.)"""
    from ..core.metrics import duplicate_and_colliding, perplexity, tuple_group_ids, utilisation

    dup, share = duplicate_and_colliding(tuple_group_ids(codes)[1])
    return {"utilisation": utilisation(codes, k), "perplexity": perplexity(codes, k),
            "colliding_share": share, "duplicate_rate": dup}


@dataclass
class LoopState:
    """Where the loop stands: everything --resume needs besides weights, optimizer and RNG
    (saved as train_state.json; older files without the timing keys load with zeros)."""

    epoch: int = 0
    step: int = 0
    best_val: float | None = None  # lowest held-out loss of the current phase
    bad_epochs: int = 0  # epochs since best_val improved
    history: list[dict] = field(default_factory=list)  # one metrics row per epoch
    codebooks_fitted: bool = False  # the trained levels got their k-means init
    kmeans_seconds: float = 0.0
    loop_seconds: float = 0.0  # epoch loop without k-means, summed over resumed invocations

    @classmethod
    def from_dict(cls, saved: dict) -> "LoopState":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


@dataclass
class Run:
    """What every step of one training run shares (fixed for the run, but `state`)."""

    model: Any
    opt: Any
    gen: Any  # torch.Generator: batch order and neighbour picks
    data: Data
    cfg: TrainConfig
    out: Path
    state: LoopState
    t0: float
    amp: Any = contextlib.nullcontext()

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train_idx) / self.cfg.batch_size)


def train_model(embeddings_path, out_dir, cfg: TrainConfig | None = None, resume: bool = False,
                progress: bool = True, cf=None, table=None) -> dict[str, Any]:
    """Train cfg.model.kind on the embeddings file; see the module docstring for outputs.
    cf: a cf.CFTable aligned with the embeddings (collaborative term / rqkmeans-cf), or None.
    table: the EmbeddingTable of `embeddings_path` when the caller has read it already (a
    comparison reads it once for every model); None: read here."""
    from ..models import build_model
    from ..core.runtime import resolve_device, seed_everything

    t0 = time.perf_counter()
    out = Path(out_dir)
    # -- inputs: validate everything before writing anything -------------------------------
    cfg = cfg or TrainConfig()
    x_all, table, data_sha = read_inputs(embeddings_path, out, resume, cfg, table)
    if resume:
        cfg = resumed_kind(cfg, out)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, input_dim=table.dim))
    cfg, cf = with_cf(cfg, cf, table.items, table.rows)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model = build_model(cfg.model)
    cfg = dataclasses.replace(cfg, model=model.cfg)  # rqkmeans pins latent_dim
    model.meta = {"embedding_model": table.model, "embedding_dim": table.dim, "data_sha256": data_sha,
                  "train": to_dict(cfg), "items": len(x_all), "catalog_items": table.items,
                  "provenance": provenance(), "cf": cf_meta(cf)}
    if cf is not None and model.reads_cf:  # [text, alpha * CF] rows: rqkmeans-cf, rqvae (issue 25)
        x_all = model.fit_cf_inputs_(x_all, cf.vectors, cf.has)
    data = prepare_data(x_all, cfg, device, neural=model.neural, cf=cf if model.neural else None)
    if not model.neural:  # rqkmeans: no gradient steps
        return finish(model, data, cfg, out, LoopState(), t0)

    # -- optimizer, resume ---------------------------------------------------------------------
    run = start_run(model, data, cfg, out, device, t0)
    if resume:
        run = restore_run(run, embeddings_path, data_sha)
    else:
        model.init_linear_(data.x[data.sample])  # pca_skip: start from the PCA autoencoder
    model, state = run.model, run.state
    bar = progress_bar(cfg, state, model.kind) if progress else None

    # -- the loop ------------------------------------------------------------------------------
    model.train()
    clock = LoopClock(state)
    while state.epoch < cfg.epochs:
        fit_codebooks_once(run)
        row = epoch_row(run, train_epoch(run))
        stop = end_epoch(run, row, clock)
        if bar is not None:
            show_progress(bar, row)
        if stop:
            break
    if bar is not None:
        bar.close()
    if not state.codebooks_fitted:
        model.init_codebooks_(data.x[data.sample], seed=cfg.seed)
    return finish(model, data, cfg, out, state, t0)


# -- optimizer, resume ---------------------------------------------------------------------------
def make_optimizer(model, cfg: TrainConfig):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    kind = torch.optim.Adagrad if cfg.optimizer == "adagrad" else torch.optim.AdamW
    return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def start_run(model, data: Data, cfg: TrainConfig, out: Path, device: str, t0: float) -> Run:
    import torch

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else contextlib.nullcontext()
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order
    return Run(model.to(device), make_optimizer(model, cfg), gen, data, cfg, out, LoopState(), t0, amp)


def restore_run(run: Run, embeddings_path, data_sha: str) -> Run:
    """--resume: the saved model, optimizer, loop state and RNG states, after checking that the
    checkpoint was trained on the same data with the same architecture."""
    import torch

    from ..models import load_model
    from ..models.base import read_config, saved_model_config

    out = run.out
    saved = read_config(out)
    if saved.get("data_sha256") != data_sha:
        raise UserError(f"--resume: {out} was trained on other data (sha256 differs from {embeddings_path})")
    try:
        same = saved_model_config(saved) == run.model.cfg
    except UserError:
        same = False
    if not same:
        raise UserError(f"--resume: model config in {out} differs from the requested one")
    meta, device = run.model.meta, run.data.device
    model = load_model(out).to(device)
    model.meta = meta
    opt = make_optimizer(model, run.cfg)
    try:
        ck = torch.load(out / OPTIMIZER, weights_only=True, map_location="cpu")
        opt.load_state_dict(ck["optimizer"])
        state = LoopState.from_dict(json.loads((out / STATE).read_text()))
        run.gen.set_state(ck["gen_rng"])
        torch.set_rng_state(ck["torch_rng"])
    except Exception as e:  # corrupt/truncated file, wrong keys, unpicklable content
        raise UserError(f"--resume: corrupt checkpoint in {out}: {type(e).__name__}: {e}") from None
    return dataclasses.replace(run, model=model.to(device), opt=opt, state=state)


# -- one epoch -----------------------------------------------------------------------------------
def fit_codebooks_once(run: Run) -> None:
    """k-means init of the trained levels once the AE warm-up is over. The loss gains its
    quantization terms from here: a new phase for early stopping."""
    state, cfg = run.state, run.cfg
    if state.codebooks_fitted or state.epoch < cfg.ae_warmup_epochs:
        return
    tk = time.perf_counter()
    run.model.init_codebooks_(run.data.x[run.data.sample], seed=cfg.seed)
    state.kmeans_seconds += time.perf_counter() - tk
    state.codebooks_fitted = True
    state.best_val, state.bad_epochs = None, 0


class EpochResult(NamedTuple):
    sums: dict  # name -> loss summed over the epoch's items
    codes: np.ndarray | None  # codes the training batches got (health at no extra cost)
    lr: float  # learning rate of the last step
    reseeded: int  # codes re-seeded by the quantizer during the epoch


def train_epoch(run: Run) -> EpochResult:
    """One pass over the training items in a seeded order."""
    import torch

    data, cfg = run.data, run.cfg
    quantize = bool(run.model.trained_levels if run.state.codebooks_fitted else 0)
    reseeded0 = run.model.quantizer.reseeded()
    sums: dict[str, float] = {}
    epoch_codes = []
    lr = cfg.lr
    batch_order = data.train_idx[torch.randperm(len(data.train_idx), generator=run.gen).to(data.x.device)]
    for s in range(0, len(batch_order), cfg.batch_size):
        idx = batch_order[s: s + cfg.batch_size]
        out_, lr = train_step(run, idx, quantize)
        if out_.codes is not None:
            epoch_codes.append(out_.codes.detach())
        for name, v in {"loss": out_.loss, **out_.parts}.items():
            sums[name] = sums.get(name, 0.0) + float(v.detach()) * len(idx)
    codes = torch.cat(epoch_codes).cpu().numpy() if epoch_codes else None
    reseeded = int(sum(run.model.quantizer.reseeded()) - sum(reseeded0))
    return EpochResult(sums, codes, lr, reseeded)


def train_step(run: Run, idx, quantize: bool):
    """Forward, backward, clip, step on the items idx -> (model output, learning rate used)."""
    import torch

    data, cfg, state = run.data, run.cfg, run.state
    xb, xn = data.x[idx], None
    if data.nbrs is not None:
        pick = torch.randint(data.nbrs.shape[1], (len(idx),), generator=run.gen).to(xb.device)
        xn = data.x[data.nbrs[idx, pick]]
    lr = get_lr(state.step, run.steps_per_epoch * cfg.epochs, cfg)
    for g in run.opt.param_groups:
        g["lr"] = lr
    kl_steps = max(cfg.kl_warmup_epochs * run.steps_per_epoch, 1)
    kl_w = cfg.model.kl_weight * min(1.0, (state.step + 1) / kl_steps)
    with run.amp:
        out_ = run.model(xb, kl_weight=kl_w, neighbours=xn, quantize=quantize, **data.cf_kwargs(idx))
    loss = out_.loss
    if not torch.isfinite(loss):
        raise UserError(f"training diverged: non-finite loss ({float(loss.detach())}) at epoch {state.epoch + 1}, "
                        f"step {state.step + 1}; last good checkpoint left in {run.out}")
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in run.model.parameters() if p.requires_grad], cfg.grad_clip)
    run.opt.step()
    state.step += 1
    return out_, lr


def val_loss(run: Run) -> float:
    """Loss on the held-out items (eval mode: VAE mean, no codebook updates)."""
    import torch

    data, model = run.data, run.model
    if not len(data.val_idx):
        return float("nan")
    model.eval()
    with torch.no_grad():
        vl = float(model(data.x[data.val_idx], kl_weight=run.cfg.model.kl_weight, neighbours=data.val_nbrs,
                         quantize=run.state.codebooks_fitted, **data.cf_kwargs(data.val_idx)).loss)
    model.train()
    return vl


def epoch_row(run: Run, res: EpochResult) -> dict[str, Any]:
    """The metrics.parquet row of the epoch just trained: losses, held-out loss, code health."""
    state, n_train, k = run.state, len(run.data.train_idx), run.cfg.model.codebook_size
    state.epoch += 1
    row = {"epoch": state.epoch, "step": state.step, "lr": res.lr, "val_loss": val_loss(run),
           **{f"train_{name}": v / n_train for name, v in res.sums.items()},
           "seconds": time.perf_counter() - run.t0, "reseeded": res.reseeded}
    if res.codes is not None:
        st = code_stats(res.codes, k)
        for l, (u, p) in enumerate(zip(st["utilisation"], st["perplexity"])):
            row[f"utilisation_l{l}"], row[f"perplexity_l{l}"] = u, p
        full = res.codes.shape[1] == run.model.levels  # else: an AE warm-up epoch (no full tuple yet)
        for name in ("colliding_share", "duplicate_rate"):
            row[name] = st[name] if full else float("nan")
    return row


# -- end of an epoch: early stopping, checkpoints, progress -------------------------------------------
class LoopClock:
    """loop_seconds: the epoch loop (steps, validation, metrics, checkpoints; k-means inside it
    excluded), summed over resumed invocations like epochs and steps."""

    def __init__(self, state: LoopState):
        self.base, self.kmeans_before, self.t = state.loop_seconds, state.kmeans_seconds, time.perf_counter()

    def seconds(self, state: LoopState) -> float:
        kmeans_here = state.kmeans_seconds - self.kmeans_before
        return self.base + time.perf_counter() - self.t - kmeans_here


def end_epoch(run: Run, row: dict, clock: LoopClock) -> bool:
    """Record the row, update early stopping, checkpoint when due -> whether to stop."""
    state, cfg = run.state, run.cfg
    state.history.append(row)
    n_val = len(run.data.val_idx)
    improved = state.best_val is None or not n_val or row["val_loss"] < state.best_val
    state.bad_epochs = 0 if improved else state.bad_epochs + 1
    if improved:
        state.best_val = row["val_loss"]
    state.loop_seconds = clock.seconds(state)
    stop = bool(cfg.patience) and state.bad_epochs >= cfg.patience
    if state.epoch % cfg.checkpoint_every == 0 or state.epoch == cfg.epochs or stop:
        save_checkpoint(run)
    return stop


def save_checkpoint(run: Run) -> None:
    """Weights + config, optimizer and RNG states, loop state: all --resume needs."""
    import torch

    from ..core.io import atomic_path

    run.model.save(run.out)
    with atomic_path(run.out / OPTIMIZER) as tmp:
        torch.save({"optimizer": run.opt.state_dict(), "gen_rng": run.gen.get_state(),
                    "torch_rng": torch.get_rng_state()}, tmp)
    write_json_atomic(run.out / STATE, dataclasses.asdict(run.state))


def progress_bar(cfg: TrainConfig, state: LoopState, kind: str):
    from tqdm.auto import tqdm

    return tqdm(total=cfg.epochs, initial=state.epoch, desc=f"train {kind}", unit="epoch")


def show_progress(bar, row: dict) -> None:
    bar.update(1)
    post = {"loss": f"{row['train_loss']:.4f}"}
    levels = sorted(k for k in row if k.startswith("utilisation_l"))
    if levels:
        post["util"] = "/".join(f"{row[k]:.2f}" for k in levels)
    bar.set_postfix(post)


# -- the end: untrained levels, report, files ----------------------------------------------------
def finish(model, data: Data, cfg: TrainConfig, out: Path, state: LoopState, t0: float) -> dict[str, Any]:
    """Fit the untrained levels (residual k-means on the latents), then write the model,
    metrics.parquet and train_report.json."""
    tk = time.perf_counter()
    model.fit_codebooks_(data.x, seed=cfg.seed)
    kmeans_s = state.kmeans_seconds + time.perf_counter() - tk
    k = cfg.model.codebook_size
    codes = model.encode_codes(data.x_all)
    history = state.history
    report = {"kind": model.kind, "levels": model.levels, "codebook_size": k, "items": len(data.x_all),
              "catalog_items": model.meta.get("catalog_items", len(data.x_all)),
              **code_stats(codes, k), "seconds": round(time.perf_counter() - t0, 3),
              "epochs": state.epoch, "steps": state.step, "kmeans_seconds": round(kmeans_s, 3),
              "loop_seconds": round(state.loop_seconds, 3), "reseeded": model.quantizer.reseeded(),
              "final_val_loss": history[-1]["val_loss"] if history else None, "device": data.device}
    model.save(out)
    write_metrics(out / METRICS, history, model.meta)
    write_json_atomic(out / REPORT, report)
    return report
