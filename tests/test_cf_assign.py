"""ID assignment with the CF embeddings a model was trained with (issue 14): rqkmeans-cf encodes
items that have one from text ⊕ α·CF and new items from their text alone; a refresh keeps IDs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from rqvae_ids.core.cf_table import CF_FILE, read_cf_table, write_cf_table  # noqa: E402
from rqvae_ids.cli import main  # noqa: E402
from rqvae_ids.core.embedding_table import write_embeddings  # noqa: E402
from rqvae_ids.core.errors import UserError  # noqa: E402
from rqvae_ids.ids import assign_ids, read_semantic_ids  # noqa: E402
from rqvae_ids.models import load_model  # noqa: E402

N, D = 240, 16
COLD = 40  # the last COLD items never appear in the interactions: no CF embedding


def write_emb(path, ids, text):
    write_embeddings(path, ids, [f"h{i}" for i in ids], text, model="test")
    return path


def interactions(path, seed=0):
    """80 users, each browsing 6 items of one of 8 groups of 25 (items i0..i199)."""
    rng = np.random.default_rng(seed)
    lines = ["user_id,item_id,position"]
    for u in range(80):
        start = (u % 8) * 25
        lines += [f"u{u},i{start + j},{p}" for p, j in enumerate(rng.choice(25, size=6, replace=False))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module", params=["regress", "zero"])
def trained(request, tmp_path_factory):
    """rqkmeans-cf with each cold rule: regress (the default) codes an item without CF by the nearest
    codewords of [text, predicted CF]; zero by the text part of the codewords."""
    tmp = tmp_path_factory.mktemp(f"cfassign_{request.param}")
    text = (0.5 * np.random.default_rng(1).standard_normal((N, D))).astype(np.float32)  # CF part weighs more
    ids = [f"i{i}" for i in range(N)]
    emb = write_emb(tmp / "embeddings.parquet", ids, text)
    inter = interactions(tmp / "inter.csv")
    model_dir = tmp / "model"
    assert main(["train", "--embeddings", str(emb), "--out", str(model_dir), "--model", "rqkmeans-cf",
                 "--interactions", str(inter), "--levels", "3", "--codebook-size", "16", "--quiet",
                 "--set", "cf_alpha=3.0", "--set", f"cf_cold={request.param}"]) == 0
    return {"tmp": tmp, "text": text, "ids": ids, "emb": emb, "inter": inter, "model_dir": model_dir,
            "cold": request.param}


def text_alone(model, text, cold):
    """An item's codes from its text alone under the cold rule: the text part of the codewords (zero),
    or the whole row with a CF part predicted from the text (regress)."""
    return model.text_codes(text) if cold == "zero" else model.encode_codes(text)


def codes_by_item(path):
    s = read_semantic_ids(path)
    return dict(zip(s.item_ids.tolist(), map(tuple, s.codes.tolist()))), dict(zip(s.item_ids.tolist(), s.sids.tolist()))


def test_items_with_cf_get_their_cf_codes_and_cold_items_text_codes(trained):
    model_dir, text, ids = trained["model_dir"], trained["text"], trained["ids"]
    report = assign_ids(model_dir, trained["emb"], trained["tmp"] / "ids")
    model = load_model(model_dir)
    cf = read_cf_table(model_dir / CF_FILE, ids)
    assert not cf.has[-COLD:].any() and cf.has[:-COLD].sum() > 150
    assert report["cf"] == {"items_with_cf": int(cf.has.sum()), "items_text_only": N - int(cf.has.sum()),
                            "cf_items_gone": 0}
    # zero: cold rows take text codes, not the fast path's nearest codewords of the whole row
    assert report["encode_path"] == ("model.encode_codes" if trained["cold"] == "zero" else "residual_search")
    got, _ = codes_by_item(trained["tmp"] / "ids" / "semantic_ids.parquet")
    expected = model.encode_codes(model.cf_inputs(text, cf.vectors, cf.has))
    assert [got[i] for i in ids] == list(map(tuple, expected.tolist()))
    # cold items: their text-alone codes; warm items: the CF part moved many of them
    text_only = text_alone(model, text, trained["cold"])
    np.testing.assert_array_equal(expected[~cf.has], text_only[~cf.has])
    assert (expected[cf.has] != text_only[cf.has]).any(axis=1).mean() > 0.3


def test_refresh_gives_new_items_text_codes_and_keeps_every_old_id(trained):
    tmp, model_dir = trained["tmp"], trained["model_dir"]
    first = tmp / "ids1"
    assign_ids(model_dir, trained["emb"], first)
    new_text = (0.5 * np.random.default_rng(7).standard_normal((20, D))).astype(np.float32)
    new_ids = [f"n{i}" for i in range(20)]
    emb2 = write_emb(tmp / "embeddings2.parquet", trained["ids"] + new_ids, np.vstack([trained["text"], new_text]))
    report = assign_ids(model_dir, emb2, tmp / "ids2", previous=first / "semantic_ids.parquet")
    assert report["stability"]["kept"] == N and report["stability"]["new"] == 20
    with_cf = int(read_cf_table(model_dir / CF_FILE, trained["ids"]).has.sum())
    assert report["cf"]["items_with_cf"] == with_cf and report["cf"]["items_text_only"] == N + 20 - with_cf
    _, old = codes_by_item(first / "semantic_ids.parquet")
    codes, new = codes_by_item(tmp / "ids2" / "semantic_ids.parquet")
    assert all(new[i] == old[i] for i in trained["ids"])
    model = load_model(model_dir)
    assert [codes[i] for i in new_ids] == list(map(tuple, text_alone(model, new_text, trained["cold"]).tolist()))


def test_cf_embeddings_of_another_catalog_or_other_interactions_are_refused(trained):
    tmp = trained["tmp"]
    model_dir = tmp / "model_foreign"
    shutil.copytree(trained["model_dir"], model_dir)
    meta = read_cf_table(model_dir / CF_FILE, trained["ids"]).metadata
    vecs = np.ones((3, 64), np.float32)
    write_cf_table(model_dir / CF_FILE, ["x1", "x2", "x3"], vecs, meta)
    with pytest.raises(UserError, match="another catalog"):
        assign_ids(model_dir, trained["emb"], tmp / "foreign")
    write_cf_table(model_dir / CF_FILE, trained["ids"][:3], vecs, {**meta, "interactions_sha256": "0" * 64})
    with pytest.raises(UserError, match="not the CF embeddings .* was trained with"):
        assign_ids(model_dir, trained["emb"], tmp / "foreign")
    assert not (tmp / "foreign").exists()  # nothing half-written
    # no CF file beside the model: every item from its text, said in the report
    (model_dir / CF_FILE).unlink()
    report = assign_ids(model_dir, trained["emb"], tmp / "no_cf")
    assert report["cf"]["items_with_cf"] == 0 and "text alone" in report["cf"]["note"]


def test_cli_assign_says_how_many_items_used_cf(trained, capsys):
    assert main(["assign", "--model-dir", str(trained["model_dir"]), "--embeddings", str(trained["emb"]),
                 "--out", str(trained["tmp"] / "cli_ids")]) == 0
    with_cf = int(read_cf_table(trained["model_dir"] / CF_FILE, trained["ids"]).has.sum())
    assert f"CF embeddings: {with_cf} items coded from text + CF, {N - with_cf} from their text alone" in \
        capsys.readouterr().out
