"""Beam search constrained to the valid semantic IDs.

At every step each beam may only extend its prefix with values that have a
child in the `SidTrie`; everything else gets -inf before the top-k. A beam
therefore always sits on an existing prefix and, after T steps, on a leaf —
an item of the catalog. The number of complete beams is min(beam, items).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from .trie import SidTrie


class Scorer(Protocol):
    """What the search needs from a model (SeqModel meets it; tests use a fixed table).

    start(batch) -> (state, log-probs (B, K) float of ID position 0)
    step(state, parents (N,) int64, values (N,) int64, pos) -> (state, log-probs (N, K))
      `parents` index rows of the previous state; `values` are the codes chosen
      (0..K-1) at position pos-1 for each new row.
    """

    def start(self, batch: Any) -> tuple[Any, torch.Tensor]: ...

    def step(self, state: Any, parents: torch.Tensor, values: torch.Tensor, pos: int) -> tuple[Any, torch.Tensor]: ...


def constrained_beam_search(
    scorer: Scorer, batch: Any, trie: SidTrie, beam: int, table: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-`beam` valid IDs per row of `batch` (what `scorer.start` takes; a tuple is spread
    into its arguments), best first.

    table: `trie.next_node` as a torch tensor on the scorer's device (pass it to
    avoid a copy per call).
    Returns (items (B, beam) int64 catalog indices, -1 only where the catalog has
    fewer than `beam` items; scores (B, beam) float32 summed log-probs).
    """
    state, logp = scorer.start(*batch) if isinstance(batch, tuple) else scorer.start(batch)
    device = logp.device
    if table is None:
        table = torch.as_tensor(trie.next_node, device=device)
    b, k = logp.shape[0], trie.width
    if logp.shape[1] < k:
        raise ValueError(f"scorer gives {logp.shape[1]} values per position, the IDs need {k}")
    neg = torch.tensor(float("-inf"), device=device)
    nodes = torch.zeros(b, 1, dtype=torch.long, device=device)  # all rows at the root
    scores = torch.zeros(b, 1, device=device)
    for pos in range(trie.depth):
        if pos > 0:
            flat_parent = (parent_beam + torch.arange(b, device=device)[:, None] * width).reshape(-1)
            state, logp = scorer.step(state, flat_parent, values.reshape(-1), pos)
        width = nodes.shape[1]
        logp = logp.view(b, width, -1)[..., :k].float()  # values >= K exist in no ID
        safe = nodes.clamp(min=0)
        child = table[safe]  # (B, width, K)
        ok = (child >= 0) & (nodes >= 0)[..., None]
        cand = torch.where(ok, scores[..., None] + logp, neg).view(b, width * k)
        keep = min(beam, width * k)
        scores, idx = cand.topk(keep, dim=1)
        parent_beam, values = idx // k, idx % k
        nodes = torch.gather(child.view(b, width * k), 1, idx)
        nodes = torch.where(torch.isfinite(scores), nodes, torch.full_like(nodes, -1))
    items = torch.where(nodes >= trie.n_internal, nodes - trie.n_internal, torch.full_like(nodes, -1))
    if items.shape[1] < beam:  # fewer candidates than beams (tiny catalogs)
        pad = beam - items.shape[1]
        items = torch.cat([items, items.new_full((b, pad), -1)], dim=1)
        scores = torch.cat([scores, scores.new_full((b, pad), float("-inf"))], dim=1)
    return items, scores


@torch.no_grad()
def beam_recommend(
    model,
    trie: SidTrie,
    tokens,
    histories,
    k: int,
    beam: int,
    users=None,
    batch_size: int = 256,
    max_history: int = 20,
    table: torch.Tensor | None = None,
) -> "np.ndarray":
    """Top-k catalog indices per history with a trained SeqModel: (U, k) int64.

    tokens: (N, T) token ids of every item (data.item_tokens); beam >= k.
    """
    import numpy as np

    from .data import history_tokens

    if beam < k:
        raise ValueError(f"beam width {beam} must be >= k = {k}")
    device = next(model.parameters()).device
    if table is None:
        table = torch.as_tensor(trie.next_node, device=device)
    model.eval()
    out = np.empty((len(histories), k), dtype=np.int64)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _null()
    for s in range(0, len(histories), batch_size):
        chunk = histories[s : s + batch_size]
        u = users[s : s + batch_size] if users is not None else None
        x, content = (t.to(device) for t in history_tokens(chunk, tokens, model.cfg, u, max_history))
        with amp:
            items, _ = constrained_beam_search(model, (x, content), trie, beam, table)
        out[s : s + len(chunk)] = items[:, :k].cpu().numpy()
    return out


def filter_history(raw: np.ndarray, histories, k: int, popular: np.ndarray) -> np.ndarray:
    """Drop each row's history items from `raw` (U, beam), keep the first k; short rows are
    filled from `popular` (most trained-on items first)."""
    import numpy as np

    out = np.empty((len(raw), k), dtype=np.int64)
    for i, (row, h) in enumerate(zip(raw, histories)):
        seen = set(np.asarray(h).tolist())
        keep = [int(x) for x in row if x >= 0 and x not in seen][:k]
        if len(keep) < k:
            have = seen | set(keep)
            keep += [int(x) for x in popular if x not in have][: k - len(keep)]
        out[i, : len(keep)] = keep
        out[i, len(keep):] = -1
    return out


def _null():
    import contextlib

    return contextlib.nullcontext()
