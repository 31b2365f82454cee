"""`rqvae-ids compare`: every tokenizer on one catalog, one report (rqvae_ids.compare)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace

from ..compare.config import MODEL_KINDS  # light: no numpy/pandas/torch
from ._help import INTERACTIONS, add_output_flags, warn_old_spelling

MODELS = ",".join(MODEL_KINDS)  # the default --models
# Deprecated (issue 26, one release): --generative-<flag> -> RetrievalConfig field, now --set tiger.FIELD=VALUE.
GENERATIVE_FIELDS = {"arch": "arch", "layers": "n_layer", "d_model": "d_model", "heads": "n_head",
                     "epochs": "max_epochs", "patience": "patience", "batch_size": "batch_size", "lr": "lr",
                     "beam": "beam", "max_minutes": "max_minutes", "device": "device"}
GENERATIVE_TYPES = {"layers": int, "d_model": int, "heads": int, "epochs": int, "patience": int, "batch_size": int,
                    "lr": float, "beam": int, "max_minutes": float}
# The documented shortcuts: flag dest -> (family, config field).
SHORTCUTS = {"sasrec_epochs": ("sasrec", "max_epochs"), "sasrec_max_minutes": ("sasrec", "max_minutes"),
             "parallel_epochs": ("parallel", "max_epochs"), "parallel_max_minutes": ("parallel", "max_minutes")}


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
            "comparison.json, report.md and PNG plots into --out. With --interactions, a small-budget SASRec row "
            "`sasrec` too (--no-sasrec skips it); --with-tiger trains the TIGER-style generative retriever on every "
            "model's IDs (same sequence model for all, rows tiger/<model>), --with-parallel the parallel "
            "semantic-ID retriever (rows parallel/<model>); --set FAMILY.KEY=VALUE sets their configs; "
            "--cold-items FRAC adds cold_recall@10/cold_ndcg@10."
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
    add_output_flags(p, quiet="the `[compare] ...` line of every step")
    from ..catalog import add_catalog_args  # --catalog and its format/column options

    add_catalog_args(p)
    # dest -> flag, so the report can spell the command exactly (e.g. catalog_format -> --format).
    flags = {a.dest: a.option_strings[-1] for a in p._actions if a.option_strings and a.dest != "help"}
    p.set_defaults(func=handler, _flags=flags)


def add_retriever_args(p: argparse.ArgumentParser) -> None:
    """The trained-retriever rows' options (one family each: --with-tiger, --with-parallel, --with-hybrid, the
    sasrec row on by default), --set FAMILY.KEY=VALUE, the shortcuts, --cold-items."""
    p.add_argument("--with-tiger", action="store_true",
                   help="also train the TIGER-style generative retriever on every model's IDs (needs --interactions); "
                        "rows tiger/<model> with next_recall@5/10, next_ndcg@5/10, checkpoints in "
                        "--out/retrievers/tiger/<model>/")
    p.add_argument("--with-parallel", action="store_true",
                   help="also train the parallel semantic-ID retriever on every model's IDs (needs --interactions); "
                        "rows parallel/<model>, checkpoints in --out/retrievers/parallel/<model>/")
    p.add_argument("--with-hybrid", action="store_true",
                   help="also train the hybrid retriever (semantic-ID codes + item ID + text as item features) on "
                        "every model's IDs, plus a hybrid/no-codes row: what each tokenizer's codes add downstream "
                        "(needs --interactions); checkpoints in --out/retrievers/hybrid/<model>/")
    p.add_argument("--no-sasrec", action="store_true",
                   help="skip the sasrec row (trained by default whenever --interactions is given)")
    p.add_argument("--set", action="append", default=[], metavar="FAMILY.KEY=VALUE", dest="overrides",
                   help="a field of a retriever row family's config, repeatable: tiger.* (RetrievalConfig), "
                        "sasrec.* / parallel.* / hybrid.* (ItemRetrieverConfig), e.g. --set tiger.d_model=64 "
                        "--set parallel.temperature=0.07; the seed is --seed (tiger: --tune-users, history as "
                        "the split's); defaults: retrieve-train's, sasrec's budget 10 epochs / 2 min")
    p.add_argument("--parallel-epochs", type=int, default=None, metavar="N",
                   help="shortcut for --set parallel.max_epochs=N (default: retrieve-train's, 20 with early stopping)")
    p.add_argument("--parallel-max-minutes", type=float, default=None, metavar="X",
                   help="shortcut for --set parallel.max_minutes=X, 0 = none (default: retrieve-train's, 10)")
    p.add_argument("--sasrec-epochs", type=int, default=None, metavar="N",
                   help="shortcut for --set sasrec.max_epochs=N (default 10: a small budget, stated in report.md)")
    p.add_argument("--sasrec-max-minutes", type=float, default=None, metavar="X",
                   help="shortcut for --set sasrec.max_minutes=X, 0 = none (default 2)")
    p.add_argument("--cold-items", type=float, default=None, metavar="FRAC",
                   help="hold this share of catalog items, in (0, 0.5), out of every training and validation "
                        "sequence (seeded by --seed) and report cold_recall@10/cold_ndcg@10 over the test users "
                        "whose target is one of them (needs --interactions)")
    # The old spellings (deprecated, one release): --with-generative, --generative-*.
    p.add_argument("--with-generative", action="store_true", help=argparse.SUPPRESS)
    for flag in GENERATIVE_FIELDS:
        kw = {"choices": ("decoder", "encdec")} if flag == "arch" else {"type": GENERATIVE_TYPES.get(flag, str)}
        p.add_argument(f"--generative-{flag.replace('_', '-')}", default=None, help=argparse.SUPPRESS, **kw)
    p.add_argument("--generative-content", action="store_true", help=argparse.SUPPRESS)


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out (defaults included; not --quiet/--json, which only
    change what the terminal shows), for the report."""
    parts = ["rqvae-ids", "compare"]
    flags = getattr(args, "_flags", {})
    for key, value in vars(args).items():
        if key not in flags or key in ("quiet", "json") or value is None or value is False or value == []:
            continue
        flag = flags[key]
        for one in value if isinstance(value, list) else [value]:  # --set: one flag per pair
            parts += [flag] if one is True else [flag, str(one)]
    return shlex.join(parts)


def handler(args: argparse.Namespace) -> int:
    from ..compare.comparison import compare_options, run_comparison
    from ..core.errors import UserError
    from ..core.io import check_out_dir, file_in_dir

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    knobs = {"models": models, "levels": args.levels, "codebook_size": args.codebook_size, "seed": args.seed,
             "epochs": args.epochs, "neighbour_queries": args.neighbour_queries, "tune_users": args.tune_users}
    rows = _row_settings(args)
    if args.embed_model is not None and args.embeddings is not None:
        raise UserError("--embed-model has no effect with --embeddings (the given embeddings are used as they "
                        "are): drop one of the two")
    # Every setting is validated here (heads vs width, dropout, beam, ...; rows that need
    # --interactions), before the catalog is read and any tokenizer is trained.
    embed = None
    if args.embed_model:
        from ..embed import EmbedConfig

        embed = EmbedConfig(model=args.embed_model)
    options = compare_options(knobs, rows, interactions=args.interactions, embed=embed, cold_items=args.cold_items)
    args.embeddings = file_in_dir(args.embeddings, "embeddings.parquet", "--embeddings")
    options = replace(options, embeddings=args.embeddings, command=command_line(args))
    check_out_dir(args.out)
    from ..catalog import catalog_from_args

    catalog = catalog_from_args(args)
    from ..train import small_catalog_warning

    message = small_catalog_warning(len(catalog.item_ids), options.config.codebook_size)
    if message:
        print(f"rqvae-ids compare: {message}", file=sys.stderr)
    summary = run_comparison(catalog, args.out, options, **({"progress": lambda message: None} if args.quiet else {}))
    report = f"{args.out}/report.md"
    if args.json:
        print(json.dumps({"report": report, "models": summary["models"], "seconds": summary["timings"]["total"]}))
    else:
        print(f"wrote {report} ({len(summary['models'])} models, {summary['timings']['total']:.1f}s)")
    return 0


def _row_settings(args: argparse.Namespace) -> dict[str, dict | None]:
    """Family -> the fields given for its config ({}: its defaults), None for no such rows: from
    --set FAMILY.KEY=VALUE, the shortcuts and the deprecated --generative-* flags."""
    from ..compare.families import parse_row_set
    from ..core.errors import UserError

    given = parse_row_set(args.overrides)
    old = {field: getattr(args, f"generative_{flag}") for flag, field in GENERATIVE_FIELDS.items()
           if getattr(args, f"generative_{flag}") is not None}
    if args.generative_content:
        old["content"] = True
    if old:
        warn_old_spelling("compare", "--generative-* options", "--set tiger.KEY=VALUE (e.g. --set tiger.d_model=64)")
        given["tiger"] = {**old, **given.get("tiger", {})}
    if args.with_generative:
        warn_old_spelling("compare", "--with-generative", "--with-tiger")
    for dest, (family, field) in SHORTCUTS.items():
        if getattr(args, dest) is not None:
            given.setdefault(family, {})[field] = getattr(args, dest)
    asked = {"tiger": args.with_tiger or args.with_generative, "sasrec": not args.no_sasrec,
             "parallel": args.with_parallel, "hybrid": args.with_hybrid}
    for family in given:
        if not asked[family]:
            raise UserError("sasrec settings (--sasrec-*, --set sasrec.*) have no effect with --no-sasrec"
                            if family == "sasrec" else f"{family} settings (--set {family}.*) need --with-{family}")
    return {family: given.get(family, {}) if on else None for family, on in asked.items()}
