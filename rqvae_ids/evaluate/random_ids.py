"""Random-ID baseline: unique code tuples with the same L x K budget as the models.

The floor every tokenizer must beat: codes carry no information about the item,
so neighbour recall is ~chance and sid-prefix retrieval falls back to popularity.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import UserError


def random_codes(n_items: int, levels: int, codebook_size: int, seed: int = 0) -> np.ndarray:
    """(n_items, levels) int64 codes in [0, codebook_size), every tuple distinct, seeded.

    Tuples are drawn uniformly without replacement from the K^L space, so no
    suffix is needed (collision rate 0) and each level is ~uniformly used.
    """
    space = codebook_size**levels
    if n_items > space:
        raise UserError(f"random IDs: {n_items} items do not fit in {codebook_size}^{levels} = {space} tuples")
    rng = np.random.default_rng(seed)
    flat = rng.choice(space, size=n_items, replace=False).astype(np.int64)
    codes = np.empty((n_items, levels), dtype=np.int64)
    for level in range(levels - 1, -1, -1):
        codes[:, level] = flat % codebook_size
        flat //= codebook_size
    return codes
