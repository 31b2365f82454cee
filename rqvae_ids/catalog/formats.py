"""Catalog file formats: detection, safe byte-level reading, and the plain table readers.

Every reader returns a `Parsed` table whose cells are all strings ("" = missing),
so validation and text building downstream never meet NaN or nested objects.

Detection when no format is given (the file name is looked at without `.gz`):
  - `u.item` -> movielens (ml-100k)
  - `.csv` -> movielens if the header starts with `movieId`, else csv
  - `.tsv`, `.tab` -> tsv;  `.parquet`, `.pq` -> parquet
  - `.json`, `.jsonl`, `.ndjson` -> the first line is sniffed: a Python-literal dict
    (single quotes; Amazon 2014) or a JSON object with `asin`/`parent_asin`
    (Amazon 2018/2023) -> amazon, any other JSON object -> jsonl
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import pandas as pd

from ..core.errors import UserError
from .options import DEFAULT_TEXT_COLS, FORMATS
from .values import to_text
_SNIFF_BYTES = 1 << 20


@dataclass
class Parsed:
    """A catalog table as read from disk.

    frame: one row per item, every cell a str ("" when missing);
    fmt: the concrete format read (e.g. "csv", "amazon-2014", "movielens-100k");
    default_text_cols: columns used for the item text when the user names none.
    """

    frame: pd.DataFrame
    fmt: str
    default_text_cols: tuple[str, ...] = DEFAULT_TEXT_COLS


def base_name(path: Path) -> str:
    """Lower-case file name without a trailing `.gz`."""
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when the name ends in `.gz`."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_errors() -> tuple[type[BaseException], ...]:
    """What a corrupt (e.g. truncated gzip) file raises while being read."""
    return (OSError, EOFError, zlib.error)


def first_line(path: Path) -> bytes:
    """The first non-blank line (at most 1 MiB of it), stripped; b"" when there is none."""
    try:
        with open_binary(path) as f:
            for line in f:
                if line.strip():
                    return line[:_SNIFF_BYTES].strip()
    except read_errors() as e:
        raise UserError(f"cannot read {path}: {e}") from None
    return b""


def detect_format(path: Path, fmt: str | None) -> str:
    """One of FORMATS: `fmt` when given (validated), else guessed from the name and first line."""
    if fmt is not None:
        fmt = fmt.strip().lower()
        if fmt not in FORMATS:
            raise UserError(f"unknown catalog format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    name = base_name(path)
    suffix = Path(name).suffix
    if name == "u.item":
        return "movielens"
    if suffix == ".csv":
        return "movielens" if first_line(path).lstrip(b"\xef\xbb\xbf").startswith(b"movieId") else "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "amazon" if sniff_amazon(first_line(path)) else "jsonl"
    raise UserError(
        f"cannot tell the format of {path} from its name; pass --format "
        f"({', '.join(FORMATS)})"
    )


def sniff_amazon(line: bytes) -> bool:
    """True when `line` looks like Amazon review metadata (2014 literal or 2018/2023 JSON)."""
    if not line.startswith(b"{"):
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return line.startswith((b"{'", b'{"')) and b"asin" in line  # a Python literal: 2014
    return isinstance(record, dict) and ("asin" in record or "parent_asin" in record)


def check_utf8(path: Path) -> bool:
    """Raise UserError at the first byte that is not UTF-8; return whether the file has content.

    Streams the file (after gunzip) through an incremental decoder, so the offset in the
    message is exact and big files are never held in memory twice.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, has_content = 0, False
    try:
        with open_binary(path) as f:
            while chunk := f.read(1 << 20):
                has_content = has_content or bool(chunk.strip())
                _decode_chunk(decoder, chunk, offset, path)
                offset += len(chunk)
            _decode_chunk(decoder, b"", offset, path, final=True)
    except read_errors() as e:
        raise UserError(f"cannot read {path}: {e}") from None
    return has_content


def _decode_chunk(decoder, chunk: bytes, offset: int, path: Path, final: bool = False) -> None:
    pending = len(decoder.getstate()[0])  # bytes of an unfinished character from the last chunk
    try:
        decoder.decode(chunk, final=final)
    except UnicodeDecodeError as e:
        raise not_utf8(path, offset - pending + e.start, e.object[e.start]) from None


def not_utf8(path: Path, offset: int, byte: int) -> UserError:
    where = " (in the decompressed data)" if path.name.lower().endswith(".gz") else ""
    return UserError(
        f"{path} is not UTF-8: byte 0x{byte:02x} at byte offset {offset}{where}; "
        "re-save it as UTF-8"
    )


def empty_file(path: Path) -> UserError:
    return UserError(f"catalog file {path} is empty")


def read_delimited(path: Path, sep: str, fmt: str) -> Parsed:
    """CSV or TSV with a header row; every cell read as a string."""
    if not check_utf8(path):
        raise empty_file(path)
    try:
        frame = pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig",
            compression="gzip" if path.name.lower().endswith(".gz") else None,
        )
    except pd.errors.EmptyDataError:
        raise empty_file(path) from None
    except (pd.errors.ParserError, ValueError) as e:
        raise UserError(f"cannot parse {path} as {fmt.upper()}: {one_line(e)}") from None
    if frame.empty:
        raise UserError(f"catalog file {path} has a header but no rows")
    return Parsed(frame=frame.astype(object), fmt=fmt)


def read_parquet(path: Path) -> Parsed:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                frame = pd.read_parquet(io.BytesIO(f.read()))
        else:
            frame = pd.read_parquet(path)
    except (*read_errors(), ValueError) as e:  # ArrowInvalid is a ValueError
        raise UserError(f"cannot read {path} as Parquet: {one_line(e)}") from None
    if frame.empty:
        raise UserError(f"catalog file {path} has no rows")
    return Parsed(frame=text_frame(frame), fmt="parquet")


def text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as readable text (lists -> paths/words, None/NaN -> "")."""
    return pd.DataFrame(
        {str(c): [to_text(v, str(c)) for v in frame[c].tolist()] for c in frame.columns},
        dtype=object,
    )


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line) for every non-blank line; UTF-8 checked with offsets."""
    offset = 0
    try:
        with open_binary(path) as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise not_utf8(path, offset + e.start, raw[e.start]) from None
                offset += len(raw)
                if line.strip():
                    yield number, line.lstrip("\ufeff")
    except read_errors() as e:
        raise UserError(f"cannot read {path}: {e}") from None


def read_jsonl(path: Path) -> Parsed:
    """JSON Lines: one object per line; nested values become readable text."""
    records = []
    for number, line in iter_lines(path):
        try:
            record = json.loads(line)
        except ValueError as e:
            raise UserError(f"{path}: line {number} is not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}: line {number} is not a JSON object (JSON Lines needs one object per line)")
        records.append({str(k): to_text(v, str(k)) for k, v in record.items()})
    return Parsed(frame=records_frame(records, path), fmt="jsonl")


def records_frame(records: list[dict[str, str]], path: Path) -> pd.DataFrame:
    """A str-only frame from dict rows; keys missing in a row become ""."""
    if not records:
        raise empty_file(path)
    frame = pd.DataFrame.from_records(records)
    return frame.astype(object).where(frame.notna(), "")


def one_line(error: BaseException) -> str:
    """An exception message on one line (pandas/arrow messages can span several)."""
    return " ".join(str(error).split()) or type(error).__name__
