"""The item vector of the `hybrid` head: semantic-ID codes (and an item ID, and the item's
text) as item features, one vector per catalog item, the same in and out of the Transformer.

    v_i = norm( id_i * keep_i  (+)  sum_d code_table[c_d(i)]  (+)  text_proj(x_i) )

where (+) is a sum (default) or a concatenation followed by a linear map, `keep_i` is 0 for an
item with no training occurrence (a new item: its ID row was never trained, so its ID part is
exactly zero, never a random row) and, in training only, 0 with probability `id_dropout` (so
the model learns to score an item from its codes and text: what a new item has).

Any non-empty subset of the parts works: `id` alone is SASRec's table; `codes`+`text` scores
every item, old or new, the same way. Singh et al. (RecSys 2024) use semantic-ID n-grams in
place of item hashing for the same reason: rare and new items borrow strength from the items
that share their codes; LIGER (2024) adds the text side.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ...core.config import check

PARTS = ("id", "codes", "text")


def check_parts(parts) -> tuple[str, ...]:
    """A non-empty subset of PARTS, in PARTS order (so ("text", "id") and ("id", "text") are one model)."""
    given = tuple(parts)
    unknown = [p for p in given if p not in PARTS]
    check(not unknown, f"unknown item part(s) {', '.join(map(repr, unknown))}; choose from {', '.join(PARTS)}")
    check(len(given) > 0, f"the item parts must name at least one of {', '.join(PARTS)}")
    check(len(set(given)) == len(given), f"item parts repeat: {', '.join(given)}")
    return tuple(p for p in PARTS if p in given)


class ItemFeatures(nn.Module):
    """Composed item vectors. codes: (N, D) ints in [0, width) when "codes" is a part;
    item_vectors: (N, c) float32 when "text" is a part. Both are buffers (they travel with the
    weights). The ID-part mask `keep` comes from the model, which knows the items seen in training."""

    def __init__(self, n_items: int, d: int, parts, codes=None, width: int = 0, item_vectors=None,
                 compose: str = "sum", shared_codes: bool = False, text_mlp: bool = False, norm: bool = False):
        super().__init__()
        self.parts = check_parts(parts)
        check(compose in ("sum", "concat"), f"compose must be sum or concat, got {compose!r}")
        self.n_items, self.compose = n_items, compose
        if "id" in self.parts:
            self.ids = nn.Embedding(n_items, d)
            nn.init.normal_(self.ids.weight, std=0.02)
        if "codes" in self.parts:
            c = torch.as_tensor(np.asarray(codes, dtype=np.int64))
            check(c.ndim == 2 and len(c) == n_items, f"codes must be ({n_items}, D), got {tuple(c.shape)}")
            check(bool((c >= 0).all() and (c < width).all()), f"codes must lie in [0, {width})")
            # one table per digit (digit d's code k is row d*K + k) unless shared: the same code
            # value means the same thing at every digit only for some tokenizers (opq does not)
            flat = c if shared_codes else c + torch.arange(c.shape[1]) * width
            self.register_buffer("flat_codes", flat)
            self.codes = nn.Embedding(width if shared_codes else width * c.shape[1], d)
            nn.init.normal_(self.codes.weight, std=0.02)
        if "text" in self.parts:
            v = torch.as_tensor(np.asarray(item_vectors, dtype=np.float32))
            check(v.ndim == 2 and len(v) == n_items, f"item vectors must be ({n_items}, c), got {tuple(v.shape)}")
            self.register_buffer("item_vectors", v)
            c_in = v.shape[1]
            self.text = (nn.Sequential(nn.Linear(c_in, 2 * d), nn.GELU(), nn.Linear(2 * d, d)) if text_mlp
                         else nn.Linear(c_in, d, bias=False))
        self.mix = nn.Linear(len(self.parts) * d, d, bias=False) if compose == "concat" else None
        self.norm = nn.LayerNorm(d) if norm else nn.Identity()

    def forward(self, keep: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """keep: (N,) float ID-part mask (0 = no ID part); idx: (M,) int64 catalog indices, or
        None for every item -> (M, d) item vectors."""
        rows = []
        if "id" in self.parts:
            w, k = (self.ids.weight, keep) if idx is None else (self.ids(idx), keep[idx])
            rows.append(w * k.unsqueeze(-1))
        if "codes" in self.parts:
            fc = self.flat_codes if idx is None else self.flat_codes[idx]
            rows.append(self.codes(fc).sum(-2))
        if "text" in self.parts:
            rows.append(self.text(self.item_vectors if idx is None else self.item_vectors[idx]))
        v = torch.stack(rows).sum(0) if self.mix is None else self.mix(torch.cat(rows, -1))
        return self.norm(v)


__all__ = ["ItemFeatures", "PARTS", "check_parts"]
