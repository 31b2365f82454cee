"""`rqvae-ids compare`: every tokenizer on one catalog, one report (rqvae_ids.compare)."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace

from ..compare.config import MODEL_KINDS  # light: no numpy/pandas/torch
from ._help import INTERACTIONS

MODELS = ",".join(MODEL_KINDS)  # the default --models
# --generative-<flag> -> RetrievalConfig field (the seed is --seed, validation users --tune-users).
GENERATIVE_FIELDS = {"arch": "arch", "layers": "n_layer", "d_model": "d_model", "heads": "n_head",
                     "epochs": "max_epochs", "patience": "patience", "batch_size": "batch_size", "lr": "lr",
                     "beam": "beam", "max_minutes": "max_minutes", "device": "device"}
GENERATIVE_FLAGS = [
    ("arch", {"choices": ("decoder", "encdec"), "help": "decoder-only (default) or encoder-decoder"}),
    ("layers", {"type": int, "help": "layers per stack (default 2)"}),
    ("d-model", {"type": int, "help": "width (default 128)"}),
    ("heads", {"type": int, "help": "attention heads, must divide the width (default 4)"}),
    ("epochs", {"type": int, "help": "max epochs per retriever (default 10, early stopping)"}),
    ("patience", {"type": int, "help": "epochs without a better valid NDCG@10 (default 3)"}),
    ("batch-size", {"type": int, "help": "batch size (default 128)"}),
    ("lr", {"type": float, "help": "peak learning rate (default 2e-3)"}),
    ("beam", {"type": int, "help": "beam width, >= 10 (default 20)"}),
    ("max-minutes", {"type": float, "help": "training time budget per retriever, 0 = none (default)"}),
    ("device", {"help": "auto (default), cpu or cuda[:N]"}),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare (collaborative) RQ-VAE IDs with AE/VAE/VQ-VAE/residual k-means (+CF)/random IDs on a catalog",
        description=(
            "Embed the catalog (cached), train every model with the same levels, codebook size, seed "
            "and epochs, assign resolved IDs. With --interactions, `rqvae` is the collaborative RQ-VAE "
            "(CF embeddings of the interactions' training part, cached in --out/cf/), `rqvae-text` the "
            "text-only one and `rqkmeans-cf` residual k-means on [text, alpha * CF]; without, `rqvae` is "
            "text only and those two rows are left out (noted in report.md). Then measure ID quality, "
            "neighbour recall and (with --interactions) next-item retrieval; write comparison.parquet, "
            "comparison.json, report.md and PNG plots into --out. With --with-generative, a TIGER-style generative "
            "retriever is also trained on every model's IDs (same sequence model for all) and "
            "evaluated as the row generative/<model>; checkpoints in --out/retrievers/<model>/. With "
            "--interactions, a small-budget SASRec row `sasrec` too (--no-sasrec skips it); --with-parallel adds "
            "parallel/<model> rows; --cold-items FRAC adds cold_recall@10/cold_ndcg@10."
        ),
    )
    p.add_argument("--interactions", default=None, metavar="FILE",
                   help=f"{INTERACTIONS}; without it next-item metrics are skipped")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--embeddings", default=None, metavar="FILE",
                   help="reuse this embeddings.parquet of the catalog instead of embedding it")
    p.add_argument("--embed-model", default=None, metavar="DIR",
                   help="sentence-transformers model dir to embed the catalog with (default: bundled MiniLM); "
                        "not with --embeddings, which are used as they are")
    p.add_argument("--models", default=MODELS, metavar="KIND,...", help=f"comma-separated (default {MODELS})")
    p.add_argument("--levels", type=int, default=3, help="code levels L (default 3)")
    p.add_argument("--codebook-size", type=int, default=256,
                   help="codes per level K (default 256); warns when the catalog has fewer than 4 items per code")
    p.add_argument("--seed", type=int, default=0, help="seed of every model and sample (default 0)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of every model (default: train's)")
    p.add_argument("--neighbour-queries", type=int, default=2000, metavar="N",
                   help="query items for neighbour recall, >= 1 (default 2000)")
    p.add_argument("--tune-users", type=int, default=3000, metavar="N",
                   help="validation users for tuning retrievers (default 3000)")
    add_retriever_args(p)
    from ..catalog import add_catalog_args  # --catalog and its format/column options

    add_catalog_args(p)
    # dest -> flag, so the report can spell the command exactly (e.g. catalog_format -> --format).
    flags = {a.dest: a.option_strings[-1] for a in p._actions if a.option_strings and a.dest != "help"}
    p.set_defaults(func=handler, _flags=flags)


def add_retriever_args(p: argparse.ArgumentParser) -> None:
    """The retriever rows' options: --with-generative (and --generative-*), --with-parallel,
    the sasrec row's, --cold-items."""
    p.add_argument("--with-generative", action="store_true",
                   help="also train a generative retriever on every model's IDs (needs --interactions); "
                        "rows generative/<model> with next_recall@5/10, next_ndcg@5/10")
    g = p.add_argument_group("generative retriever (with --with-generative; defaults: retrieve-train's)")
    for flag, kw in GENERATIVE_FLAGS:
        metavar = {int: "N", float: "X"}.get(kw.get("type"), None if "choices" in kw else "DEVICE")
        g.add_argument(f"--generative-{flag}", default=None, metavar=metavar, **kw)
    g.add_argument("--generative-content", action="store_true",
                   help="add each history item's projected text embedding (the compared embeddings) to its tokens")
    p.add_argument("--with-parallel", action="store_true",
                   help="also train the parallel semantic-ID retriever on every model's IDs (needs --interactions); "
                        "rows parallel/<model>, checkpoints in --out/retrievers/parallel/<model>/")
    p.add_argument("--parallel-epochs", type=int, default=None, metavar="N",
                   help="max epochs per parallel retriever (default: retrieve-train's, 200 with early stopping)")
    p.add_argument("--parallel-max-minutes", type=float, default=None, metavar="X",
                   help="training budget per parallel retriever in minutes, 0 = none (default: retrieve-train's, 10)")
    p.add_argument("--with-hybrid", action="store_true",
                   help="also train the hybrid retriever (semantic-ID codes + item ID + text as item features) on "
                        "every model's IDs, plus a hybrid/no-codes row: what each tokenizer's codes add downstream "
                        "(needs --interactions); checkpoints in --out/retrievers/hybrid/<model>/")
    p.add_argument("--hybrid-epochs", type=int, default=None, metavar="N",
                   help="max epochs per hybrid retriever (default: retrieve-train's)")
    p.add_argument("--hybrid-max-minutes", type=float, default=None, metavar="X",
                   help="training budget per hybrid retriever in minutes, 0 = none (default: retrieve-train's)")
    p.add_argument("--no-sasrec", action="store_true",
                   help="skip the sasrec row (trained by default whenever --interactions is given)")
    p.add_argument("--sasrec-epochs", type=int, default=None, metavar="N",
                   help="max epochs of the compare's SASRec (default 10: a small budget, stated in report.md)")
    p.add_argument("--sasrec-max-minutes", type=float, default=None, metavar="X",
                   help="training budget of the compare's SASRec in minutes, 0 = none (default 2)")
    p.add_argument("--cold-items", type=float, default=None, metavar="FRAC",
                   help="hold this share of catalog items, in (0, 0.5), out of every training and validation "
                        "sequence (seeded by --seed) and report cold_recall@10/cold_ndcg@10 over the test users "
                        "whose target is one of them (needs --interactions)")


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
    from ..compare.comparison import compare_options, run_comparison
    from ..errors import UserError
    from ..io import check_out_dir, file_in_dir

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    knobs = {"models": models, "levels": args.levels, "codebook_size": args.codebook_size, "seed": args.seed,
             "epochs": args.epochs, "neighbour_queries": args.neighbour_queries, "tune_users": args.tune_users}
    tiger, sasrec, parallel, hybrid = _row_settings(args)
    if args.embed_model is not None and args.embeddings is not None:
        raise UserError("--embed-model has no effect with --embeddings (the given embeddings are used as they "
                        "are): drop one of the two")
    # Every setting is validated here (heads vs width, dropout, beam, ...; rows that need
    # --interactions), before the catalog is read and any tokenizer is trained.
    embed = None
    if args.embed_model:
        from ..embed import EmbedConfig

        embed = EmbedConfig(model=args.embed_model)
    options = compare_options(knobs, tiger=tiger, sasrec=sasrec, parallel=parallel, hybrid=hybrid,
                              interactions=args.interactions, embed=embed, cold_items=args.cold_items)
    args.embeddings = file_in_dir(args.embeddings, "embeddings.parquet", "--embeddings")
    options = replace(options, embeddings=args.embeddings, command=command_line(args))
    check_out_dir(args.out)
    from ..catalog import catalog_from_args

    catalog = catalog_from_args(args)
    from ..train import small_catalog_warning

    message = small_catalog_warning(len(catalog.item_ids), options.config.codebook_size)
    if message:
        print(f"rqvae-ids compare: {message}", file=sys.stderr)
    summary = run_comparison(catalog, args.out, options)
    print(f"wrote {args.out}/report.md ({len(summary['models'])} models, {summary['timings']['total']:.1f}s)")
    return 0


def _row_settings(args: argparse.Namespace):
    """The given fields of the generative, sasrec, parallel and hybrid rows' configs (None: no such rows)."""
    from ..errors import UserError

    tiger = {field: getattr(args, f"generative_{flag}") for flag, field in GENERATIVE_FIELDS.items()
             if getattr(args, f"generative_{flag}") is not None}
    if args.generative_content:
        tiger["content"] = True
    if tiger and not args.with_generative:
        raise UserError("--generative-* options need --with-generative")
    par = {f: v for f, v in (("max_epochs", args.parallel_epochs), ("max_minutes", args.parallel_max_minutes))
           if v is not None}
    sas = {f: v for f, v in (("max_epochs", args.sasrec_epochs), ("max_minutes", args.sasrec_max_minutes))
           if v is not None}
    hyb = {f: v for f, v in (("max_epochs", args.hybrid_epochs), ("max_minutes", args.hybrid_max_minutes))
           if v is not None}
    if hyb and not args.with_hybrid:
        raise UserError("--hybrid-* options need --with-hybrid")
    if par and not args.with_parallel:
        raise UserError("--parallel-* options need --with-parallel")
    if sas and args.no_sasrec:
        raise UserError("--sasrec-* options have no effect with --no-sasrec")
    # sasrec: validated here; run_comparison adds the row only with interactions (none to learn from without).
    return (tiger if args.with_generative else None, None if args.no_sasrec else sas,
            par if args.with_parallel else None, hyb if args.with_hybrid else None)
