"""MovieLens movie lists: `movies.csv` (ml-latest, ml-25m, ...) and ml-100k `u.item`.

Both become `item_id` (the movie id), `title`, `genres` ("Adventure, Animation")
and `categories` (one single-level path per genre, "Adventure | Animation", so the
first genre is the item's category). The item text defaults to title + genres:
"Toy Story (1995). Genres: Adventure, Animation, Children".
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from .formats import Parsed, base_name, first_line, open_binary, read_delimited, read_errors, records_frame
from .values import PATHS_SEP, squash

TEXT_COLS = ("title", "genres")
NO_GENRES = "(no genres listed)"
# ml-100k u.genre, in the order of the 19 flag columns of u.item.
U_ITEM_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
U_ITEM_FIELDS = 5 + len(U_ITEM_GENRES)


def read_movielens(path: Path) -> Parsed:
    """`movies.csv` when the header starts with movieId, else ml-100k `u.item`."""
    if first_line(path).lstrip(b"\xef\xbb\xbf").startswith(b"movieId"):
        return read_movies_csv(path)
    if base_name(path) == "u.item" or b"|" in first_line(path):
        return read_u_item(path)
    raise UserError(f"{path} is neither a MovieLens movies.csv (movieId,title,genres) nor a u.item file")


def read_movies_csv(path: Path) -> Parsed:
    frame = read_delimited(path, ",", "movielens").frame
    missing = {"movieId", "title", "genres"} - set(frame.columns)
    if missing:
        raise UserError(f"{path}: MovieLens movies.csv needs movieId,title,genres; missing {sorted(missing)}")
    genres = [_genre_list(g.split("|")) for g in frame["genres"]]
    frame = frame.assign(
        item_id=frame["movieId"],
        genres=[", ".join(g) for g in genres],
        categories=[PATHS_SEP.join(g) for g in genres],
    )
    return Parsed(frame=frame, fmt="movielens-movies", default_text_cols=TEXT_COLS)


def read_u_item(path: Path) -> Parsed:
    """ml-100k `u.item`: latin-1, pipe-separated, 5 fields then 19 genre flags, no header."""
    records = []
    try:
        with open_binary(path) as f:
            data = f.read().decode("latin-1")  # every byte is valid latin-1: no offsets to report
    except read_errors() as e:
        raise UserError(f"cannot read {path}: {e}") from None
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            records.append(_u_item_record(line, number, path))
    frame = records_frame(records, path)
    return Parsed(frame=frame, fmt="movielens-100k", default_text_cols=TEXT_COLS)


def _u_item_record(line: str, number: int, path: Path) -> dict[str, str]:
    fields = line.split("|")
    if len(fields) != U_ITEM_FIELDS:
        raise UserError(f"{path}: line {number} has {len(fields)} '|'-separated fields, u.item has {U_ITEM_FIELDS}")
    flags = fields[5:]
    genres = _genre_list([g for g, flag in zip(U_ITEM_GENRES, flags) if flag.strip() == "1"])
    return {
        "item_id": fields[0].strip(),
        "title": squash(fields[1]),
        "release_date": fields[2].strip(),
        "imdb_url": fields[4].strip(),
        "genres": ", ".join(genres),
        "categories": PATHS_SEP.join(genres),
    }


def _genre_list(genres: list[str]) -> list[str]:
    return [g.strip() for g in genres if g.strip() and g.strip() not in (NO_GENRES, "unknown")]

