"""Cached text embedding: cache hits/misses, output schemas, model resolution, CLI.

Uses the real bundled all-MiniLM-L6-v2 on a handful of short texts; the loaded
model is shared across tests through `rqvae_ids.embed`'s per-process cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rqvae_ids.embed import items as embed_stage
from rqvae_ids.embed import EmbedConfig, embed_items, encode_texts, resolve_model
from rqvae_ids.core.errors import UserError
from rqvae_ids.core.io import sha256_text
from rqvae_ids.core.embedding_table import read_embeddings

REPO = Path(__file__).resolve().parents[1]

TEXTS = [
    "LEGO City fire station with three minifigures",
    "Wooden train set, 52 pieces, compatible with Brio",
    "Plush teddy bear, 30 cm, machine washable",
    "Catan board game, 3-4 players, ages 10+",
    "Remote control racing car with rechargeable battery",
    "Jigsaw puzzle 1000 pieces: mountain lake at dawn",
]
IDS = [f"item{i}" for i in range(len(TEXTS))]
CFG = EmbedConfig(batch_size=4, device="cpu", progress=False)


def run(out: Path, texts=TEXTS, ids=IDS, cfg=CFG) -> dict:
    return embed_items(ids, texts, out, cfg)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A cache file holding TEXTS (encoded once, in one call) and their vectors (6, 384)."""
    folder = tmp_path_factory.mktemp("embedded")
    run(folder)
    return folder / embed_stage.CACHE_FILENAME, read_embeddings(folder / "embeddings.parquet").vectors


def cached_cfg(cache: Path) -> EmbedConfig:
    return EmbedConfig(batch_size=4, device="cpu", progress=False, cache=str(cache))


# ---------------------------------------------------------------- cache accounting


def test_unchanged_catalog_encodes_nothing_and_edits_encode_exactly_k(tmp_path):
    first = run(tmp_path)
    assert (first["encoded"], first["cached"], first["items"]) == (6, 0, 6)
    again = run(tmp_path)
    assert (again["encoded"], again["cached"]) == (0, 6)
    edited = list(TEXTS)
    edited[1] += " (new edition)"
    edited[4] = "Kite for beginners"
    after_edit = run(tmp_path, texts=edited)
    assert (after_edit["encoded"], after_edit["cached"]) == (2, 4)
    assert run(tmp_path, texts=edited)["encoded"] == 0


def test_cached_vectors_equal_fresh_encoding(tmp_path, embedded):
    _, fresh = embedded
    run(tmp_path, texts=TEXTS[:3], ids=IDS[:3])
    assert run(tmp_path)["cached"] == 3  # 3 from the cache, 3 encoded now
    table = read_embeddings(tmp_path / "embeddings.parquet")
    np.testing.assert_allclose(table.vectors, fresh, atol=1e-5)


def test_cache_survives_a_process_restart_without_loading_the_model(tmp_path):
    run(tmp_path)
    code = (
        "import sys, json\n"
        "from rqvae_ids.embed import EmbedConfig, embed_items\n"
        f"r = embed_items({IDS!r}, {TEXTS!r}, {str(tmp_path)!r}, EmbedConfig(progress=False))\n"
        "print(json.dumps([r['encoded'], r['cached'], 'torch' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [0, 6, False]


def test_duplicate_texts_are_encoded_once(tmp_path):
    texts = TEXTS[:3] + [TEXTS[0]]
    report = run(tmp_path, texts=texts, ids=IDS[:3] + ["dup"])
    assert (report["encoded"], report["cached"]) == (3, 1)
    vectors = read_embeddings(tmp_path / "embeddings.parquet").vectors
    np.testing.assert_array_equal(vectors[0], vectors[3])


def test_one_cache_shared_across_outputs(tmp_path, embedded):
    cache, _ = embedded
    assert run(tmp_path / "a", cfg=cached_cfg(cache))["encoded"] == 0
    assert run(tmp_path / "b", texts=TEXTS[::-1], ids=IDS[::-1], cfg=cached_cfg(cache))["encoded"] == 0
    assert not (tmp_path / "a" / embed_stage.CACHE_FILENAME).exists()


def test_models_of_different_dimensions_share_one_cache_file(tmp_path):
    cache = tmp_path / "cache.parquet"
    small, large = np.ones((2, 3), np.float32), np.full((1, 5), 2.0, np.float32)
    embed_stage.append_cache(cache, "small", ["k1", "k2"], small)
    embed_stage.append_cache(cache, "large", ["k3"], large)
    embed_stage.append_cache(cache, "small", ["k2"], small[:1] * 3)  # a rewrite replaces the row
    hit, vectors = embed_stage.lookup_cache(cache, "small", ["k2", "k3", "k1"])
    assert hit.tolist() == [True, False, True]
    np.testing.assert_array_equal(vectors[[0, 2]], [[3, 3, 3], [1, 1, 1]])
    hit, vectors = embed_stage.lookup_cache(cache, "large", ["k3"])
    assert hit.tolist() == [True] and vectors.shape == (1, 5)


def test_unreadable_cache_is_a_user_error(tmp_path):
    (tmp_path / embed_stage.CACHE_FILENAME).write_bytes(b"not parquet")
    with pytest.raises(UserError, match="cannot read embedding cache"):
        run(tmp_path)
    assert not (tmp_path / "embeddings.parquet").exists()


def test_interrupted_run_keeps_finished_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(embed_stage, "CACHE_FLUSH_EVERY", 2)
    flushed = []
    real_append = embed_stage.append_cache
    monkeypatch.setattr(embed_stage, "append_cache", lambda path, model, keys, vectors: (
        flushed.append(len(keys)), real_append(path, model, keys, vectors)))
    real_encode_rows = embed_stage.encode_rows

    def encode_then_interrupt(model, texts, rows, out, batch_size, progress, on_batch=None):
        batches = []

        def stop_after_two_batches(out_, batch_rows):
            on_batch(out_, batch_rows)  # the cache flusher under test
            batches.append(batch_rows)
            if len(batches) == 2:
                raise KeyboardInterrupt

        real_encode_rows(model, texts, rows, out, batch_size, progress, stop_after_two_batches)

    monkeypatch.setattr(embed_stage, "encode_rows", encode_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, cfg=EmbedConfig(batch_size=2, device="cpu", progress=False))
    assert flushed == [2, 2, 0]  # every CACHE_FLUSH_EVERY texts, then the final (empty) flush
    assert not (tmp_path / "embeddings.parquet").exists()
    monkeypatch.setattr(embed_stage, "encode_rows", real_encode_rows)
    assert run(tmp_path)["encoded"] == 2


# ---------------------------------------------------------------- outputs


def test_embeddings_parquet_schema_and_vectors(tmp_path, embedded):
    run(tmp_path, cfg=cached_cfg(embedded[0]))
    schema = pq.read_schema(tmp_path / "embeddings.parquet")
    assert schema.field("item_id").type == pa.string()
    assert schema.field("text_sha256").type == pa.string()
    assert schema.field("embedding").type == pa.list_(pa.float32(), 384)
    table = read_embeddings(tmp_path / "embeddings.parquet")
    assert (table.model, table.dim, table.metadata["dim"]) == ("all-MiniLM-L6-v2", 384, 384)
    assert list(table.item_ids) == IDS
    assert list(table.text_sha256) == [sha256_text(t) for t in TEXTS]
    assert table.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)


def test_report_and_config_files(tmp_path, embedded):
    report = run(tmp_path, cfg=cached_cfg(embedded[0]))
    on_disk = json.loads((tmp_path / "embed_report.json").read_text())
    assert on_disk == report
    assert list(on_disk)[:6] == ["items", "encoded", "cached", "seconds", "model", "dim"]
    assert on_disk["model"] == "all-MiniLM-L6-v2" and on_disk["dim"] == 384
    config = json.loads((tmp_path / "embed_config.json").read_text())
    assert config["config"]["batch_size"] == 4 and "versions" in config["provenance"]
    assert report["cache"] == str(embedded[0])
    assert not list(tmp_path.glob(".*.tmp"))


def test_shards_match_single_call(embedded):
    _, whole = embedded
    shards = np.concatenate([encode_texts(TEXTS[:2], CFG), encode_texts(TEXTS[2:], CFG)])
    assert shards.shape == (6, 384) and shards.dtype == np.float32
    np.testing.assert_allclose(whole, shards, atol=1e-5)


def test_mismatched_or_empty_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no items"):
        embed_items([], [], tmp_path, CFG)
    with pytest.raises(UserError, match="2 item ids but 1 texts"):
        embed_items(["a", "b"], ["x"], tmp_path, CFG)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- model resolution


def test_bundled_model_by_default_and_by_name():
    spec = resolve_model(None)
    assert spec.identity == "all-MiniLM-L6-v2" and isinstance(spec.path, str)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == spec


def test_bad_model_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="model directory not found"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="not a sentence-transformers model folder"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot load model"):
        encode_texts(["x"], EmbedConfig(model=str(tmp_path), device="cpu", progress=False))


def test_local_model_identity_changes_with_its_files(tmp_path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"weights-1")
    before = resolve_model(str(tmp_path)).identity
    assert before.startswith(f"{tmp_path.name}@")
    (tmp_path / "model.safetensors").write_bytes(b"weights-2")  # same size, new contents
    assert resolve_model(str(tmp_path)).identity != before


# ---------------------------------------------------------------- CLI


def write_catalog(path: Path, rows=None) -> Path:
    rows = rows or [(i, t) for i, t in zip(IDS, TEXTS)]
    path.write_text("item_id,title\n" + "".join(f'{i},"{t}"\n' for i, t in rows), encoding="utf-8")
    return path


def cli(*argv: str) -> int:
    from rqvae_ids.cli import main

    return main(["embed", *argv])


def test_cli_embeds_then_reuses_the_cache(tmp_path, capsys):
    catalog, out = write_catalog(tmp_path / "items.csv"), tmp_path / "out"
    assert cli("--catalog", str(catalog), "--out", str(out), "--device", "cpu", "--quiet") == 0
    assert "6 encoded, 0 from cache" in capsys.readouterr().out
    assert read_embeddings(out / "embeddings.parquet").item_ids.tolist() == IDS
    config = json.loads((out / "embed_config.json").read_text())
    assert config["source"] == str(catalog) and config["model"] == "all-MiniLM-L6-v2"
    assert cli("--catalog", str(catalog), "--out", str(out), "--quiet") == 0
    assert "0 encoded, 6 from cache" in capsys.readouterr().out
    assert json.loads((out / "embed_report.json").read_text())["encoded"] == 0


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda c, d: ["--catalog", str(d / "missing.csv")], "not found"),
        (lambda c, d: ["--catalog", str(c), "--id-col", "sku"], "sku"),
        (lambda c, d: ["--catalog", str(c), "--embed-model", str(d / "no-model")], "model directory not found"),
        (lambda c, d: ["--catalog", str(c), "--model", str(d / "no-model")], "use --embed-model DIR"),  # old
        (lambda c, d: ["--catalog", str(c), "--batch-size", "0"], "batch_size"),
        (lambda c, d: ["--catalog", str(c), "--device", "tpu"], "unknown device"),
    ],
    ids=["missing-catalog", "missing-id-column", "bad-model", "bad-model-old-flag", "bad-batch-size", "bad-device"],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, make_args, message):
    catalog, out = write_catalog(tmp_path / "items.csv"), tmp_path / "out"
    assert cli(*make_args(catalog, tmp_path), "--out", str(out), "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith("rqvae-ids embed: error:") and message in err and "Traceback" not in err
    assert not out.exists()


def test_cli_parser_does_not_import_heavy_libraries():
    code = (
        "import sys, argparse\n"
        "from rqvae_ids.commands import embed\n"
        "embed.register(argparse.ArgumentParser().add_subparsers())\n"
        "print(sorted(m for m in ('torch', 'pandas', 'sentence_transformers', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
