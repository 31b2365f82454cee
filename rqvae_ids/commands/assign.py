"""`rqvae-ids assign`: semantic IDs for every item of an embeddings file (rqvae_ids.ids.assign_ids)."""

from __future__ import annotations

import argparse

from ..ids.encode import DEFAULT_CHUNK_SIZE  # numpy and pyarrow only, as the parser's other imports
from ._help import add_output_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "assign",
        help="assign unique, stable semantic IDs with a trained model",
        description=(
            "Assign semantic IDs with a trained model: chunked encoding, collision check "
            "(collisions.parquet, collision_report.json), resolution, semantic_ids.parquet and "
            "tokens.txt in --out."
        ),
    )
    p.add_argument("--model-dir", required=True, metavar="DIR", help="trained model directory (config.json + weights)")
    p.add_argument("--embeddings", required=True, metavar="FILE", help="embeddings.parquet from `rqvae-ids embed`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--resolve", choices=["suffix", "reassign", "balanced"], default="suffix",
                   help="collision resolution: extra suffix token (default), move to a free last-level code (reassign), "
                        "or an exact balanced last level per prefix, the suffix only for identical texts (balanced)")
    p.add_argument("--previous", default=None, metavar="FILE",
                   help="semantic_ids.parquet of an earlier run with the same model: unchanged items keep their IDs")
    p.add_argument("--chunk-size", type=int, default=None, metavar="N",
                   help=f"items encoded per chunk, >= 1 (bounds memory; default {DEFAULT_CHUNK_SIZE})")
    add_output_flags(p)
    p.set_defaults(func=handler)


def warn_unfinished(model_dir: str) -> None:
    """One line on stderr when the model is a checkpoint of a training that did not finish."""
    import sys

    from ..train import unfinished_checkpoint

    state = unfinished_checkpoint(model_dir)
    if state is not None:
        print(f"rqvae-ids assign: warning: the training in {model_dir} did not finish (checkpoint at epoch "
              f"{state.get('epoch')}); finish it with `rqvae-ids train ... --out {model_dir} --resume`",
              file=sys.stderr)


def handler(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..ids import assign_ids
    from ..core.io import check_out_dir, file_in_dir

    if args.chunk_size is not None and args.chunk_size < 1:
        raise UserError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    args.embeddings = file_in_dir(args.embeddings, "embeddings.parquet", "--embeddings")
    args.previous = file_in_dir(args.previous, "semantic_ids.parquet", "--previous")
    check_out_dir(args.out)
    warn_unfinished(args.model_dir)
    chunk_size = DEFAULT_CHUNK_SIZE if args.chunk_size is None else args.chunk_size
    report = assign_ids(args.model_dir, args.embeddings, args.out, resolve=args.resolve,
                        previous=args.previous, chunk_size=chunk_size)
    if args.json:
        import json

        print(json.dumps(report))
    else:
        print(summary(report))
    return 0


def summary(report: dict) -> str:
    """A few lines a person reads: the collisions before resolution, what resolution did, the file."""
    lines: list[str] = []
    col, res = report["collisions"], report["resolution"]
    lines.append(f"items: {report['items']}  model: {report['kind']} L={report['levels']} K={report['codebook_size']}")
    lines.append(f"before resolution: duplicate_rate {col['duplicate_rate']:.4%}, colliding_share "
                 f"{col['colliding_share']:.4%} ({col['items_in_colliding_groups']} items), "
                 f"largest group {col['largest_group']}")
    if res["strategy"] == "suffix":
        lines.append(f"suffix > 0: {res['items_with_suffix_gt0']} items ({res['share_suffix_gt0']:.4%}), "
                     f"largest suffix {res['max_suffix']}")
    elif res["strategy"] == "balanced":
        lines.append(f"balanced last level: moved {res['items_moved']} items; sharing a full tuple: "
                     f"{res['sharing_share_excl_identical_text']:.4%} of items excluding identical texts, "
                     f"{res['items_sharing_tuple_identical_text']} items with an identical text "
                     "(told apart by the suffix)")
    else:
        lines.append(f"moved: {res['items_moved']} items ({res['moved_share']:.4%}), distortion added "
                     f"{res['distortion_added_mean_moved']:.4f} per moved item")
    if report.get("cf"):  # rqkmeans-cf: the CF embeddings saved with the model
        c = report["cf"]
        lines.append(c.get("note") or f"CF embeddings: {c['items_with_cf']} items coded from text + CF, "
                                      f"{c['items_text_only']} from their text alone")
    if report["stability"]:
        s = report["stability"]
        lines.append(f"previous: kept {s['kept']}, edited {s['edited']}, new {s['new']}, removed {s['removed']}")
    lines.append(f"wrote {report['outputs']['semantic_ids.parquet']}")
    return "\n".join(lines)
