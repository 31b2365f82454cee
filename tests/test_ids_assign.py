import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_ids_fakes import FakeTokenizer, load_fake, make_embeddings

from rqvae_ids.cli import main
from rqvae_ids.core.errors import UserError
from rqvae_ids.ids import assign as assign_mod
from rqvae_ids.ids import assign_ids, read_semantic_ids
from rqvae_ids.ids.encode import encode_codes_chunked
from rqvae_ids.core.io import read_parquet_metadata, sha256_file
from rqvae_ids.core.embedding_table import read_embeddings, write_embeddings


@pytest.fixture(autouse=True)
def fake_loader(monkeypatch):
    monkeypatch.setattr(assign_mod, "_load_model", load_fake)


@pytest.fixture
def only_id_commands(monkeypatch):
    """cli.main with just the assign and lookup subcommands registered.

    Other commands are written concurrently in this tree; isolating ours keeps these
    exit-code tests about assign/lookup. Discovery itself is tested in test_foundation.
    """
    import argparse

    from rqvae_ids import cli
    from rqvae_ids.commands import assign as assign_cmd
    from rqvae_ids.commands import lookup as lookup_cmd

    def build_parser():
        parser = argparse.ArgumentParser(prog="rqvae-ids")
        sub = parser.add_subparsers(dest="command", required=True)
        assign_cmd.register(sub)
        lookup_cmd.register(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_parser)


@pytest.fixture
def setup(tmp_path):
    model_dir = FakeTokenizer.random().save(tmp_path / "model")
    emb = tmp_path / "emb.parquet"
    make_embeddings(emb)
    return model_dir, emb


def test_suffix_outputs_schema_and_metadata(setup, tmp_path):
    model_dir, emb = setup
    out = tmp_path / "ids"
    rep = assign_ids(model_dir, emb, out)
    assert rep["encode_path"] == "model.encode_codes"  # not a torch model: the generic path
    assert sorted(p.name for p in out.iterdir()) == [
        "assign_report.json", "collision_report.json", "collisions.parquet", "semantic_ids.parquet", "tokens.txt"]
    schema = pq.read_schema(out / "semantic_ids.parquet")
    assert schema.names == ["item_id", "c0", "c1", "c2", "suffix", "sid", "text_sha256"]
    assert [schema.field(n).type for n in schema.names] == [
        pa.string(), pa.uint16(), pa.uint16(), pa.uint16(), pa.uint16(), pa.string(), pa.string()]
    meta = read_parquet_metadata(out / "semantic_ids.parquet")
    assert meta["kind"] == "fake" and meta["levels"] == 3 and meta["codebook_size"] == 16
    assert meta["resolve"] == "suffix" and meta["created_at"]
    assert meta["checkpoint_sha256"] == sha256_file(model_dir / "model.safetensors")
    ids = read_semantic_ids(out / "semantic_ids.parquet")
    assert len(ids) == 300 and list(ids.item_ids[:2]) == ["item0000", "item0001"]
    assert len(set(ids.sids)) == 300 and all(s.count("<") == 4 for s in ids.sids)
    assert ids.sids[0] == "<a_{}><b_{}><c_{}><d_{}>".format(*ids.codes[0], ids.suffix[0])
    # the raw collision stats describe the L-level tuples, consistent with the table
    col = json.loads((out / "collision_report.json").read_text())
    assert col == rep["collisions"] and col["duplicate_rate"] > 0
    assert "collision_rate" not in col  # only the new names are written (issue 26)
    assert col["distinct_tuples"] == len(np.unique(ids.codes, axis=0))
    assert rep["resolution"]["max_suffix"] == int(ids.suffix.max()) > 0
    coll = pq.read_table(out / "collisions.parquet")
    assert coll.schema.names == ["c0", "c1", "c2", "item_ids", "size"]
    assert sum(coll.column("size").to_pylist()) == col["items_in_colliding_groups"]
    tokens = (out / "tokens.txt").read_text().split()
    assert len(tokens) == 3 * 16 + 16 and tokens[0] == "<a_0>" and tokens[-1] == "<d_15>"


def test_reassign_has_l_tokens_and_is_deterministic(setup, tmp_path):
    model_dir, emb = setup
    rep = assign_ids(model_dir, emb, tmp_path / "r1", resolve="reassign")
    assign_ids(model_dir, emb, tmp_path / "r2", resolve="reassign")
    a, b = (read_semantic_ids(tmp_path / d / "semantic_ids.parquet") for d in ("r1", "r2"))
    assert np.array_equal(a.codes, b.codes) and list(a.sids) == list(b.sids)
    assert len(np.unique(a.codes, axis=0)) == 300 and (a.suffix == 0).all()
    assert all(s.count("<") == 3 for s in a.sids)
    assert rep["resolution"]["items_moved"] > 0 and rep["resolution"]["distortion_added_mean_moved"] > 0
    assert len((tmp_path / "r1" / "tokens.txt").read_text().split()) == 48


def test_suffix_deterministic_across_runs_and_chunk_sizes(setup, tmp_path):
    model_dir, emb = setup
    assign_ids(model_dir, emb, tmp_path / "a", chunk_size=7)
    assign_ids(model_dir, emb, tmp_path / "b")
    a, b = (pq.read_table(tmp_path / d / "semantic_ids.parquet") for d in ("a", "b"))
    assert a.equals(b)  # data identical (metadata holds created_at)


def test_chunked_equals_unchunked():
    model = FakeTokenizer.random()
    x = np.random.default_rng(3).standard_normal((1000, 16)).astype(np.float32)
    full = model.encode_codes(x)
    for chunk in (1, 33, 1000, 5000):
        assert np.array_equal(encode_codes_chunked(model, x, chunk), full)


def test_mismatched_model_and_embeddings_rejected(setup, tmp_path):
    model_dir, _ = setup
    other = tmp_path / "other.parquet"
    make_embeddings(other, model="another-model")
    with pytest.raises(UserError, match="trained on embeddings from 'fake-emb'.*'another-model'"):
        assign_ids(model_dir, other, tmp_path / "o1")
    wide = tmp_path / "wide.parquet"
    make_embeddings(wide, d=24)
    with pytest.raises(UserError, match="expects 16-d embeddings but .* 24-d"):
        assign_ids(model_dir, wide, tmp_path / "o2")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_bad_inputs_clear_errors_nothing_written(setup, tmp_path):
    model_dir, emb = setup
    t = read_embeddings(emb)
    v = t.vectors.copy()
    v[5, 3] = np.nan
    nan = tmp_path / "nan.parquet"
    write_embeddings(nan, t.item_ids, t.text_sha256, v, model="fake-emb")
    empty = tmp_path / "empty.parquet"
    write_embeddings(empty, [], [], np.zeros((0, 16), np.float32), model="fake-emb")
    cases = [
        (dict(embeddings_path=nan), "NaN/inf \\(first at row 5\\)"),
        (dict(embeddings_path=empty), "no items"),
        (dict(embeddings_path=tmp_path / "nope.parquet"), "embeddings file not found"),
        (dict(model_dir=tmp_path / "nomodel"), "model directory not found"),
        (dict(previous=tmp_path / "nope_ids.parquet"), "semantic IDs file not found"),
        (dict(resolve="random"), "resolve must be one of"),
    ]
    for i, (kw, msg) in enumerate(cases):
        args = dict(model_dir=model_dir, embeddings_path=emb, out_dir=tmp_path / f"out{i}") | kw
        with pytest.raises(UserError, match=msg):
            assign_ids(**args)
        assert not (tmp_path / f"out{i}").exists()


def test_cli_assign_and_lookup_exit_codes(setup, tmp_path, capsys, only_id_commands):
    model_dir, emb = setup
    out = tmp_path / "cli"
    assert main(["assign", "--model-dir", str(model_dir), "--embeddings", str(emb), "--out", str(out)]) == 0
    assert "before resolution: duplicate_rate " in capsys.readouterr().out
    ids = str(out / "semantic_ids.parquet")
    assert main(["lookup", "--ids", ids, "--item", "item0003"]) == 0
    sid = capsys.readouterr().out.strip()
    assert main(["lookup", "--ids", ids, "--sid", sid]) == 0
    assert capsys.readouterr().out.split() == ["item0003"]
    prefix = sid[: sid.index(">") + 1]
    assert main(["lookup", "--ids", ids, "--sid", prefix]) == 0
    matched = capsys.readouterr().out.split()
    assert "item0003" in matched and len(matched) > 1
    # --limit prints the first N and says (stderr) how many matched in total
    assert main(["lookup", "--ids", ids, "--sid", prefix, "--limit", "1"]) == 0
    limited = capsys.readouterr()
    assert limited.out.split() == matched[:1]
    assert limited.err.strip() == (f"rqvae-ids lookup: showed 1 of {len(matched)} items with SID prefix {prefix} "
                                   "(--limit 0 for all)")
    assert main(["lookup", "--ids", ids, "--item", "missing"]) == 1
    assert main(["lookup", "--ids", ids, "--sid", "<a_99>"]) == 1
    assert main(["lookup", "--ids", ids, "--sid", "a_1"]) == 2
    assert main(["lookup", "--ids", str(tmp_path / "none.parquet"), "--item", "x"]) == 2
    bad = tmp_path / "bad.parquet"
    make_embeddings(bad, model="another-model")
    assert main(["assign", "--model-dir", str(model_dir), "--embeddings", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "rqvae-ids assign: error:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_codes_in_order_follows_the_given_items(setup, tmp_path):
    model_dir, emb = setup
    assign_ids(model_dir, emb, tmp_path / "ids")
    ids = read_semantic_ids(tmp_path / "ids" / "semantic_ids.parquet")
    order = list(ids.item_ids[::-1][:5])
    codes, suffix = ids.codes_in_order(order, where="here")
    np.testing.assert_array_equal(codes, ids.codes[::-1][:5])
    np.testing.assert_array_equal(suffix, ids.suffix[::-1][:5])
    with pytest.raises(UserError, match="here: semantic IDs miss 1 embedded item"):
        ids.codes_in_order(order + ["no-such-item"], where="here")
