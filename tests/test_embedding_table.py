"""embeddings.parquet layout (issue 15): float32le bytes written, the older list layout still read."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rqvae_ids.embedding_table import LAYOUT, read_embeddings, write_embeddings
from rqvae_ids.errors import UserError


def write_legacy(path, item_ids, text_sha256, vectors, model, **options):
    """write_embeddings as it was before issue 15: `embedding` fixed_size_list<float32>[d]."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    schema = pa.schema([
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("text_sha256", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
    ], metadata={b"rqvae_ids.model": f'"{model}"'.encode(), b"rqvae_ids.dim": str(dim).encode(),
                 b"rqvae_ids.items": str(n).encode()})
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.Table.from_arrays([pa.array(list(item_ids), pa.string()), pa.array(list(text_sha256), pa.string()),
                                  pa.FixedSizeListArray.from_arrays(flat, dim)], schema=schema)
    pq.write_table(table, path, **options)


def vectors(n=50, d=7, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_written_file_is_self_describing_float32le(tmp_path):
    v = vectors()
    write_embeddings(tmp_path / "e.parquet", [f"i{k}" for k in range(50)], ["h"] * 50, v, model="m")
    schema = pq.read_schema(tmp_path / "e.parquet")
    field = schema.field("embedding")
    assert field.type == pa.binary(4 * 7) and not field.nullable
    assert field.metadata == {b"encoding": b"7 x float32, little-endian"}
    assert schema.metadata[b"rqvae_ids.embedding_layout"] == f'"{LAYOUT}"'.encode()
    # what the module docstring tells a reader outside rqvae-ids to do
    raw = pq.read_table(tmp_path / "e.parquet").column("embedding").to_pylist()
    assert struct.unpack("<7f", raw[3]) == tuple(float(x) for x in v[3])
    np.testing.assert_array_equal(np.frombuffer(b"".join(raw), "<f4").reshape(-1, 7), v)


def test_legacy_list_layout_reads_to_the_same_table(tmp_path):
    v, ids, hashes = vectors(), [f"i{k}" for k in range(50)], [f"h{k}" for k in range(50)]
    write_embeddings(tmp_path / "new.parquet", ids, hashes, v, model="m")
    write_legacy(tmp_path / "old.parquet", ids, hashes, v, model="m")
    new, old = read_embeddings(tmp_path / "new.parquet"), read_embeddings(tmp_path / "old.parquet")
    np.testing.assert_array_equal(new.vectors, v)
    np.testing.assert_array_equal(old.vectors, v)
    assert new.vectors.dtype == old.vectors.dtype == np.float32
    assert list(new.item_ids) == list(old.item_ids) == ids
    assert list(new.text_sha256) == list(old.text_sha256) == hashes
    assert (new.model, new.dim) == (old.model, old.dim) == ("m", 7)


@pytest.mark.parametrize("legacy", [False, True])
def test_many_row_groups_and_empty_files(tmp_path, legacy):
    v, ids = vectors(n=1000), [f"i{k}" for k in range(1000)]
    path = tmp_path / "e.parquet"
    if legacy:
        write_legacy(path, ids, ids, v, "m", row_group_size=96)
    else:
        table = pq.read_table(_written(tmp_path / "w.parquet", ids, v))
        pq.write_table(table, path, row_group_size=96)  # our layout, cut into 11 row groups
    assert pq.ParquetFile(path).metadata.num_row_groups == 11
    np.testing.assert_array_equal(read_embeddings(path).vectors, v)
    empty = tmp_path / "empty.parquet"
    (write_legacy if legacy else write_embeddings)(empty, [], [], np.zeros((0, 7), np.float32), "m")
    t = read_embeddings(empty)
    assert t.vectors.shape == (0, 7) and t.vectors.dtype == np.float32 and len(t) == 0


def _written(path, ids, v):
    write_embeddings(path, ids, ids, v, model="m")
    return path


def test_other_dtypes_are_cast_and_big_endian_input_is_stored_little_endian(tmp_path):
    v = vectors()
    write_embeddings(tmp_path / "a.parquet", [str(k) for k in range(50)], ["h"] * 50,
                     v.astype(">f4"), model="m")
    np.testing.assert_array_equal(read_embeddings(tmp_path / "a.parquet").vectors, v)
    write_embeddings(tmp_path / "b.parquet", [str(k) for k in range(50)], ["h"] * 50, v.astype(np.float64), model="m")
    np.testing.assert_array_equal(read_embeddings(tmp_path / "b.parquet").vectors, v)


@pytest.mark.parametrize("column, message", [
    (pa.array([b"abc", b"def"], pa.binary(3)), "fixed_size_binary"),  # width not a multiple of 4
    (pa.array([[1, 2], [3, 4]], pa.list_(pa.int32(), 2)), "fixed_size_binary"),
    (pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32())), "fixed_size_binary"),  # ragged lists
    (pa.array([b"abcd", None], pa.binary(4)), "1 null row"),
])
def test_bad_embedding_columns_are_one_line_user_errors(tmp_path, column, message):
    table = pa.table({"item_id": ["a", "b"], "text_sha256": ["h", "h"], "embedding": column})
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(UserError, match=message) as e:
        read_embeddings(tmp_path / "bad.parquet")
    assert "\n" not in str(e.value)
