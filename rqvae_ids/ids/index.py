"""The item <-> SID lookup index over one semantic_ids table (`rqvae-ids lookup`).

SID strings sort so that a prefix made of whole tokens is a contiguous range
(ids/lookup.py), so prefix lookup is a binary search over the sorted SIDs.
"""

from __future__ import annotations

import bisect
from typing import Sequence

from .lookup import format_sid, parse_sid
from .table import read_semantic_ids


class SidIndex:
    """Item -> SID and SID prefix -> items, over one semantic_ids table.

    `item_ids` and `sids` are parallel sequences of str (N,). Prefix queries are
    O(log N + matches) via bisect over the sorted SIDs.
    """

    def __init__(self, item_ids: Sequence[str], sids: Sequence[str]):
        if len(item_ids) != len(sids):
            raise ValueError("item_ids and sids must have the same length")
        self._sid_of = dict(zip(map(str, item_ids), map(str, sids)))
        order = sorted(range(len(sids)), key=lambda i: (sids[i], item_ids[i]))
        self._sorted_sids = [str(sids[i]) for i in order]
        self._sorted_items = [str(item_ids[i]) for i in order]

    @classmethod
    def from_file(cls, path) -> "SidIndex":
        ids = read_semantic_ids(path)
        return cls(list(ids.item_ids), list(ids.sids))

    def __len__(self) -> int:
        return len(self._sorted_sids)

    def sid(self, item_id: str) -> str | None:
        """The SID of `item_id`, or None if the item is unknown."""
        return self._sid_of.get(str(item_id))

    def items(self, prefix: str | Sequence[int]) -> list[str]:
        """Items whose SID starts with `prefix` (token string or code list), in SID order.

        A full SID returns its single item; a malformed prefix raises UserError.
        """
        codes = parse_sid(prefix) if isinstance(prefix, str) else [int(c) for c in prefix]
        p = format_sid(codes)
        lo = bisect.bisect_left(self._sorted_sids, p)
        # SIDs are ASCII below 0x7f, so every SID starting with p sorts before p + '\x7f'.
        hi = bisect.bisect_left(self._sorted_sids, p + "\x7f", lo)
        return self._sorted_items[lo:hi]
