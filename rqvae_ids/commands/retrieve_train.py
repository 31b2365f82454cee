"""`rqvae-ids retrieve-train`: train a next-item retriever: `hybrid` (semantic-ID codes, item ID and
text as item features, exact softmax), `parallel` (RPG-style, all digits of an item's semantic ID
predicted at once), `sasrec` (item-ID baseline, no IDs needed; all three in
rqvae_ids.retrieval.item) or `tiger` (generative, rqvae_ids.retrieval.tiger)."""

from __future__ import annotations

import argparse
import json

from ..retrieval.choice import DEFAULT_RETRIEVER, RETRIEVERS, WHY_DEFAULT
from ._help import INTERACTIONS, add_output_flags, add_resume_flag


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "retrieve-train", help="train a next-item retriever (hybrid, parallel semantic-ID, SASRec or TIGER)",
        description="Train a small Transformer on users' histories (leave-one-out split, early stopping on "
                    "validation NDCG@10) and report Recall/NDCG@5/10 on the test split. hybrid: one position per "
                    "item, an item's vector composed of its ID, semantic-ID code and text embeddings (--item-parts), "
                    "the same vector in and out, exact softmax over the catalog; new items are scored from their "
                    "codes and text; parallel: one position "
                    "per item, all digits of the next item's semantic ID predicted at once, exact full-catalog "
                    "scoring; sasrec: item-ID embeddings, softmax over the catalog (needs no IDs); tiger: one "
                    "position per ID token, constrained beam search. Writes model.safetensors, config.json and "
                    "train_report.json into --out (tiger also checkpoint.safetensors and codes.npy).",
    )
    p.add_argument("--retriever", choices=RETRIEVERS, default=DEFAULT_RETRIEVER,
                   help=f"which model (default {DEFAULT_RETRIEVER}: {WHY_DEFAULT})")
    p.add_argument("--ids", default=None, metavar="FILE",
                   help="semantic_ids.parquet from `rqvae-ids assign` (parallel, tiger, hybrid with codes: "
                        "required; any tokenizer and depth, the suffix digit included when present)")
    p.add_argument("--interactions", required=True, metavar="FILE", help=INTERACTIONS)
    p.add_argument("--out", required=True, metavar="DIR", help="retriever directory to write")
    p.add_argument("--arch", choices=("decoder", "encdec"), default=None,
                   help="tiger: decoder-only (default) or encoder-decoder")
    p.add_argument("--layers", type=int, default=None, help="layers per stack (default 2)")
    p.add_argument("--d-model", type=int, default=None, help="width (default tiger 128, parallel/sasrec 64)")
    p.add_argument("--heads", type=int, default=None, help="attention heads, must divide --d-model (default tiger 4, else 2)")
    p.add_argument("--dropout", type=float, default=None, help="dropout, in [0, 1) (default tiger 0.1, else 0.2)")
    p.add_argument("--user-buckets", type=int, default=None, help="tiger: hashed user tokens, 0 = off (default)")
    p.add_argument("--content-embeddings", default=None, metavar="FILE",
                   help="embeddings.parquet of the items (every item of --ids): hybrid: the text part (required "
                        "with it); parallel, tiger: adds each history item's projected text embedding to its "
                        "input (default off)")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (default tiger 10, else 20: the length of the cosine learning-rate schedule; early stopping)")
    p.add_argument("--patience", type=int, default=None, help="epochs without a better valid NDCG@10 (default tiger 3, else 8)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default tiger 128, else 256)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default tiger 2e-3, else 5e-3)")
    p.add_argument("--beam", type=int, default=None, help="tiger: beam width, >= 10 (default 20)")
    p.add_argument("--temperature", type=float, default=None, help="parallel: cosine-logit temperature (default 0.05)")
    p.add_argument("--negatives", type=int, default=None,
                   help="sasrec, hybrid: sampled softmax with R shared negatives (never an item unseen in "
                        "training); 0 = full softmax over the catalog (default: on Toys 256 uniform negatives fell "
                        "to popularity-level validation recall within 4 epochs, full softmax did not)")
    p.add_argument("--item-parts", default=None, metavar="PARTS",
                   help="hybrid: what an item's vector is made of, a comma-separated non-empty subset of id, "
                        "codes, text (default id,codes,text; codes needs --ids, text --content-embeddings; "
                        "without id every item, old or new, is scored the same way)")
    p.add_argument("--valid-users", type=int, default=None,
                   help="validation users for early stopping, 0 = all (default tiger 3000, else all)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="training time budget, 0 = none (default tiger none, parallel/sasrec 10)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="any other field of the retriever's config (RetrievalConfig for tiger, ItemRetrieverConfig "
                        "otherwise), repeatable, e.g. --set weight_decay=0.01 --set schedule=constant (a key may "
                        "carry the retriever's name: --set tiger.min_lr=1e-5)")
    add_resume_flag(p, "resume; parallel/sasrec: reuse a finished model of the same config and data")
    add_output_flags(p, quiet="the per-epoch lines")
    p.set_defaults(func=handler)


_SHARED = {"layers": "n_layer", "d_model": "d_model", "heads": "n_head", "dropout": "dropout", "epochs": "max_epochs",
           "patience": "patience", "batch_size": "batch_size", "lr": "lr", "valid_users": "valid_users",
           "max_minutes": "max_minutes", "seed": "seed", "device": "device"}
_FLAGS = {**_SHARED, "arch": "arch", "user_buckets": "user_buckets", "beam": "beam"}
_ITEM_FLAGS = {**_SHARED, "temperature": "temperature", "negatives": "negatives"}
_ONLY = {"arch": "tiger", "user_buckets": "tiger", "beam": "tiger", "temperature": "parallel",
         "negatives": ("sasrec", "hybrid"), "item_parts": "hybrid"}


def set_fields(args: argparse.Namespace, flags: dict[str, str]) -> dict:
    """The --set KEY=VALUE pairs as config fields, typed by the retriever's config (`config.parse_set`).
    A field with an option of its own is refused naming it (one way to set each value); `head` and
    `content` come from --retriever and --content-embeddings."""
    from ..core.config import parse_set
    from ..core.errors import UserError
    from ..retrieval.item.trainer import ItemRetrieverConfig
    from ..retrieval.tiger.trainer import RetrievalConfig

    cls = RetrievalConfig if args.retriever == "tiger" else ItemRetrieverConfig
    given = parse_set(args.overrides, cls, bare=True, strip=f"{args.retriever}.")
    own = {field: f"--{flag.replace('_', '-')}" for flag, field in flags.items()}
    own.update({"head": "--retriever", "content": "--content-embeddings"})
    taken = sorted(set(given) & set(own))
    if taken:
        raise UserError("; ".join(f"--set {k}: use {own[k]} instead" for k in taken))
    return given


def handler(args: argparse.Namespace) -> int:
    import sys

    from ..core.errors import UserError
    from ..core.io import check_out_dir, file_in_dir
    from ..retrieval.choice import check_choice, train_chosen  # torch is imported lazily, inside

    wrong = [f"--{f.replace('_', '-')}" for f, only in _ONLY.items()
             if getattr(args, f) is not None and args.retriever not in (only if isinstance(only, tuple) else (only,))]
    if wrong:
        raise UserError(f"{', '.join(wrong)} do(es) not apply to --retriever {args.retriever}")
    check_choice(args.retriever, args.ids, parse_parts(args.item_parts), args.content_embeddings)
    if args.retriever == "sasrec" and args.content_embeddings is not None:
        raise UserError("--content-embeddings does not apply to --retriever sasrec (item IDs only)")
    flags = _FLAGS if args.retriever == "tiger" else _ITEM_FLAGS
    given = {field: getattr(args, flag) for flag, field in flags.items() if getattr(args, flag) is not None}
    given.update(set_fields(args, flags))
    if args.item_parts is not None:
        given["parts"] = parse_parts(args.item_parts)
    ids = file_in_dir(args.ids, "semantic_ids.parquet", "--ids")
    content = file_in_dir(args.content_embeddings, "embeddings.parquet", "--content-embeddings")
    check_out_dir(args.out)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    report = train_chosen(args.retriever, args.interactions, args.out, given, ids_path=ids,
                          content_embeddings=content, resume=args.resume is not False, log=log)
    result = {"retriever": args.retriever, "test": report["test"], "epochs": report["epochs"],
              "best_epoch": report["best_epoch"], "train_seconds": round(report["train_seconds"], 1),
              "infer_users_per_s": round(report["infer_users_per_s"], 1)}
    if args.json:
        print(json.dumps(result))
    else:
        test = "  ".join(f"{k} {v:.4f}" for k, v in report["test"].items())
        print(f"trained {args.retriever} in {result['train_seconds']} s ({report['epochs']} epochs, best "
              f"{report['best_epoch']}): test {test}")
        print(f"wrote {args.out}/: model.safetensors, config.json, train_report.json")
    return 0


def parse_parts(text: str | None) -> tuple[str, ...] | None:
    """--item-parts "id, codes" -> ("id", "codes"); None stays None (the default parts)."""
    return None if text is None else tuple(p.strip() for p in text.split(",") if p.strip())
