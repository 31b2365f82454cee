"""`rqvae-ids train`: train a tokenizer on an embeddings file (rqvae_ids.train.train_model)."""

from __future__ import annotations

import argparse
import json

KINDS = ("rqvae", "vqvae", "vae", "ae", "rqkmeans", "rqkmeans-cf")
# rqvae_ids.train.TrainConfig.epochs, spelled out for --help so that building the parser does not
# import torch (tests/test_cli_validation.py keeps the two equal).
DEFAULT_EPOCHS = 100
# Config keys with an option of their own (input_dim: read from the embeddings file): --set refuses them.
DEDICATED = {"kind": "--model", "model": "--model", "levels": "--levels", "codebook_size": "--codebook-size",
             "latent_dim": "--latent-dim", "epochs": "--epochs", "seed": "--seed", "device": "--device",
             "input_dim": None, "cf_dim": None}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a tokenizer (RQ-VAE or a baseline) on embeddings.parquet",
        description="Train a tokenizer on an embeddings file and write model.safetensors, config.json, "
                    "metrics.parquet and train_report.json into --out.",
    )
    p.add_argument("--embeddings", required=True, metavar="FILE", help="embeddings.parquet from `rqvae-ids embed`")
    p.add_argument("--model", default="rqvae", choices=KINDS, help="tokenizer kind (default: rqvae)")
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument("--interactions", default=None, metavar="FILE",
                   help="user-item interactions (user_id, item_id, timestamp/position): CF embeddings from their "
                        "leave-one-out training part (cached as OUT/cf_embeddings.parquet) add the collaborative "
                        "term (rqvae) or the CF part (rqkmeans-cf); without it the model is text-only")
    p.add_argument("--levels", type=int, default=None, help="code levels L (default 3)")
    p.add_argument("--codebook-size", type=int, default=None, help="codes per level K (default 256)")
    p.add_argument("--latent-dim", type=int, default=None, help="latent size (default 32; ignored by rqkmeans)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {DEFAULT_EPOCHS}; fewer with early stopping, see --set patience)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="any other TrainConfig/ModelConfig field, repeatable, e.g. --set pca_skip=false "
                        "--set recon=cosine --set patience=0 (see configs/default.yaml for every key)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)


def settable_keys() -> list[str]:
    """The keys `--set` accepts: every TrainConfig/ModelConfig key without an option of its own."""
    from ..train import flat_keys

    return [k for k in flat_keys() if k not in DEDICATED]


def handler(args: argparse.Namespace) -> int:
    from ..config import parse_overrides
    from ..errors import UserError
    from ..io import check_out_dir
    from ..train import config_from_args, train_model  # torch is imported lazily, inside train_model

    flags = dict(kind=args.model, levels=args.levels, codebook_size=args.codebook_size,
                 latent_dim=args.latent_dim, epochs=args.epochs, seed=args.seed, device=args.device)
    overrides = parse_overrides(args.overrides)
    taken = sorted(set(overrides) & set(DEDICATED))
    if taken:  # one way to set each value: its own option (input_dim comes from the file)
        raise UserError("; ".join(f"--set {k}: comes from the {'embeddings' if k == 'input_dim' else 'CF embeddings'} file"
                                  if DEDICATED[k] is None
                                  else f"--set {k}: use the dedicated option {DEDICATED[k]} instead" for k in taken))
    unknown = sorted(set(overrides) - set(settable_keys()))
    if unknown:
        raise UserError(f"--set: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(settable_keys())}")
    cfg = config_from_args(**overrides, **{k: v for k, v in flags.items() if v is not None})
    check_out_dir(args.out)
    cf = None
    if args.interactions is not None:
        from ..cf import cf_for_embeddings

        cf = cf_for_embeddings(args.interactions, args.embeddings, args.out)
    elif cfg.model.kind == "rqkmeans-cf":
        raise UserError("--model rqkmeans-cf needs --interactions FILE (its CF part)")
    report = train_model(args.embeddings, args.out, cfg, resume=args.resume, progress=not args.quiet, cf=cf)
    keys = ("kind", "utilisation", "perplexity", "collision_rate", "distinct_collision_rate", "seconds", "epochs")
    print(json.dumps({**{k: report[k] for k in keys}, "cf": cf is not None}))
    return 0
