"""`rqvae-ids retrieve-train`: train the generative retriever on semantic IDs
(rqvae_ids.retrieval.generative.train_retriever)."""

from __future__ import annotations

import argparse
import json

from ._help import INTERACTIONS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "retrieve-train", help="train a TIGER-style generative retriever on semantic IDs",
        description="Train a small Transformer that generates the next item's semantic ID from a user's "
                    "history (leave-one-out split, constrained beam search), and report Recall/NDCG@5/10 on "
                    "the test split. Writes model.safetensors, checkpoint.safetensors (resumable), codes.npy, "
                    "config.json and train_report.json into --out.",
    )
    p.add_argument("--ids", required=True, metavar="FILE", help="semantic_ids.parquet from `rqvae-ids assign`")
    p.add_argument("--interactions", required=True, metavar="FILE", help=INTERACTIONS)
    p.add_argument("--out", required=True, metavar="DIR", help="retriever directory to write")
    p.add_argument("--arch", choices=("decoder", "encdec"), default=None, help="decoder-only (default) or encoder-decoder")
    p.add_argument("--layers", type=int, default=None, help="layers per stack (default 2)")
    p.add_argument("--d-model", type=int, default=None, help="width (default 128)")
    p.add_argument("--heads", type=int, default=None, help="attention heads, must divide --d-model (default 4)")
    p.add_argument("--dropout", type=float, default=None, help="dropout, in [0, 1) (default 0.1)")
    p.add_argument("--user-buckets", type=int, default=None, help="hashed user tokens, 0 = off (default)")
    p.add_argument("--content-embeddings", default=None, metavar="FILE",
                   help="embeddings.parquet of the items (every item of --ids): adds each history item's "
                        "projected text embedding to its tokens (item content; default off)")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (default 10, early stopping)")
    p.add_argument("--patience", type=int, default=None, help="epochs without a better valid NDCG@10 (default 3)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 128)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    p.add_argument("--beam", type=int, default=None, help="beam width, >= 10 (default 20)")
    p.add_argument("--valid-users", type=int, default=None, help="validation users for early stopping, 0 = all (default 3000)")
    p.add_argument("--max-minutes", type=float, default=None, help="training time budget, 0 = none (default)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    p.set_defaults(func=handler)


_FLAGS = {"arch": "arch", "layers": "n_layer", "d_model": "d_model", "heads": "n_head", "dropout": "dropout",
          "user_buckets": "user_buckets", "epochs": "max_epochs", "patience": "patience", "batch_size": "batch_size",
          "lr": "lr", "beam": "beam", "valid_users": "valid_users", "max_minutes": "max_minutes", "seed": "seed",
          "device": "device"}


def handler(args: argparse.Namespace) -> int:
    from ..config import from_dict
    from ..io import check_out_dir, file_in_dir
    from ..retrieval.generative import train_retriever  # torch is imported lazily, inside
    from ..retrieval.trainer import RetrievalConfig

    given = {field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag) is not None}
    if args.content_embeddings is not None:
        given["content"] = True
    cfg = from_dict(RetrievalConfig, given, where="retrieve-train")  # every model setting checked here
    ids = file_in_dir(args.ids, "semantic_ids.parquet", "--ids")
    content = file_in_dir(args.content_embeddings, "embeddings.parquet", "--content-embeddings")
    check_out_dir(args.out)
    report = train_retriever(ids, args.interactions, args.out, cfg, resume=not args.no_resume,
                             content_embeddings=content)
    print(json.dumps({"test": report["test"], "epochs": report["epochs"], "best_epoch": report["best_epoch"],
                      "train_seconds": round(report["train_seconds"], 1),
                      "infer_users_per_s": round(report["infer_users_per_s"], 1)}))
    return 0
