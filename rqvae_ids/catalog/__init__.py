"""Catalog ingestion: read the item files users actually have into ids, texts and categories.

    from rqvae_ids.catalog import load_catalog
    catalog = load_catalog("data/demo/items.csv")
    catalog.item_ids, catalog.texts, catalog.categories

Formats (`fmt`, or `--format` on the command line; detected from the file name otherwise,
see `formats.py`): csv, tsv, parquet, jsonl (each optionally .gz), amazon (review
metadata 2014/2018/2023, `amazon.py`), movielens (movies.csv or ml-100k u.item,
`movielens.py`). Commands share the flags via `add_catalog_args` / `catalog_from_args`.
"""

from .args import add_catalog_args, catalog_from_args
from .options import DEFAULT_TEXT_COLS, FORMATS, ON_DUPLICATE

__all__ = [
    "Catalog", "load_catalog", "add_catalog_args", "catalog_from_args",
    "FORMATS", "DEFAULT_TEXT_COLS", "ON_DUPLICATE",
]


def __getattr__(name: str):
    # load_catalog/Catalog pull in pandas; import them on first use so that command
    # parsers importing add_catalog_args stay fast.
    if name in ("Catalog", "load_catalog"):
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
