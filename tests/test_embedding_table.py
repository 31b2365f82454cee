"""embeddings.parquet (issue 3 contract): schema, row groups, whole and streamed reads (issue 15)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rqvae_ids.core import embedding_table as tables
from rqvae_ids.core.embedding_table import fill_vectors, read_embeddings, write_embeddings
from rqvae_ids.core.errors import UserError
from rqvae_ids.core.io import prefetched


def vectors(n=50, d=7, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_written_file_has_the_contract_schema(tmp_path):
    v = vectors()
    write_embeddings(tmp_path / "e.parquet", [f"i{k}" for k in range(50)], ["h"] * 50, v, model="m")
    schema = pq.read_schema(tmp_path / "e.parquet")
    assert schema.names == ["item_id", "text_sha256", "embedding"]
    assert schema.field("item_id").type == pa.string()
    assert schema.field("text_sha256").type == pa.string()
    assert schema.field("embedding").type == pa.list_(pa.float32(), 7)
    assert schema.metadata[b"rqvae_ids.model"] == b'"m"' and schema.metadata[b"rqvae_ids.dim"] == b"7"
    assert set(k for k in schema.metadata if k.startswith(b"rqvae_ids.")) == {
        b"rqvae_ids.model", b"rqvae_ids.dim", b"rqvae_ids.items"}
    # any Arrow reader gets the floats back as lists
    assert pq.read_table(tmp_path / "e.parquet").column("embedding")[3].as_py() == [float(x) for x in v[3]]


def test_row_groups_of_row_group_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "ROW_GROUP_ROWS", 96)
    v, ids = vectors(n=1000), [f"i{k}" for k in range(1000)]
    write_embeddings(tmp_path / "e.parquet", ids, ids, v, model="m")
    assert pq.ParquetFile(tmp_path / "e.parquet").metadata.num_row_groups == 11
    t = read_embeddings(tmp_path / "e.parquet")
    np.testing.assert_array_equal(t.vectors, v)
    assert t.vectors.dtype == np.float32 and list(t.item_ids) == ids and (t.model, t.dim) == ("m", 7)


def test_vectors_are_stored_plain_and_uncompressed(tmp_path):
    # floats neither compress nor repeat: a dictionary attempt and snappy only slow the read
    write_embeddings(tmp_path / "e.parquet", [f"i{k}" for k in range(50)], ["h"] * 50, vectors(), model="m")
    group = pq.ParquetFile(tmp_path / "e.parquet").metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    vec = columns["embedding.list.element"]
    assert vec.compression == "UNCOMPRESSED" and not any("DICTIONARY" in e for e in vec.encodings)
    assert columns["item_id"].compression == "SNAPPY"  # the strings keep theirs


def test_streamed_read_equals_the_whole_read(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "ROW_GROUP_ROWS", 96)
    v, ids = vectors(n=1000), [f"i{k}" for k in range(1000)]
    write_embeddings(tmp_path / "e.parquet", ids, [f"h{k}" for k in ids], v, model="m")
    keys = read_embeddings(tmp_path / "e.parquet", with_vectors=False)
    whole = read_embeddings(tmp_path / "e.parquet")
    assert keys.vectors.shape == (1000, 7) and keys.metadata == whole.metadata
    assert list(keys.item_ids) == list(whole.item_ids) and list(keys.text_sha256) == list(whole.text_sha256)
    filled = list(prefetched(fill_vectors(tmp_path / "e.parquet", keys.vectors, 64)))
    assert filled == sorted(filled) and filled[-1] == 1000 and len(filled) > 10
    np.testing.assert_array_equal(keys.vectors, v)


def test_streamed_read_never_yields_non_finite_rows(tmp_path):
    v = vectors(n=300)
    v[130, 2], v[250, 0] = np.nan, np.inf
    write_embeddings(tmp_path / "e.parquet", [str(k) for k in range(300)], ["h"] * 300, v, model="m")
    out = np.empty_like(v)
    seen = []
    with pytest.raises(UserError, match=r"emb: 2 row\(s\) contain NaN/inf \(first at row 130\)"):
        for ready in prefetched(fill_vectors(tmp_path / "e.parquet", out, 64, what="emb")):
            seen.append(ready)
    assert seen == [64, 128]  # the batch holding row 130 and every later one are held back


def test_empty_file(tmp_path):
    write_embeddings(tmp_path / "e.parquet", [], [], np.zeros((0, 7), np.float32), "m")
    t = read_embeddings(tmp_path / "e.parquet")
    assert t.vectors.shape == (0, 7) and t.vectors.dtype == np.float32 and len(t) == 0
    assert read_embeddings(tmp_path / "e.parquet", with_vectors=False).vectors.shape == (0, 7)


def test_other_dtypes_are_cast(tmp_path):
    v = vectors()
    write_embeddings(tmp_path / "a.parquet", [str(k) for k in range(50)], ["h"] * 50, v.astype(np.float64), model="m")
    np.testing.assert_array_equal(read_embeddings(tmp_path / "a.parquet").vectors, v)


@pytest.mark.parametrize("column, message", [
    (pa.array([b"abcd", b"efgh"], pa.binary(4)), "fixed_size_list<float32>"),
    (pa.array([[1, 2], [3, 4]], pa.list_(pa.int32(), 2)), "fixed_size_list<float32>"),
    (pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32())), "fixed_size_list<float32>"),  # ragged lists
    (pa.array([[1.0, 2.0], None], pa.list_(pa.float32(), 2)), "1 null row"),
])
@pytest.mark.parametrize("with_vectors", [True, False])
def test_bad_embedding_columns_are_one_line_user_errors(tmp_path, column, message, with_vectors):
    table = pa.table({"item_id": ["a", "b"], "text_sha256": ["h", "h"], "embedding": column})
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(UserError, match=message) as e:
        t = read_embeddings(tmp_path / "bad.parquet", with_vectors=with_vectors)
        list(fill_vectors(tmp_path / "bad.parquet", t.vectors, 1))
    assert "\n" not in str(e.value)


def test_prefetched_raises_the_producers_error_and_stops_with_the_consumer():
    def failing():
        yield 1
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        list(prefetched(failing()))
    closed = threading.Event()

    def endless():
        try:
            k = 0
            while True:
                k += 1
                yield k
        finally:
            closed.set()

    for k in prefetched(endless(), depth=2):
        if k == 5:
            break
    assert closed.wait(5)  # the producer left its generator (and its open file) closed


def test_prefetched_depth_bounds_how_far_the_producer_runs_ahead():
    def counting(produced):
        for k in range(50):
            produced.append(k)
            yield k

    bounded, unbounded = [], []
    held = prefetched(counting(bounded), depth=2)
    free = prefetched(counting(unbounded), depth=None)
    assert next(held) == 0 and next(free) == 0
    deadline = time.monotonic() + 10
    while len(unbounded) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(unbounded) == 50  # depth=None: the reader runs to the end on its own
    assert len(bounded) <= 4  # 1 taken + 2 queued + 1 waiting to be put
    assert list(held) == list(range(1, 50)) and list(free) == list(range(1, 50))
    with pytest.raises(ValueError, match="depth"):
        next(prefetched(iter([1]), depth=0))
