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
    from ..train import config_from_args, train_model  # torch is imported lazily, inside train_model

    flags = dict(kind=args.model, levels=args.levels, codebook_size=args.codebook_size,
                 latent_dim=args.latent_dim, epochs=args.epochs, seed=args.seed, device=args.device)
    cfg = config_from_args(**{**parse_overrides(args.overrides), **{k: v for k, v in flags.items() if v is not None}})
    report = train_model(args.embeddings, args.out, cfg, resume=args.resume, progress=not args.quiet)
    print(json.dumps({k: report[k] for k in ("kind", "utilisation", "perplexity", "collision_rate",
                                             "seconds", "epochs")}))
    return 0


def parse_overrides(pairs: list[str]) -> dict:
    """["pca_skip=false", "lr=3e-4", "hidden=[256,128]", "recon=cosine"] -> typed values:
    true/false (any case), Python literals (numbers, lists), anything else a string.
    The config dataclasses then check every value's type and range."""
    import ast

    from ..errors import UserError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        name, value = key.strip().replace("-", "_"), value.strip()
        if value.lower() in ("true", "false"):
            out[name] = value.lower() == "true"
            continue
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out
