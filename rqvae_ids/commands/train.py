"""`rqvae-ids train`: train a tokenizer on an embeddings file (rqvae_ids.train.train_model)."""

from __future__ import annotations

import argparse
import json

KINDS = ("rqvae", "vqvae", "vae", "ae", "rqkmeans")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a tokenizer (RQ-VAE or a baseline) on embeddings.parquet",
        description="Train a tokenizer on an embeddings file and write model.safetensors, config.json, "
                    "metrics.parquet and train_report.json into --out.",
    )
    p.add_argument("--embeddings", required=True, metavar="FILE", help="embeddings.parquet from `rqvae-ids embed`")
    p.add_argument("--model", default="rqvae", choices=KINDS, help="tokenizer kind (default: rqvae)")
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument("--levels", type=int, default=None, help="code levels L (default 3)")
    p.add_argument("--codebook-size", type=int, default=None, help="codes per level K (default 256)")
    p.add_argument("--latent-dim", type=int, default=None, help="latent size (default 32; ignored by rqkmeans)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default from TrainConfig)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="any other TrainConfig/ModelConfig field, repeatable, e.g. --set pca_skip=false "
                        "--set recon=cosine --set patience=0 (see configs/default.yaml for every key)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..config import parse_overrides
    from ..errors import UserError
    from ..train import config_from_args, train_model  # torch is imported lazily, inside train_model

    flags = dict(kind=args.model, levels=args.levels, codebook_size=args.codebook_size,
                 latent_dim=args.latent_dim, epochs=args.epochs, seed=args.seed, device=args.device)
    overrides = parse_overrides(args.overrides)
    taken = sorted(set(overrides) & (set(flags) | {"input_dim", "model"}))
    if taken:  # one way to set each value: its own flag (input_dim comes from the file)
        raise UserError(f"--set {', '.join(taken)}: use the dedicated option instead "
                        "(--model, --levels, --codebook-size, --latent-dim, --epochs, --seed, --device)")
    cfg = config_from_args(**overrides, **{k: v for k, v in flags.items() if v is not None})
    report = train_model(args.embeddings, args.out, cfg, resume=args.resume, progress=not args.quiet)
    keys = ("kind", "utilisation", "perplexity", "collision_rate", "distinct_collision_rate", "seconds", "epochs")
    print(json.dumps({k: report[k] for k in keys}))
    return 0
