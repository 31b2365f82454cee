"""Training loop of the item-level retrievers (`sasrec`, `parallel`, `hybrid`): read top to bottom.

Per epoch: shuffle (seeded by epoch), AdamW steps with linear warm-up then a constant
rate, then Recall/NDCG@10 on the validation targets by exact full-catalog scoring with
the user's history removed (the harness's policy), early stopping on NDCG@10 and a
wall-clock budget. The best weights go to `model.safetensors` (atomically) with the
config and a fingerprint of the data, so a rerun on the same data and config reuses
them instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ...core.config import check, to_dict
from ...core.errors import UserError
from ...core.io import atomic_path
from .features import PARTS, check_parts

BEST = "model.safetensors"


@dataclass(frozen=True)
class ItemRetrieverConfig:
    """Defaults = the runs of bench/RESULTS.md "SASRec and the parallel semantic-ID retriever" (Toys, validation split):
    lr 5e-3 learned within the CPU budget where 2e-3/3e-3 had not left popularity level after
    3-5 epochs; cosine decay over 20 epochs beat a constant rate (validation); d 128 lost to d 64
    within the 10-minute budget (fewer epochs); RPG's/SASRec's other values (wd 0, 2 layers) not tuned."""

    head: Literal["sasrec", "parallel", "hybrid"] = "parallel"
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 2
    dropout: float = 0.2
    max_history: int = 20
    batch_size: int = 256
    lr: float = 5e-3
    weight_decay: float = 0.0  # RPG: wd 0
    warmup_steps: int = 200
    max_epochs: int = 20  # also the cosine schedule's length: 20 x ~30 s fit the 10-minute budget on Toys
    patience: int = 8  # validation rounds without a better NDCG@10
    valid_users: int = 0  # validation subsample for early stopping; 0 = all
    # sasrec: 0 = full softmax over the catalog; R > 0 = sampled softmax with R uniform negatives
    # shared by the batch (RECIPES: 256 negatives ~ full CE on 12k items, at a fraction of the cost)
    negatives: int = 0
    temperature: float = 0.05  # parallel: cosine-logit temperature (RPG grid 0.03-0.07)
    combine: Literal["mean", "sum"] = "mean"  # parallel: item = mean or sum of its digit embeddings
    content: bool = False  # add a projection of each item's text embedding (needs item vectors)
    id_input: bool = False  # parallel: also an item-ID embedding in the input (output stays the codes)
    # hybrid: the item vector's parts (any non-empty subset of id, codes, text) and their composition
    parts: tuple[str, ...] = ("id", "codes", "text")
    compose: Literal["sum", "concat"] = "sum"
    shared_codes: bool = False
    text_mlp: bool = False
    item_norm: bool = False
    id_dropout: float = 0.0
    item_bias: bool = False  # sasrec/hybrid: per-item output bias (zero for items unseen in training)
    # sasrec/hybrid: "seen" = the training softmax covers only items with a training occurrence (a
    # held-out or new item is never a negative); "all" = every catalog item
    train_softmax: Literal["seen", "all"] = "seen"
    # sasrec/hybrid sampled softmax (negatives > 0): uniform over seen items, or by training
    # popularity with the logQ correction
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    # hybrid: n > 0 adds a learned-scale cosine between the mean text vector of the last n history
    # items and each item's text vector to its logit (needs the text embeddings; 0 = off)
    text_match: int = 0
    seed: int = 0
    device: str = "auto"
    max_minutes: float = 10.0  # wall-clock training budget; 0 = none
    # learning rate after the warm-up: constant, or cosine decay to 0 at max_epochs (RPG)
    # (cosine: SASRec valid R@10 0.094 vs 0.086 constant in 10 min on Toys, bench/RESULTS.md)
    schedule: Literal["constant", "cosine"] = "cosine"

    def __post_init__(self):
        check(self.head in ("sasrec", "parallel", "hybrid"), f"head must be sasrec, parallel or hybrid, got {self.head!r}")
        check(self.n_layer >= 1 and self.n_head >= 1 and self.d_model >= 1, "n_layer, n_head, d_model must be >= 1")
        check(self.d_model % self.n_head == 0, f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.max_history >= 1, f"max_history must be >= 1, got {self.max_history}")
        check(self.batch_size > 0 and self.max_epochs > 0, "batch_size and max_epochs must be positive")
        check(self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0")
        check(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        check(self.valid_users >= 0, f"valid_users must be >= 0 (0 = all), got {self.valid_users}")
        check(self.negatives >= 0, f"negatives must be >= 0 (0 = full softmax), got {self.negatives}")
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.combine in ("mean", "sum"), f"combine must be mean or sum, got {self.combine!r}")
        check(self.max_minutes >= 0, f"max_minutes must be >= 0 (0 = no budget), got {self.max_minutes}")
        check(self.schedule in ("constant", "cosine"), f"schedule must be constant or cosine, got {self.schedule!r}")
        check(not (self.content and self.head != "parallel"),
              "content applies to the parallel head only (hybrid: put text in parts)")
        check(not (self.id_input and self.head != "parallel"), "id_input applies to the parallel head only")
        if self.head == "hybrid":
            object.__setattr__(self, "parts", check_parts(self.parts))
        check(0.0 <= self.id_dropout < 1.0, f"id_dropout must be in [0, 1), got {self.id_dropout}")
        check(self.train_softmax in ("seen", "all"), f"train_softmax must be seen or all, got {self.train_softmax!r}")
        check(self.text_match >= 0 and (not self.text_match or self.head == "hybrid"),
              f"text_match must be >= 0 and applies to the hybrid head, got {self.text_match}")
        check(self.negative_sampling in ("uniform", "popularity"),
              f"negative_sampling must be uniform or popularity, got {self.negative_sampling!r}")

    @property
    def needs_codes(self) -> bool:
        return self.head == "parallel" or (self.head == "hybrid" and "codes" in self.parts)

    @property
    def needs_text(self) -> bool:
        return self.content or (self.head == "hybrid" and ("text" in self.parts or self.text_match > 0))


# Where a head's defaults differ from the shared ones above (bench/RESULTS.md "Hybrid retriever"):
# dropout 0.4 (the prototype overfit at 0.2 on a Beauty-sized catalog); the text-match
# channel on the last history item (Toys validation R@10 0.091 after one epoch against 0.042
# without); a cosine schedule of 8 epochs: on Toys, validated on all users, a 25-epoch schedule
# peaked at epoch 5 (lr still 0.9x) and overfit after, while 8 epochs annealed near that peak
# (validation NDCG@10 0.0682 vs 0.0665, rqkmeans-cf codes); 8 epochs take ~5 min on 2 idle cores.
HEAD_DEFAULTS: dict[str, dict[str, Any]] = {
    "hybrid": {"dropout": 0.4, "max_epochs": 8, "patience": 4, "text_match": 1},
}


def item_config(head: str, given: dict[str, Any] | None = None, where: str = "config") -> ItemRetrieverConfig:
    """The validated ItemRetrieverConfig of `head` with fields `given` over that head's defaults
    (a hybrid without the text part reads no text at all: its text-match channel is off too)."""
    from ...core.config import from_dict

    fields = {**HEAD_DEFAULTS.get(head, {}), **(given or {}), "head": head}
    if head == "hybrid" and "text" not in fields.get("parts", PARTS) and "text_match" not in (given or {}):
        fields["text_match"] = 0
    return from_dict(ItemRetrieverConfig, fields, where=where)


def model_config(cfg: ItemRetrieverConfig, n_items: int, codes=None, vectors=None):
    from .model import ItemModelConfig

    depth, width = (0, 0) if codes is None else (codes.shape[1], int(codes.max()) + 1)
    return ItemModelConfig(
        n_items=n_items, head=cfg.head, depth=depth, width=max(width, 2) if codes is not None else 0,
        d_model=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head, dropout=cfg.dropout,
        max_len=cfg.max_history, temperature=cfg.temperature, combine=cfg.combine,
        content_dim=0 if vectors is None else vectors.shape[1], id_input=cfg.id_input,
        parts=cfg.parts, compose=cfg.compose, shared_codes=cfg.shared_codes, text_mlp=cfg.text_mlp,
        item_norm=cfg.item_norm, id_dropout=cfg.id_dropout, item_bias=cfg.item_bias, train_softmax=cfg.train_softmax,
        text_match=cfg.text_match,
    )


def windows(sequences: Sequence[np.ndarray], n_items: int, max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """Training windows: (X (E, S), Y (E, S)) int64, right-padded with n_items / -100.

    A sequence's first window scores items 1..; a longer sequence adds one window per later
    item, scoring only that item with its last `max_history` items (data.build_examples'
    decoder rule: every target once, with exactly its truncated history)."""
    from ..tiger.data import build_examples

    ex = build_examples(sequences, "decoder", max_history)
    x = np.full((len(ex), max_history), n_items, np.int64)
    y = np.full((len(ex), max_history), -100, np.int64)
    for i in range(len(ex)):
        w = sequences[ex.user[i]][ex.start[i] : ex.end[i]]
        x[i, : len(w) - 1] = w[:-1]
        y[i, : len(w) - 1] = w[1:]
        y[i, : ex.loss_from[i] - 1] = -100
    return x, y


def batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 50):
    """Seeded batches of window indices of similar length: shuffle, sort each pool of
    `pool` batches by length, cut into batches, shuffle the batches. Most windows are far
    shorter than max_history, so trimmed batches cost a fraction of full-width ones."""
    perm = rng.permutation(len(lengths))
    out = []
    for s in range(0, len(perm), batch_size * pool):
        chunk = perm[s : s + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [out[i] for i in rng.permutation(len(out))]


def pad_histories(histories: Sequence[np.ndarray], n_items: int, max_history: int):
    """Histories -> (x (B, S) right-padded with n_items, lengths (B,)) int64; empty histories
    become one padding item (the model then scores from position information only)."""
    hs = [np.asarray(h, dtype=np.int64)[-max_history:] for h in histories]
    s = max(1, max((len(h) for h in hs), default=1))
    x = np.full((len(hs), s), n_items, np.int64)
    for i, h in enumerate(hs):
        x[i, : len(h)] = h
    return x, np.maximum(1, np.array([len(h) for h in hs], dtype=np.int64))


def recommend(model, histories, k: int, max_history: int, exclude_history: bool = True, batch_size: int = 512):
    """Top-k catalog indices per history by exact full-catalog scoring: (U, k) int64.
    exclude_history: the user's own history items never appear (the harness's policy)."""
    import torch

    n = model.cfg.n_items
    k = min(k, n)
    device = next(model.parameters()).device
    model.eval()
    out = []
    for s in range(0, len(histories), batch_size):
        part = histories[s : s + batch_size]
        x, lengths = pad_histories(part, n, max_history)
        scores = model.score_last(torch.from_numpy(x).to(device), torch.from_numpy(lengths).to(device))
        if exclude_history:
            rows = np.repeat(np.arange(len(part)), [min(len(h), max_history) if max_history else 0 for h in part])
            cols = np.concatenate([np.asarray(h, np.int64)[-max_history:] for h in part] + [np.zeros(0, np.int64)])
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -float("inf")
            full = [np.asarray(h, np.int64) for h in part]  # items older than the window too
            for i, h in enumerate(full):
                if len(h) > max_history:
                    scores[i, torch.from_numpy(h[:-max_history])] = -float("inf")
        out.append(torch.topk(scores, k, dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def seen_items(sequences: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """(N,) bool: the items that occur in the training sequences."""
    seen = np.zeros(n_items, bool)
    for s in sequences:
        seen[s] = True
    return seen


def fingerprint(n_items: int, sequences, codes=None, vectors=None) -> str:
    h = hashlib.sha256(str(n_items).encode())
    for a in (codes, vectors):
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
    for s in sequences:
        h.update(np.asarray(s, dtype=np.int64).tobytes() + b"|")
    return h.hexdigest()


def train(n_items, train_sequences, valid, out_dir, cfg: ItemRetrieverConfig, codes=None, item_vectors=None, log=print,
          reuse=True):
    """Train an ItemSeqModel; returns (model with the best weights, report dict).

    train_sequences: per user int64 catalog indices (Split.train); valid: (histories,
    targets) for early stopping, or None (train to max_epochs/max_minutes); codes (N, D)
    for the parallel head; item_vectors (N, c) when cfg.content; out_dir None = nothing on disk;
    reuse: return the weights already in out_dir when they were trained on the same data and config.
    """
    from ...core.runtime import resolve_device, seed_everything
    from .model import ItemSeqModel

    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    seqs = [np.asarray(s, dtype=np.int64) for s in train_sequences]
    x_all, y_all = windows(seqs, n_items, cfg.max_history)
    if len(x_all) == 0:
        raise UserError("no training example: every training sequence has fewer than 2 items")
    seen = seen_items(seqs, n_items)
    model = ItemSeqModel(model_config(cfg, n_items, codes, item_vectors), codes, item_vectors)
    model.set_seen(seen)
    model = model.to(device)
    fp = fingerprint(n_items, seqs, codes, item_vectors)
    out = Path(out_dir) if out_dir is not None else None
    if reuse and out is not None and (report := reused_report(model, out / BEST, fp, cfg, log)) is not None:
        return model.eval(), report
    run = Run(cfg, model, make_optimizer(model, cfg), x_all, y_all, (x_all != n_items).sum(1),
              validation_subset(valid, cfg), device, NegativeSampler.build(cfg, y_all, seen))
    log(f"{cfg.head}: {model.n_params():,} parameters, {len(x_all):,} windows, {run.steps_per_epoch} steps/epoch "
        f"on {device}")
    state = LoopState()
    for epoch in range(cfg.max_epochs):
        row = run_epoch(run, state, epoch)
        log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if should_stop(state, cfg, log):
            break
    model.load_state_dict(state.best_weights)
    model.eval()
    report = final_report(run, state, len(x_all), fp, t0)
    if out is not None:
        save_weights(model, out / BEST, {"config": to_dict(cfg), "data_sha256": fp, "report": report})
    return model, report


@dataclass
class LoopState:
    """What changes from epoch to epoch."""

    step: int = 0
    best: float = -math.inf  # best validation NDCG@10 (or -loss without validation)
    best_epoch: int = 0
    bad: int = 0  # epochs since the best
    history: list = field(default_factory=list)
    train_seconds: float = 0.0
    best_weights: dict | None = None


@dataclass(frozen=True)
class NegativeSampler:
    """The shared negatives of the sampled softmax (sasrec/hybrid, negatives > 0), drawn from the
    items seen in training only (a new item is never a negative): uniformly, or by training
    popularity q, when each negative's logit is corrected by -log(R q_j) (logQ: the sampled sum
    then estimates the full softmax's normaliser; uniform draws need no correction, a constant)."""

    items: np.ndarray  # (M,) seen catalog indices
    q: np.ndarray | None  # (M,) sampling probabilities, None = uniform

    @classmethod
    def build(cls, cfg: ItemRetrieverConfig, y: np.ndarray, seen: np.ndarray) -> "NegativeSampler | None":
        if cfg.head == "parallel" or not cfg.negatives:
            return None
        items = np.flatnonzero(seen)
        if cfg.negative_sampling == "uniform":
            return cls(items, None)
        counts = np.bincount(y[y >= 0], minlength=len(seen))[items].astype(np.float64)
        return cls(items, counts / counts.sum())

    def draw(self, rng: np.random.Generator, r: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(R,) negatives and their logQ corrections log(R q_j) as float32 (None when uniform)."""
        if self.q is None:
            return self.items[rng.integers(0, len(self.items), r)], None
        pick = rng.choice(len(self.items), r, p=self.q)
        return self.items[pick], np.log(r * self.q[pick]).astype(np.float32)


@dataclass
class Run:
    """What the named steps share and do not change: config, model, optimizer, the training windows."""

    cfg: ItemRetrieverConfig
    model: Any
    opt: Any
    x: np.ndarray  # (E, S) windows
    y: np.ndarray  # (E, S) targets, -100 = no loss
    lengths: np.ndarray  # (E,) real items per window
    valid: tuple | None  # (histories, targets) scored after each epoch
    device: str
    sampler: NegativeSampler | None = None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.x) / self.cfg.batch_size)

    @property
    def warmup(self) -> int:
        return max(1, min(self.cfg.warmup_steps, self.steps_per_epoch * self.cfg.max_epochs // 10))


def reused_report(model, path: Path, fp: str, cfg: ItemRetrieverConfig, log) -> dict | None:
    """The saved report when `path` holds weights trained on the same data and config (loaded into model)."""
    if not path.is_file():
        return None
    meta = load_weights(model, path)
    # compared as JSON: the saved config went through it (tuples came back as lists)
    if meta.get("data_sha256") == fp and meta.get("config") == json.loads(json.dumps(to_dict(cfg))):
        log(f"reusing {path} (same data and config)")
        return meta["report"]
    return None


def make_optimizer(model, cfg: ItemRetrieverConfig):
    """AdamW, betas (0.9, 0.98) as SASRec's reference code; no decay on biases and norms."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))


def validation_subset(valid, cfg: ItemRetrieverConfig) -> tuple | None:
    """The validation users scored each epoch: all, or a seeded sample of `valid_users`."""
    if valid is None:
        return None
    vh, vt = valid
    pick = np.arange(len(vt))
    if cfg.valid_users and len(vt) > cfg.valid_users:
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(vt), cfg.valid_users, replace=False))
    return [vh[i] for i in pick], np.asarray(vt)[pick]


def run_epoch(run: Run, state: LoopState, epoch: int) -> dict[str, Any]:
    """One epoch of steps, then validation; records the row and the best weights in `state`."""
    te = time.perf_counter()
    row = {"epoch": epoch + 1, "loss": train_epoch(run, state, epoch), "train_s": time.perf_counter() - te}
    if run.valid is not None:
        m = validate(run)
        row.update({f"valid_{k}": v for k, v in m.items()})
        score = m["next_ndcg@10"]
    else:
        score = -row["loss"]
    row["seconds"] = time.perf_counter() - te
    state.train_seconds += row["seconds"]
    state.history.append(row)
    if score > state.best:
        state.best, state.best_epoch, state.bad = score, epoch + 1, 0
        state.best_weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    else:
        state.bad += 1
    return row


def train_epoch(run: Run, state: LoopState, epoch: int) -> float:
    """Seeded length-bucketed batches, one optimizer step each; returns the mean loss."""
    cfg = run.cfg
    run.model.train()
    neg_rng = np.random.default_rng([cfg.seed, epoch, 1])
    losses = []
    for idx in batches(run.lengths, cfg.batch_size, np.random.default_rng([cfg.seed, epoch])):
        for g in run.opt.param_groups:
            g["lr"] = learning_rate(run, state.step)
        neg = run.sampler.draw(neg_rng, cfg.negatives) if run.sampler is not None else None
        losses.append(train_step(run, idx, neg))
        state.step += 1
    return float(np.mean(losses))


def learning_rate(run: Run, step: int) -> float:
    """Linear warm-up to cfg.lr, then constant or cosine decay to 0 at max_epochs (RPG's schedule)."""
    cfg = run.cfg
    warm = min(1.0, (step + 1) / run.warmup)
    if cfg.schedule == "constant" or step < run.warmup:
        return cfg.lr * warm
    total = max(run.warmup + 1, run.steps_per_epoch * cfg.max_epochs)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - run.warmup) / (total - run.warmup))))


def train_step(run: Run, idx: np.ndarray, negatives: tuple | None) -> float:
    import torch

    width = int(run.lengths[idx].max())  # trimmed: no compute on columns that are padding everywhere
    to = lambda a: None if a is None else torch.from_numpy(a).to(run.device)  # noqa: E731
    neg, log_q = negatives if negatives is not None else (None, None)
    loss = run.model.loss(to(run.x[idx, :width]), to(run.y[idx, :width]), to(neg), to(log_q))
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.opt.step()
    return loss.item()


def validate(run: Run) -> dict[str, float]:
    from ...evaluate.ranking import next_item_metrics

    vh, vt = run.valid
    return next_item_metrics(recommend(run.model, vh, 10, run.cfg.max_history), vt)


def should_stop(state: LoopState, cfg: ItemRetrieverConfig, log) -> bool:
    if state.bad >= cfg.patience:
        log(f"stopping: no better validation NDCG@10 for {cfg.patience} epochs")
        return True
    if cfg.max_minutes and state.train_seconds > 60 * cfg.max_minutes:
        log(f"stopping: time budget of {cfg.max_minutes} min spent")
        return True
    return False


def final_report(run: Run, state: LoopState, n_windows: int, fp: str, t0: float) -> dict[str, Any]:
    return {"config": to_dict(run.cfg), "n_params": run.model.n_params(), "windows": n_windows, "device": run.device,
            "epochs": len(state.history), "best_epoch": state.best_epoch, "best_valid_ndcg@10": state.best,
            "train_seconds": state.train_seconds, "wall_seconds": time.perf_counter() - t0,
            "history": state.history, "data_sha256": fp}


def save_weights(model, path, meta: dict) -> None:
    """Weights (codes and item vectors included: they are buffers) + JSON metadata, atomically."""
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"rqvae_ids": json.dumps(meta)})


def load_weights(model, path) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        sd = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("rqvae_ids", "{}"))
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"{path}: unreadable weights ({e})") from None
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError:
        return {}  # another shape: not reusable, the caller trains anew
    return meta


__all__ = ["ItemRetrieverConfig", "HEAD_DEFAULTS", "item_config", "train", "recommend", "windows", "pad_histories", "save_weights", "load_weights"]
