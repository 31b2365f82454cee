"""The CLI contract at the edge: bad input -> one line on stderr, exit code 2, no traceback,
nothing written, and before any work. Tiny inputs only; nothing here trains a model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rqvae_ids.cli import main

REPO = Path(__file__).resolve().parents[1]


def _refused(capsys, argv, *words) -> str:
    """Run the CLI, expect exit 2 with one error line naming every word; return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, err)
    return lines[0]


@pytest.fixture
def catalog(tmp_path) -> Path:
    path = tmp_path / "items.csv"
    path.write_text("item_id,title\n" + "".join(f"i{i},item number {i}\n" for i in range(4)))
    return path


@pytest.fixture
def sid_file(tmp_path) -> Path:
    from rqvae_ids.ids.lookup import format_sid
    from rqvae_ids.ids.table import write_semantic_ids

    codes = np.array([[1, 2, 0], [1, 2, 1], [1, 3, 0], [4, 0, 0]])
    sids = [format_sid(list(c) + [0]) for c in codes]
    path = tmp_path / "semantic_ids.parquet"
    write_semantic_ids(path, [f"i{i}" for i in range(4)], codes, np.zeros(4, np.int64), sids, ["h"] * 4, {})
    return path


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere


# ---------------------------------------------------------------- 1. generative retriever settings


@pytest.mark.parametrize("flags, words", [
    (["--heads", "3"], ["d_model (128)", "n_head"]),
    (["--d-model", "30", "--heads", "4"], ["d_model (30)", "multiple"]),
    (["--heads", "0"], ["n_head", ">= 1"]),
    (["--dropout", "1.5"], ["dropout", "[0, 1)"]),
    (["--dropout", "-0.1"], ["dropout"]),
    (["--layers", "0"], ["n_layer", ">= 1"]),
    (["--d-model", "0"], ["d_model", ">= 1"]),
    (["--patience", "0"], ["patience"]),
    (["--valid-users", "-1"], ["valid_users"]),
    (["--user-buckets", "-2"], ["user_buckets"]),
    (["--max-minutes", "-1"], ["max_minutes"]),
])
def test_retrieve_train_model_settings_refused_up_front(tmp_path, capsys, sid_file, flags, words):
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id,position\n" + "".join(f"u{u},i{i},{i}\n" for u in range(3) for i in range(4)))
    out = tmp_path / "ret"
    _refused(capsys, ["retrieve-train", "--retriever", "tiger", "--ids", str(sid_file), "--interactions", str(inter),
                      "--out", str(out), "--device", "cpu", *flags], "rqvae-ids retrieve-train: error:", *words)
    assert not out.exists()


def test_retrieval_config_checks_match_the_model():
    from rqvae_ids.retrieval.tiger.trainer import RetrievalConfig, model_config

    pytest.importorskip("torch")
    ok = RetrievalConfig(d_model=32, n_head=2, n_layer=1, dropout=0.0)
    model_config(ok, depth=4, width=16)  # what RetrievalConfig accepts, ModelConfig accepts
    for bad in (dict(n_head=3), dict(n_head=0), dict(n_layer=0), dict(dropout=1.0), dict(d_model=0)):
        with pytest.raises(ValueError):
            RetrievalConfig(**bad)


def test_compare_tiger_settings_refused_before_any_training(tmp_path, capsys, catalog):
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id\n")
    out = tmp_path / "cmp"
    _refused(capsys, ["compare", "--catalog", str(catalog), "--interactions", str(inter), "--out", str(out),
                      "--with-tiger", "--set", "tiger.n_head=3"], "compare tiger", "n_head")
    assert not out.exists()  # no tokenizer trained, no compare_key.json left behind


# ---------------------------------------------------------------- 2. compare knobs


@pytest.mark.parametrize("flags, word", [
    (["--neighbour-queries", "0"], "neighbour_queries"),
    (["--neighbour-queries", "-5"], "neighbour_queries"),
    (["--tune-users", "-1"], "tune_users"),
    (["--epochs", "-1"], "epochs"),
])
def test_compare_knobs_refused_at_the_edge(tmp_path, capsys, catalog, flags, word):
    out = tmp_path / "cmp"
    _refused(capsys, ["compare", "--catalog", str(catalog), "--out", str(out), *flags], word)
    assert not out.exists()


def test_neighbour_recall_refuses_zero_queries():
    from rqvae_ids.evaluate.neighbours import neighbour_recall

    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="max_queries"):
        neighbour_recall(x, np.zeros((20, 2), np.int64), max_queries=0)


def test_compare_embed_model_with_embeddings_refused(tmp_path, capsys, catalog):
    out = tmp_path / "cmp"
    _refused(capsys, ["compare", "--catalog", str(catalog), "--out", str(out), "--embeddings", "e.parquet",
                      "--embed-model", "some/model"], "--embed-model", "--embeddings")
    assert not out.exists()


# ---------------------------------------------------------------- 3. --out is a file


def _out_commands(tmp_path: Path, catalog: Path, out: Path) -> dict[str, list[str]]:
    missing = str(tmp_path / "missing")
    return {
        "embed": ["embed", "--catalog", str(catalog), "--out", str(out), "--quiet"],
        "train": ["train", "--embeddings", missing, "--out", str(out)],
        "assign": ["assign", "--model-dir", missing, "--embeddings", missing, "--out", str(out)],
        "compare": ["compare", "--catalog", str(catalog), "--out", str(out)],
        "retrieve-train": ["retrieve-train", "--retriever", "tiger", "--ids", missing, "--interactions", missing,
                           "--out", str(out)],
    }


@pytest.mark.parametrize("command", ["embed", "train", "assign", "compare", "retrieve-train"])
@pytest.mark.parametrize("nested", [False, True])
def test_out_that_is_a_file_refused_up_front(tmp_path, capsys, catalog, command, nested):
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out = blocker / "sub" if nested else blocker
    line = _refused(capsys, _out_commands(tmp_path, catalog, out)[command], f"rqvae-ids {command}: error:",
                    "--out", str(blocker), "not a folder")
    assert "not found" not in line  # refused before the inputs are even read
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv", "taken"]


def test_check_out_dir(tmp_path):
    from rqvae_ids.core.errors import UserError
    from rqvae_ids.core.io import check_out_dir

    assert check_out_dir(tmp_path) == tmp_path
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # a check, not a mkdir
    (tmp_path / "f").write_text("")
    for bad in (tmp_path / "f", tmp_path / "f" / "x"):
        with pytest.raises(UserError, match="not a folder"):
            check_out_dir(bad)
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(UserError, match="broken link"):
        check_out_dir(tmp_path / "dangling")


# ---------------------------------------------------------------- 4. closed stdout


def test_lookup_into_a_closed_pipe_exits_quietly(tmp_path, sid_file):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    # Enough output that the writes outlast the reader: the reader is closed before the child writes.
    proc = subprocess.Popen([sys.executable, "-m", "rqvae_ids.cli", "lookup", "--ids", str(sid_file), "--sid", "<a_1>"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait()
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == "", err
    assert code == 141


def test_broken_pipe_in_process(monkeypatch, capsys, sid_file):
    class ClosedPipe:
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["lookup", "--ids", str(sid_file), "--sid", "<a_1>"]) == 141
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- 5. small values


def test_assign_chunk_size_must_be_positive(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    for bad in ("0", "-3"):
        _refused(capsys, ["assign", "--model-dir", missing, "--embeddings", missing, "--out", str(tmp_path / "o"),
                          "--chunk-size", bad], "--chunk-size", ">= 1")
    assert not (tmp_path / "o").exists()


def test_lookup_limit(capsys, sid_file):
    _refused(capsys, ["lookup", "--ids", str(sid_file), "--sid", "<a_1>", "--limit", "-1"], "--limit", ">= 0")
    assert main(["lookup", "--ids", str(sid_file), "--sid", "<a_1>", "--limit", "0"]) == 0
    assert capsys.readouterr().out.split() == ["i0", "i1", "i2"]  # 0 = all
    assert main(["lookup", "--ids", str(sid_file), "--sid", "<a_1>", "--limit", "2"]) == 0
    assert capsys.readouterr().out.split() == ["i0", "i1"]


# ---------------------------------------------------------------- 6. train --set keys


def _listed_keys(capsys, tmp_path) -> list[str]:
    line = _refused(capsys, ["train", "--embeddings", str(tmp_path / "e.parquet"), "--out", str(tmp_path / "m"),
                             "--set", "nosuch=1"], "nosuch", "valid keys:")
    return [k.strip() for k in line.split("valid keys:", 1)[1].split(",")]


def test_train_set_lists_exactly_the_accepted_keys(tmp_path, capsys):
    pytest.importorskip("torch")
    import dataclasses

    from rqvae_ids.models.base import ModelConfig
    from rqvae_ids.train import TrainConfig

    listed = _listed_keys(capsys, tmp_path)
    for key in ("pca_skip", "recon", "ema", "hidden", "patience", "lr"):
        assert key in listed
    refused = {"epochs", "seed", "device", "model", "kind", "levels", "codebook_size", "latent_dim", "input_dim", "cf_dim"}
    assert not refused & set(listed)
    every = {f.name for f in dataclasses.fields(TrainConfig)} | {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(listed) == every - refused
    # Every listed key gets past the key checks: an ill-typed value is refused by name, not as unknown.
    for key in listed:
        line = _refused(capsys, ["train", "--embeddings", "e.parquet", "--out", str(tmp_path / "m"),
                                 "--set", f"{key}={{}}"], key)
        assert "unknown" not in line and "dedicated" not in line and "embeddings file" not in line, line
    for key in sorted(refused):
        line = _refused(capsys, ["train", "--embeddings", "e.parquet", "--out", str(tmp_path / "m"),
                                 "--set", f"{key}=1"], f"--set {key}")
        assert "unknown" not in line
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------- 7. --help defaults


def test_help_shows_defaults(capsys):
    pytest.importorskip("torch")
    from rqvae_ids.commands.train import DEFAULT_EPOCHS
    from rqvae_ids.ids.encode import DEFAULT_CHUNK_SIZE
    from rqvae_ids.train import TrainConfig

    assert DEFAULT_EPOCHS == TrainConfig().epochs
    text = _help(capsys, "compare")
    assert "for neighbour recall, >= 1 (default 2000)" in text
    assert "tuning retrievers (default 3000)" in text
    assert "not with --embeddings" in text
    assert f"(bounds memory; default {DEFAULT_CHUNK_SIZE})" in _help(capsys, "assign")
    assert f"training epochs (default {TrainConfig().epochs};" in _help(capsys, "train")


# ---------------------------------------------------------------- 8. embed --quiet


@pytest.mark.parametrize("quiet", [True, False])
def test_embed_quiet_turns_off_the_weight_loading_bar(tmp_path, capsys, monkeypatch, catalog, quiet):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from transformers.utils import logging as hf_logging

    from rqvae_ids.embed import text_encoder

    model_dir = tmp_path / "fake-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    seen = []

    class FakeSentenceTransformer:  # records the bar setting while the weights would load
        def __init__(self, *args, **kwargs):
            seen.append(hf_logging.is_progress_bar_enabled())
            raise RuntimeError("fake model: stop here")

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeSentenceTransformer)
    monkeypatch.setattr(text_encoder, "_LOADED", {})
    hf_logging.enable_progress_bar()
    argv = ["embed", "--catalog", str(catalog), "--out", str(tmp_path / "out"), "--embed-model", str(model_dir),
            "--device", "cpu", *(["--quiet"] if quiet else [])]
    _refused(capsys, argv, "cannot load model")
    assert seen == [not quiet]
    assert hf_logging.is_progress_bar_enabled()  # restored after loading
