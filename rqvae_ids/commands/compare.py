"""`rqvae-ids compare`: every tokenizer on one catalog, one report (rqvae_ids.evaluate.compare)."""

from __future__ import annotations

import argparse
import shlex

MODELS = "rqvae,vqvae,vae,ae,rqkmeans,random"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare RQ-VAE IDs with AE/VAE/VQ-VAE/residual k-means/random IDs on a catalog",
        description=(
            "Embed the catalog (cached), train every model with the same levels, codebook size, seed "
            "and epochs, assign resolved IDs, measure ID quality, neighbour recall and (with "
            "--interactions) next-item retrieval; write comparison.parquet, comparison.json, "
            "report.md and PNG plots into --out."
        ),
    )
    p.add_argument("--interactions", default=None, help="user_id,item_id[,timestamp|position] file; "
                   "without it next-item metrics are skipped")  # fmt: skip
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--embeddings", default=None,
                   help="reuse this embeddings.parquet of the catalog instead of embedding it")
    p.add_argument("--embed-model", default=None, help="sentence-transformers model dir (default: bundled MiniLM)")
    p.add_argument("--models", default=MODELS, help=f"comma-separated (default {MODELS})")
    p.add_argument("--levels", type=int, default=3, help="code levels L (default 3)")
    p.add_argument("--codebook-size", type=int, default=256, help="codes per level K (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of every model and sample (default 0)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of every model (default: train's)")
    p.add_argument("--neighbour-queries", type=int, default=2000, help="query items for neighbour recall")
    p.add_argument("--tune-users", type=int, default=3000, help="validation users for tuning retrievers")
    from ..catalog import add_catalog_args  # --catalog and its format/column options

    add_catalog_args(p)
    # dest -> flag, so the report can spell the command exactly (e.g. catalog_format -> --format).
    flags = {a.dest: a.option_strings[-1] for a in p._actions if a.option_strings and a.dest != "help"}
    p.set_defaults(func=handler, _flags=flags)


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out (defaults included), for the report."""
    parts = ["rqvae-ids", "compare"]
    flags = getattr(args, "_flags", {})
    for key, value in vars(args).items():
        if key not in flags or value is None or value is False:
            continue
        flag = flags[key]
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


def handler(args: argparse.Namespace) -> int:
    from ..config import from_dict
    from ..evaluate.compare import CompareConfig, run_comparison

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    cfg = from_dict(
        CompareConfig,
        {"models": models, "levels": args.levels, "codebook_size": args.codebook_size, "seed": args.seed,
         "epochs": args.epochs, "neighbour_queries": args.neighbour_queries, "tune_users": args.tune_users},
        where="compare",
    )  # fmt: skip
    from ..catalog import catalog_from_args

    catalog = catalog_from_args(args)
    embed_cfg = None
    if args.embed_model:
        from ..embed import EmbedConfig

        embed_cfg = EmbedConfig(model=args.embed_model)
    summary = run_comparison(
        catalog, args.out, cfg, interactions=args.interactions, embeddings=args.embeddings,
        embed_cfg=embed_cfg, command=command_line(args),
    )  # fmt: skip
    print(f"wrote {args.out}/report.md ({len(summary['models'])} models, {summary['timings']['total']:.1f}s)")
    return 0
