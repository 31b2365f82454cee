import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_ids_fakes import FakeTokenizer, load_fake, make_embeddings

from rqvae_ids.core.errors import UserError
from rqvae_ids.ids import assign as assign_mod
from rqvae_ids.ids import assign_ids, read_semantic_ids, write_id_mapping
from rqvae_ids.core.io import read_parquet_metadata
from rqvae_ids.core.embedding_table import read_embeddings, write_embeddings


@pytest.fixture(autouse=True)
def fake_loader(monkeypatch):
    monkeypatch.setattr(assign_mod, "_load_model", load_fake)


@pytest.fixture
def first_run(tmp_path):
    model_dir = FakeTokenizer.random().save(tmp_path / "model")
    emb = tmp_path / "emb.parquet"
    make_embeddings(emb)
    return model_dir, emb


def full_ids(ids):
    return {i: (tuple(c), s, sid) for i, c, s, sid in zip(ids.item_ids, ids.codes.tolist(), ids.suffix.tolist(), ids.sids)}


def changed_catalog(emb, path):
    """Edit 3 items (1%), remove 4, add 6 (two are exact copies of kept items' vectors)."""
    t = read_embeddings(emb)
    rng = np.random.default_rng(9)
    keep = np.ones(len(t), bool)
    keep[[10, 20, 30, 40]] = False  # removed
    ids, hashes, vecs = list(t.item_ids[keep]), list(t.text_sha256[keep]), t.vectors[keep].copy()
    edited = {ids[j] for j in (0, 50, 100)}
    for j in (0, 50, 100):  # edited: new text hash and new vector
        hashes[j] = "edited" + hashes[j]
        v = rng.standard_normal(16).astype(np.float32)
        vecs[j] = v / np.linalg.norm(v)
    extra = rng.standard_normal((4, 16)).astype(np.float32)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    extra = np.concatenate([extra, t.vectors[[1, 2]]])  # copies collide with held IDs
    ids += [f"new{j}" for j in range(6)]
    hashes += [f"hnew{j}" for j in range(6)]
    write_embeddings(path, ids, hashes, np.concatenate([vecs, extra]), model="fake-emb")
    return edited


@pytest.mark.parametrize("resolve", ["suffix", "reassign"])
def test_unchanged_catalog_keeps_every_id(first_run, tmp_path, resolve):
    model_dir, emb = first_run
    assign_ids(model_dir, emb, tmp_path / "day1", resolve=resolve)
    rep = assign_ids(model_dir, emb, tmp_path / "day2", resolve=resolve,
                     previous=tmp_path / "day1" / "semantic_ids.parquet")
    a, b = (pq.read_table(tmp_path / d / "semantic_ids.parquet") for d in ("day1", "day2"))
    assert a.equals(b)
    assert rep["stability"] | {"removed_sample": []} == {
        "previous_items": 300, "kept": 300, "edited": 0, "new": 0, "removed": 0, "removed_sample": []}


@pytest.mark.parametrize("resolve", ["suffix", "reassign"])
def test_added_edited_removed_items(first_run, tmp_path, resolve):
    model_dir, emb = first_run
    assign_ids(model_dir, emb, tmp_path / "day1", resolve=resolve)
    emb2 = tmp_path / "emb2.parquet"
    edited = changed_catalog(emb, emb2)
    rep = assign_ids(model_dir, emb2, tmp_path / "day2", resolve=resolve,
                     previous=tmp_path / "day1" / "semantic_ids.parquet")
    old = full_ids(read_semantic_ids(tmp_path / "day1" / "semantic_ids.parquet"))
    new_ids = read_semantic_ids(tmp_path / "day2" / "semantic_ids.parquet")
    new = full_ids(new_ids)
    kept = [i for i in new if i in old and i not in edited]
    assert len(kept) == 300 - 4 - 3
    assert all(new[i] == old[i] for i in kept)  # codes, suffix and SID identical
    held_sids = {new[i][2] for i in kept}
    fresh = [i for i in new if i not in kept]
    assert len(fresh) == 9 and not held_sids & {new[i][2] for i in fresh}
    assert len(set(new_ids.sids)) == len(new_ids)
    s = rep["stability"]
    assert (s["kept"], s["edited"], s["new"], s["removed"]) == (293, 3, 6, 4)
    assert sorted(s["removed_sample"]) == ["item0010", "item0020", "item0030", "item0040"]
    # the two copies share their tuple with held items, so they must be placed around them
    for j, src in ((4, "item0001"), (5, "item0002")):
        if resolve == "suffix":
            assert new[f"new{j}"][0] == old[src][0] and new[f"new{j}"][1] != old[src][1]
        else:
            assert new[f"new{j}"][0][:2] == old[src][0][:2] and new[f"new{j}"][0] != old[src][0]


def test_previous_from_another_checkpoint_or_strategy_rejected(first_run, tmp_path):
    model_dir, emb = first_run
    assign_ids(model_dir, emb, tmp_path / "day1")
    prev = tmp_path / "day1" / "semantic_ids.parquet"
    other = FakeTokenizer.random(seed=5).save(tmp_path / "model2")
    with pytest.raises(UserError, match="another model checkpoint.*id_mapping"):
        assign_ids(other, emb, tmp_path / "x", previous=prev)
    with pytest.raises(UserError, match="resolved with 'suffix'.*'reassign'"):
        assign_ids(model_dir, emb, tmp_path / "y", resolve="reassign", previous=prev)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_id_mapping_after_retrain(first_run, tmp_path):
    model_dir, emb = first_run
    assign_ids(model_dir, emb, tmp_path / "old")
    emb2 = tmp_path / "emb2.parquet"
    changed_catalog(emb, emb2)
    retrained = FakeTokenizer.random(seed=5).save(tmp_path / "model2")
    assign_ids(retrained, emb2, tmp_path / "new")
    out = tmp_path / "id_mapping.parquet"
    summary = write_id_mapping(tmp_path / "old" / "semantic_ids.parquet", tmp_path / "new" / "semantic_ids.parquet", out)
    t = pq.read_table(out)
    assert t.schema.names == ["item_id", "old_sid", "new_sid", "changed"]
    assert [f.type for f in t.schema] == [pa.string(), pa.string(), pa.string(), pa.bool_()]
    rows = t.to_pylist()
    assert len(rows) == 302 + 4 and summary["items_common"] == 296
    assert summary["added"] == 6 and summary["removed"] == 4
    common = [r for r in rows if r["old_sid"] and r["new_sid"]]
    assert summary["changed"] == sum(r["old_sid"] != r["new_sid"] for r in common)
    assert 0 < summary["changed_share"] <= 1
    assert all(r["changed"] for r in rows if not (r["old_sid"] and r["new_sid"]))
    assert rows[-1]["new_sid"] is None and rows[-1]["item_id"] == "item0040"
    meta = read_parquet_metadata(out)
    assert meta["changed_share"] == summary["changed_share"] and meta["old_checkpoint_sha256"] != meta["new_checkpoint_sha256"]
    # same model, same catalog: nothing changes
    same = write_id_mapping(tmp_path / "old" / "semantic_ids.parquet", tmp_path / "old" / "semantic_ids.parquet",
                            tmp_path / "same.parquet")
    assert same["changed"] == 0 and same["changed_share"] == 0.0
