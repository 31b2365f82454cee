"""Prefix trie of the valid semantic IDs, as a dense transition table.

Constrained decoding asks one question per step: from this prefix, which next
tokens lead to an existing item? With T tokens per ID and at most K values per
position, a trie over N items has at most 1 + N·T nodes, so a dense table
`next_node[node, value]` (-1 = no such child) costs about N·T·K·4 bytes
(12k items × 4 × 256 → ~50 MB worst case, much less in practice since the
top levels share nodes). Lookups are one gather, on CPU or GPU alike.
"""

from __future__ import annotations

import numpy as np

from ...core.errors import UserError


class SidTrie:
    """Trie of the code tuples `codes` (N, T) int, one row per catalog item.

    Attributes:
        depth: T, tokens per ID.
        width: K, number of values per position: the IDs' codebook size (`width`, read
            from the semantic IDs' metadata or the retriever's config.json), else max code + 1.
        next_node: (n_internal, K) int64, child node of (node, value) or -1.
            Nodes 0..n_internal-1 are the internal nodes (depth < T), root = 0.
        leaf_item: (n_leaves,) int64, catalog index of each leaf; a child id
            c >= n_internal at depth T is leaf c - n_internal.
    Every row of `codes` must be distinct (IDs are unique by construction:
    the IDs stage appends a dedup suffix).
    """

    def __init__(self, codes: np.ndarray, width: int | None = None):
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] == 0:
            raise UserError(f"semantic IDs: expected a non-empty (N, T) code matrix, got shape {codes.shape}")
        if codes.min() < 0:
            raise UserError("semantic IDs: codes must be non-negative")
        codes = codes.astype(np.int64)
        n, depth = codes.shape
        self.depth = depth
        self.width = code_width(codes, width)
        self.n_items = n
        # Node ids per depth: unique prefixes of length d (d = 0..T-1) are internal nodes.
        node_of_prefix = np.zeros(n, np.int64)  # node of each item's prefix at current depth
        offset = 1  # root is node 0
        parents, values, children = [], [], []
        for d in range(depth - 1):
            key = node_of_prefix * self.width + codes[:, d]
            uniq, inv = np.unique(key, return_inverse=True)
            child = offset + np.arange(len(uniq))
            parents.append(uniq // self.width)
            values.append(uniq % self.width)
            children.append(child)
            node_of_prefix = child[inv]
            offset += len(uniq)
        self.n_internal = offset
        key = node_of_prefix * self.width + codes[:, -1]
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = int((counts > 1).sum())
            raise UserError(
                f"semantic IDs: {dup} ID(s) are shared by several items; IDs must be unique "
                "(assign them with a collision suffix)"
            )
        table = np.full((self.n_internal, self.width), -1, np.int64)
        for p, v, c in zip(parents, values, children):
            table[p, v] = c
        # Leaves: one per item, in catalog order, so leaf id == item index.
        table[node_of_prefix, codes[:, -1]] = self.n_internal + np.arange(n)
        self.next_node = table
        self.leaf_item = np.arange(n, dtype=np.int64)
        self.codes = codes

    def allowed(self, nodes: np.ndarray) -> np.ndarray:
        """(…) internal node ids -> (…, K) bool mask of the values with a child."""
        return self.next_node[nodes] >= 0

    def step(self, nodes: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Child of each (node, value); -1 where the prefix does not exist."""
        return self.next_node[nodes, values]

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """(M, T) code tuples -> (M,) catalog index, -1 where the tuple is not an ID."""
        codes = np.asarray(codes, dtype=np.int64)
        node = np.zeros(len(codes), np.int64)
        for d in range(self.depth):
            v = codes[:, d]
            ok = (node >= 0) & (node < self.n_internal) & (v >= 0) & (v < self.width)
            nxt = np.full(len(codes), -1, np.int64)
            nxt[ok] = self.next_node[node[ok], v[ok]]
            node = nxt
        return np.where(node >= self.n_internal, node - self.n_internal, -1)

    def __len__(self) -> int:
        return self.n_items


def code_width(codes: np.ndarray, width: int | None = None) -> int:
    """K of the code tuples: `width` (the codebook size stored with the IDs) when known, checked
    against the data; None (a retriever saved before the width was stored, or bare codes)
    falls back to max code + 1, which is too small when no item uses the top code."""
    used = int(np.max(codes)) + 1
    if width is None:
        return used
    if int(width) < used:
        raise UserError(f"semantic IDs: code {used - 1} does not fit the codebook size {width} stored with them")
    return int(width)
