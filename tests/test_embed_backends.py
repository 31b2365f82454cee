"""Embedding backends (rqvae_ids.embed.backends): export cache, accuracy guard, errors.

torch and the default backend always run (CI installs the default's packages, and the
`fast` extra); the other backends skip with a reason only when their package is absent.
Exports go to the session's RQVAE_IDS_MODEL_CACHE (tests/conftest.py), made once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rqvae_ids.embed import backends as embed_backends
from rqvae_ids.embed import text_encoder
from rqvae_ids.embed import EmbedConfig, embed_items, encode_texts, load_text_encoder, resolve_model
from rqvae_ids.embed.backends import DEFAULT_BACKEND, valid_export
from rqvae_ids.core.errors import UserError
from rqvae_ids.core.embedding_table import read_embeddings
from test_embed import IDS, TEXTS  # the same six item texts as the torch path's tests

REPO = Path(__file__).resolve().parents[1]
# the smallest mean cosine to torch each backend must keep on these texts
MIN_MEAN = {"onnx": 0.9999, "openvino": 0.9999, "openvino-bf16": 0.999, "onnx-int8": 0.98, "openvino-int8": 0.98}


def cfg(backend: str, **kw) -> EmbedConfig:
    kw.setdefault("batch_size", 4)
    return EmbedConfig(device="cpu", progress=False, backend=backend, **kw)


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return encode_texts(TEXTS, cfg("torch"))


def _needs(backend: str) -> None:
    try:
        embed_backends.require_packages(backend)
        embed_backends.require_native_bf16(backend)  # openvino-bf16: CPUs with AVX-512 BF16 or AMX only
    except UserError as e:
        if backend == DEFAULT_BACKEND:
            raise  # the default backend's packages are main dependencies: never skipped
        pytest.skip(f"{backend}: {e}")


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8"])
def test_backend_vectors_close_to_torch_with_guard_recorded(tmp_path, torch_vectors, backend):
    _needs(backend)
    # its own export cache: the first use of the backend, so the guard runs on these texts (the
    # session-wide cache may already hold the default backend's export, guarded on other texts)
    report = embed_items(IDS, TEXTS, tmp_path, cfg(backend, model_cache=str(tmp_path / "models")))
    got = read_embeddings(tmp_path / "embeddings.parquet").vectors
    cos = (got * torch_vectors).sum(1)
    assert cos.mean() >= MIN_MEAN[backend] and cos.min() >= 0.98
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    acc = report["accuracy_vs_torch"]
    assert report["backend"] == backend and report["precision"] == embed_backends.PRECISION[backend]
    assert acc["sample"] == len(TEXTS) and acc["min_cosine"] >= 0.98 and acc["threshold"] == 0.98
    assert acc["precision"] == report["precision"]  # the guard measured what the run computed in
    assert valid_export(Path(report["export_dir"]))


def test_cache_key_includes_backend_switching_back_reuses(tmp_path, torch_vectors):
    _needs(DEFAULT_BACKEND)
    assert DEFAULT_BACKEND != "torch"
    first = embed_items(IDS, TEXTS, tmp_path, cfg("torch"))
    other = embed_items(IDS, TEXTS, tmp_path, cfg(DEFAULT_BACKEND))
    assert (first["encoded"], other["encoded"]) == (6, 6)  # other vectors: encoded again
    assert embed_items(IDS, TEXTS, tmp_path, cfg("torch"))["encoded"] == 0
    again = embed_items(IDS, TEXTS, tmp_path, cfg(DEFAULT_BACKEND))
    assert again["encoded"] == 0 and again["backend"] == DEFAULT_BACKEND
    assert EmbedConfig().backend == DEFAULT_BACKEND


def test_default_openvino_computes_in_fp32_on_any_cpu():
    """OpenVINO left alone picks bf16 on CPUs with AVX-512 BF16 or AMX: `openvino` must not.
    The precision is read back from the compiled model, not copied from the request."""
    import openvino as ov

    _needs("openvino")
    text_encoder, info = load_text_encoder(resolve_model(None), cfg("openvino"), "cpu", TEXTS)
    assert text_encoder.precision == info["precision"] == "fp32"
    compiled = ov.Core().compile_model(str(Path(info["export_dir"]) / "model.xml"), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32

    class Compiled:  # what a CPU that runs bf16 (or fp16) reports
        def __init__(self, t):
            self.t = t

        def get_property(self, name):
            assert name == "INFERENCE_PRECISION_HINT"
            return self.t

    assert embed_backends.openvino_precision(Compiled(ov.Type.bf16), "openvino-bf16") == "bf16"
    assert embed_backends.openvino_precision(Compiled(ov.Type.f16), "openvino") == "fp16"
    assert embed_backends.openvino_precision(Compiled(ov.Type.f32), "openvino-int8") == "int8+fp32"


def test_bf16_on_a_cpu_without_native_bf16_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """OpenVINO would emulate bf16 there (16-18 x slower than fp32): refused before any work."""
    from rqvae_ids.cli import main

    monkeypatch.setattr(embed_backends, "_cpu_capabilities", lambda: ["FP32", "INT8"])  # e.g. a Skylake Xeon
    catalog = tmp_path / "items.csv"
    catalog.write_text("item_id,title\n" + "".join(f"{i},{t.replace(',', ' ')}\n" for i, t in zip(IDS, TEXTS)))
    out = tmp_path / "out"
    code = main(["embed", "--catalog", str(catalog), "--out", str(out), "--backend", "openvino-bf16", "--quiet",
                 "--device", "cpu", "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "native bf16" in err and "--backend openvino" in err, err
    assert not out.exists() and not (tmp_path / "cache").exists()
    embed_backends.require_native_bf16("openvino")  # the fp32 backends run anywhere


LONG = ("Deluxe wooden kitchen play set with oven, sink, fridge, microwave, 24 accessories including pots, "
        "pans, plates and utensils; sturdy pine construction, non-toxic paint, rounded corners, assembly "
        "instructions included, recommended for children aged three years and up, measures 90 x 30 x 85 cm")


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_a_texts_vector_does_not_depend_on_its_batch_fp32(backend):
    """fp32 paths: a text alone and the same text padded inside a batch of others (a long one
    among them) get the same vector within 1e-5, whatever the batch size."""
    if backend != "torch":
        _needs(backend)
    target = TEXTS[3]
    alone = encode_texts([target], cfg(backend, batch_size=1))[0]
    batch = [LONG, *TEXTS[:3], "x", *TEXTS[4:], target, LONG.upper()]
    for size in (4, 64):
        got = encode_texts(batch, cfg(backend, batch_size=size))
        np.testing.assert_allclose(got[batch.index(target)], alone, rtol=0, atol=1e-5)


def test_export_made_once_and_reused(torch_vectors):
    spec = resolve_model(None)
    _, first = load_text_encoder(spec, cfg(DEFAULT_BACKEND), "cpu", TEXTS)
    _, second = load_text_encoder(spec, cfg(DEFAULT_BACKEND), "cpu", TEXTS)
    assert second["export_seconds"] is None and second["export_dir"] == first["export_dir"]
    folder = Path(first["export_dir"])
    assert folder.parent.name.startswith("model-") and folder.name == DEFAULT_BACKEND
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]


def _private_export(tmp_path) -> tuple[EmbedConfig, Path]:
    """A copy of the session's default export under a private model cache (accuracy record dropped)."""
    spec = resolve_model(None)
    _, info = load_text_encoder(spec, cfg(DEFAULT_BACKEND), "cpu", TEXTS)
    src = Path(info["export_dir"])
    dst = tmp_path / "models" / src.parent.name / src.name
    shutil.copytree(src, dst)
    (dst / embed_backends.ACCURACY).unlink()
    return cfg(DEFAULT_BACKEND, model_cache=str(tmp_path / "models")), dst


def test_corrupt_export_is_rebuilt_not_loaded(tmp_path, torch_vectors):
    c, folder = _private_export(tmp_path)
    weights = max((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated, manifest unchanged
    assert not valid_export(folder)
    _, info = load_text_encoder(resolve_model(None), c, "cpu", TEXTS)
    assert info["export_seconds"] is not None and valid_export(folder)
    got = encode_texts(TEXTS, c)
    assert (got * torch_vectors).sum(1).min() > 0.999


def test_report_says_what_the_compiled_model_runs_in_and_guard_is_per_precision(tmp_path, monkeypatch):
    """embed_report.json "precision" is the compiled model's (here faked to bf16); a guard record
    made in another precision, or before precision was recorded, is measured again."""
    c, folder = _private_export(tmp_path)
    embed_backends.write_accuracy(folder, {"mean_cosine": 0.5, "min_cosine": 0.1, "sample": 6})  # an old record
    monkeypatch.setattr(embed_backends, "openvino_precision", lambda compiled, backend: "bf16")
    text_encoder._LOADED.pop((str(folder), DEFAULT_BACKEND), None)
    report = embed_items(IDS, TEXTS, tmp_path / "out", c)  # not refused: the old record is not trusted
    assert report["precision"] == report["accuracy_vs_torch"]["precision"] == "bf16"
    assert report["accuracy_vs_torch"]["min_cosine"] > 0.99
    assert json.loads((tmp_path / "out" / "embed_report.json").read_text())["precision"] == "bf16"
    assert embed_backends.read_accuracy(folder, "bf16") is not None and embed_backends.read_accuracy(folder, "fp32") is None
    text_encoder._LOADED.pop((str(folder), DEFAULT_BACKEND), None)
    # cached vectors are keyed by backend; "+openvino" entries from before precision was pinned are not reused
    assert text_encoder.cache_identity(resolve_model(None), c).endswith("+openvino-fp32")


def test_export_killed_half_way_leaves_nothing_loadable_then_rebuilds(tmp_path):
    root = tmp_path / "models"
    code = ("from rqvae_ids.embed import *\n"
            f"embed_items(['a'], ['one text'], {str(tmp_path / 'out')!r}, EmbedConfig(progress=False, "
            f"backend={DEFAULT_BACKEND!r}, model_cache={str(root)!r}))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 300  # only a guard against a hung child: a slow machine still gets there
    while time.time() < deadline and proc.poll() is None and not any(p.is_file() for p in root.rglob("*.onnx")):
        time.sleep(0.05)  # the export has written its first model file: kill it now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(p.is_file() for p in root.rglob("*.onnx")), "export never started"
    folders = [p for p in root.glob("*/*") if not p.name.startswith(".")]
    assert all(not valid_export(p) for p in folders)  # only the hidden tmp folder, never a final one
    report = embed_items(IDS, TEXTS, tmp_path / "again", cfg(DEFAULT_BACKEND, model_cache=str(root)))
    assert report["export_seconds"] is not None and valid_export(Path(report["export_dir"]))


def test_interrupted_export_never_appears(tmp_path, monkeypatch):
    def interrupted(folder, backend):
        raise KeyboardInterrupt

    monkeypatch.setattr(embed_backends, "_write_manifest", interrupted)
    c = cfg(DEFAULT_BACKEND, model_cache=str(tmp_path / "models"))
    with pytest.raises(KeyboardInterrupt):
        embed_items(IDS, TEXTS, tmp_path / "out", c)
    assert not any((tmp_path / "models").rglob("*.onnx")) and not any((tmp_path / "models").rglob("*.xml"))
    assert not (tmp_path / "out").exists()


def test_accuracy_guard_refuses_and_writes_nothing(tmp_path, monkeypatch):
    c, folder = _private_export(tmp_path)
    real = embed_backends.ExportedTextEncoder.encode

    def noisy(self, texts, *a, **kw):  # a broken runtime: vectors far from torch's
        v = real(self, texts, *a, **kw) + np.random.default_rng(0).normal(0, 0.2, (len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    monkeypatch.setattr(embed_backends.ExportedTextEncoder, "encode", noisy)
    text_encoder._LOADED.pop((str(folder), DEFAULT_BACKEND), None)
    out = tmp_path / "out"
    with pytest.raises(UserError, match="too far from torch.*min cosine"):
        embed_items(IDS, TEXTS, out, c)
    assert not out.exists()
    assert embed_backends.read_accuracy(folder, "fp32")["min_cosine"] < 0.98  # recorded: refused again without re-measuring
    monkeypatch.setattr(embed_backends.ExportedTextEncoder, "encode", real)
    with pytest.raises(UserError, match="too far from torch"):
        embed_items(IDS, TEXTS, out, c)
    # the threshold is configurable; the torch backend is unaffected
    assert embed_items(IDS, TEXTS, out, EmbedConfig(**{**c.__dict__, "min_cosine": 0.01}))["encoded"] == 6
    assert embed_items(IDS, TEXTS, tmp_path / "t", cfg("torch"))["encoded"] == 6


def test_missing_package_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(UserError) as e:
        embed_items(IDS, TEXTS, tmp_path / "out", cfg("onnx", model_cache=str(tmp_path / "m")))
    msg = str(e.value)
    assert "\n" not in msg and "onnxruntime" in msg and "rqvae-ids[fast]" in msg
    assert not (tmp_path / "out").exists() and not (tmp_path / "m").exists()


@pytest.mark.parametrize("backend, absent", [("onnx", "onnxruntime"), ("onnx-int8", "onnxruntime"),
                                             ("openvino", "openvino"), ("openvino-bf16", "openvino"),
                                             ("openvino-int8", "nncf")])
def test_cli_backend_without_its_packages_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys, backend,
                                                                       absent):
    import importlib.util

    from rqvae_ids.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == absent else real(name, *a))
    catalog = tmp_path / "items.csv"
    catalog.write_text("item_id,title\n" + "".join(f"{i},{t.replace(',', ' ')}\n" for i, t in zip(IDS, TEXTS)))
    out = tmp_path / "out"
    code = main(["embed", "--catalog", str(catalog), "--out", str(out), "--backend", backend, "--quiet",
                 "--device", "cpu", "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("rqvae-ids embed: error: ") and absent in err and "pip install 'rqvae-ids[fast]'" in err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_model_that_cannot_be_exported_is_a_clear_error_torch_still_works(tmp_path, monkeypatch):
    def broken(st_model, path):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(embed_backends, "_export_onnx", broken)
    c = cfg(DEFAULT_BACKEND, model_cache=str(tmp_path / "m"))
    with pytest.raises(UserError, match="cannot export .*unsupported operator.*--backend torch"):
        embed_items(IDS, TEXTS, tmp_path / "out", c)
    assert not [p for p in (tmp_path / "m").rglob("*") if p.is_file()]
    assert embed_items(IDS, TEXTS, tmp_path / "out", cfg("torch"))["encoded"] == 6


def test_unknown_backend_and_bad_threshold_rejected():
    from rqvae_ids.core.config import from_dict

    with pytest.raises(UserError, match="backend must be one of"):
        from_dict(EmbedConfig, {"backend": "tensorrt"}, where="embed")
    with pytest.raises(UserError, match="min_cosine"):
        from_dict(EmbedConfig, {"min_cosine": 1.5}, where="embed")


def test_cli_backend_flag(tmp_path):
    from test_cli_ux import _subparsers

    flag = next(a for a in _subparsers()["embed"]._actions if a.dest == "backend")
    assert tuple(flag.choices) == embed_backends.BACKENDS  # the CLI lists every backend, without importing them
    catalog = tmp_path / "items.csv"
    catalog.write_text("item_id,title\n" + "".join(f"{i},{t}\n" for i, t in zip(IDS, [t.replace(",", " ") for t in TEXTS])))
    run = subprocess.run([sys.executable, "-m", "rqvae_ids.cli", "embed", "--catalog", str(catalog), "--out",
                          str(tmp_path / "out"), "--backend", DEFAULT_BACKEND, "--quiet"],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "embed_report.json").read_text())
    assert report["backend"] == DEFAULT_BACKEND and report["accuracy_vs_torch"]["min_cosine"] > 0.99
    bad = subprocess.run([sys.executable, "-m", "rqvae_ids.cli", "embed", "--catalog", str(catalog), "--out",
                          str(tmp_path / "o2"), "--backend", "fast"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
