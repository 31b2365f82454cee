"""`rqvae-ids compare --with-tiger` on a slice of the demo catalog: a TIGER-style generative
retriever per ID model, its next_* rows in comparison.parquet and report.md, checkpoints
under --out, progress naming the model, reuse on a rerun, the old spellings (--with-generative,
--generative-*, checkpoints in OUT/retrievers/<kind>/) still working, and input errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")

from rqvae_ids.cli import main  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
KINDS = ("rqvae", "vqvae", "vae", "ae", "rqkmeans", "random")
NEXT = {"next_recall@5", "next_recall@10", "next_ndcg@5", "next_ndcg@10"}


@pytest.fixture(scope="module")
def demo_slice(tmp_path_factory) -> dict[str, Path]:
    """Cats + dogs items of the demo catalog (346) and 300 users with >= 4 interactions on them."""
    out = tmp_path_factory.mktemp("demo_slice")
    items = pd.read_csv(DEMO / "items.csv", dtype=str, keep_default_na=False)
    mid = items["categories"].str.split(" > ").str[:2].str.join(" > ")
    items = items[mid.isin(["Pet Supplies > Cats", "Pet Supplies > Dogs"])]
    inter = pd.read_csv(DEMO / "interactions.csv", dtype={"user_id": str, "item_id": str})
    inter = inter[inter["item_id"].isin(set(items["item_id"]))]
    counts = inter.groupby("user_id").size()
    users = sorted(counts[counts >= 4].index)[:300]
    inter = inter[inter["user_id"].isin(users)]
    items.to_csv(out / "items.csv", index=False)
    inter.to_csv(out / "interactions.csv", index=False)
    return {"catalog": out / "items.csv", "interactions": out / "interactions.csv"}


def _args(demo_slice, out, *extra):
    # --epochs 2: every model takes real gradient steps (a small slice once collapsed RQ-VAE
    # and VQ-VAE onto one tuple; tests/test_train.py guards that), kept short for time.
    return ["compare", "--catalog", str(demo_slice["catalog"]), "--interactions", str(demo_slice["interactions"]),
            "--out", str(out), "--models", ",".join(KINDS), "--levels", "3", "--codebook-size", "16",
            "--epochs", "2", "--neighbour-queries", "100", "--tune-users", "100", "--with-tiger",
            "--set", "tiger.max_epochs=2", "--set", "tiger.n_layer=1", "--set", "tiger.d_model=32",
            "--set", "tiger.n_head=2", "--set", "tiger.beam=10", "--no-sasrec", *extra]


def test_with_tiger_adds_a_retriever_per_id_model(demo_slice, tmp_path, capsys, one_thread):
    out = tmp_path / "cmp"
    assert main(_args(demo_slice, out)) == 0
    err = capsys.readouterr().err
    table = pd.read_parquet(out / "comparison.parquet")
    assert list(table.columns[:3]) == ["model", "metric", "value"]
    by_model = table.groupby("model")["metric"].apply(set)
    for i, kind in enumerate(KINDS, 1):
        name = f"tiger/{kind}"
        # Fixed metric names; a tiger row has exactly the next-item metrics.
        assert by_model[name] == NEXT, name
        rows = table[table["model"] == name].set_index("metric")["value"]
        assert ((rows >= 0) & (rows <= 1)).all() and rows["next_recall@10"] >= rows["next_recall@5"]
        assert rows["next_ndcg@10"] <= rows["next_recall@10"] + 1e-12
        # The ID model keeps its own row (sid-prefix retriever + ID quality), untouched.
        assert NEXT | {"duplicate_rate_resolved"} <= by_model[kind]
        # Its checkpoints under --out, trained on that model's IDs (3 levels + suffix token).
        ckpt = out / "retrievers" / "tiger" / kind
        assert (ckpt / "model.safetensors").is_file() and (ckpt / "checkpoint.safetensors").is_file()
        import numpy as np

        assert np.load(ckpt / "codes.npy").shape == (346, 4)
        # Progress says whose retriever is training.
        assert f"{name} ({i}/{len(KINDS)}): training the TIGER retriever on {kind}'s IDs" in err
        assert f"{name}: epoch=2 " in err
    # The tiger retrievers differ: they were trained on different IDs.
    gen = table[table["model"].str.startswith("tiger/")]
    assert gen.groupby("model")["value"].apply(tuple).nunique() > 1
    report = (out / "report.md").read_text()
    results = _results_table(report)
    assert list(results)[-len(KINDS):] == [f"tiger/{k}" for k in KINDS]  # after the ID models
    for kind in KINDS:
        cells = results[f"tiger/{kind}"]
        assert all(cells[m].strip("*") != "–" for m in NEXT)
        assert cells["duplicate_rate_resolved"] == "–" and cells["neighbour_recall@10"] == "–"  # next_* only
        assert float(cells["next_recall@10"].strip("*")) == pytest.approx(
            by_value(table, f"tiger/{kind}", "next_recall@10"), abs=5e-5)
    assert "--with-tiger" in report and "`tiger/<model>` rows" in report and "generative/" not in report
    import json

    summary = json.loads((out / "comparison.json").read_text())
    assert summary["models"][-len(KINDS):] == [f"tiger/{k}" for k in KINDS]
    assert summary["config"]["tiger"]["max_epochs"] == 2 and "generative" not in summary["config"]
    assert summary["tuned"]["tiger/rqvae"]["epochs"] == 2

    # A rerun into the same --out reuses every model and retriever: no epoch is trained again.
    assert main(_args(demo_slice, out)) == 0
    err = capsys.readouterr().err
    assert "epoch=" not in err and "resuming/reusing the TIGER retriever on rqvae's IDs" in err
    again = pd.read_parquet(out / "comparison.parquet")
    pd.testing.assert_frame_equal(again[again["model"].str.startswith("tiger/")].reset_index(drop=True),
                                  gen.reset_index(drop=True))

    # The old spellings still work this release, each with a deprecation line; a checkpoint where
    # they kept it (OUT/retrievers/<kind>/) moves to OUT/retrievers/tiger/<kind>/ and is reused.
    (out / "retrievers" / "tiger" / "rqvae").rename(out / "retrievers" / "rqvae")
    old = [a for a in _args(demo_slice, out, "--models", "rqvae") if a not in ("--with-tiger", "--set")
           and not a.startswith("tiger.")]
    old += ["--with-generative", "--generative-epochs", "2", "--generative-layers", "1", "--generative-d-model", "32",
            "--generative-heads", "2", "--generative-beam", "10"]
    assert main(old) == 0
    err = capsys.readouterr().err
    assert "warning: --with-generative: old spelling, dropped in the next release; use --with-tiger" in err
    assert "warning: --generative-* options: old spelling" in err and "use --set tiger.KEY=VALUE" in err
    assert "epoch=" not in err and "resuming/reusing the TIGER retriever on rqvae's IDs" in err
    assert not (out / "retrievers" / "rqvae").exists()

    # A bigger epoch budget resumes the saved retriever (epoch 3 only); another width starts over.
    assert main(_args(demo_slice, out, "--models", "rqvae", "--set", "tiger.max_epochs=3")) == 0
    err = capsys.readouterr().err
    assert "resuming/reusing the TIGER retriever on rqvae's IDs" in err
    assert "epoch=3" in err and "epoch=1 " not in err and "epoch=2 " not in err
    assert main(_args(demo_slice, out, "--models", "rqvae", "--set", "tiger.d_model=16")) == 0
    err = capsys.readouterr().err
    assert "training the TIGER retriever on rqvae's IDs" in err and "epoch=1 " in err


def by_value(table, model, metric) -> float:
    return float(table.loc[(table["model"] == model) & (table["metric"] == metric), "value"].iloc[0])


def _results_table(report: str) -> dict[str, dict[str, str]]:
    """report.md's results table: model -> metric -> cell text."""
    section = report.split("## Results", 1)[1].split("## Notes", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in rows[0]]
    return {r[0].strip(): dict(zip(header[1:], (c.strip() for c in r[1:]))) for r in rows[1:]}


@pytest.mark.parametrize("argv, message", [
    (["--with-tiger"], "--with-tiger: need --interactions"),
    (["--with-generative"], "--with-tiger: need --interactions"),
    (["--set", "tiger.max_epochs=1"], "tiger settings (--set tiger.*) need --with-tiger"),
    (["--generative-epochs", "1"], "tiger settings (--set tiger.*) need --with-tiger"),
    (["--with-tiger", "--interactions", "x.csv", "--set", "tiger.beam=5"], "beam must be >= 10"),
    (["--with-tiger", "--interactions", "x.csv", "--set", "tiger.seed=3"], "--set: unknown key tiger.seed"),
    (["--set", "sasrec.head=parallel", "--interactions", "x.csv"], "--set: unknown key sasrec.head"),
    (["--set", "sasrec.max_epochs=x", "--interactions", "x.csv"], "expected an integer"),
])
def test_tiger_option_errors(demo_slice, tmp_path, capsys, argv, message):
    out = tmp_path / "cmp"
    code = main(["compare", "--catalog", str(demo_slice["catalog"]), "--out", str(out), *argv])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()  # nothing written
