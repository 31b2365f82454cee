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
from .formats import DEFAULT_TEXT_COLS, FORMATS
from .load import Catalog, load_catalog

__all__ = ["Catalog", "load_catalog", "add_catalog_args", "catalog_from_args", "FORMATS", "DEFAULT_TEXT_COLS"]
