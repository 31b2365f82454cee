import numpy as np
import pyarrow as pa

from rqvae_ids.ids.collisions import collision_report, collisions_table
from rqvae_ids.core.metrics import group_tuples, tuple_keys


CODES = np.array([[1, 2], [0, 3], [1, 2], [2, 2], [0, 3], [1, 2], [3, 0]])
IDS = ["a", "b", "c", "d", "e", "f", "g"]


def test_collisions_found_exactly():
    rep = collision_report(CODES, 4)
    assert rep["items"] == 7
    assert rep["distinct_tuples"] == 4
    assert rep["duplicate_rate"] == 1 - 4 / 7 and "collision_rate" not in rep
    assert rep["colliding_share"] == 5 / 7
    assert rep["colliding_tuples"] == 2
    assert rep["items_in_colliding_groups"] == 5
    assert rep["largest_group"] == 3
    assert rep["group_size_histogram"] == {"1": 2, "2": 1, "3": 1}
    assert rep["utilisation"] == [1.0, 0.75]


def test_collisions_table_rows_and_schema():
    t = collisions_table(CODES, IDS, 4)
    assert t.schema.names == ["c0", "c1", "item_ids", "size"]
    assert t.schema.field("c0").type == pa.uint16()
    assert t.schema.field("item_ids").type == pa.list_(pa.string())
    assert t.to_pylist() == [
        {"c0": 0, "c1": 3, "item_ids": ["b", "e"], "size": 2},
        {"c0": 1, "c1": 2, "item_ids": ["a", "c", "f"], "size": 3},
    ]


def test_no_collisions_gives_empty_table():
    t = collisions_table(np.array([[0, 1], [1, 0]]), ["x", "y"], 2)
    assert t.num_rows == 0 and t.schema.names == ["c0", "c1", "item_ids", "size"]


def test_wide_tuples_fall_back_to_rowwise_grouping():
    codes = np.array([[5] * 9, [5] * 9, [4] * 9]) * 1000
    assert tuple_keys(codes, 65536) is None
    inverse, sizes, first = group_tuples(codes, 65536)
    assert sizes.tolist() == [1, 2] and inverse.tolist() == [1, 1, 0]
    # packed keys preserve lexicographic tuple order
    k = tuple_keys(CODES, 4)
    assert np.array_equal(np.argsort(k, kind="stable"), np.lexsort(CODES.T[::-1]))
