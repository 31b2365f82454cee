"""A small Transformer over semantic-ID tokens, decoder-only or encoder–decoder.

Vocabulary: 0 = PAD, 1 = BOS, then one block of K tokens per ID position
(token of value v at position d = 2 + d·K + v, so `<a_5>` and `<b_5>` differ),
then `user_buckets` hashed user tokens (TIGER prepends one to the history).

- `arch="decoder"`: one causal stack over history tokens; the logits at every
  position predict the next token, so one pass over a user's training sequence
  trains every prefix → next-item example at once.
- `arch="encdec"` (TIGER): a bidirectional encoder reads the history, a causal
  decoder with cross-attention emits the next item's T tokens after BOS.

Both expose `forward(x, y=None, targets=None, content=None) -> (logits, loss)` for
training and `start`/`step` incremental scoring (KV cache) for beam search.

Item content (opt-in: `SeqModel(cfg, item_vectors)`): each history item's text
embedding, projected by one bias-free Linear, is added to the token embedding where
`content` (B,S) holds "catalog index + 1" (0 = nothing; data.content_index): at the
LAST token of each history item for the decoder (its output predicts the next item's
first token, so no target token sees its own item's content), at every history token
for the encoder. Decoder-side tokens (generated or BOS-led) never get content. The
(N, d_in) vectors are a persistent buffer: they travel with the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...core.config import check

PAD, BOS, N_SPECIAL = 0, 1, 2


@dataclass(frozen=True)
class SeqModelConfig:
    depth: int  # T, tokens per ID (levels + suffix)
    width: int  # K, values per position
    arch: Literal["decoder", "encdec"] = "decoder"
    n_layer: int = 2  # per stack (encdec: encoder and decoder each)
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.1
    max_items: int = 21  # history items (20) + the target item
    user_buckets: int = 0  # 0 = no user token; TIGER hashes users into 2000 buckets

    def __post_init__(self):
        check(self.arch in ("decoder", "encdec"), f"arch must be decoder or encdec, got {self.arch!r}")
        check(self.d_model % self.n_head == 0, "d_model must be a multiple of n_head")
        check(self.depth >= 1 and self.width >= 1, "depth and width must be positive")

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + self.depth * self.width + self.user_buckets

    @property
    def max_len(self) -> int:
        return 1 + self.max_items * self.depth

    def offset(self, pos: int) -> int:
        """First token id of ID position `pos`."""
        return N_SPECIAL + pos * self.width


class Attention(nn.Module):
    """Multi-head attention; `source` given = cross-attention. Incremental decoding
    (SeqModel._advance) reuses its projections with cached keys/values."""

    def __init__(self, cfg: SeqModelConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, s, d = t.shape
        return t.view(b, s, self.n_head, d // self.n_head).transpose(1, 2)

    def forward(self, x, mask, source=None):
        """x (B,S,D); mask (B,1,S,S') bool, True = may attend; source (B,S',D) for
        cross-attention (default: x itself). Returns (y (B,S,D), (k, v) (B,H,S',hd))."""
        src = x if source is None else source
        q = self._heads(self.q(x))
        k, v = (self._heads(t) for t in self.kv(src).chunk(2, dim=-1))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        b, h, s, hd = y.shape
        return self.proj(y.transpose(1, 2).reshape(b, s, h * hd)), (k, v)


class Block(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, MLP."""

    def __init__(self, cfg: SeqModelConfig, cross: bool = False):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.d_model), Attention(cfg)
        self.cross = Attention(cfg) if cross else None
        self.ln_c = nn.LayerNorm(cfg.d_model) if cross else None
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask, memory=None, memory_mask=None):
        """x (B,S,D) -> (x (B,S,D), self-attention (k, v) for a cache)."""
        a, kv = self.attn(self.ln1(x), mask)
        x = x + self.drop(a)
        if self.cross is not None:
            x = x + self.drop(self.cross(self.ln_c(x), memory_mask, source=memory)[0])
        return x + self.drop(self.mlp(self.ln2(x))), kv


def grouped_attention(q, k, v, ok, extra_k=None, extra_v=None):
    """Attention of one new token per row to keys shared by its group, without copying them.

    q (B·w,H,1,hd): rows b-major (row = b·w + j, w beams per user);
    k, v (B,H,S,hd): the user's history (or encoder memory) keys, shared by its w rows;
    ok (B,S) bool: which shared keys are real;
    extra_k, extra_v (B·w,H,t,hd) or None: per-row keys (tokens generated so far), all visible.
    Returns (B·w,H,1,hd).
    """
    b, h, s, hd = k.shape
    n = q.shape[0]
    w = n // b
    qg = q.view(b, w, h, hd) * hd**-0.5
    scores = torch.einsum("bwhd,bhsd->bwhs", qg, k).masked_fill(~ok[:, None, None, :], float("-inf"))
    if extra_k is not None:
        own = (q * hd**-0.5 * extra_k).sum(-1).view(b, w, h, -1)  # (B,w,H,t)
        scores = torch.cat([scores, own], dim=-1)
    p = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    out = torch.einsum("bwhs,bhsd->bwhd", p[..., :s], v).reshape(n, h, 1, hd)
    if extra_k is not None:
        out = out + (p[..., s:].reshape(n, h, -1, 1) * extra_v).sum(2, keepdim=True)
    return out


def _positions(pad: torch.Tensor) -> torch.Tensor:
    """(B,S) pad mask -> positions counted over real tokens (left or right padding)."""
    return (torch.cumsum((~pad).long(), dim=1) - 1).clamp(min=0)


def _self_mask(pad: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B,S) pad -> (B,1,S,S) bool: real keys (and always the token itself), causal if asked."""
    s = pad.shape[1]
    eye = torch.eye(s, dtype=torch.bool, device=pad.device)
    allowed = (~pad)[:, None, None, :] | eye
    if causal:
        allowed = allowed & torch.ones(s, s, dtype=torch.bool, device=pad.device).tril()
    return allowed


def _memory_mask(src_pad: torch.Tensor) -> torch.Tensor:
    """(B,S) source pad -> (B,1,1,S) cross-attention mask; the last column (a real token
    with left padding) always stays open so an empty history gives no NaN."""
    ok = ~src_pad
    ok[:, -1] = True
    return ok[:, None, None, :]


class SeqModel(nn.Module):
    def __init__(self, cfg: SeqModelConfig, item_vectors=None):
        """item_vectors: (N, d_in) item text embeddings in catalog order, or None (no content)."""
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD)
        self.pos = nn.Embedding(cfg.max_len + 1, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        enc = cfg.arch == "encdec"
        self.blocks = nn.ModuleList(Block(cfg, cross=enc) for _ in range(cfg.n_layer))
        self.encoder = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)) if enc else None
        self.ln_e = nn.LayerNorm(cfg.d_model) if enc else None
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # weight tying (nanoGPT)
        self.content = None
        if item_vectors is not None:
            self.register_buffer("item_vectors", torch.as_tensor(item_vectors, dtype=torch.float32).clone())
            self.content = nn.Linear(self.item_vectors.shape[1], cfg.d_model, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def _embed(self, x, pos, content=None):
        """Token + position embeddings, plus the projected item content where `content` (B,S)
        is > 0 (models built with item_vectors only; others ignore it; None = no content)."""
        e = self.tok(x) + self.pos(pos.clamp(max=self.cfg.max_len))
        if self.content is not None and content is not None:
            keep = content > 0
            add = torch.zeros_like(e)
            add[keep] = self.content(self.item_vectors[content[keep] - 1]).to(e.dtype)
            e = e + add
        return self.drop(e)

    def encode(self, src, content=None):
        """src (B,S) token ids, PAD-padded -> (memory (B,S,D), src pad (B,S))."""
        pad = src == PAD
        h, mask = self._embed(src, _positions(pad), content), _self_mask(pad, causal=False)
        for blk in self.encoder:
            h = blk(h, mask)[0]
        return self.ln_e(h), pad

    def forward(self, x, y=None, targets=None, content=None):
        """Decoder: x (B,S) int64 tokens (right-padded), y None.
        Encdec: x (B,S) history tokens, y (B,T) decoder input (BOS + first T-1 tokens).
        targets: (B,S) or (B,T) int64 next-token ids (ID tokens), -100 = ignore.
        content: (B,S) int64 like x, catalog index + 1 where an item's content enters
        (data.content_index), 0 elsewhere; needed only by a model with item_vectors.
        Returns (logits, loss): without targets, logits (B,S|T,V) float32 and loss None;
        with targets, logits (M,K) float32 over the values of each scored target's ID
        position (M = scored targets) and the mean cross-entropy."""
        check(self.content is None or content is not None, "this model reads item content: pass content")
        if self.cfg.arch == "decoder":
            pad = x == PAD
            h, mask = self._embed(x, _positions(pad), content), _self_mask(pad, causal=True)
            for blk in self.blocks:
                h = blk(h, mask)[0]
        else:
            check(y is not None, "encdec needs the decoder input y")
            memory, src_pad = self.encode(x, content)
            pos = torch.arange(y.shape[1], device=y.device).expand_as(y)
            h, mask = self._embed(y, pos), _self_mask(y == PAD, causal=True)
            mem_mask = _memory_mask(src_pad)
            for blk in self.blocks:
                h = blk(h, mask, memory=memory, memory_mask=mem_mask)[0]
        h = self.ln_f(h)
        if targets is None:
            return self.head(h).float(), None
        # Score each target only against the K values of its own ID position (what beam search
        # ranks), which also skips 3/4 of the output layer.
        keep = targets.reshape(-1) >= N_SPECIAL
        hs, tg = h.reshape(-1, h.shape[-1])[keep], targets.reshape(-1)[keep] - N_SPECIAL
        level, value = tg // self.cfg.width, tg % self.cfg.width
        logits = torch.empty(len(tg), self.cfg.width, device=h.device, dtype=torch.float32)
        for d in range(self.cfg.depth):
            sel = level == d
            o = self.cfg.offset(d)
            logits[sel] = (hs[sel] @ self.head.weight[o : o + self.cfg.width].T).float()
        return logits, F.cross_entropy(logits, value)

    # ---- incremental scoring for beam search -------------------------------------------------
    def _value_logprobs(self, h, pos: int):
        """h (N,D) last hidden states -> (N,K) log-probs over the values of ID position `pos`."""
        o = self.cfg.offset(pos)
        logits = self.ln_f(h) @ self.head.weight[o : o + self.cfg.width].T
        return F.log_softmax(logits.float(), dim=-1)

    @torch.no_grad()
    def start(self, hist, content=None):
        """hist (B,S) left-padded history tokens (content: as in forward) -> (state, log-probs
        (B,K) of ID position 0). Generated tokens (`step`) get no content.

        The state keeps the history's keys/values once per user (`shared`); the beams of a
        user only add keys for the tokens they generate (`own`, one entry per row)."""
        check(self.content is None or content is not None, "this model reads item content: pass content")
        pad = hist == PAD
        b = hist.shape[0]
        if self.cfg.arch == "decoder":
            pos = _positions(pad)
            h, mask = self._embed(hist, pos, content), _self_mask(pad, causal=True)
            shared = []
            for blk in self.blocks:
                h, kv = blk(h, mask)
                shared.append(kv)
            state = {"shared": shared, "ok": ~pad, "pos": pos[:, -1] + 1, "own": None}
            return state, self._value_logprobs(h[:, -1], 0)
        memory, _ = self.encode(hist, content)
        shared = [tuple(blk.cross._heads(t) for t in blk.cross.kv(memory).chunk(2, dim=-1)) for blk in self.blocks]
        ok = _memory_mask(pad)[:, 0, 0, :]
        state = {"shared": shared, "ok": ok, "pos": torch.zeros(b, dtype=torch.long, device=hist.device), "own": None}
        bos = torch.full((b,), BOS, dtype=torch.long, device=hist.device)
        return self._advance(state, bos, 0)

    @torch.no_grad()
    def step(self, state, parents, values, pos: int):
        """Feed one token per row. parents (N,) rows of the previous state each row continues
        (b-major: rows of user b are contiguous); values (N,) int64 codes chosen at ID
        position pos-1; pos = ID position to score next. Returns (state, log-probs (N,K))."""
        if state["own"] is not None:
            state = dict(state, own=[(k[parents], v[parents]) for k, v in state["own"]])
        return self._advance(state, values + self.cfg.offset(pos - 1), pos)

    def _advance(self, state, tokens, pos: int):
        b = state["ok"].shape[0]
        n = tokens.shape[0]
        p = state["pos"].repeat_interleave(n // b)
        h = self._embed(tokens[:, None], p[:, None])  # (N,1,D)
        own = []
        for i, blk in enumerate(self.blocks):
            a = blk.attn
            x = blk.ln1(h)
            q = a._heads(a.q(x))
            k, v = (a._heads(t) for t in a.kv(x).chunk(2, dim=-1))
            if state["own"] is not None:
                k, v = torch.cat([state["own"][i][0], k], dim=2), torch.cat([state["own"][i][1], v], dim=2)
            own.append((k, v))
            if self.cfg.arch == "decoder":  # history (shared) + own tokens
                y = grouped_attention(q, *state["shared"][i], state["ok"], k, v)
            else:  # decoder self-attention over own tokens only
                y = F.scaled_dot_product_attention(q, k, v)
            h = h + a.proj(y.transpose(1, 2).reshape(n, 1, -1))
            if blk.cross is not None:
                c = blk.cross
                qc = c._heads(c.q(blk.ln_c(h)))
                y = grouped_attention(qc, *state["shared"][i], state["ok"])
                h = h + c.proj(y.transpose(1, 2).reshape(n, 1, -1))
            h = h + blk.mlp(blk.ln2(h))
        state = dict(state, own=own, pos=state["pos"] + 1)
        return state, self._value_logprobs(h[:, -1], pos)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
