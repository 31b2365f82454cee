import pytest

from rqvae_ids.core.errors import UserError
from rqvae_ids.ids.index import SidIndex
from rqvae_ids.ids.lookup import format_sid, format_sids, parse_sid
from rqvae_ids.ids.table import token_vocabulary


def test_format_and_parse_roundtrip():
    assert format_sid([12, 200, 7, 0]) == "<a_12><b_200><c_7><d_0>"
    assert parse_sid("<a_12><b_200>") == [12, 200]
    assert parse_sid(" <a_1> ") == [1]
    assert format_sids([[12, 3], [200, 4], [7, 5]]) == ["<a_12><b_200><c_7>", "<a_3><b_4><c_5>"]


@pytest.mark.parametrize("bad", ["", "a_1", "<b_1>", "<a_1><c_2>", "<a_1>x", "<a_-1>", "<a_1><b_>"])
def test_parse_rejects_malformed(bad):
    with pytest.raises(UserError):
        parse_sid(bad)


def test_sid_index_item_and_prefix():
    idx = SidIndex(["x", "y", "z", "w"], ["<a_1><b_2><c_0>", "<a_12><b_2><c_0>", "<a_1><b_2><c_1>", "<a_1><b_3><c_0>"])
    assert idx.sid("y") == "<a_12><b_2><c_0>" and idx.sid("nope") is None
    assert idx.items("<a_1>") == ["x", "z", "w"]  # <a_12> is not under <a_1>
    assert idx.items("<a_1><b_2>") == ["x", "z"]
    assert idx.items([1, 2, 1]) == ["z"]
    assert idx.items("<a_9>") == []


def test_token_vocabulary_order():
    assert token_vocabulary(2, 3, 3) == ["<a_0>", "<a_1>", "<a_2>", "<b_0>", "<b_1>", "<b_2>", "<c_0>", "<c_1>", "<c_2>"]
    assert token_vocabulary(2, 2) == ["<a_0>", "<a_1>", "<b_0>", "<b_1>"]
