"""`load_catalog`: any supported file -> validated item ids, item texts and categories.

Validation happens before anything is returned, so a command that loads a bad
catalog fails with one UserError line and writes nothing.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.errors import UserError
from ..core.io import require_file
from .amazon import read_amazon
from .formats import Parsed, detect_format, read_delimited, read_jsonl, read_parquet
from .movielens import read_movielens
from .options import ON_DUPLICATE
from .values import first_path, squash
_SHOW = 5  # how many offending ids an error message quotes
# Columns whose value reads well on its own in the default text (as does the first
# column, the item's name); the rest get "Label: value".
_UNLABELLED = frozenset({"title", "name", "description"})


@dataclass
class Catalog:
    """Items in catalog order (the order every later table keeps).

    item_ids: (N,) str; texts: (N,) str, the text that gets embedded;
    categories: (N,) first category path per item ("A > B > C", "" when unknown),
      None when the source has no category information at all;
    frame: the parsed rows (all str cells) with an `item_id` column, aligned with item_ids;
    source: the file read; fmt: the concrete format ("csv", "amazon-2014", ...);
    dropped_empty / dropped_duplicates: rows removed by drop_empty / on_duplicate="first".
    """

    item_ids: list[str]
    texts: list[str]
    categories: list[str] | None
    frame: pd.DataFrame
    source: str
    dropped_empty: int = 0
    dropped_duplicates: int = 0
    fmt: str = ""
    text_fields: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.item_ids)


def load_catalog(
    path: str | os.PathLike,
    fmt: str | None = None,
    id_col: str = "item_id",
    text_cols: list[str] | tuple[str, ...] | None = None,
    template: str | None = None,
    on_duplicate: str = "error",
    drop_empty: bool = False,
) -> Catalog:
    """Read and validate a catalog.

    fmt: one of FORMATS, or None to detect it (see `rqvae_ids.catalog.formats`).
    text_cols: columns joined into the item text ("Title. Brand: X. Categories: A > B.
      Description"); default: the present ones of title, brand, categories, description
      (title, genres for MovieLens). template: instead, a format string such as
      "{title}. Brand: {brand}. {categories}" (missing values -> "").
    on_duplicate: "error", or "first" to keep the first row of each repeated id.
    drop_empty: drop items whose text fields are all empty instead of failing.
    Raises UserError for every problem a user can fix.
    """
    p = require_file(path, "catalog file")
    if on_duplicate not in ON_DUPLICATE:
        raise UserError(f"on_duplicate must be one of {list(ON_DUPLICATE)}, got {on_duplicate!r}")
    if text_cols is not None and template is not None:
        raise UserError("give either text columns or a template, not both")
    if p.stat().st_size == 0:
        raise UserError(f"catalog file {p} is empty")
    parsed = read_table(p, detect_format(p, fmt))
    frame = parsed.frame
    ids = item_id_column(frame, id_col, p)
    frame, ids, dropped_duplicates = resolve_duplicates(frame, ids, on_duplicate, p)
    if template is not None:
        fields_used = template_fields(template, frame, p)
        texts = render_template(frame, template)
    else:
        fields_used = text_columns(frame, text_cols, parsed.default_text_cols, p)
        texts = render_default(frame, fields_used)
    empty = text_is_empty(frame, fields_used)
    frame, ids, texts, dropped_empty = handle_empty(frame, ids, texts, empty, drop_empty, fields_used, p)
    frame = frame.assign(item_id=ids).reset_index(drop=True)
    return Catalog(
        item_ids=ids,
        texts=texts,
        categories=categories_of(frame),
        frame=frame,
        source=str(p),
        dropped_empty=dropped_empty,
        dropped_duplicates=dropped_duplicates,
        fmt=parsed.fmt,
        text_fields=tuple(fields_used),
    )


def read_table(path: Path, fmt: str) -> Parsed:
    readers = {
        "csv": lambda: read_delimited(path, ",", "csv"),
        "tsv": lambda: read_delimited(path, "\t", "tsv"),
        "parquet": lambda: read_parquet(path),
        "jsonl": lambda: read_jsonl(path),
        "amazon": lambda: read_amazon(path),
        "movielens": lambda: read_movielens(path),
    }
    return readers[fmt]()


def item_id_column(frame: pd.DataFrame, id_col: str, path: Path) -> list[str]:
    """The ids as str, exactly as written (interactions files match them verbatim);
    a missing column or a blank id is an error."""
    if id_col not in frame.columns:
        raise UserError(
            f"{path}: no id column {id_col!r}; columns found: {', '.join(map(str, frame.columns))} "
            "(choose one with --id-col)"
        )
    ids = [str(v) for v in frame[id_col].tolist()]
    blank = [i for i, v in enumerate(ids) if not v.strip()]
    if blank:
        raise UserError(
            f"{path}: {len(blank)} row(s) have an empty {id_col!r} (first at data row {blank[0] + 1})"
        )
    return ids


def resolve_duplicates(
    frame: pd.DataFrame, ids: list[str], on_duplicate: str, path: Path
) -> tuple[pd.DataFrame, list[str], int]:
    """Fail on repeated ids, or keep the first row of each when on_duplicate == "first"."""
    repeated = pd.Series(ids).duplicated(keep="first").to_numpy()
    if not repeated.any():
        return frame, ids, 0
    if on_duplicate == "error":
        counts = pd.Series(ids).value_counts(sort=False)
        counts = counts[counts > 1]
        shown = ", ".join(f"{k!r} x{v}" for k, v in list(counts.items())[:_SHOW])
        more = f" and {len(counts) - _SHOW} more" if len(counts) > _SHOW else ""
        raise UserError(
            f"{path}: {len(counts)} item id(s) appear more than once: {shown}{more} "
            "(use --on-duplicate first to keep the first row of each)"
        )
    keep = ~repeated
    return frame[keep], [i for i, k in zip(ids, keep) if k], int(repeated.sum())


def text_columns(frame: pd.DataFrame, text_cols, defaults: tuple[str, ...], path: Path) -> list[str]:
    """The requested text columns (all must exist) or the present default ones."""
    if text_cols is None:
        present = [c for c in defaults if c in frame.columns]
        if not present:
            raise UserError(
                f"{path}: none of the default text columns ({', '.join(defaults)}) found; columns: "
                f"{', '.join(map(str, frame.columns))} (choose with --text-cols or --template)"
            )
        return present
    cols = [c.strip() for c in text_cols if c and c.strip()]
    if not cols:
        raise UserError("no text columns given")
    unknown = [c for c in cols if c not in frame.columns]
    if unknown:
        raise UserError(
            f"{path}: unknown text column(s) {', '.join(unknown)}; columns found: "
            f"{', '.join(map(str, frame.columns))}"
        )
    return cols


def render_default(frame: pd.DataFrame, cols: list[str]) -> list[str]:
    """Non-empty fields in column order: 'Title. Brand: X. Categories: A > B. Description'."""
    labels = [None if i == 0 or c in _UNLABELLED else c.replace("_", " ").capitalize() for i, c in enumerate(cols)]
    columns = [frame[c].tolist() for c in cols]
    texts = []
    for values in zip(*columns):
        pieces = []
        for label, value in zip(labels, values):
            value = squash(str(value))
            if value:
                pieces.append(f"{label}: {value}" if label else value)
        texts.append(join_sentences(pieces))
    return texts


def join_sentences(pieces: list[str]) -> str:
    """Join with '. ' unless a piece already ends a sentence."""
    out = ""
    for piece in pieces:
        if out:
            out += " " if out[-1] in ".!?" else ". "
        out += piece
    return out


def template_fields(template: str, frame: pd.DataFrame, path: Path) -> list[str]:
    """The placeholders of `template`; unknown ones are an error naming them."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise UserError(f"bad template {template!r}: {e}") from None
    if "" in names or any(n.isdigit() for n in names):
        raise UserError(f"bad template {template!r}: placeholders must name columns, e.g. {{title}}")
    if not names:
        raise UserError(f"template {template!r} has no {{column}} placeholders: every item would get the same text")
    unknown = sorted({n for n in names if n not in frame.columns})
    if unknown:
        raise UserError(
            f"template placeholder(s) {', '.join('{' + n + '}' for n in unknown)} are not columns of {path}; "
            f"columns found: {', '.join(map(str, frame.columns))}"
        )
    return list(dict.fromkeys(names))


def render_template(frame: pd.DataFrame, template: str) -> list[str]:
    """Fill the template row by row; a format spec (e.g. {title:.80}) applies to the text."""
    parts = list(string.Formatter().parse(template))
    columns = {name: frame[name].tolist() for _, name, _, _ in parts if name is not None}
    texts = []
    for row in range(len(frame)):
        out = []
        for literal, name, spec, conversion in parts:
            out.append(literal)
            if name is not None:
                out.append(_format(str(columns[name][row]), conversion, spec or "", template))
        texts.append(squash("".join(out)))
    return texts


def _format(value: str, conversion: str | None, spec: str, template: str) -> str:
    """`{name!r:spec}` semantics of str.format, applied to the cell text."""
    converters = {None: str, "s": str, "r": repr, "a": ascii}
    try:
        return format(converters[conversion](value), spec)
    except ValueError as e:
        raise UserError(f"bad template {template!r}: {e}") from None


def text_is_empty(frame: pd.DataFrame, cols: list[str]) -> list[bool]:
    """True where every field the text draws on is blank (template literals alone do not count)."""
    blank = [[not str(v).strip() for v in frame[c].tolist()] for c in cols]
    return [all(flags) for flags in zip(*blank)]


def handle_empty(
    frame: pd.DataFrame, ids: list[str], texts: list[str], empty: list[bool],
    drop_empty: bool, cols: list[str], path: Path,
) -> tuple[pd.DataFrame, list[str], list[str], int]:
    """Fail on items with no text, or drop them when drop_empty; returns the kept rows and the count."""
    n_empty = sum(empty)
    if not n_empty:
        return frame, ids, texts, 0
    if not drop_empty:
        examples = ", ".join([repr(i) for i, e in zip(ids, empty) if e][:_SHOW])
        raise UserError(
            f"{path}: {n_empty} of {len(ids)} item(s) have empty text (all of {', '.join(cols)} blank), "
            f"e.g. {examples} (use --drop-empty to drop them, or other --text-cols/--template)"
        )
    if n_empty == len(ids):
        raise UserError(f"{path}: every item has empty text (all of {', '.join(cols)} blank)")
    keep = [not e for e in empty]
    return (
        frame[pd.Series(keep, index=frame.index)],
        [i for i, k in zip(ids, keep) if k],
        [t for t, k in zip(texts, keep) if k],
        n_empty,
    )


def categories_of(frame: pd.DataFrame) -> list[str] | None:
    """First category path per item, or None when the source carries no categories."""
    if "categories" not in frame.columns:
        return None
    paths = [first_path(str(v)) for v in frame["categories"].tolist()]
    return paths if any(paths) else None
