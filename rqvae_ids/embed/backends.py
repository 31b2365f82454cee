"""Embedding runtimes other than PyTorch: ONNX Runtime and OpenVINO, fp32, bf16 or int8.

Why not sentence-transformers' own `backend="onnx"/"openvino"`: it goes through
`optimum`, whose releases need transformers < 4.58 (optimum-onnx) or < 5.6
(optimum-intel); installing them would downgrade the transformers this project
runs on. So the model is exported here, from the local model folder only:

  the loaded SentenceTransformer (every module: transformer, pooling, normalize)
  -> torch.onnx.export (TorchScript exporter) -> model.onnx
     onnx          ONNX Runtime on model.onnx
     onnx-int8     onnxruntime.quantization.quantize_dynamic (int8 MatMul weights, per channel)
     openvino      OpenVINO IR converted from model.onnx, fp32 weights, run in fp32
     openvino-bf16 the same IR, run in bf16 (OpenVINO's own choice on CPUs with AVX-512 BF16/AMX;
                   refused on CPUs without them, where it would be emulated, 16-18 x slower than fp32)
     openvino-int8 nncf.quantize (static int8, calibrated on catalog texts); the rest in fp32

What each computes in is set when the model is compiled, never left to the runtime:
OpenVINO's CPU plugin, left alone, runs in bf16 wherever the CPU has AVX-512 BF16 or AMX
(a Zen 4 EPYC, a Sapphire Rapids Xeon), so `openvino` would be fp32 on one machine and
bf16 on another, and a text's vector would depend on the other texts in its batch. The
compiled model's precision is read back and reported (embed_report.json "precision").

Each export lives in `<root>/<model name>-<content hash>/<backend>/` (root:
EmbedConfig.model_cache, else $RQVAE_IDS_MODEL_CACHE, else ~/.cache/rqvae-ids/models).
It is built in a temporary sibling folder, a manifest with every file's sha256 is
written last, and the folder is renamed into place: a folder without a valid
manifest (a killed export, a truncated file) is deleted and rebuilt, never loaded.
The accuracy guard's result for the export is stored beside it (accuracy.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import UserError
from ..core.io import write_json_atomic

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8")
# Measured on Toys (bench/embed.py, bench/RESULTS.md "Every backend on the full catalogs" and "The
# default backend's precision"): fp32 like torch, so its vectors are torch's on every CPU, and faster.
DEFAULT_BACKEND = "openvino"
MODEL_CACHE_ENV = "RQVAE_IDS_MODEL_CACHE"
MANIFEST = "manifest.json"
ACCURACY = "accuracy.json"
EXPORT_FORMAT = "rqvae-ids-export/1"
# What each backend computes in on CPU. int8: the quantised MatMuls in int8 (onnx-int8: int8
# weights, activations quantised per batch at run time; openvino-int8: static, calibrated),
# every other op in fp32. OpenVINO backends report the compiled model's own value instead
# (ExportedTextEncoder.precision); these are what they ask for.
PRECISION = {"torch": "fp32", "onnx": "fp32", "onnx-int8": "int8+fp32", "openvino": "fp32",
             "openvino-bf16": "bf16", "openvino-int8": "int8+fp32"}
# The embedding-cache tag of a backend where it is not its name (embed.cache_identity): entries
# cached as "+openvino" before its precision was pinned may be bf16 vectors, so they are not reused.
CACHE_TAG = {"openvino": "openvino-fp32"}
# OpenVINO's INFERENCE_PRECISION_HINT per backend (the precision of the ops that are not int8).
_OV_HINT = {"openvino": "f32", "openvino-bf16": "bf16", "openvino-int8": "f32"}
_OV_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
# Python modules each backend imports, and the pip extra that installs them.
_PACKAGES = {
    "onnx": ("onnx", "onnxruntime"),
    "onnx-int8": ("onnx", "onnxruntime"),
    "openvino": ("onnx", "openvino"),
    "openvino-bf16": ("onnx", "openvino"),
    "openvino-int8": ("onnx", "openvino", "nncf"),
}
EXTRA = "fast"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Files of a model folder that are weights (never copied beside the export).
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".xml", ".h5", ".msgpack", ".ot")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")


def require_packages(backend: str) -> None:
    """UserError (one line, naming the extra) unless the backend's packages import."""
    import importlib.util

    missing = [m for m in _PACKAGES.get(backend, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(
            f"backend {backend!r} needs {', '.join(missing)}, not installed: "
            f"pip install 'rqvae-ids[{EXTRA}]' (or use --backend torch)"
        )


def require_native_bf16(backend: str) -> None:
    """UserError (one line) when `backend` is openvino-bf16 and the CPU has no native bf16.

    Without AVX-512 BF16 or AMX, OpenVINO still honours a bf16 request on AVX-512 CPUs by
    emulating it: measured 16-18 x slower than fp32, and batch-dependent (bench/ov_precision.py with
    OV_CPU_MAX_ISA=ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI on the project's EPYC); on AVX2-only CPUs it
    runs fp32. Neither is what the name promises.
    """
    if backend == "openvino-bf16" and "BF16" not in _cpu_capabilities():
        raise UserError(
            "backend 'openvino-bf16' needs a CPU with native bf16 (AVX-512 BF16 or AMX); this one would "
            "emulate it (much slower than fp32) or run fp32: use --backend openvino"
        )


def _cpu_capabilities() -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def model_cache_root(configured: str | None = None) -> Path:
    """Where exports live: the config's folder, else $RQVAE_IDS_MODEL_CACHE, else ~/.cache/rqvae-ids/models."""
    root = configured or os.environ.get(MODEL_CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "rqvae-ids" / "models"


def export_dir(root: Path, model_path: str, fingerprint: str, backend: str) -> Path:
    """Export folder of (model content, backend); int8 exports also name the CPU's int8 instruction set."""
    name = backend + (f"-{_int8_isa()}" if backend == "onnx-int8" else "")
    return root / f"{Path(model_path).name}-{fingerprint}" / name


# ---------------------------------------------------------------- the export cache


def ensure_export(folder: Path, model_path: str, backend: str, load_torch: Callable[[], Any],
                  calibration: Sequence[str]) -> tuple[Path, float | None]:
    """The valid export in `folder`, built first when absent or corrupt. Returns (folder, export seconds or None).

    load_torch() gives the SentenceTransformer to export (called only when building);
    calibration: texts for static int8 calibration (openvino-int8 only).
    """
    if valid_export(folder):
        return folder, None
    if folder.exists():  # partial or corrupt: never loaded, rebuilt from the model
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    start = time.perf_counter()
    try:
        tmp.mkdir()
        _build(tmp, model_path, backend, load_torch(), calibration)
        _write_manifest(tmp, backend)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same export first: keep theirs if valid
            if not valid_export(folder):
                raise
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any export failure is "this model cannot be exported"
        raise UserError(
            f"cannot export {model_path} to {backend}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            "(the torch backend still works: --backend torch)"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, time.perf_counter() - start


def valid_export(folder: Path) -> bool:
    """True when `folder` has a manifest of this format and every listed file matches its size and sha256."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != EXPORT_FORMAT:
            return False
        for rel, meta in manifest["files"].items():
            p = folder / rel
            if p.stat().st_size != meta["size"] or _sha256(p) != meta["sha256"]:
                return False
        return bool(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST).read_text())


def _write_manifest(folder: Path, backend: str) -> None:
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "export.json"}
    info = json.loads((folder / "export.json").read_text())
    write_json_atomic(folder / MANIFEST, {"format": EXPORT_FORMAT, "backend": backend, **info, "files": files})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _build(tmp: Path, model_path: str, backend: str, st_model, calibration: Sequence[str]) -> None:
    """Write the backend's model file(s), the tokenizer files and export.json into `tmp`."""
    _copy_tokenizer(model_path, tmp)
    info = {"max_seq_length": int(st_model.max_seq_length or 512), "dim": _dim(st_model),
            "do_lower_case": bool(getattr(st_model[0], "do_lower_case", False)), "source": model_path}
    (tmp / "export.json").write_text(json.dumps(info))
    onnx_path = tmp / ("model.onnx" if backend == "onnx" else "fp32.onnx")
    _export_onnx(st_model, onnx_path)
    if backend == "onnx-int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel weights on MatMul only: per-tensor int8 (the default) lost ~4 % mean cosine here.
        quantize_dynamic(str(onnx_path), str(tmp / "model.onnx"), weight_type=QuantType.QInt8,
                         per_channel=True, op_types_to_quantize=["MatMul"])
    elif backend.startswith("openvino"):
        import openvino as ov

        ov_model = ov.Core().read_model(str(onnx_path))
        if backend == "openvino-int8":
            ov_model = _quantize_openvino(ov_model, tmp, info, calibration)
        ov.save_model(ov_model, str(tmp / "model.xml"), compress_to_fp16=False)
    if onnx_path.name == "fp32.onnx":
        onnx_path.unlink()


def _copy_tokenizer(model_path: str, tmp: Path) -> None:
    """Top-level non-weight files of the model folder (tokenizer, configs) go beside the export."""
    for p in Path(model_path).iterdir():
        if p.is_file() and not p.name.startswith(".") and p.suffix not in _WEIGHTS:
            shutil.copy2(p, tmp / p.name)


def _export_onnx(st_model, path: Path) -> None:
    """The whole SentenceTransformer (all modules) as one ONNX graph: token ids -> sentence_embedding."""
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m({"input_ids": input_ids, "attention_mask": attention_mask,
                           "token_type_ids": token_type_ids})["sentence_embedding"]

    st_model = st_model.to("cpu").float()
    example = {k: torch.tensor(v) for k, v in _tokenize(_tokenizer(path.parent), ["a short example", "x"], 512, False).items()}
    axes = {k: {0: "batch", 1: "sequence"} for k in _INPUTS}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapper(st_model).eval(), tuple(example[k] for k in _INPUTS), str(path),
                          input_names=list(_INPUTS), output_names=["sentence_embedding"],
                          dynamic_axes={**axes, "sentence_embedding": {0: "batch"}}, opset_version=17, dynamo=False)


def _quantize_openvino(ov_model, tmp: Path, info: dict, calibration: Sequence[str]):
    """Static int8 (nncf, transformer preset) calibrated on up to 128 catalog texts, 16 per batch."""
    import nncf

    texts = list(calibration)[:128] or ["an item"]
    tok = _tokenizer(tmp)
    batches = [_tokenize(tok, texts[i:i + 16], info["max_seq_length"], info["do_lower_case"])
               for i in range(0, len(texts), 16)]
    names = [i.get_any_name() for i in ov_model.inputs]
    data = nncf.Dataset(batches, lambda b: {k: b[k] for k in names})
    return nncf.quantize(ov_model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches))


def _int8_isa() -> str:
    """onnxruntime's dynamic quantization is the same for every ISA; the name records where it was made."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "cpu"
    return "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "cpu"


def _dim(st_model) -> int:
    getter = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
    return int(getter())


# ---------------------------------------------------------------- running an export


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _tokenize(tok, texts: Sequence[str], max_len: int, lower: bool) -> dict[str, np.ndarray]:
    """Token ids as sentence-transformers makes them: stripped (lower-cased if the model says so), padded, truncated."""
    texts = [str(t).strip().lower() if lower else str(t).strip() for t in texts]
    f = tok(texts, padding=True, truncation="longest_first", max_length=max_len, return_tensors="np")
    out = {k: np.asarray(f[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}
    out["token_type_ids"] = np.asarray(f["token_type_ids"], np.int64) if "token_type_ids" in f else np.zeros_like(out["input_ids"])
    return out


def openvino_precision(compiled, backend: str) -> str:
    """What the compiled model computes in, read back from it ("fp32", "bf16", "int8+fp32"...).

    Read, not assumed: left alone, OpenVINO picks bf16 or fp32 by CPU; asked for bf16 it runs
    fp32 on an AVX2-only CPU (checked with OV_CPU_MAX_ISA=ONEDNN_MAX_CPU_ISA=AVX2).
    """
    value = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: get_type_name() "f32", "bf16"
    name = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
    return ("int8+" if backend.endswith("-int8") else "") + _OV_NAMES.get(name, name)


class ExportedTextEncoder:
    """An exported model with SentenceTransformer's `encode` interface (the part embed.py uses)."""

    def __init__(self, folder: Path, backend: str):
        self.folder, self.backend = folder, backend
        self.info = read_manifest(folder)
        self.tok = _tokenizer(folder)
        if backend.startswith("onnx"):
            import onnxruntime as ort

            sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
            names = [i.name for i in sess.get_inputs()]
            self._run = lambda f: sess.run(None, {k: f[k] for k in names})[0]
            self.precision = PRECISION[backend]
        else:
            import openvino as ov

            compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU",
                                               {"INFERENCE_PRECISION_HINT": _OV_HINT[backend]})
            request = compiled.create_infer_request()
            names = [i.get_any_name() for i in compiled.inputs]
            self._run = lambda f: request.infer({k: f[k] for k in names})[0].copy()
            self.precision = openvino_precision(compiled, backend)

    def get_embedding_dimension(self) -> int:
        return int(self.info["dim"])

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = False,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first, as ST does: less padding
        for s in range(0, len(texts), batch_size):
            rows = order[s:s + batch_size]
            f = _tokenize(self.tok, [texts[i] for i in rows], self.info["max_seq_length"], self.info["do_lower_case"])
            out[rows] = self._run(f)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


# ---------------------------------------------------------------- accuracy guard


def guard_sample(texts: Sequence[str], size: int) -> list[str]:
    """A fixed sample: `size` distinct texts picked by a seeded generator (all of them when fewer)."""
    distinct = list(dict.fromkeys(texts))
    if len(distinct) <= size:
        return distinct
    pick = np.sort(np.random.default_rng(0).choice(len(distinct), size, replace=False))
    return [distinct[i] for i in pick]


def measure_accuracy(reference: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """Mean and minimum cosine between row-aligned vectors (both L2-normalised)."""
    cos = (reference * got).sum(1) / np.maximum(np.linalg.norm(reference, axis=1) * np.linalg.norm(got, axis=1), 1e-12)
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "sample": int(len(cos))}


def read_accuracy(folder: Path, precision: str) -> dict[str, Any] | None:
    """The guard's record for `folder`, or None (measure again) when absent or made in another
    precision: records from before precision was pinned have none (`openvino` then ran in bf16
    on some CPUs), and an `openvino-bf16` export moved to a CPU without bf16 runs in fp32."""
    try:
        record = json.loads((folder / ACCURACY).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("precision") == precision else None


def write_accuracy(folder: Path, accuracy: dict[str, Any]) -> None:
    write_json_atomic(folder / ACCURACY, accuracy)


def check_accuracy(accuracy: dict[str, Any], backend: str, threshold: float) -> None:
    """UserError when the backend's minimum cosine to torch is below `threshold`."""
    if accuracy["min_cosine"] < threshold:
        raise UserError(
            f"backend {backend!r} is too far from torch on {accuracy['sample']} catalog texts: "
            f"min cosine {accuracy['min_cosine']:.4f} < {threshold} (mean {accuracy['mean_cosine']:.4f}); "
            "use another --backend or lower embed.min_cosine"
        )
