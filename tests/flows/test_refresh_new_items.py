"""Issue 14's new-items target on the demo catalog: a collaborative model trained by the pipeline,
then 100 items added by the daily refresh get IDs from their text alone, without retraining, and
every old ID stays. A 400-item slice of data/demo keeps it quick (tiny model, as the flow tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rqvae_ids.pipeline import runs

pytestmark = pytest.mark.timeout(300)

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
BASE, ADDED = 400, 100


@pytest.fixture(scope="module")
def demo_slice(flows_tmp):
    items = pd.read_csv(DEMO / "items.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(DEMO / "interactions.csv", dtype={"user_id": str, "item_id": str})
    data = flows_tmp / "demo_slice"
    data.mkdir()
    items.iloc[:BASE].to_csv(data / "items.csv", index=False)
    items.iloc[:BASE + ADDED].to_csv(data / "items_more.csv", index=False)
    events[events["item_id"].isin(items["item_id"].iloc[:BASE])].to_csv(data / "interactions.csv", index=False)
    return data


def _ids(run_dir):
    from rqvae_ids.ids import read_semantic_ids

    return read_semantic_ids(run_dir / "semantic_ids.parquet")


@pytest.mark.parametrize("kind", ["rqvae", "rqkmeans-cf"])
def test_refresh_gives_100_new_demo_items_text_ids_and_keeps_every_old_id(demo_slice, flows_tmp, kind,
                                                                          prefect_harness, small_shop):
    from flows.pipeline import semantic_ids_pipeline
    from flows.refresh import refresh_ids
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.core.io import sha256_file
    from rqvae_ids.models import load_model

    out = flows_tmp / f"demo_refresh_{kind}"
    overrides = {"train.model.kind": kind, "train.model.codebook_size": 32, "embed.cache": str(flows_tmp / "demo_slice_cache.parquet"),
                 "evaluate.enabled": False}  # the IDs are the point here, not their metrics
    first = Path(semantic_ids_pipeline(str(demo_slice / "items.csv"), str(out), str(demo_slice / "interactions.csv"),
                                       config=str(small_shop["config"]), overrides=overrides))
    conf = json.loads((first / "model" / "config.json").read_text())
    assert conf["cf"]["used"] is True  # interactions given: the pipeline's model is collaborative
    # issue 25: both kinds read text ⊕ α·CF; new items get a CF part predicted from their text
    assert conf["inputs"]["cold"] == "regress"
    assert (first / "model" / "cf_embeddings.parquet").is_file()

    second = Path(refresh_ids(str(demo_slice / "items_more.csv"), str(out)))
    assert runs.latest_run(out) == second
    stages = json.loads((second / "run_report.json").read_text())["stages"]
    assert "train" not in stages and "cf" not in stages  # no retraining
    assert stages["embed"]["items"] == BASE + ADDED
    assert sha256_file(second / "model" / "model.safetensors") == sha256_file(first / "model" / "model.safetensors")
    assert stages["assign"]["stability"]["kept"] == BASE and stages["assign"]["stability"]["new"] == ADDED

    old, new = _ids(first), _ids(second)
    old_sid = dict(zip(old.item_ids.tolist(), old.sids.tolist()))
    new_sid = dict(zip(new.item_ids.tolist(), new.sids.tolist()))
    assert all(new_sid[i] == sid for i, sid in old_sid.items())  # every old ID stays
    assert len(new_sid) == BASE + ADDED and len(set(new_sid.values())) == BASE + ADDED

    # the new items' codes are their text-only codes under the frozen model
    emb = read_embeddings(second / "embeddings.parquet")
    added = [i for i in emb.item_ids if i not in old_sid]
    rows = np.array([list(emb.item_ids).index(i) for i in added])
    model = load_model(second / "model")
    text = np.asarray(emb.vectors[rows], np.float32)
    expected = model.encode_codes(text)
    codes, _ = new.codes_in_order(added, where=str(second))
    np.testing.assert_array_equal(codes, expected)
