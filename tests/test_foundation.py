import json

import numpy as np
import pytest

from rqvae_ids.core import metrics
from rqvae_ids.cli import main
from rqvae_ids.core.config import from_dict
from rqvae_ids.core.errors import UserError
from rqvae_ids.evaluate.ranking import ndcg_at, next_item_metrics, recall_at
from rqvae_ids.evaluate.sequences import leave_one_out, load_interactions
from rqvae_ids.core.io import atomic_path, write_json_atomic
from rqvae_ids.core.embedding_table import read_embeddings, write_embeddings


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(target, {"a": np.int64(3)})
    assert json.loads(target.read_text()) == {"a": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_embeddings_roundtrip(tmp_path):
    v = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    write_embeddings(tmp_path / "e.parquet", list("abcde"), ["h"] * 5, v, model="m")
    t = read_embeddings(tmp_path / "e.parquet")
    assert t.dim == 7 and t.model == "m" and list(t.item_ids) == list("abcde")
    np.testing.assert_array_equal(t.vectors, v)


def test_read_embeddings_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_embeddings(tmp_path / "nope.parquet")


def test_code_statistics():
    codes = np.array([[0, 1], [0, 1], [1, 2], [3, 0]])
    assert metrics.utilisation(codes, 4) == [0.75, 0.75]
    assert metrics.duplicate_rate(codes) == pytest.approx(0.25)  # 3 distinct tuples of 4
    assert metrics.colliding_share(codes) == pytest.approx(0.5)  # two items share (0, 1)
    assert metrics.duplicate_and_colliding(np.array([2, 1, 1])) == (0.25, 0.5)  # the same, from group sizes
    assert not hasattr(metrics, "collision_rate")  # one name per meaning (issue 26)
    # level 0 counts 2,1,0,1 -> perplexity exp(H)
    p = np.array([0.5, 0.25, 0.25])
    assert metrics.perplexity(codes, 4)[0] == pytest.approx(np.exp(-(p * np.log(p)).sum()))


def test_ranking_metrics_hand_checked():
    rec = np.array([[3, 1, 2], [5, 6, 7], [9, 8, 4]])
    tgt = np.array([1, 0, 9])
    assert recall_at(rec, tgt, 1) == pytest.approx(1 / 3)
    assert recall_at(rec, tgt, 2) == pytest.approx(2 / 3)
    assert ndcg_at(rec, tgt, 3) == pytest.approx((1 / np.log2(3) + 1.0) / 3)
    assert set(next_item_metrics(rec, tgt, ks=(2,))) == {"next_recall@2", "next_ndcg@2"}


def test_leave_one_out_exact(tmp_path):
    f = tmp_path / "inter.csv"
    f.write_text(
        "user_id,item_id,timestamp\n"
        "u1,c,3\nu1,a,1\nu1,b,2\nu1,d,4\n"
        "u2,a,5\nu2,b,6\n"  # only 2 interactions: dropped
        "u3,x,1\n"  # unknown item: dropped
    )
    notes = []
    users, seqs, order = load_interactions(f, ["a", "b", "c", "d"], log=notes.append)
    assert order == "timestamp" and users == ["u1", "u2"]
    assert notes == ["interactions: dropped 1 of 7 rows whose item_id is not in the catalog (e.g. 'x')"]
    split = leave_one_out(users, seqs, max_history=2)
    assert split.users == ["u1"]
    assert split.train[0].tolist() == [0, 1]
    assert split.valid_histories[0].tolist() == [0, 1] and split.valid_targets.tolist() == [2]
    assert split.test_histories[0].tolist() == [1, 2] and split.test_targets.tolist() == [3]


def test_config_from_dict_validates():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class C:
        a: int = 1
        b: float = 0.5

    assert from_dict(C, {"a": 2, "b": 1}) == C(2, 1.0)
    with pytest.raises(UserError, match="unknown key"):
        from_dict(C, {"zz": 1})
    with pytest.raises(UserError, match="integer"):
        from_dict(C, {"a": "x"})


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "rqvae-ids" in capsys.readouterr().out


def test_neighbour_recall_prefix_ranking_and_ties():
    from rqvae_ids.evaluate.neighbours import neighbour_recall, shared_prefix_length

    codes = np.array([[1, 2, 3], [1, 2, 0], [1, 5, 3], [0, 2, 3]])
    assert shared_prefix_length(codes, codes[0]).tolist() == [3, 2, 1, 0]
    # Two tight clusters; codes that follow them give recall 1, codes that cross them give 0.
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.01, (12, 4)) + np.array([1, 0, 0, 0])
    b = rng.normal(0, 0.01, (12, 4)) + np.array([0, 1, 0, 0])
    x = np.vstack([a, b]).astype(np.float32)
    good = np.array([[0, i] for i in range(12)] + [[1, i] for i in range(12)])
    bad = np.array([[i % 2, i] for i in range(24)])
    r_good = neighbour_recall(x, good, ks=(10,), truth_k=10, seed=1)
    r_bad = neighbour_recall(x, bad, ks=(10,), truth_k=10, seed=1)
    assert r_good["neighbour_recall@10"] == pytest.approx(10 / 10 * 10 / 11, abs=0.2)
    assert r_good["neighbour_recall@10"] > r_bad["neighbour_recall@10"]


def test_atomic_write_respects_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "r.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("high", [2, 256, 2**40])  # packed int64 keys, and the wide-tuple fallback
def test_tuple_groups_match_row_unique(high):
    from rqvae_ids.core.metrics import tuple_group_ids

    codes = np.random.default_rng(0).integers(0, high, (500, 3))
    codes[7] = codes[3]  # at least one shared tuple
    _, inverse, sizes = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    got_inverse, got_sizes = tuple_group_ids(codes)
    np.testing.assert_array_equal(got_inverse, inverse.reshape(-1))
    np.testing.assert_array_equal(got_sizes, sizes)


def test_interactions_without_rows_or_known_items_are_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("user_id,item_id,timestamp\n")
    with pytest.raises(UserError, match="has no rows"):
        load_interactions(empty, ["a"])
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("user_id,item_id\nu1,zz\n")
    with pytest.raises(UserError, match="no interaction refers to an item of the catalog.*'zz'"):
        load_interactions(unknown, ["a"])
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("user_id,item_id\nu1,a\nu1,zz\n")
    load_interactions(mixed, ["a"])  # default log: one line on stderr
    assert "dropped 1 of 2 rows" in capsys.readouterr().err


def test_one_set_grammar_types_values_by_field():
    from rqvae_ids.core.config import parse_set
    from rqvae_ids.pipeline.config import PipelineConfig, load_pipeline_config
    from rqvae_ids.train import TrainConfig

    got = parse_set(["train.lr=1e-3", "train.model.hidden=[256,128]", "catalog.text_cols=title,brand",
                     "run.lock_timeout_s=none", "embed.progress=TRUE", "train.model.recon=cosine",
                     "catalog.template=1e-3"], PipelineConfig)
    assert got == {"train.lr": 0.001, "train.model.hidden": (256, 128), "catalog.text_cols": ("title", "brand"),
                   "run.lock_timeout_s": None, "embed.progress": True, "train.model.recon": "cosine",
                   "catalog.template": "1e-3"}  # a str field keeps the text: 1e-3 is a number only where one is due
    assert type(got["train.lr"]) is float
    cfg = load_pipeline_config(None, got)
    assert cfg.train.lr == 0.001 and cfg.train.model.hidden == (256, 128)
    # the train command's keys: bare, dotted inside TrainConfig, or dotted as in the pipeline config
    for key in ("lr", "train.lr"):
        assert parse_set([f"{key}=1e-3"], TrainConfig, bare=True, strip="train.") == {"lr": 0.001}
    for key in ("recon", "model.recon", "train.model.recon"):
        assert parse_set([f"{key}=cosine"], TrainConfig, bare=True, strip="train.") == {"model.recon": "cosine"}


@pytest.mark.parametrize("pair, words", [
    ("train.nosuch=1", ["unknown key train.nosuch", "valid keys:", "train.lr", "catalog.id_col"]),
    ("lr=1e-3", ["unknown key lr", "valid keys:"]),  # the pipeline config takes dotted keys only
    ("train.lr=fast", ["--set train.lr", "expected a number", "'fast'"]),
    ("train.epochs=2.5", ["--set train.epochs", "expected an integer"]),
    ("evaluate.enabled=1", ["--set evaluate.enabled", "expected true/false"]),
    ("train.model.recon=l1", ["--set train.model.recon", "expected one of ['mse', 'cosine']"]),
    ("train.model=1", ["unknown key train.model"]),  # a section, not a knob
    ("train.lr", ["expects KEY=VALUE"]),
])
def test_set_grammar_errors_are_one_line(pair, words):
    from rqvae_ids.core.config import parse_set
    from rqvae_ids.pipeline.config import PipelineConfig

    with pytest.raises(UserError) as e:
        parse_set([pair], PipelineConfig)
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value)
