"""The `train_retriever` flow takes the same retriever choice as `rqvae-ids retrieve-train`."""

from __future__ import annotations

import json

import pytest

from rqvae_ids.core.errors import UserError

pytestmark = pytest.mark.timeout(300)

TINY = {"max_epochs": 2, "d_model": 16, "n_head": 2, "n_layer": 1}
FLAGS = ["--epochs", "2", "--d-model", "16", "--heads", "2", "--layers", "1"]


def test_sasrec_flow_equals_the_cli(small_shop, flows_tmp, prefect_harness):
    from flows.train_retriever import train_retriever
    from rqvae_ids.cli import main

    cli_out, flow_out = flows_tmp / "sasrec-cli", flows_tmp / "sasrec-flow"
    assert main(["retrieve-train", "--retriever", "sasrec", "--interactions", str(small_shop["interactions"]),
                 "--out", str(cli_out), *FLAGS]) == 0
    report = train_retriever(None, str(small_shop["interactions"]), str(flow_out), TINY, retriever="sasrec")
    flow, cli = json.loads(open(report).read()), json.loads((cli_out / "train_report.json").read_text())
    assert flow["retriever"] == cli["retriever"] == "sasrec"
    assert flow["epochs"] == cli["epochs"] == 2
    assert flow["test"] == cli["test"]  # seeded CPU runs: the same numbers by either route


def test_flow_refuses_a_bad_choice_before_training(small_shop, flows_tmp, prefect_harness):
    from flows.train_retriever import train_retriever

    out = flows_tmp / "refused"
    with pytest.raises(UserError, match="needs --ids"):
        train_retriever(None, str(small_shop["interactions"]), str(out), TINY, retriever="parallel")
    with pytest.raises(UserError, match="unknown retriever"):
        train_retriever(None, str(small_shop["interactions"]), str(out), TINY, retriever="bert4rec")
    assert not out.exists()


def test_hybrid_flow_equals_the_cli(pipeline_run, flows_tmp, prefect_harness):
    from flows.train_retriever import train_retriever
    from rqvae_ids.cli import main

    run = pipeline_run["out"] / "latest"
    ids, emb, inter = str(run / "semantic_ids.parquet"), str(run / "embeddings.parquet"), str(pipeline_run["interactions"])
    cli_out, flow_out = flows_tmp / "hybrid-cli", flows_tmp / "hybrid-flow"
    assert main(["retrieve-train", "--retriever", "hybrid", "--ids", ids, "--content-embeddings", emb,
                 "--interactions", inter, "--out", str(cli_out), *FLAGS]) == 0
    report = train_retriever(ids, inter, str(flow_out), TINY, retriever="hybrid", content_embeddings=emb)
    flow, cli = json.loads(open(report).read()), json.loads((cli_out / "train_report.json").read_text())
    assert flow["retriever"] == cli["retriever"] == "hybrid"
    assert flow["test"] == cli["test"]
    with pytest.raises(UserError, match="needs --content-embeddings"):
        train_retriever(ids, inter, str(flows_tmp / "refused"), TINY, retriever="hybrid")
    assert not (flows_tmp / "refused").exists()
