"""Catalog option values, kept free of heavy imports so CLI parsers can use them cheaply."""

FORMATS = ("csv", "tsv", "parquet", "jsonl", "amazon", "movielens")
DEFAULT_TEXT_COLS = ("title", "brand", "categories", "description")
ON_DUPLICATE = ("error", "first")
