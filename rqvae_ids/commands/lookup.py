"""`rqvae-ids lookup`: item -> SID, or SID / SID prefix -> items (rqvae_ids.ids.SidIndex).

Exit codes: 0 found, 1 nothing matches, 2 bad input (missing file, malformed SID).
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lookup",
        help="look up the SID of an item, or the items under a SID prefix",
        description="Look up semantic IDs: --item ID prints its SID; --sid PREFIX prints the matching item_ids.",
    )
    p.add_argument("--ids", required=True, metavar="FILE", help="semantic_ids.parquet from `rqvae-ids assign`")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--item", metavar="ID", help="item_id to look up")
    what.add_argument("--sid", metavar="SID", help="full SID or whole-token prefix, e.g. '<a_12><b_200>'")
    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="print at most N items, 0 = all (default 0); says on stderr how many matched in total")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..ids import SidIndex, parse_sid
    from ..core.io import file_in_dir

    if args.limit < 0:
        raise UserError(f"--limit must be >= 0 (0 = all), got {args.limit}")
    if args.sid is not None:
        parse_sid(args.sid)  # malformed prefix -> UserError before reading the table
    index = SidIndex.from_file(file_in_dir(args.ids, "semantic_ids.parquet", "--ids"))
    if args.item is not None:
        sid = index.sid(args.item)
        if sid is None:
            print(f"rqvae-ids lookup: no item {args.item!r} in {args.ids}", file=sys.stderr)
            return 1
        print(sid)
        return 0
    items = index.items(args.sid)
    if not items:
        print(f"rqvae-ids lookup: no items with SID prefix {args.sid}", file=sys.stderr)
        return 1
    for item in items[: args.limit or None]:
        print(item)
    if args.limit and len(items) > args.limit:  # on stderr: stdout stays one item per line
        sys.stdout.flush()
        print(f"rqvae-ids lookup: showed {args.limit} of {len(items)} items with SID prefix {args.sid} "
              "(--limit 0 for all)", file=sys.stderr)
    return 0
