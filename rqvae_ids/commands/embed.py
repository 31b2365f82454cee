"""`rqvae-ids embed`: catalog -> embeddings.parquet (rqvae_ids.embed.embed_catalog)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from ..catalog import add_catalog_args  # light: argparse only, no pandas/torch
    from ._help import RemovedFlag, add_output_flags

    p = subparsers.add_parser(
        "embed",
        help="embed item text with a sentence-transformers model (cached)",
        description="Read a catalog, embed each item's text (the bundled all-MiniLM-L6-v2 by default) "
        "and write embeddings.parquet, embed_report.json and embed_config.json into --out. "
        "Texts already in the cache are not encoded again.",
    )
    add_catalog_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--embed-model", default=None, metavar="DIR",
                   help="local sentence-transformers model folder (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--model", action=RemovedFlag, use="--embed-model DIR")  # the old spelling
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="texts per forward pass (default 64)")
    p.add_argument("--device", default="auto", help="auto (default: CUDA if available), cpu or cuda[:N]")
    p.add_argument("--cache", default=None, metavar="FILE",
                   help="embedding cache Parquet file, shareable across outputs (default: DIR/embedding_cache.parquet)")
    # the names of rqvae_ids.embed.backends.BACKENDS (not imported: --help stays light; a test compares)
    p.add_argument("--backend", default=None,
                   choices=("torch", "onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8"),
                   help="runtime: torch, or an export of the model to ONNX Runtime / OpenVINO, made once into the "
                   "model cache and checked against torch. Default: openvino, fp32 like torch on every CPU. "
                   "openvino-bf16: ~1.7x faster than openvino on CPUs with AVX-512 BF16 or AMX (AMD Zen 4, Intel "
                   "Sapphire Rapids and later), refused on others (emulated bf16 is 16-18x slower); "
                   "*-int8: int8 MatMuls, rest fp32 (README)")
    p.add_argument("--min-cosine", type=float, default=None, metavar="X",
                   help="accuracy guard: refuse a backend whose min cosine to torch is below X (default 0.98)")
    add_output_flags(p, quiet="the bars of encoding and model loading")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..catalog import catalog_from_args
    from ..core.config import from_dict
    from ..embed import EmbedConfig, embed_catalog
    from ..core.io import check_out_dir

    # Validate the options and read the catalog before anything is written.
    cfg = from_dict(
        EmbedConfig,
        {"model": args.embed_model, "batch_size": args.batch_size, "device": args.device,
         "cache": args.cache, "progress": False if args.quiet else None,
         **{k: v for k, v in (("backend", args.backend), ("min_cosine", args.min_cosine)) if v is not None}},
        where="embed",
    )
    check_out_dir(args.out)
    catalog = catalog_from_args(args)
    report = embed_catalog(catalog, args.out, cfg)
    out = Path(args.out)
    if args.json:
        import json

        print(json.dumps(report))
        return 0
    print(f"embedded {report['items']} items ({report['encoded']} encoded, {report['cached']} from cache) "
          f"with {report['model']} (dim {report['dim']}) in {report['seconds']:.1f}s")
    print(f"  {out / 'embeddings.parquet'}")
    print(f"  {out / 'embed_report.json'}")
    print(f"  cache: {report['cache']}")
    return 0
