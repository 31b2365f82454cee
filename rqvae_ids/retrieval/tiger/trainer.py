"""Training loop of the generative retriever: `train` reads top to bottom as named steps
(setup, validation_set, train_epoch, evaluate_epoch, keep_best, restore_best), state in `LoopState`.

Per epoch: shuffle (seeded by epoch), AdamW steps with warmup + cosine LR,
then Recall/NDCG@10 on (a seeded subsample of) the validation targets by
constrained beam search, early stopping on NDCG@10. After every epoch the
whole state (weights, optimizer, torch RNG, counters, config) goes into one
safetensors file written atomically, so a killed run resumes where it stopped;
the best weights go to `model.safetensors`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ...core.config import check, to_dict
from ...core.errors import UserError
from ...core.io import atomic_path

CHECKPOINT, BEST = "checkpoint.safetensors", "model.safetensors"


@dataclass(frozen=True)
class RetrievalConfig:
    """Defaults sized for a ~12k-item, ~20k-user catalog on 2 CPU cores."""

    arch: Literal["decoder", "encdec"] = "decoder"
    n_layer: int = 2
    n_head: int = 4
    # Measured on Amazon Toys (2 cores, bench/RESULTS.md "TIGER: the generative retriever"): d_model 128 for 10
    # epochs (~82 s an epoch) beats d_model 64 for 20 (~48 s an epoch) on test Recall@10, 0.050 vs 0.041,
    # in less time; validation recall of d_model 64 had levelled off from epoch 15.
    d_model: int = 128
    dropout: float = 0.1
    user_buckets: int = 0  # TIGER: 2000 hashed user tokens; 0 = off
    content: bool = False  # add each history item's projected text embedding (needs item vectors)
    max_history: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    min_lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_steps: int = 200  # capped at a tenth of all steps on small data
    max_epochs: int = 10
    patience: int = 3  # epochs without a better validation NDCG@10
    valid_users: int = 3000  # validation subsample for early stopping; 0 = all
    beam: int = 20
    seed: int = 0
    device: str = "auto"
    max_minutes: float = 0.0  # wall-clock budget for training; 0 = none

    def __post_init__(self):
        # The model's shape, checked here (at the edge) rather than when SeqModelConfig is built
        # after the data is read: n_head first, d_model % 0 would be a ZeroDivisionError.
        check(self.n_layer >= 1, f"n_layer (layers) must be >= 1, got {self.n_layer}")
        check(self.n_head >= 1, f"n_head (heads) must be >= 1, got {self.n_head}")
        check(self.d_model >= 1, f"d_model must be >= 1, got {self.d_model}")
        check(self.d_model % self.n_head == 0,
              f"d_model ({self.d_model}) must be a multiple of n_head (heads, {self.n_head})")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.user_buckets >= 0, f"user_buckets must be >= 0 (0 = off), got {self.user_buckets}")
        check(self.max_history >= 1, f"max_history must be >= 1, got {self.max_history}")
        check(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        check(self.valid_users >= 0, f"valid_users must be >= 0 (0 = all), got {self.valid_users}")
        check(self.max_minutes >= 0, f"max_minutes must be >= 0 (0 = no budget), got {self.max_minutes}")
        check(self.beam >= 10, "beam must be >= 10 (the largest reported top-k)")
        check(self.batch_size > 0 and self.max_epochs > 0, "batch_size and max_epochs must be positive")
        check(self.lr > 0, "lr must be positive")


# Knobs that may change when resuming (they do not change what is learned so far;
# a new max_epochs stretches the cosine LR schedule from there on).
RESUMABLE_KEYS = {"device", "max_epochs", "max_minutes", "patience"}


def model_config(cfg: RetrievalConfig, depth: int, width: int):
    from .model import SeqModelConfig

    return SeqModelConfig(
        depth=depth, width=width, arch=cfg.arch, n_layer=cfg.n_layer, n_head=cfg.n_head,
        d_model=cfg.d_model, dropout=cfg.dropout, max_items=cfg.max_history + 1,
        user_buckets=cfg.user_buckets,
    )


def data_fingerprint(codes: np.ndarray, sequences: Sequence[np.ndarray], item_vectors=None,
                     width: int | None = None) -> str:
    """sha256 of what a checkpoint was trained on. width: the codebook size K, hashed only where
    it differs from the data-derived max code + 1, so checkpoints saved before K was stored
    (then always data-derived) keep their fingerprint."""
    h = hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int64).tobytes())
    if width is not None and int(width) != int(np.max(codes)) + 1:
        h.update(f"width={int(width)}".encode())
    for s in sequences:
        h.update(np.asarray(s, dtype=np.int64).tobytes() + b"|")
    if item_vectors is not None:  # content on: other vectors, other model
        h.update(b"content" + np.ascontiguousarray(item_vectors, dtype=np.float32).tobytes())
    return h.hexdigest()


def content_vectors(cfg: RetrievalConfig, item_vectors, n_items: int):
    """The (N, d) float32 item vectors the model reads when cfg.content, else None."""
    if not cfg.content:
        return None
    if item_vectors is None:
        raise UserError("content=True needs the item vectors: an (N, d) array in catalog order "
                        "(retrieve-train --content-embeddings FILE)")
    v = np.array(item_vectors, dtype=np.float32, order="C")  # own, writable copy
    if v.ndim != 2 or len(v) != n_items:
        raise UserError(f"item vectors must be one row per item in catalog order, ({n_items}, d); got {v.shape}")
    if not np.isfinite(v).all():
        raise UserError("item vectors hold NaN or infinite values")
    return v


def defaults_filled(config: dict) -> dict:
    """A saved RetrievalConfig dict with knobs added since it was saved at their defaults
    (an old checkpoint or marker matches a config that leaves the new knobs off)."""
    from dataclasses import fields

    return {**{f.name: f.default for f in fields(RetrievalConfig)}, **config}


@dataclass
class LoopState:
    """What a resumed run needs besides weights and optimizer (saved in the checkpoint's metadata)."""

    epoch: int = 0
    step: int = 0
    best: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list = field(default_factory=list)
    train_seconds: float = 0.0


@dataclass
class Run:
    """The fixed parts of one training run: model, optimizer, data, schedule, validation set."""

    cfg: RetrievalConfig
    device: str
    trie: Any
    mcfg: Any
    tokens: Any
    seqs: list
    users: Any
    examples: Any
    vectors: Any  # content item vectors or None
    model: Any
    opt: Any
    steps_per_epoch: int
    total_steps: int
    warmup: int
    table: Any = None
    valid: tuple | None = None  # (histories, targets, users, popular), subsampled
    best_weights: dict | None = None  # the best epoch's state_dict, in memory


def train(codes, train_sequences, valid, out_dir, cfg: RetrievalConfig, users=None, resume=True, log=print,
          item_vectors=None, width: int | None = None):
    """Train a SeqModel on `train_sequences` over the IDs `codes`.

    codes: (N, T) int code tuples (levels + suffix), catalog order.
    train_sequences: per user int64 catalog indices (Split.train).
    valid: (histories, targets) for early stopping, or None (train max_epochs).
    out_dir: checkpoints and report; None = keep nothing on disk.
    users: user ids aligned with train_sequences/valid (only for user tokens).
    item_vectors: (N, d) item text embeddings in catalog order, read when cfg.content.
    width: K, the IDs' codebook size (None: derived from `codes`, see trie.code_width).
    Returns (model with the best weights, report dict).
    """
    t0 = time.perf_counter()
    run = setup(codes, train_sequences, cfg, users, item_vectors, width)
    if valid is not None:
        run.valid = validation_set(valid, users, run.seqs, cfg, len(run.trie))
    fingerprint = data_fingerprint(codes, run.seqs, run.vectors, run.trie.width)
    out = Path(out_dir) if out_dir is not None else None
    state = LoopState()
    if out is not None and resume and (out / CHECKPOINT).is_file():
        state = LoopState(**_load_checkpoint(out / CHECKPOINT, run.model, run.opt, cfg, fingerprint))
        log(f"resumed from {out / CHECKPOINT} at epoch {state.epoch}")
    log(f"{cfg.arch}: {run.model.n_params():,} parameters, {len(run.examples):,} examples, "
        f"{run.steps_per_epoch} steps/epoch on {run.device}")
    while state.epoch < cfg.max_epochs and state.bad_epochs < cfg.patience:
        te = time.perf_counter()
        row = train_epoch(run, state, log, te)
        score = evaluate_epoch(run, row)
        keep_best(run, state, row, score, out, te)
        if out is not None:
            _save_checkpoint(out / CHECKPOINT, run.model, run.opt, cfg, asdict(state), fingerprint)
        log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if cfg.max_minutes and state.train_seconds > 60 * cfg.max_minutes:
            log(f"stopping: time budget of {cfg.max_minutes} min spent")
            break
    restore_best(run, out)
    return run.model, train_report(run, state, fingerprint, t0)


def setup(codes, train_sequences, cfg: RetrievalConfig, users, item_vectors, width: int | None = None) -> Run:
    """Seed, trie, examples, model and AdamW (weight decay on matrices only) on the device."""
    import torch

    from ...core.runtime import resolve_device, seed_everything
    from .data import build_examples, item_tokens
    from .model import SeqModel
    from .trie import SidTrie

    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    trie = SidTrie(codes, width)
    vectors = content_vectors(cfg, item_vectors, len(trie))
    mcfg = model_config(cfg, trie.depth, trie.width)
    seqs = [np.asarray(s, dtype=np.int64) for s in train_sequences]
    examples = build_examples(seqs, cfg.arch, cfg.max_history)
    if len(examples) == 0:
        raise UserError("no training example: every training sequence has fewer than 2 items")
    model = SeqModel(mcfg, vectors).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98),
    )
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.max_epochs
    return Run(cfg, device, trie, mcfg, item_tokens(trie.codes, mcfg), seqs, users, examples, vectors, model, opt,
               steps_per_epoch, total_steps, warmup=max(1, min(cfg.warmup_steps, total_steps // 10)),
               table=torch.as_tensor(trie.next_node, device=device))


def validation_set(valid, users, seqs, cfg: RetrievalConfig, n_items: int) -> tuple:
    """(histories, targets, users, popular): a seeded subsample of cfg.valid_users validation users,
    and the items by training popularity (the harness fills short rankings with them)."""
    vh, vt = valid
    pick = np.arange(len(vt))
    if cfg.valid_users and len(vt) > cfg.valid_users:
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(vt), cfg.valid_users, replace=False))
    vu = [users[i] for i in pick] if users is not None else None
    popular = np.argsort(-np.bincount(np.concatenate(seqs), minlength=n_items), kind="stable")
    return [vh[i] for i in pick], np.asarray(vt)[pick], vu, popular


def lr_at(run: Run, step: int) -> float:
    """Linear warmup, then cosine decay from cfg.lr to cfg.min_lr over the remaining steps."""
    cfg = run.cfg
    if step < run.warmup:
        return cfg.lr * (step + 1) / run.warmup
    ratio = min(1.0, (step - run.warmup) / max(1, run.total_steps - run.warmup))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)


def train_epoch(run: Run, state: LoopState, log, te: float) -> dict:
    """One pass over the examples in a seeded (seed, epoch) order; the epoch's row of the history."""
    import torch

    from .data import decoder_batch, encdec_batch

    cfg, model = run.cfg, run.model
    make_batch = decoder_batch if cfg.arch == "decoder" else encdec_batch
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if run.device.startswith("cuda") else _null()
    model.train()
    perm = np.random.default_rng([cfg.seed, state.epoch]).permutation(len(run.examples))
    losses = []
    for s in range(0, len(perm), cfg.batch_size):
        batch = make_batch(run.seqs, run.users, run.examples, perm[s : s + cfg.batch_size], run.tokens, run.mcfg)
        x, *dec_in, tgt, content = (t.to(run.device) for t in batch)  # dec_in: encdec only
        for g in run.opt.param_groups:
            g["lr"] = lr_at(run, state.step)
        with amp:
            _, loss = model(x, *dec_in, targets=tgt, content=content)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        run.opt.step()
        losses.append(loss.item())
        state.step += 1
        if len(losses) % 50 == 0:
            log(f"  step {state.step} loss {np.mean(losses[-50:]):.4f} ({time.perf_counter() - te:.0f}s into epoch)")
    return {"epoch": state.epoch + 1, "loss": float(np.mean(losses)), "train_s": time.perf_counter() - te}


def evaluate_epoch(run: Run, row: dict) -> float:
    """Validation NDCG@10 by constrained beam search (added to `row`); -loss without a validation set."""
    from ...evaluate.ranking import next_item_metrics
    from .beam import beam_recommend, filter_history

    if run.valid is None:
        return -row["loss"]
    vh, vt, vu, popular = run.valid
    cfg = run.cfg
    rec = beam_recommend(run.model, run.trie, run.tokens, vh, cfg.beam, cfg.beam, vu, max_history=cfg.max_history,
                         table=run.table)
    m = next_item_metrics(filter_history(rec, vh, 10, popular), vt)  # the harness's history policy
    row.update({f"valid_{k}": v for k, v in m.items()})
    return m["next_ndcg@10"]


def keep_best(run: Run, state: LoopState, row: dict, score: float, out: Path | None, te: float) -> None:
    """Count the epoch; a better score saves the weights (disk and memory), else one more bad epoch."""
    row["seconds"] = time.perf_counter() - te
    state.train_seconds += row["seconds"]
    state.epoch += 1
    state.history.append(row)
    if score > state.best:
        state.best, state.best_epoch, state.bad_epochs = score, state.epoch, 0
        if out is not None:
            save_weights(run.model, out / BEST, {"config": to_dict(run.cfg), "epoch": state.epoch})
        run.best_weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    else:
        state.bad_epochs += 1


def restore_best(run: Run, out: Path | None) -> None:
    """The best weights back into the model: this run's, else those a resumed run saved."""
    if run.best_weights is not None:
        run.model.load_state_dict(run.best_weights)
    elif out is not None and (out / BEST).is_file():
        load_weights(run.model, out / BEST)
    run.model.eval()


def train_report(run: Run, state: LoopState, fingerprint: str, t0: float) -> dict:
    return {
        "config": to_dict(run.cfg), "n_params": run.model.n_params(), "examples": len(run.examples),
        "device": run.device, "epochs": state.epoch, "best_epoch": state.best_epoch,
        "best_valid_ndcg@10": state.best, "train_seconds": state.train_seconds,
        "wall_seconds": time.perf_counter() - t0, "history": state.history, "data_sha256": fingerprint,
    }


def _null():
    import contextlib

    return contextlib.nullcontext()


# ---- safetensors checkpoints ---------------------------------------------------------------------
def save_weights(model, path, meta: dict) -> None:
    """Model weights (tied head left out) + JSON metadata, atomically."""
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"rqvae_ids": json.dumps(meta)})


def load_weights(model, path) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file

    sd = load_file(str(path))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or set(missing) - {"head.weight"}:
        raise UserError(f"{path}: weights do not match the model (missing {missing}, unexpected {unexpected})")
    with safe_open(str(path), "pt") as f:
        return json.loads((f.metadata() or {}).get("rqvae_ids", "{}"))


def _save_checkpoint(path, model, opt, cfg, state, fingerprint) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    for i, st in opt.state_dict()["state"].items():
        for name, v in st.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(v).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"state": state, "config": to_dict(cfg), "data_sha256": fingerprint}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"rqvae_ids": json.dumps(meta)})


def _load_checkpoint(path, model, opt, cfg, fingerprint) -> dict:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["rqvae_ids"])
    if meta["data_sha256"] != fingerprint:
        raise UserError(f"{path}: checkpoint was trained on other IDs, sequences or item vectors; use a new --out or --no-resume")
    old = {k: v for k, v in defaults_filled(meta["config"]).items() if k not in RESUMABLE_KEYS}
    new = {k: v for k, v in to_dict(cfg).items() if k not in RESUMABLE_KEYS}
    if old != new:
        diff = sorted(k for k in new if old.get(k) != new[k])
        raise UserError(f"{path}: checkpoint config differs in {diff}; use a new --out or --no-resume")
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    sd = opt.state_dict()
    st: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            st.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": st, "param_groups": sd["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return meta["state"]


__all__ = ["RetrievalConfig", "train", "save_weights", "load_weights", "model_config", "content_vectors"]
