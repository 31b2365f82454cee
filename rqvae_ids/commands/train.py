"""`rqvae-ids train`: train a tokenizer on an embeddings file (rqvae_ids.train.train_model)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from ..models.kinds import AUTO, AUTO_TEXT_ONLY, AUTO_WITH_CF, FITTED, KINDS  # without torch
from ._help import INTERACTIONS, add_output_flags, add_resume_flag, warn_old_spelling
# rqvae_ids.train.TrainConfig.epochs, spelled out for --help so that building the parser does not
# import torch (tests/test_cli_validation.py keeps the two equal).
DEFAULT_EPOCHS = 100
ITEMS_PER_CODE = 4  # rqvae_ids.train.ITEMS_PER_CODE (kept equal by tests/test_cli_ux.py)
# Config keys with an option of their own (input_dim: read from the embeddings file): --set refuses them.
DEDICATED = {"kind": "--model", "model": "--model", "levels": "--levels", "codebook_size": "--codebook-size",
             "latent_dim": "--latent-dim", "epochs": "--epochs", "seed": "--seed", "device": "--device",
             "input_dim": None, "cf_dim": None}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a tokenizer (residual k-means by default, an RQ-VAE or a baseline) on embeddings.parquet",
        description="Train a tokenizer on an embeddings file and write model.safetensors, config.json, "
                    "metrics.parquet and train_report.json into --out.",
    )
    p.add_argument("--embeddings", required=True, metavar="FILE", help="embeddings.parquet from `rqvae-ids embed`")
    p.add_argument("--model", default=AUTO, choices=(AUTO, *KINDS),
                   help=f"tokenizer kind (default {AUTO}: {AUTO_WITH_CF} with --interactions, {AUTO_TEXT_ONLY} without; "
                        "they led on what their codes add to next-item retrieval: README, Tokenizers)")
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument("--interactions", default=None, metavar="FILE",
                   help=f"{INTERACTIONS}: CF embeddings from its leave-one-out training part (cached as "
                        "OUT/cf_embeddings.parquet) add the collaborative term (rqvae) or the CF part (rqkmeans-cf); "
                        "without it the model is text-only")
    p.add_argument("--levels", type=int, default=None, help="code levels L (default 3)")
    p.add_argument("--subspaces", type=int, default=None, metavar="M",
                   help="opq: sub-spaces M, one code digit each (RPG: 16 for Toys, 32 for Beauty); "
                        "the same as --levels for --model opq, must divide the embedding size")
    p.add_argument("--codebook-size", type=int, default=None,
                   help=f"codes per level K (default 256); warns when the catalog has fewer than {ITEMS_PER_CODE} "
                        "items per code")
    p.add_argument("--latent-dim", type=int, default=None, help="latent size (default 32; ignored by rqkmeans)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {DEFAULT_EPOCHS}; fewer with early stopping, see --set patience)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="any other TrainConfig/ModelConfig field, repeatable, e.g. --set pca_skip=false "
                        "--set recon=cosine --set patience=0 (see configs/default.yaml for every key)")
    add_resume_flag(p, "start over, but refused when --out holds an unfinished training")
    p.add_argument("--overwrite", action="store_true", help=argparse.SUPPRESS)  # old spelling of --no-resume
    add_output_flags(p, quiet="the epoch bar")
    p.set_defaults(func=handler)


def settable_keys() -> list[str]:
    """The keys `--set` accepts: every TrainConfig/ModelConfig key without an option of its own."""
    from ..train import flat_keys

    return [k for k in flat_keys() if k not in DEDICATED]


def resume_command(args: argparse.Namespace) -> str:
    """The command the user ran, with --resume (and without --no-resume/--overwrite): what continues it."""
    argv = [a for a in getattr(args, "_argv", []) if a not in ("--overwrite", "--no-resume")]
    return shlex.join(["rqvae-ids", *argv, *([] if "--resume" in argv else ["--resume"])])


def check_unfinished(args: argparse.Namespace) -> None:
    """A plain re-run into a folder with an interrupted training would silently start over: refuse.
    (--overwrite: the old spelling of --no-resume, kept one release.)"""
    from ..core.errors import UserError
    from ..train import unfinished_checkpoint

    if args.overwrite:
        warn_old_spelling("train", "--overwrite", "--no-resume")
        if args.resume:
            raise UserError("--resume continues the training in --out, --overwrite starts over: give one of the two")
        args.resume = False
    state = unfinished_checkpoint(args.out)
    if state is not None and args.resume is None:
        raise UserError(f"{args.out} holds an unfinished training (checkpoint at epoch {state.get('epoch')}): "
                        "add --resume to continue it, or --no-resume to start over")


def interrupted_message(args: argparse.Namespace, checkpoint_every: int) -> str:
    """Where the checkpoint is and the exact command that continues it."""
    from ..train import unfinished_checkpoint

    state = unfinished_checkpoint(args.out)
    if state is None:
        return (f"interrupted before the first checkpoint (one every {checkpoint_every} epochs): "
                f"nothing to resume in {args.out}")
    return (f"interrupted: checkpoint at epoch {state.get('epoch')} kept in {args.out}; continue with\n"
            f"  {resume_command(args)}")


def warn_small_catalog(embeddings: str, codebook_size: int) -> None:
    """One line on stderr when the embeddings file has few items for K (read from its footer)."""
    import pyarrow.parquet as pq

    from ..train import small_catalog_warning

    try:
        items = pq.read_metadata(embeddings).num_rows
    except (OSError, ValueError):  # missing or unreadable: train_model says what is wrong
        return
    message = small_catalog_warning(items, codebook_size)
    if message:
        print(f"rqvae-ids train: {message}", file=sys.stderr)


def handler(args: argparse.Namespace) -> int:
    from ..core.config import leaf_types, parse_set
    from ..core.errors import UserError
    from ..core.io import check_out_dir, file_in_dir
    from ..train import TrainConfig, config_from_args, train_model  # torch is imported lazily, inside train_model

    if args.subspaces is not None:
        if args.model != "opq":
            raise UserError(f"--subspaces applies to --model opq only, not {args.model}")
        if args.levels is not None and args.levels != args.subspaces:
            raise UserError(f"--subspaces {args.subspaces} and --levels {args.levels} disagree (one is enough)")
        args.levels = args.subspaces
    flags = dict(kind=args.model, levels=args.levels, codebook_size=args.codebook_size,
                 latent_dim=args.latent_dim, epochs=args.epochs, seed=args.seed, device=args.device)
    # one way to set each value: its own option (input_dim and cf_dim come from the files)
    taken = sorted({k for k in (p.partition("=")[0].strip().replace("-", "_").rsplit(".", 1)[-1]
                                for p in args.overrides) if k in DEDICATED})
    if taken:
        raise UserError("; ".join(f"--set {k}: comes from the {'embeddings' if k == 'input_dim' else 'CF embeddings'} file"
                                  if DEDICATED[k] is None
                                  else f"--set {k}: use the dedicated option {DEDICATED[k]} instead" for k in taken))
    # a key bare (lr), or dotted as in the pipeline config (model.recon, train.model.recon)
    settable = set(settable_keys())
    overrides = parse_set(args.overrides, TrainConfig, bare=True, strip="train.",
                          keys=[k for k in leaf_types(TrainConfig) if k.rsplit(".", 1)[-1] in settable])
    overrides = {k.rsplit(".", 1)[-1]: v for k, v in overrides.items()}  # config_from_args takes the flat names
    cfg = config_from_args(**overrides, **{k: v for k, v in flags.items() if v is not None})
    args.embeddings = file_in_dir(args.embeddings, "embeddings.parquet", "--embeddings")
    check_out_dir(args.out)
    check_unfinished(args)
    warn_small_catalog(args.embeddings, cfg.model.codebook_size)
    if args.model == AUTO and not args.resume and (args.epochs is not None or args.latent_dim is not None):
        print("rqvae-ids train: warning: --epochs and --latent-dim shape the neural kinds; the default kind "
              f"(auto: {AUTO_WITH_CF} / {AUTO_TEXT_ONLY}) is fitted by k-means: add --model rqvae for the RQ-VAE",
              file=sys.stderr)
    cf = None
    if args.interactions is not None:
        from ..cf import cf_for_embeddings

        cf = cf_for_embeddings(args.interactions, args.embeddings, args.out)
    elif cfg.model.kind == "rqkmeans-cf":
        raise UserError("--model rqkmeans-cf needs --interactions FILE (its CF part)")
    try:
        report = train_model(args.embeddings, args.out, cfg, resume=bool(args.resume), progress=not args.quiet,
                             cf=cf)
    except KeyboardInterrupt:
        print(interrupted_message(args, cfg.checkpoint_every), file=sys.stderr)
        return 130
    if args.json:
        keys = ("kind", "utilisation", "perplexity", "colliding_share", "duplicate_rate", "seconds", "epochs")
        print(json.dumps({**{k: report[k] for k in keys}, "cf": cf is not None}))
    else:
        print(summary(report, args))
    return 0


def summary(report: dict, args: argparse.Namespace) -> str:
    """A few lines a person reads: what was trained, how the codes look, where the files are."""
    from pathlib import Path

    out = Path(args.out)
    pct = " / ".join(f"{u:.0%}" for u in report["utilisation"])
    perp = " / ".join(f"{p:.0f}" for p in report["perplexity"])
    epochs = "k-means, no epochs" if report["kind"] in FITTED else f"{report['epochs']} epochs"
    return "\n".join([
        f"trained {report['kind']} (L={report['levels']}, K={report['codebook_size']}) on {report['items']} items: "
        f"{epochs}, {report['seconds']:.1f} s",
        f"codes used per level {pct}, perplexity {perp}",
        f"before resolution: colliding_share {report['colliding_share']:.2%}, "
        f"duplicate_rate {report['duplicate_rate']:.2%}",
        f"wrote {out}/: model.safetensors, config.json, metrics.parquet, train_report.json",
        f"next: rqvae-ids assign --model-dir {shlex.quote(str(out))} --embeddings {shlex.quote(args.embeddings)} "
        "--out IDS_DIR",
    ])
