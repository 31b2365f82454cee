"""Amazon review metadata (McAuley lab): the 2014, 2018 and 2023 releases.

- 2014 (`meta_<Category>.json.gz`): one Python-literal dict per line, e.g.
  `{'asin': 'B00...', 'title': ..., 'categories': [['Beauty', 'Makeup']], 'brand': ...}`.
  Parsed with `ast.literal_eval`, which only builds literals: a line holding code
  (`__import__('os').system(...)`) is rejected, never executed.
- 2018 (`meta_<Category>.json.gz`): JSON lines with `asin`, `title`, `brand`,
  `category` (one path as a list), `description` (list of paragraphs), `main_cat`, `price`.
- 2023 (`meta_<Category>.jsonl`): JSON lines with `parent_asin`, `title`, `store`,
  `categories` (one path as a list, often empty), `main_category`, `description`,
  `features` (lists), `price`.

All become one table: `item_id` (parent_asin, else asin), `title`, `brand`,
`categories` ("A > B > C", several paths joined by " | "; `main_cat` when there is
no path), `description`, `price`, `features`, plus the raw `asin`/`parent_asin`.
HTML tags and entities in the text fields are cleaned.
"""

from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path
from typing import Any, Callable

from ..core.errors import UserError
from .formats import Parsed, iter_lines, records_frame
from .values import clean_markup, to_text

TEXT_FIELDS = ("title", "brand", "categories", "description", "features")


def read_amazon(path: Path) -> Parsed:
    """Read any of the three releases; the dialect is fixed by the first line."""
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise UserError(f"catalog file {path} is empty")
    parse = _pick_parser(first[1])
    records = []
    release = None
    for number, line in itertools.chain([first], lines):
        raw = parse(line, number, path)
        release = release or _release(raw, parse)
        records.append(normalise(raw))
    return Parsed(frame=records_frame(records, path), fmt=f"amazon-{release}")


def _pick_parser(line: str) -> Callable[[str, int, Path], dict]:
    """JSON for 2018/2023 files; Python literals for 2014 files (JSON fails on their quotes)."""
    try:
        json.loads(line)
    except ValueError:
        return parse_literal_line
    return parse_json_line


def parse_json_line(line: str, number: int, path: Path) -> dict:
    try:
        record = json.loads(line)
    except ValueError as e:
        raise UserError(f"{path}: line {number} is not valid JSON ({e.msg})") from None
    return _require_dict(record, number, path)


def parse_literal_line(line: str, number: int, path: Path) -> dict:
    """One 2014 line via ast.literal_eval: literals only, code is an error and never runs."""
    try:
        record = ast.literal_eval(line.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UserError(
            f"{path}: line {number} is not a Python literal dict (Amazon 2014 metadata is "
            f"read with ast.literal_eval; code is never evaluated): {line.strip()[:60]!r}"
        ) from None
    return _require_dict(record, number, path)


def _require_dict(record: Any, number: int, path: Path) -> dict:
    if not isinstance(record, dict):
        raise UserError(f"{path}: line {number} is not a dict/object but a {type(record).__name__}")
    return record


def _release(raw: dict, parse) -> str:
    if parse is parse_literal_line:
        return "2014"
    return "2023" if ("parent_asin" in raw or "main_category" in raw) else "2018"


def normalise(raw: dict) -> dict[str, str]:
    """One metadata record of any release as the common text row."""
    row = {
        "item_id": to_text(raw.get("parent_asin")) or to_text(raw.get("asin")),
        "title": to_text(raw.get("title")),
        "brand": to_text(raw.get("brand")) or to_text(raw.get("store")),
        "categories": _categories(raw),
        "description": to_text(raw.get("description")),
        "price": to_text(raw.get("price")),
        "features": to_text(raw.get("features")) or to_text(raw.get("feature")),
    }
    for key in TEXT_FIELDS:
        row[key] = clean_markup(row[key])
    for key in ("asin", "parent_asin"):
        if key in raw:
            row[key] = to_text(raw[key])
    return row


def _categories(raw: dict) -> str:
    """2014 list of paths, 2018 `category` path, 2023 `categories` path, else the main category."""
    for key in ("categories", "category"):
        value = raw.get(key)
        if value:
            return to_text(value, "categories")
    return to_text(raw.get("main_cat")) or to_text(raw.get("main_category"))
