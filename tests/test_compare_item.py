"""`rqvae-ids compare` with the item-level retrievers: the `sasrec` row (default with
--interactions, `--no-sasrec` skips it), `--with-parallel` rows `parallel/<model>`, and
`--cold-items` (the split and the cold_* metrics); checkpoints reused on a rerun; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from rqvae_ids.cli import main  # noqa: E402
from rqvae_ids.core.embedding_table import write_embeddings  # noqa: E402
from rqvae_ids.evaluate.cold import choose_cold_items, cold_split, cold_users  # noqa: E402
from rqvae_ids.evaluate.sequences import leave_one_out  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
NEXT = {"next_recall@5", "next_recall@10", "next_ndcg@5", "next_ndcg@10"}
COLD = {"cold_recall@10", "cold_ndcg@10"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """300 demo items with their interactions and random 16-d embeddings (no embedding model run)."""
    out = tmp_path_factory.mktemp("tiny_item")
    items = pd.read_csv(DEMO / "items.csv", dtype=str, keep_default_na=False).head(300)
    inter = pd.read_csv(DEMO / "interactions.csv", dtype={"user_id": str, "item_id": str})
    inter = inter[inter["item_id"].isin(set(items["item_id"]))]
    items.to_csv(out / "items.csv", index=False)
    inter.to_csv(out / "interactions.csv", index=False)
    vectors = np.random.default_rng(0).normal(size=(len(items), 16)).astype(np.float32)
    write_embeddings(out / "emb.parquet", items["item_id"], ["x"] * len(items), vectors, "test")
    return {"catalog": out / "items.csv", "interactions": out / "interactions.csv", "emb": out / "emb.parquet"}


def _args(tiny, out, *extra):
    return ["compare", "--catalog", str(tiny["catalog"]), "--interactions", str(tiny["interactions"]),
            "--embeddings", str(tiny["emb"]), "--out", str(out), "--models", "rqkmeans,random", "--levels", "3",
            "--codebook-size", "16", "--neighbour-queries", "50", "--tune-users", "50", *extra]


def test_sasrec_and_parallel_rows_cold_metrics_and_reuse(tiny, tmp_path, capsys, one_thread):
    out = tmp_path / "cmp"
    args = _args(tiny, out, "--with-parallel", "--parallel-epochs", "2", "--sasrec-epochs", "2",
                 "--cold-items", "0.2")
    assert main(args) == 0
    table = pd.read_parquet(out / "comparison.parquet")
    by_model = table.groupby("model")["metric"].apply(set)
    for name in ("sasrec", "parallel/rqkmeans", "parallel/random"):
        assert by_model[name] == NEXT | COLD, name
    for name in ("popularity", "embedding-knn", "rqkmeans", "random"):
        assert NEXT | COLD <= by_model[name], name
    value = table.set_index(["model", "metric"])["value"]
    # SASRec cannot score a cold item: not applicable (NaN), never a zero.
    assert np.isnan(value[("sasrec", "cold_recall@10")]) and np.isnan(value[("sasrec", "cold_ndcg@10")])
    for name in ("parallel/rqkmeans", "embedding-knn", "popularity"):
        assert 0 <= value[(name, "cold_recall@10")] <= 1 and value[(name, "cold_ndcg@10")] <= value[(name, "cold_recall@10")]
    # A never-seen item has no count: popularity ranks none of them in its top 10 ahead of seen ones.
    assert value[("popularity", "cold_recall@10")] == 0.0
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["models"][-3:] == ["sasrec", "parallel/rqkmeans", "parallel/random"]  # after the ID models
    assert summary["config"]["sasrec"]["max_epochs"] == 2 and summary["config"]["cold_items"] == 0.2
    for ckpt in ("sasrec", "parallel/rqkmeans", "parallel/random"):
        assert (out / "retrievers" / ckpt / "model.safetensors").is_file()
    report = (out / "report.md").read_text()
    assert "| sasrec |" in report and "| parallel/rqkmeans |" in report
    assert "`sasrec` row" in report and "at most 2 epochs" in report and "not applicable" in report
    assert "Cold items: 60 of 300" in report
    # Rerun into the same --out: the saved retrievers are reused, same numbers.
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("reusing ") == 3 and "epoch=" not in err
    again = pd.read_parquet(out / "comparison.parquet").set_index(["model", "metric"])["value"]
    for name in ("sasrec", "parallel/rqkmeans"):
        assert again[(name, "next_recall@10")] == value[(name, "next_recall@10")]


def test_no_sasrec_skips_the_row(tiny, tmp_path, one_thread):
    out = tmp_path / "cmp"
    assert main(_args(tiny, out, "--no-sasrec", "--epochs", "1")) == 0
    models = set(pd.read_parquet(out / "comparison.parquet")["model"])
    assert "sasrec" not in models and not any(m.startswith("parallel/") for m in models)
    assert not (out / "retrievers").exists()


def test_cold_split_removes_exactly_the_chosen_items():
    rng = np.random.default_rng(1)
    n_items = 40
    seqs = [rng.integers(0, n_items, rng.integers(3, 12)).astype(np.int64) for _ in range(200)]
    split = leave_one_out([str(i) for i in range(200)], seqs, max_history=5)
    cold = choose_cold_items(n_items, 0.1, seed=3)
    assert len(cold) == 4 and np.array_equal(cold, choose_cold_items(n_items, 0.1, seed=3))
    assert not np.array_equal(cold, choose_cold_items(n_items, 0.1, seed=4))
    c = cold_split(split, cold, n_items)
    is_cold = np.isin(np.arange(n_items), cold)
    for before, after in zip(split.train, c.train):
        assert np.array_equal(after, before[~is_cold[before]])  # occurrences dropped, order kept
    assert not any(is_cold[h].any() for h in c.valid_histories) and not is_cold[c.valid_targets].any()
    kept = [i for i, t in enumerate(split.valid_targets)
            if not is_cold[t] and (~is_cold[split.valid_histories[i]]).any()]
    assert np.array_equal(c.valid_targets, split.valid_targets[kept])
    for i, h in zip(kept, c.valid_histories):
        assert np.array_equal(h, split.valid_histories[i][~is_cold[split.valid_histories[i]]])
    # The test side is untouched; the cold test users are those with a cold target.
    assert np.array_equal(c.test_targets, split.test_targets)
    assert all(np.array_equal(a, b) for a, b in zip(c.test_histories, split.test_histories))
    assert set(cold_users(c, cold)) == {i for i, t in enumerate(split.test_targets) if is_cold[t]}


@pytest.mark.parametrize("argv, message", [
    (["--cold-items", "0.5"], "--cold-items must be in (0, 0.5)"),
    (["--cold-items", "0"], "--cold-items must be in (0, 0.5)"),
    (["--cold-items", "-0.1"], "--cold-items must be in (0, 0.5)"),
    (["--parallel-epochs", "1"], "parallel settings (--set parallel.*) need --with-parallel"),
    (["--set", "parallel.temperature=0.1"], "parallel settings (--set parallel.*) need --with-parallel"),
    (["--set", "hybrid.text_match=2"], "hybrid settings (--set hybrid.*) need --with-hybrid"),
    (["--with-hybrid", "--set", "hybrid.parts=id,size"], "unknown item part"),
    (["--no-sasrec", "--sasrec-epochs", "1"], "no effect with --no-sasrec"),
    (["--sasrec-epochs", "0"], "max_epochs must be positive"),
])
def test_item_option_errors(tiny, tmp_path, capsys, argv, message):
    out = tmp_path / "cmp"
    assert main(_args(tiny, out, *argv)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


def test_cold_items_need_interactions(tiny, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--catalog", str(tiny["catalog"]), "--out", str(out), "--cold-items", "0.1"]) == 2
    assert "need --interactions" in capsys.readouterr().err and not out.exists()


CF_KINDS = "rqvae,rqvae-text,rqkmeans,rqkmeans-cf,random"


def test_collaborative_rows_with_interactions(tiny, tmp_path, one_thread):
    """Issue 14's rows: `rqvae` (collaborative), `rqvae-text`, `rqkmeans`, `rqkmeans-cf`, with the
    same metric names as every ID model; CF embeddings built once in OUT/cf/ from the split's
    training part; rqkmeans-cf codes items with a CF embedding from [text, alpha * CF]."""
    from rqvae_ids.cf import read_cf_table
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.ids import read_semantic_ids
    from rqvae_ids.models import load_model

    out = tmp_path / "cmp"
    assert main(_args(tiny, out, "--no-sasrec", "--epochs", "1", "--models", CF_KINDS)) == 0  # the last --models wins
    table = pd.read_parquet(out / "comparison.parquet")
    by_model = table.groupby("model")["metric"].apply(set)
    for name in ("rqvae", "rqvae-text", "rqkmeans-cf"):
        assert by_model[name] == by_model["rqkmeans"], name  # same metric names as every ID model's
    assert NEXT <= by_model["rqkmeans-cf"]
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["models"] == ["popularity", "embedding-knn", *CF_KINDS.split(",")]
    assert any(n.startswith("Collaborative rows (rqvae, rqkmeans-cf)") for n in summary["notes"])
    # rqvae trained with the CF term, rqvae-text without (config.json records it).
    assert json.loads((out / "models" / "rqvae" / "config.json").read_text())["cf"]["used"] is True
    assert json.loads((out / "models" / "rqvae-text" / "config.json").read_text())["cf"] == {"used": False}
    emb = read_embeddings(tiny["emb"])
    cf = read_cf_table(out / "cf" / "cf_embeddings.parquet", emb.item_ids)
    assert 0 < cf.has.sum() < len(emb)  # some items never co-occur in the training part: text only
    model = load_model(out / "models" / "rqkmeans-cf")
    codes, _ = read_semantic_ids(out / "ids" / "rqkmeans-cf" / "semantic_ids.parquet").codes_in_order(emb.item_ids, "t")
    joint = model.encode_codes(model.cf_inputs(emb.vectors, cf.vectors, cf.has))
    assert np.array_equal(codes, joint)
    # the reuse key names the cold rule `auto` stood for: IDs of another default are not reused
    assert json.loads((out / "ids" / "rqkmeans-cf" / "compare_key.json").read_text())["cf"]["cold_rule"] == "regress"
    # CF moved some codes off those of the text part of the codewords (on this tiny catalog the ridge
    # prediction of a warm item's CF part can give its codes exactly, so that is no reference)
    assert not np.array_equal(codes[cf.has], model.text_codes(emb.vectors)[cf.has])


def test_without_interactions_rqvae_is_text_only_and_the_cf_rows_are_left_out(tiny, tmp_path, one_thread):
    out = tmp_path / "cmp"
    argv = ["compare", "--catalog", str(tiny["catalog"]), "--embeddings", str(tiny["emb"]), "--out", str(out),
            "--models", CF_KINDS, "--levels", "3", "--codebook-size", "16", "--neighbour-queries", "50",
            "--epochs", "1"]
    assert main(argv) == 0
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["models"] == ["rqvae", "rqkmeans", "random"]
    assert set(pd.read_parquet(out / "comparison.parquet")["model"]) == {"rqvae", "rqkmeans", "random"}
    report = (out / "report.md").read_text()
    assert "rqvae-text, rqkmeans-cf left out: no interactions given" in report
    assert "`rqvae` is then the text-only RQ-VAE" in report
    assert json.loads((out / "models" / "rqvae" / "config.json").read_text())["cf"] == {"used": False}
    assert not (out / "cf").exists() and not (out / "models" / "rqkmeans-cf").exists()
    assert main(argv[:-4] + ["--models", "rqkmeans-cf", "--out", str(tmp_path / "x")]) == 2  # nothing left to build


def test_the_sasrec_row_has_one_default_everywhere():
    """On whenever interactions are given, in the CLI, the library call and the flow alike."""

    from rqvae_ids.compare.comparison import compare_options
    from rqvae_ids.compare.config import CompareOptions
    from rqvae_ids.compare.item import SASREC_EPOCHS

    library = CompareOptions().rows.sasrec  # the library default: on, at the compare's budget
    assert library.head == "sasrec" and library.max_epochs == SASREC_EPOCHS
    assert compare_options({}).rows.sasrec == library  # the CLI's and the flow's, given nothing
    seeded = compare_options({"seed": 3}, {"sasrec": {}}).rows.sasrec
    assert seeded.max_epochs == SASREC_EPOCHS and seeded.seed == 3  # seeded by the comparison
    assert compare_options({}, {"sasrec": None}).rows.sasrec is None
    flows = Path(__file__).resolve().parents[1] / "flows" / "compare.py"
    assert "with_sasrec: bool = True," in flows.read_text()  # the flow's parameter (read: no Prefect import here)
    from rqvae_ids.cli import build_parser

    args = build_parser().parse_args(["compare", "--catalog", "c", "--out", "o", "--interactions", "i"])
    assert args.no_sasrec is False


def test_cli_model_list_is_the_library_one():
    from rqvae_ids.commands.compare import MODELS
    from rqvae_ids.compare.config import MODEL_KINDS

    assert MODELS == ",".join(MODEL_KINDS)


def test_hybrid_rows_and_what_the_codes_add(tiny, tmp_path, one_thread):
    out = tmp_path / "hyb"
    assert main(_args(tiny, out, "--with-hybrid", "--set", "hybrid.max_epochs=2", "--no-sasrec",
                      "--cold-items", "0.2")) == 0
    table = pd.read_parquet(out / "comparison.parquet")
    by_model = table.groupby("model")["metric"].apply(set)
    for name in ("hybrid/rqkmeans", "hybrid/random", "hybrid/no-codes"):
        assert by_model[name] == NEXT | COLD, name  # the hybrid scores new items: cold_* measured
        assert (out / "retrievers" / "hybrid" / name.removeprefix("hybrid/") / "model.safetensors").is_file()
    value = table.set_index(["model", "metric"])["value"]
    assert np.isfinite(value[("hybrid/rqkmeans", "cold_recall@10")])
    report = (out / "report.md").read_text()
    assert "## What the codes add (hybrid retriever)" in report
    delta = value[("hybrid/rqkmeans", "next_recall@10")] - value[("hybrid/no-codes", "next_recall@10")]
    assert f"| rqkmeans | {delta:+.4f} |" in report
    config = json.loads((out / "comparison.json").read_text())["config"]["hybrid"]
    assert config["parts"] == ["id", "codes", "text"] and config["max_epochs"] == 2
    # the report ends with the tokenizer to use: the hybrid row with the best validation Recall@10
    tuned = json.loads((out / "comparison.json").read_text())["tuned"]
    valid = {m: tuned[f"hybrid/{m}"]["valid_recall@10"] for m in ("rqkmeans", "random")}
    best = max(valid, key=valid.get)
    last = report.rstrip().splitlines()[-1]
    assert last.startswith(f"Use `{best}` for this catalog: validation Recall@10 of its hybrid retriever "
                           f"{valid[best]:.4f}, ") and "over `no-codes`" in last, last


def test_tokenizer_advice_says_when_a_lead_is_noise():
    from rqvae_ids.evaluate.report import tokenizer_advice

    rng = np.random.default_rng(0)
    base = rng.random(4000) < 0.1
    clear = base | (rng.random(4000) < 0.05)  # adds hits for 5 % of users: far beyond noise
    noisy = base.copy()
    gained, lost = np.flatnonzero(~base)[:5], np.flatnonzero(base)[:4]
    noisy[gained], noisy[lost] = True, False  # 5 users gained, 4 lost, of 4,000: within noise
    line = tokenizer_advice({"hybrid/a": clear, "hybrid/b": noisy, "hybrid/no-codes": base})[2]
    assert line.startswith("Use `a` for this catalog") and line.count("beyond one standard error") == 2, line
    line = tokenizer_advice({"hybrid/b": noisy, "hybrid/no-codes": base})[2]
    assert line.startswith("Use `b`") and "within noise" in line, line
    assert tokenizer_advice({"hybrid/no-codes": base}) == [] and tokenizer_advice({}) == []
