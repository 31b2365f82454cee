"""`semantic_ids.parquet` and `tokens.txt`: schema declared once, read and written here.

semantic_ids.parquet, one row per item in catalog order:
  item_id: string, c0 .. c{L-1}: uint16, suffix: uint16 (0 when unused),
  sid: string (`<a_12><b_200><c_7><d_0>`; L tokens with `reassign`), text_sha256: string.
Schema metadata (`rqvae_ids.<key>`, JSON): kind, checkpoint_sha256, levels, codebook_size,
resolve, suffix_token, created_at, embedding_model, plus provenance.

tokens.txt, one token per line, in this fixed order: level tokens by level then code
(`<a_0> .. <a_{K-1}>`, `<b_0> ..`, ...), then, with the suffix resolution, the K suffix
tokens (`<d_0> .. <d_{K-1}>` for L=3). Line i is token id i for an LM tokenizer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..core.errors import UserError
from ..core.io import decode_metadata, object_strings, read_parquet_table, write_parquet_atomic, write_text_atomic
from .lookup import format_token

MAX_CODE = np.iinfo(np.uint16).max


def semantic_ids_schema(levels: int) -> pa.Schema:
    return pa.schema(
        [pa.field("item_id", pa.string(), nullable=False)]
        + [pa.field(f"c{l}", pa.uint16(), nullable=False) for l in range(levels)]
        + [
            pa.field("suffix", pa.uint16(), nullable=False),
            pa.field("sid", pa.string(), nullable=False),
            pa.field("text_sha256", pa.string(), nullable=False),
        ]
    )


@dataclass
class SemanticIds:
    """A semantic_ids table in memory.

    item_ids: (N,) object array of str; codes: (N, L) int64; suffix: (N,) int64
    (0 when unused); sids: (N,) object array of str; text_sha256: (N,) object array
    of str; metadata: the decoded `rqvae_ids.*` schema metadata.
    """

    item_ids: np.ndarray
    codes: np.ndarray
    suffix: np.ndarray
    sids: np.ndarray
    text_sha256: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @property
    def levels(self) -> int:
        return int(self.codes.shape[1])

    @property
    def suffix_token(self) -> bool:
        """True when SIDs carry the collision-suffix token (the `suffix` resolution)."""
        return bool(self.metadata.get("suffix_token", True))

    def codes_in_order(self, item_ids: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes (M, L) int64, suffix (M,) int64) of `item_ids`, in that order (e.g. the rows of
        embeddings.parquet); a UserError naming `where` when an item has no semantic ID."""
        import pandas as pd

        pos = pd.Index(list(self.item_ids)).get_indexer(list(item_ids))
        if (pos < 0).any():
            raise UserError(f"{where}: semantic IDs miss {int((pos < 0).sum())} embedded item(s)")
        return np.asarray(self.codes, np.int64)[pos], np.asarray(self.suffix, np.int64)[pos]


def write_semantic_ids(
    path: str | os.PathLike,
    item_ids: Sequence[str] | pa.Array,
    codes: np.ndarray,
    suffix: np.ndarray,
    sids: Sequence[str],
    text_sha256: Sequence[str],
    metadata: dict[str, Any],
) -> None:
    """Write the table atomically. codes (N, L) and suffix (N,) must fit uint16; item_ids and sids
    may be Arrow string arrays already."""
    codes = np.asarray(codes)
    suffix = np.asarray(suffix)
    if codes.size and (codes.min() < 0 or codes.max() > MAX_CODE):
        raise ValueError("codes must lie in [0, 65535] to be stored as uint16")
    if suffix.size and (suffix.min() < 0 or suffix.max() > MAX_CODE):
        raise ValueError("suffix must lie in [0, 65535] to be stored as uint16")
    levels = codes.shape[1]
    if not isinstance(item_ids, pa.Array):
        item_ids = pa.array(np.asarray(item_ids, dtype=object), type=pa.string())
    arrays = [item_ids]
    arrays += [pa.array(codes[:, l].astype(np.uint16)) for l in range(levels)]
    arrays += [
        pa.array(suffix.astype(np.uint16)),
        sids if isinstance(sids, pa.Array) else pa.array(np.asarray(sids, dtype=object), type=pa.string()),
        pa.array(np.asarray(text_sha256, dtype=object), type=pa.string()),
    ]
    table = pa.Table.from_arrays(arrays, schema=semantic_ids_schema(levels))
    write_parquet_atomic(table, path, metadata)


def read_semantic_ids(path: str | os.PathLike) -> SemanticIds:
    """Read a semantic_ids.parquet written by `rqvae-ids assign`; UserError on bad files."""
    p, table = read_parquet_table(path, "semantic IDs file")
    names = table.column_names
    missing = {"item_id", "suffix", "sid", "text_sha256", "c0"} - set(names)
    if missing:
        raise UserError(f"{p} is not a semantic IDs file: missing column(s) {sorted(missing)}")
    levels = 0
    while f"c{levels}" in names:
        levels += 1
    codes = np.stack(
        [table.column(f"c{l}").to_numpy().astype(np.int64) for l in range(levels)], axis=1
    )
    return SemanticIds(
        item_ids=object_strings(table.column("item_id")),
        codes=codes,
        suffix=table.column("suffix").to_numpy().astype(np.int64),
        sids=object_strings(table.column("sid")),
        text_sha256=object_strings(table.column("text_sha256")),
        metadata=decode_metadata(table.schema),
    )


def token_vocabulary(levels: int, codebook_size: int, suffix_size: int = 0) -> list[str]:
    """All SID tokens in tokens.txt order: levels then codes, then `suffix_size` suffix tokens."""
    tokens = [format_token(l, c) for l in range(levels) for c in range(codebook_size)]
    tokens += [format_token(levels, s) for s in range(suffix_size)]
    return tokens


def write_tokens(path: str | os.PathLike, levels: int, codebook_size: int, suffix_size: int = 0) -> None:
    write_text_atomic(path, "\n".join(token_vocabulary(levels, codebook_size, suffix_size)) + "\n")
