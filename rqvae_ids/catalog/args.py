"""The catalog flags every command shares (`--catalog`, `--format`, ...) and their reader.

Importing this module stays light (no pandas) so `rqvae-ids --help` is fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..core.errors import UserError
from .options import FORMATS, ON_DUPLICATE

if TYPE_CHECKING:
    from .load import Catalog


def add_catalog_args(parser: argparse.ArgumentParser) -> None:
    """Add --catalog, --format, --id-col, --text-cols, --template, --on-duplicate, --drop-empty."""
    group = parser.add_argument_group("catalog")
    group.add_argument("--catalog", required=True, metavar="FILE",
                       help="item catalog: CSV, TSV, Parquet, JSON Lines (optionally .gz), "
                            "Amazon review metadata (2014/2018/2023) or MovieLens movies.csv / u.item")
    group.add_argument("--format", dest="catalog_format", choices=FORMATS, default=None,
                       help="catalog format (default: from the file name; .json/.jsonl files are "
                            "sniffed for Amazon metadata, .csv files for a MovieLens movieId header)")
    group.add_argument("--id-col", default="item_id", metavar="NAME",
                       help="column holding the item id (default: item_id)")
    group.add_argument("--text-cols", default=None, metavar="A,B,...",
                       help="comma-separated columns joined into the item text "
                            "(default: the present ones of title, brand, categories, description)")
    group.add_argument("--template", default=None, metavar="FMT",
                       help='item text template instead of --text-cols, e.g. "{title}. Brand: {brand}. {categories}"')
    group.add_argument("--on-duplicate", choices=ON_DUPLICATE, default="error",
                       help="repeated item ids: fail (default) or keep the first row")
    group.add_argument("--drop-empty", action="store_true",
                       help="drop items whose text fields are all empty instead of failing")


def check_text_source(args: argparse.Namespace) -> None:
    """The item text comes from --text-cols or --template, never both."""
    if getattr(args, "text_cols", None) is not None and getattr(args, "template", None) is not None:
        raise UserError("use either --text-cols or --template, not both")


# catalog flag (argparse dest) -> load_catalog keyword = key of the pipeline config's catalog section
CATALOG_FLAGS = {
    "catalog_format": "fmt",
    "id_col": "id_col",
    "text_cols": "text_cols",
    "template": "template",
    "on_duplicate": "on_duplicate",
    "drop_empty": "drop_empty",
}


def catalog_options(args: argparse.Namespace) -> dict:
    """The one route from the catalog flags to catalog options: load_catalog keywords (`embed`,
    `compare`) and, with the None of a flag left out dropped, `catalog.KEY` overrides (`run`, `serve`)."""
    check_text_source(args)
    out = {key: getattr(args, dest, None) for dest, key in CATALOG_FLAGS.items()}
    out["text_cols"] = split_columns(out["text_cols"])
    return out


def catalog_from_args(args: argparse.Namespace) -> Catalog:
    """Load the catalog the shared flags describe; notes dropped rows on stderr."""
    from .load import load_catalog  # pandas: only when a command actually runs

    catalog = load_catalog(args.catalog, **catalog_options(args))
    if catalog.dropped_duplicates:
        print(f"catalog: kept the first row of repeated ids, dropped {catalog.dropped_duplicates} row(s)", file=sys.stderr)
    if catalog.dropped_empty:
        print(f"catalog: dropped {catalog.dropped_empty} item(s) with empty text", file=sys.stderr)
    return catalog


def split_columns(value: str | None) -> list[str] | None:
    """"title, brand" -> ["title", "brand"]; None stays None; an empty list is an error."""
    if value is None:
        return None
    cols = [c.strip() for c in value.split(",") if c.strip()]
    if not cols:
        raise UserError(f"--text-cols {value!r} names no column")
    return cols
