"""Collaborative item embeddings from the TRAINING part of the interactions (item2vec-style).

The collaborative signal the tokenizers learn from (rqvae's InfoNCE term, rqkmeans-cf):
a PPMI matrix of item co-occurrences within a window of each user's training sequence
(the harness's leave-one-out split: every sequence without its validation and test target,
so no validation or test target is ever seen), factorised by a seeded randomized SVD
(Levy & Goldberg: SVD of shifted PPMI ~ word2vec's SGNS). Items that never co-occur with
another in the training part get no CF embedding; the tokenizers fall back to text for them.

`cf_embeddings.parquet` (format and readers: `rqvae_ids/core/cf_table.py`, floor 0, so that ID
assignment can read the CF embeddings a model was trained with): `build_cf_table` writes it
and reuses a file whose key (interactions hash, catalog, config) matches: the cache. Rows of
items outside the catalog are dropped, said and counted (metadata `interactions.notes`);
interactions with no usable sequence are a UserError before anything is written
(`check_interactions` says so up front, for the pipeline's preflight).

It reads interactions with evaluate/sequences.py (documented as shared foundation in
docs/ARCHITECTURE.md: it only needs errors/io).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.cf_table import CF_FILE, CFTable, catalog_sha256, read_cf_table, write_cf_table
from ..core.config import to_dict
from ..core.errors import UserError
from ..core.io import require_file, sha256_file
from .vectors import NO_SIGNAL, CFConfig, cf_vectors


def train_part(interactions_path, item_ids, cfg: CFConfig, log=None) -> tuple[list[np.ndarray], dict]:
    """(the harness's leave-one-out training sequences as catalog indices, what was used).

    Rows whose item is not in the catalog are dropped with a note (count and an example) that
    goes to `log` (default: stderr) and into the returned counts' `notes`."""
    import sys

    from ..evaluate.sequences import leave_one_out, load_interactions

    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        (log or (lambda m: print(m, file=sys.stderr)))(message)

    users, seqs, order = load_interactions(interactions_path, item_ids, log=note)
    train = leave_one_out(users, seqs, cfg.max_history, order).train
    used = {"users": len(train), "train_interactions": int(sum(len(s) for s in train)),
            "users_too_short": len(users) - len(train), "notes": notes}
    return train, used


def check_interactions(interactions_path, item_ids, cfg: CFConfig | None = None) -> dict:
    """What `build_cf_table` would learn from, without building it: a UserError now for a file with
    no usable sequence (the pipeline's preflight), else the counts of `train_part` (notes included)."""
    cfg = cfg or CFConfig()
    train, used = train_part(interactions_path, [str(i) for i in item_ids], cfg, log=lambda message: None)
    if not any(len(s) > 1 and (s[1:] != s[:-1]).any() for s in train):
        raise UserError(NO_SIGNAL)
    return used


def build_cf_table(interactions_path, item_ids, out_path, cfg: CFConfig | None = None, log=None) -> CFTable:
    """CF embeddings of the catalog `item_ids` from the interactions' training part, written to
    out_path atomically; an existing file with the same key is read back instead (the cache).
    Bad or unusable interactions: a UserError before anything is written."""
    cfg = cfg or CFConfig()
    item_ids = [str(i) for i in item_ids]
    key = {"interactions_sha256": sha256_file(require_file(interactions_path, "interactions file")),
           "catalog_sha256": catalog_sha256(item_ids), "cf": to_dict(cfg)}
    out = Path(out_path)
    if out.is_file():
        try:
            cached = read_cf_table(out, item_ids)
            if all(cached.metadata.get(k) == v for k, v in key.items()):
                return cached
        except UserError:
            pass  # stale or foreign cache: rebuilt below
    train, used = train_part(interactions_path, item_ids, cfg, log)
    vectors, has = cf_vectors(train, len(item_ids), cfg)
    meta = {**key, "items_total": len(item_ids), "items_with_cf": int(has.sum()), "interactions": used}
    write_cf_table(out, [i for i, h in zip(item_ids, has) if h], vectors[has], meta)
    return CFTable(vectors, has, meta)


def cf_for_embeddings(interactions_path, embeddings_path, out_dir, cfg: CFConfig | None = None) -> CFTable:
    """CF embeddings for the items of an embeddings.parquet, cached as out_dir/cf_embeddings.parquet."""
    from ..core.embedding_table import read_embeddings

    item_ids = read_embeddings(embeddings_path).item_ids
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return build_cf_table(interactions_path, item_ids, Path(out_dir) / CF_FILE, cfg)
