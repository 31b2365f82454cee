"""Training loop of the generative retriever: one function, read top to bottom.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..config import check, to_dict
from ..errors import UserError
from ..io import atomic_path

CHECKPOINT, BEST = "checkpoint.safetensors", "model.safetensors"


@dataclass(frozen=True)
class RetrievalConfig:
    """Defaults sized for a ~12k-item, ~20k-user catalog on 2 CPU cores."""

    arch: Literal["decoder", "encdec"] = "decoder"
    n_layer: int = 2
    n_head: int = 4
    # Measured on Amazon Toys (2 cores, bench/RESULTS.md "Generative retrieval"): d_model 128 for 10
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


def data_fingerprint(codes: np.ndarray, sequences: Sequence[np.ndarray], item_vectors=None) -> str:
    h = hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int64).tobytes())
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


def train(codes, train_sequences, valid, out_dir, cfg: RetrievalConfig, users=None, resume=True, log=print,
          item_vectors=None):
    """Train a SeqModel on `train_sequences` over the IDs `codes`.

    codes: (N, T) int code tuples (levels + suffix), catalog order.
    train_sequences: per user int64 catalog indices (Split.train).
    valid: (histories, targets) for early stopping, or None (train max_epochs).
    out_dir: checkpoints and report; None = keep nothing on disk.
    users: user ids aligned with train_sequences/valid (only for user tokens).
    item_vectors: (N, d) item text embeddings in catalog order, read when cfg.content.
    Returns (model with the best weights, report dict).
    """
    import torch

    from ..evaluate.ranking import next_item_metrics
    from ..runtime import resolve_device, seed_everything
    from .beam import beam_recommend, filter_history
    from .data import build_examples, decoder_batch, encdec_batch, item_tokens
    from .model import SeqModel
    from .trie import SidTrie

    # ---- setup ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    trie = SidTrie(codes)
    vectors = content_vectors(cfg, item_vectors, len(trie))
    mcfg = model_config(cfg, trie.depth, trie.width)
    tokens = item_tokens(trie.codes, mcfg)
    seqs = [np.asarray(s, dtype=np.int64) for s in train_sequences]
    ex = build_examples(seqs, cfg.arch, cfg.max_history)
    if len(ex) == 0:
        raise UserError("no training example: every training sequence has fewer than 2 items")
    make_batch = decoder_batch if cfg.arch == "decoder" else encdec_batch
    model = SeqModel(mcfg, vectors).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98),
    )
    steps_per_epoch = math.ceil(len(ex) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.max_epochs
    warmup = max(1, min(cfg.warmup_steps, total_steps // 10))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else _null()
    table = torch.as_tensor(trie.next_node, device=device)
    if valid is not None:
        vh, vt = valid
        pick = np.arange(len(vt))
        if cfg.valid_users and len(vt) > cfg.valid_users:
            pick = np.sort(np.random.default_rng(cfg.seed).choice(len(vt), cfg.valid_users, replace=False))
        vh, vt = [vh[i] for i in pick], np.asarray(vt)[pick]
        vu = [users[i] for i in pick] if users is not None else None
        popular = np.argsort(-np.bincount(np.concatenate(seqs), minlength=len(trie)), kind="stable")
    fingerprint = data_fingerprint(codes, seqs, vectors)
    state = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": [], "train_seconds": 0.0}
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume and (out / CHECKPOINT).is_file():
        state = _load_checkpoint(out / CHECKPOINT, model, opt, cfg, fingerprint)
        log(f"resumed from {out / CHECKPOINT} at epoch {state['epoch']}")

    def get_lr(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        ratio = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)

    log(f"{cfg.arch}: {model.n_params():,} parameters, {len(ex):,} examples, {steps_per_epoch} steps/epoch on {device}")
    # ---- loop: train an epoch, evaluate, checkpoint, stop ---------------------------------------
    while state["epoch"] < cfg.max_epochs and state["bad_epochs"] < cfg.patience:
        epoch, te = state["epoch"], time.perf_counter()
        model.train()
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(len(ex))
        losses = []
        for s in range(0, len(perm), cfg.batch_size):
            batch = make_batch(seqs, users, ex, perm[s : s + cfg.batch_size], tokens, mcfg)
            x, *dec_in, tgt, content = (t.to(device) for t in batch)  # dec_in: encdec only
            for g in opt.param_groups:
                g["lr"] = get_lr(state["step"])
            with amp:
                _, loss = model(x, *dec_in, targets=tgt, content=content)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            state["step"] += 1
            if len(losses) % 50 == 0:
                log(f"  step {state['step']} loss {np.mean(losses[-50:]):.4f} ({time.perf_counter() - te:.0f}s into epoch)")
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "train_s": time.perf_counter() - te}
        if valid is not None:
            rec = beam_recommend(model, trie, tokens, vh, cfg.beam, cfg.beam, vu, max_history=cfg.max_history, table=table)
            m = next_item_metrics(filter_history(rec, vh, 10, popular), vt)  # the harness's history policy
            row.update({f"valid_{k}": v for k, v in m.items()})
            score = m["next_ndcg@10"]
        else:
            score = -row["loss"]
        row["seconds"] = time.perf_counter() - te
        state["train_seconds"] += row["seconds"]
        state["epoch"] += 1
        state["history"].append(row)
        if score > state["best"]:
            state.update(best=score, best_epoch=epoch + 1, bad_epochs=0)
            if out is not None:
                save_weights(model, out / BEST, {"config": to_dict(cfg), "epoch": epoch + 1})
            best_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        if out is not None:
            _save_checkpoint(out / CHECKPOINT, model, opt, cfg, state, fingerprint)
        log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if cfg.max_minutes and state["train_seconds"] > 60 * cfg.max_minutes:
            log(f"stopping: time budget of {cfg.max_minutes} min spent")
            break
    # ---- best weights back -----------------------------------------------------------------------
    if "best_sd" in locals():
        model.load_state_dict(best_sd)
    elif out is not None and (out / BEST).is_file():
        load_weights(model, out / BEST)
    model.eval()
    report = {
        "config": to_dict(cfg), "n_params": model.n_params(), "examples": len(ex), "device": device,
        "epochs": state["epoch"], "best_epoch": state["best_epoch"], "best_valid_ndcg@10": state["best"],
        "train_seconds": state["train_seconds"], "wall_seconds": time.perf_counter() - t0,
        "history": state["history"], "data_sha256": fingerprint,
    }
    return model, report


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


def config_from_checkpoint(path) -> RetrievalConfig:
    from safetensors import safe_open

    from ..config import from_dict

    with safe_open(str(path), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("rqvae_ids", "{}"))
    return from_dict(RetrievalConfig, meta.get("config"), where=str(path))


__all__ = ["RetrievalConfig", "train", "save_weights", "load_weights", "model_config", "content_vectors"]
