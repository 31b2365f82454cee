"""The vectorised assignment helpers give exactly what the per-item Python versions gave.

The pre-vectorisation implementations are kept here as references; assign_ids output
(semantic_ids.parquet, collisions.parquet, tokens.txt) must not change by a byte of
content when the reference helpers are swapped back in.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from rqvae_ids.ids import assign as assign_mod
from rqvae_ids.ids import resolve as resolve_mod
from rqvae_ids.ids.lookup import format_sids, format_sids_arrow, format_token
from rqvae_ids.core.embedding_table import check_finite
from rqvae_ids.core.errors import UserError


def reference_format_sids(columns):
    parts = []
    for i, col in enumerate(columns):
        col = np.asarray(col, dtype=np.int64)
        vocab = np.array([format_token(i, c) for c in range(int(col.max()) + 1 if col.size else 1)], dtype=object)
        parts.append(vocab[col])
    return ["".join(t) for t in zip(*parts)]


def reference_id_rank(item_ids):
    order = np.argsort(np.asarray(item_ids, dtype=object), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank


@pytest.mark.parametrize("levels", [1, 3, 4])
def test_format_sids_matches_reference(levels):
    rng = np.random.default_rng(levels)
    cols = [rng.integers(0, 300, 5000) for _ in range(levels)]
    assert format_sids(cols) == reference_format_sids(cols)
    assert format_sids_arrow(cols).to_pylist() == reference_format_sids(cols)


def test_id_rank_matches_python_order_with_unicode_and_ties():
    rng = np.random.default_rng(0)
    pool = ["a", "B", "é", "z9", "Z", "ä", "日本", "10", "9", "", "a\u0000b", "😀", "\uffff"]
    ids = np.array([pool[i] + str(rng.integers(0, 3)) for i in rng.integers(0, len(pool), 4000)], dtype=object)
    np.testing.assert_array_equal(resolve_mod._id_rank(ids), reference_id_rank(ids))
    assert resolve_mod._id_rank(np.array([], dtype=object)).size == 0


def test_check_finite_fast_path_still_names_bad_rows():
    x = np.ones((10, 4), np.float32)
    check_finite(x)
    big = np.full((3, 4), 3e38, np.float32)  # rows whose float32 sum would overflow are still finite
    check_finite(big)
    x[7, 2] = np.nan
    with pytest.raises(UserError, match="first at row 7"):
        check_finite(x)


@pytest.mark.parametrize("resolve", ["suffix", "reassign"])
def test_assign_output_identical_to_reference_helpers(tmp_path, monkeypatch, resolve):
    """New: the embeddings file (contract layout, several row groups) read in batches by a
    background thread while the encoder runs, vectorised helpers. Reference: the same file read
    whole before encoding, as before issue 15, processed by the per-item helpers. Both a first
    assignment and one with --previous (the semantic_ids reader) must match."""
    import pyarrow as pa
    from test_ids_fakes import FakeTokenizer, load_fake, make_embeddings

    from rqvae_ids.core import embedding_table as tables
    from rqvae_ids.ids import table as sid_table

    monkeypatch.setattr(assign_mod, "_load_model", load_fake)
    monkeypatch.setattr(tables, "ROW_GROUP_ROWS", 700)  # 5 row groups, batches of 256 rows across them
    model_dir = FakeTokenizer.random(k=32).save(tmp_path / "model")
    emb = tmp_path / "emb.parquet"
    ids = [f"it-{i}-é" if i % 7 else f"{i:x}" for i in np.random.default_rng(3).permutation(3000)]
    make_embeddings(emb, n=3000, ids=ids)
    assert pq.read_schema(emb).field("embedding").type == pa.list_(pa.float32(), 16)
    assert pq.ParquetFile(emb).metadata.num_row_groups == 5
    streamed = []
    real_prefetched = assign_mod.prefetched
    monkeypatch.setattr(assign_mod, "prefetched", lambda it, depth: streamed.append(1) or real_prefetched(it, depth))
    assign_mod.assign_ids(model_dir, emb, tmp_path / "new", resolve=resolve, chunk_size=256)
    assign_mod.assign_ids(model_dir, emb, tmp_path / "new2", resolve=resolve, chunk_size=256,
                          previous=tmp_path / "new" / "semantic_ids.parquet")
    assert streamed == [1]  # the first run overlapped reading and encoding; the --previous one did not

    def whole_read(model, path, table, chunk_size, encode, keep=True):
        table.vectors[:] = tables.read_embeddings(path).vectors
        check_finite(table.vectors)
        return None  # assign_table encodes with encode_chunked

    monkeypatch.setattr(assign_mod, "_read_vectors", whole_read)
    monkeypatch.setattr(assign_mod, "format_sids_arrow", lambda cols: pa.array(reference_format_sids(cols), pa.string()))
    monkeypatch.setattr(resolve_mod, "_id_rank", reference_id_rank)
    for module in (tables, sid_table):
        monkeypatch.setattr(module, "object_strings", lambda col: np.asarray(col.to_pylist(), dtype=object))
    assign_mod.assign_ids(model_dir, emb, tmp_path / "ref", resolve=resolve, chunk_size=256)
    assign_mod.assign_ids(model_dir, emb, tmp_path / "ref2", resolve=resolve, chunk_size=256,
                          previous=tmp_path / "ref" / "semantic_ids.parquet")
    for new_dir, ref_dir in (("new", "ref"), ("new2", "ref2")):
        for name in ("semantic_ids.parquet", "collisions.parquet"):
            new, ref = pq.read_table(tmp_path / new_dir / name), pq.read_table(tmp_path / ref_dir / name)
            assert new.equals(ref) and new.schema.equals(ref.schema)
            # a reassign rerun over its own IDs has no collisions left: an empty table there
            assert new.num_rows > 0 or (name, new_dir, resolve) == ("collisions.parquet", "new2", "reassign")
        assert (tmp_path / new_dir / "tokens.txt").read_bytes() == (tmp_path / ref_dir / "tokens.txt").read_bytes()
    if resolve == "suffix":
        assert pq.read_table(tmp_path / "new" / "semantic_ids.parquet").column("suffix").to_numpy().max() > 0
