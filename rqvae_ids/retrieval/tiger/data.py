"""Training examples for the sequence model, from the leave-one-out split.

Every prefix of a training sequence predicts its next item, with the history
truncated to the last `max_history` items (the split's protocol, TIGER's 20).

- decoder-only: a user's sequence is cut into windows of at most
  `max_history + 1` items; one causal pass scores every item of a window from
  the items before it. The first window scores items 1.., each later window
  (a sequence longer than max_history + 1) scores only its last item, so every
  target is seen once, with exactly its truncated history.
- encoder–decoder: one (history, target) example per prefix.

Every builder also returns `content` (B,S) int64 aligned with the history tokens:
catalog index + 1 where that item's content vector enters the model (content_index),
0 elsewhere; a model without item vectors ignores it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .model import BOS, PAD, SeqModelConfig


def item_tokens(codes: np.ndarray, cfg: SeqModelConfig) -> np.ndarray:
    """(N, T) codes -> (N, T) int64 token ids (position-specific blocks)."""
    offsets = np.array([cfg.offset(d) for d in range(cfg.depth)], dtype=np.int64)
    return np.asarray(codes, dtype=np.int64) + offsets


def content_index(items, cfg: SeqModelConfig) -> np.ndarray:
    """(n,) catalog indices -> (n·T,) int64, aligned with their tokens: index + 1 where the
    item's content enters, 0 elsewhere. Decoder: only each item's LAST token (its output
    predicts the next item, so predicting token t of item i never sees item i's content);
    encoder: every token."""
    c = np.repeat(np.asarray(items, dtype=np.int64) + 1, cfg.depth)
    if cfg.arch == "decoder":
        c.reshape(-1, cfg.depth)[:, :-1] = 0
    return c


def user_token(user: str | None, cfg: SeqModelConfig) -> int | None:
    """Hashed user token (stable across runs: crc32, not Python's salted hash), or None."""
    if cfg.user_buckets == 0:
        return None
    bucket = zlib.crc32((user or "").encode("utf-8")) % cfg.user_buckets
    return 2 + cfg.depth * cfg.width + bucket


@dataclass
class Examples:
    """Index form of the training examples: (user row, end) pairs.

    For the decoder: the window is seq[start:end], loss on items >= loss_from.
    For encdec: history seq[start:end-1], target seq[end-1].
    """

    user: np.ndarray  # (E,) int64 row in the sequences list
    start: np.ndarray  # (E,) int64
    end: np.ndarray  # (E,) int64
    loss_from: np.ndarray  # (E,) int64, position in the window of the first scored item

    def __len__(self) -> int:
        return len(self.user)


def build_examples(sequences: Sequence[np.ndarray], arch: str, max_history: int = 20) -> Examples:
    rows = []
    for u, seq in enumerate(sequences):
        n = len(seq)
        if n < 2:
            continue
        if arch == "decoder":
            w = max_history + 1
            rows.append((u, 0, min(n, w), 1))
            rows.extend((u, e - w, e, w - 1) for e in range(w + 1, n + 1))
        else:
            rows.extend((u, max(0, e - 1 - max_history), e, 0) for e in range(2, n + 1))
    a = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return Examples(a[:, 0], a[:, 1], a[:, 2], a[:, 3])


def decoder_batch(seqs, users, ex: Examples, idx: np.ndarray, tokens: np.ndarray, cfg: SeqModelConfig):
    """Examples `idx` -> (x (B,S), targets (B,S), content (B,S)) int64, right-padded;
    targets -100 = no loss."""
    t = cfg.depth
    rows = []
    for i in idx:
        items = seqs[ex.user[i]][ex.start[i] : ex.end[i]]
        toks, cont = tokens[items].reshape(-1), content_index(items, cfg)
        tgt = toks.copy()
        tgt[: ex.loss_from[i] * t] = -100
        ut = user_token(users[ex.user[i]] if users is not None else None, cfg)
        if ut is not None:
            toks, tgt, cont = np.concatenate([[ut], toks]), np.concatenate([[-100], tgt]), np.concatenate([[0], cont])
        rows.append((toks[:-1], tgt[1:], cont[:-1]))
    s = max(len(r[0]) for r in rows)
    x = np.full((len(rows), s), PAD, np.int64)
    y = np.full((len(rows), s), -100, np.int64)
    c = np.zeros((len(rows), s), np.int64)
    for j, (a, b, d) in enumerate(rows):
        x[j, : len(a)], y[j, : len(b)], c[j, : len(d)] = a, b, d
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(c)


def encdec_batch(seqs, users, ex: Examples, idx: np.ndarray, tokens: np.ndarray, cfg: SeqModelConfig):
    """Examples `idx` -> (src (B,S), dec_in (B,T), targets (B,T), content (B,S) of src) int64."""
    hist = [seqs[ex.user[i]][ex.start[i] : ex.end[i] - 1] for i in idx]
    src, cont = history_tokens(hist, tokens, cfg, [users[ex.user[i]] for i in idx] if users is not None else None)
    tgt = tokens[[seqs[ex.user[i]][ex.end[i] - 1] for i in idx]]
    dec_in = np.concatenate([np.full((len(idx), 1), BOS, np.int64), tgt[:, :-1]], axis=1)
    return src, torch.from_numpy(dec_in), torch.from_numpy(tgt), cont


def history_tokens(histories, tokens: np.ndarray, cfg: SeqModelConfig, users=None, max_history: int = 20):
    """Histories (list of int item arrays) -> (tokens (B,S), content (B,S)) int64, LEFT-padded
    (the last real token is the last column), user token first when configured."""
    rows = []
    for j, h in enumerate(histories):
        items = np.asarray(h, dtype=np.int64)[-max_history:]
        toks, cont = tokens[items].reshape(-1), content_index(items, cfg)
        ut = user_token(users[j] if users is not None else None, cfg)
        rows.append((np.concatenate([[ut], toks]), np.concatenate([[0], cont])) if ut is not None else (toks, cont))
    s = max(1, max(len(r[0]) for r in rows))
    x = np.full((len(rows), s), PAD, np.int64)
    c = np.zeros((len(rows), s), np.int64)
    for j, (a, d) in enumerate(rows):
        if len(a):
            x[j, s - len(a) :], c[j, s - len(d) :] = a, d
    return torch.from_numpy(x), torch.from_numpy(c)
