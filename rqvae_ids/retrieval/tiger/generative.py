"""`GenerativeRetriever`: the sequence model behind the `Retriever` protocol, and
`train_retriever`, the end-to-end library function of `rqvae-ids retrieve-train`.

A retriever directory holds `model.safetensors` (best weights), `checkpoint.safetensors`
(last epoch, for resume), `codes.npy` (the (N, T) ID tuples the model was trained
on, catalog order), `config.json` and `train_report.json`. With `content` on, the item
vectors are a buffer inside the weights: loading needs no embeddings file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ...core.errors import UserError
from ...core.io import atomic_path, provenance, write_json_atomic
from .trainer import BEST, RetrievalConfig


def join_suffix(codes, suffix=None, suffix_token: bool = True) -> np.ndarray:
    """(N, L) level codes -> (N, T) int64 ID tuples: the collision suffix becomes the last
    token only when the IDs carry one (`suffix_token`, the `suffix` resolution)."""
    codes = np.asarray(codes, dtype=np.int64)
    if suffix_token and suffix is not None:
        codes = np.concatenate([codes, np.asarray(suffix, dtype=np.int64)[:, None]], axis=1)
    return codes


def sid_codes(ids) -> np.ndarray:
    """SemanticIds -> (N, T) int64 tuples: level codes plus the suffix token when the IDs carry one."""
    return join_suffix(ids.codes, ids.suffix, getattr(ids, "suffix_token", True))


def sid_width(ids) -> int | None:
    """K of `sid_codes(ids)`: the codebook size stored in the IDs' metadata (and the suffix
    token's range, `suffix_size`, when the IDs carry one); None where the file predates it."""
    meta = getattr(ids, "metadata", None) or {}
    if meta.get("codebook_size") is None:
        return None
    width = int(meta["codebook_size"])
    if getattr(ids, "suffix_token", True):
        width = max(width, int(meta.get("suffix_size") or 0))
    return width


def retriever_for(name: str, codes, suffix=None, cfg: RetrievalConfig | None = None, out_dir=None,
                  suffix_token: bool = True, **kw):
    """Hook for `rqvae-ids compare --with-generative`: a retriever named `generative/<name>`
    over one model's IDs. codes (N, L) level codes in catalog order; suffix (N,) or None;
    kw: GenerativeRetriever's (width: the IDs' codebook size)."""
    return GenerativeRetriever(join_suffix(codes, suffix, suffix_token), cfg, out_dir, name=f"generative/{name}", **kw)


class GenerativeRetriever:
    """TIGER-style generative retrieval over semantic IDs.

    codes: (N, T) int tuples in catalog order (`sid_codes(read_semantic_ids(path))`);
    cfg: model/training knobs; out_dir: where checkpoints go (None = memory only);
    exclude_history: drop the user's own history items from the ranking (the
    harness policy; then `history_extra = 0` tells the harness not to ask for more);
    item_vectors: (N, d) item text embeddings in the order of `codes`, needed (and only
    read) when cfg.content. width: K, the IDs' codebook size (`sid_width`), saved in
    config.json; None derives it from `codes` (max code + 1), as retrievers saved before did.
    """

    history_extra = 0

    def __init__(self, codes, cfg: RetrievalConfig | None = None, out_dir=None, name: str = "generative",
                 exclude_history: bool = True, resume: bool = True, log=print, item_vectors=None,
                 width: int | None = None):
        from .trainer import content_vectors
        from .trie import SidTrie

        self.cfg = cfg or RetrievalConfig()
        self.trie = SidTrie(codes, width)
        self.item_vectors = content_vectors(self.cfg, item_vectors, len(self.trie))
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.name, self.exclude_history, self.resume, self.log = name, exclude_history, resume, log
        self.model, self.report = None, None
        self.extra_config: dict = {}  # saved in config.json beside the weights (e.g. input paths)
        self.popular = np.arange(len(self.trie), dtype=np.int64)

    def fit(self, train_sequences: Sequence[np.ndarray], valid=None, users=None) -> "GenerativeRetriever":
        """Train (or resume) on Split.train; `valid` = (histories, targets) for early stopping."""
        from .trainer import train

        counts = np.bincount(np.concatenate([np.asarray(s, np.int64) for s in train_sequences] + [np.zeros(0, np.int64)]),
                             minlength=len(self.trie))
        self.popular = np.argsort(-counts, kind="stable")
        self.model, self.report = train(self.trie.codes, train_sequences, valid, self.out_dir, self.cfg, users=users,
                                        resume=self.resume, log=self.log, item_vectors=self.item_vectors,
                                        width=self.trie.width)
        if self.out_dir is not None:
            from ...core.config import to_dict

            write_json_atomic(self.out_dir / "config.json",
                              {"retrieval": to_dict(self.cfg), "codebook_size": self.trie.width, **self.extra_config,
                               "provenance": provenance()})
            with atomic_path(self.out_dir / "codes.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, self.trie.codes)
            write_json_atomic(self.out_dir / "popular.json", self.popular[:1000].tolist())
        return self

    def recommend(self, histories: Sequence[np.ndarray], k: int, users=None) -> np.ndarray:
        """Top-k catalog indices per history, best first: (U, k) int64, never a non-existent item."""
        if self.model is None:
            raise UserError("generative retriever: call fit() or load() first")
        from .beam import beam_recommend, filter_history
        from .data import item_tokens

        tokens = item_tokens(self.trie.codes, self.model.cfg)
        beam = max(self.cfg.beam, k)
        raw = beam_recommend(self.model, self.trie, tokens, histories, beam, beam, users,
                             max_history=self.cfg.max_history)
        if not self.exclude_history:
            return raw[:, :k]
        return filter_history(raw, histories, k, self.popular)

    @classmethod
    def load(cls, out_dir, device: str = "auto", **kw) -> "GenerativeRetriever":
        """A trained retriever from its directory (weights, codes, config)."""
        import json
        from dataclasses import replace

        from ...core.config import from_dict
        from ...core.runtime import resolve_device
        from .model import SeqModel
        from .trainer import load_weights, model_config

        out = Path(out_dir)
        for f in (BEST, "codes.npy", "config.json"):
            if not (out / f).is_file():
                raise UserError(f"{out}: not a trained retriever ({f} missing)")
        saved = json.loads((out / "config.json").read_text())
        cfg = replace(from_dict(RetrievalConfig, saved["retrieval"], where="config.json"), device=device)
        # Retrievers saved before the codebook size was stored: K derived from codes.npy, as they were trained.
        kw.setdefault("width", saved.get("codebook_size"))
        vectors = None
        if cfg.content:  # the item vectors are saved with the weights
            from safetensors import safe_open

            with safe_open(str(out / BEST), "np") as f:
                if "item_vectors" not in f.keys():
                    raise UserError(f"{out / BEST}: content=True but the weights hold no item_vectors")
                vectors = f.get_tensor("item_vectors")
        r = cls(np.load(out / "codes.npy"), cfg, out, item_vectors=vectors, **kw)
        model = SeqModel(model_config(cfg, r.trie.depth, r.trie.width), r.item_vectors)
        load_weights(model, out / BEST)
        r.model = model.to(resolve_device(device)).eval()
        if (out / "popular.json").is_file():
            r.popular = np.asarray(json.loads((out / "popular.json").read_text()), dtype=np.int64)
        return r


def content_vectors_for(embeddings_path, item_ids) -> np.ndarray:
    """embeddings.parquet rows aligned to `item_ids` (the semantic IDs' order): (N, d) float32."""
    import pandas as pd

    from ...core.embedding_table import read_embeddings

    table = read_embeddings(embeddings_path)
    pos = pd.Index(list(table.item_ids)).get_indexer(list(item_ids))
    if (pos < 0).any():
        missing = [str(i) for i, p in zip(item_ids, pos) if p < 0]
        raise UserError(f"{embeddings_path}: no embedding for {len(missing)} item(s) of the semantic IDs, "
                        f"e.g. {missing[0]!r}")
    return table.vectors[pos]


def train_retriever(ids_path, interactions_path, out_dir, cfg: RetrievalConfig, resume: bool = True, log=print,
                    content_embeddings=None) -> dict:
    """semantic_ids.parquet + interactions -> trained retriever in `out_dir` + test metrics.
    content_embeddings: embeddings.parquet of the items (read when cfg.content).

    Same leave-one-out split as the evaluation harness; early stopping on validation;
    Recall/NDCG@5/10 on the test split with history items excluded (the harness policy).
    Returns (and writes to out_dir/train_report.json) the report.
    """
    from ...evaluate.ranking import next_item_metrics
    from ...evaluate.sequences import leave_one_out, load_interactions
    from ...ids import read_semantic_ids

    if cfg.content and content_embeddings is None:
        raise UserError("content=True needs the items' embeddings (--content-embeddings FILE)")
    ids = read_semantic_ids(ids_path)
    codes, width = sid_codes(ids), sid_width(ids)
    vectors = content_vectors_for(content_embeddings, ids.item_ids) if cfg.content else None
    users, seqs, order = load_interactions(interactions_path, list(ids.item_ids))
    split = leave_one_out(users, seqs, cfg.max_history, order_column=order)
    out = Path(out_dir)
    r = GenerativeRetriever(codes, cfg, out, resume=resume, log=log, item_vectors=vectors, width=width)
    r.extra_config = {"ids": os.fspath(ids_path), "interactions": os.fspath(interactions_path)}
    if cfg.content:
        r.extra_config["content_embeddings"] = os.fspath(content_embeddings)
    user_arg = split.users if cfg.user_buckets else None
    r.fit(split.train, (split.valid_histories, split.valid_targets), users=user_arg)
    t0 = time.perf_counter()
    rec = r.recommend(split.test_histories, 10, users=user_arg)
    infer_s = time.perf_counter() - t0
    test = next_item_metrics(rec, split.test_targets)
    report = dict(r.report, test=test, test_users=len(split.users), infer_seconds=infer_s,
                  infer_users_per_s=len(split.users) / infer_s, ids=os.fspath(ids_path),
                  ids_kind=ids.metadata.get("kind"), provenance=provenance())
    write_json_atomic(out / "train_report.json", report)
    log("test " + " ".join(f"{k}={v:.4f}" for k, v in test.items())
        + f" | train {report['train_seconds']:.0f}s, inference {report['infer_users_per_s']:.0f} users/s")
    return report
