"""What OpenVINO computes in on this CPU, and what fp32 vs bf16 costs and changes (issue 23).

    .venv/bin/python bench/ov_precision.py [--limit 512] [--repeat 3] [--batch-size 64] [--catalog toys|demo|PATH]

The default backend's export of the bundled model (made into a temporary model cache) is
compiled three ways: with no precision hint (what `openvino` did before issue 23), with
INFERENCE_PRECISION_HINT f32 (`openvino`) and bf16 (`openvino-bf16`). For each it prints the
precision read back from the compiled model, the best time of --repeat passes over the first
--limit catalog texts (the compilations alternate, order flipped every pass), the mean/min
cosine to torch's vectors, and the largest |alone - in its batch| over 16 texts each embedded
alone and inside the batch (fp32 paths must stay within 1e-5). Also the CPU's OpenVINO
OPTIMIZATION_CAPABILITIES (BF16 present = native bf16: AVX-512 BF16 or AMX).

Another CPU can be imitated for OpenVINO by hiding instruction sets from it; both variables
are needed (OpenVINO's capability list follows the first, its kernels and bf16 fallback the second):

    OV_CPU_MAX_ISA=AVX512_CORE_VNNI ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI ...   # AVX-512 without BF16
    OV_CPU_MAX_ISA=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 ...                           # AVX2 only

Writes bench/out/ov_precision[_<OV_CPU_MAX_ISA>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CATALOGS = {"toys": REPO.parent / "shared" / "data" / "amazon-toys" / "items.csv",
            "demo": REPO / "data" / "demo" / "items.csv"}
HINTS = {"none (before issue 23)": None, "f32 (openvino)": "f32", "bf16 (openvino-bf16)": "bf16"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default="toys")
    parser.add_argument("--limit", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    path = CATALOGS.get(args.catalog, Path(args.catalog))
    if not path.is_file():
        print(f"bench/ov_precision.py: skipped: workload {path} not found")
        return 0
    import numpy as np
    import openvino as ov

    from rqvae_ids.embed import backends as B
    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.embed import EmbedConfig, load_text_encoder, load_torch_text_encoder, resolve_model

    texts = load_catalog(path).texts[: args.limit]
    bs = args.batch_size
    spec = resolve_model(None)
    cfg = EmbedConfig(backend="openvino", device="cpu", progress=False, model_cache=tempfile.mkdtemp(prefix="ov-precision-"))
    folder = Path(load_text_encoder(spec, cfg, "cpu", texts)[1]["export_dir"])
    reference = load_torch_text_encoder(spec, "cpu", quiet=True).encode(texts, batch_size=bs, normalize_embeddings=True,
                                                                    show_progress_bar=False)
    text_encoders = {name: compiled_text_encoder(ov, B, folder, hint) for name, hint in HINTS.items()}
    times = {name: [] for name in text_encoders}
    vectors = {}
    for r in range(args.repeat):
        for name, (enc, _) in (list(text_encoders.items()) if r % 2 == 0 else list(text_encoders.items())[::-1]):
            t = time.perf_counter()
            vectors[name] = enc.encode(texts, batch_size=bs, normalize_embeddings=True)
            times[name].append(time.perf_counter() - t)
    rows = {}
    for name, (enc, precision) in text_encoders.items():
        cos = (vectors[name] * reference).sum(1)
        alone = np.stack([enc.encode([t], batch_size=1, normalize_embeddings=True)[0] for t in texts[:16]])
        rows[name] = {"precision": precision, "best_seconds": round(min(times[name]), 3),
                      "items_per_s": round(len(texts) / min(times[name]), 1),
                      "mean_cosine_to_torch": float(cos.mean()), "min_cosine_to_torch": float(cos.min()),
                      "max_abs_alone_vs_batch": float(np.abs(alone - vectors[name][:16]).max())}
        print(f"{name:22s} {precision:5s} {rows[name]['items_per_s']:7.1f} items/s  cos mean {cos.mean():.6f} "
              f"min {cos.min():.6f}  |alone - batch| {rows[name]['max_abs_alone_vs_batch']:.1e}", flush=True)
    f32 = rows["f32 (openvino)"]["best_seconds"]
    res = {"command": "python bench/ov_precision.py" + "".join(f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
           "env": {k: os.environ.get(k) for k in ("OV_CPU_MAX_ISA", "ONEDNN_MAX_CPU_ISA")},
           "capabilities": list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
           "openvino": ov.__version__, "items": len(texts), "rows": rows,
           "bf16_time_over_f32": round(rows["bf16 (openvino-bf16)"]["best_seconds"] / f32, 3),
           "loadavg_1m_at_end": os.getloadavg()[0]}
    print(f"capabilities {res['capabilities']}; bf16 time / f32 time {res['bf16_time_over_f32']}; "
          f"load {res['loadavg_1m_at_end']:.1f}")
    isa = os.environ.get("OV_CPU_MAX_ISA")
    out = REPO / "bench" / "out" / (f"ov_precision_{isa}.json" if isa else "ov_precision.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    return 0


def compiled_text_encoder(ov, B, folder: Path, hint: str | None):
    """An ExportedTextEncoder whose model is compiled with `hint` (None: OpenVINO's own choice), and its precision."""
    enc = B.ExportedTextEncoder(folder, "openvino")
    compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU", {} if hint is None else {"INFERENCE_PRECISION_HINT": hint})
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]
    enc._run = lambda f: request.infer({k: f[k] for k in names})[0].copy()
    enc.encode(["warm-up"], batch_size=1)
    return enc, B.openvino_precision(compiled, "openvino")


if __name__ == "__main__":
    sys.exit(main())
