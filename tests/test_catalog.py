"""Catalog ingestion: every format on tiny fixtures, every bad input, the shared CLI flags."""

from __future__ import annotations

import argparse
import gzip
import json

import pandas as pd
import pytest

from rqvae_ids.catalog import add_catalog_args, catalog_from_args, load_catalog
from rqvae_ids.core.errors import UserError

CSV = (
    "item_id,title,brand,categories,description,price\n"
    "a1,Red Lipstick,Lumiere,Beauty > Makeup > Lipstick,A matte lipstick.,9.99\n"
    'a2,"Soft Cream, 50 ml",,Beauty > Skin Care | Gifts > For Her,,\n'
    "a3,Chef Knife,Ferro,Home > Kitchen,Sharp steel knife,30\n"
)


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return path


def load_error(path, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        load_catalog(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


# --- table formats -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["items.csv", "items.csv.gz"])
def test_csv_default_text_and_categories(tmp_path, name):
    cat = load_catalog(write(tmp_path, name, CSV))
    assert cat.item_ids == ["a1", "a2", "a3"]
    assert cat.texts == [
        "Red Lipstick. Brand: Lumiere. Categories: Beauty > Makeup > Lipstick. A matte lipstick.",
        "Soft Cream, 50 ml. Categories: Beauty > Skin Care | Gifts > For Her",
        "Chef Knife. Brand: Ferro. Categories: Home > Kitchen. Sharp steel knife",
    ]
    assert cat.categories == ["Beauty > Makeup > Lipstick", "Beauty > Skin Care", "Home > Kitchen"]
    assert list(cat.frame["item_id"]) == cat.item_ids and cat.frame.loc[0, "price"] == "9.99"
    assert cat.fmt == "csv" and cat.source == str(tmp_path / name)
    assert cat.text_fields == ("title", "brand", "categories", "description")


def test_csv_keeps_ids_as_written_and_strips_bom(tmp_path):
    path = write(tmp_path, "items.csv", "\ufeffitem_id,title\n007,Agent\n1.50,Price tag\n")
    cat = load_catalog(path)
    assert cat.item_ids == ["007", "1.50"]
    assert cat.categories is None


def test_custom_id_and_text_columns(tmp_path):
    path = write(tmp_path, "items.csv", "sku,name,colour\nx,Mug,Blue\ny,Plate,\n")
    cat = load_catalog(path, id_col="sku", text_cols=["name", "colour"])
    assert cat.item_ids == ["x", "y"]
    assert cat.texts == ["Mug. Colour: Blue", "Plate"]
    assert list(cat.frame["item_id"]) == ["x", "y"]


@pytest.mark.parametrize("name", ["items.tsv", "items.tsv.gz"])
def test_tsv(tmp_path, name):
    cat = load_catalog(write(tmp_path, name, "item_id\ttitle\tcategories\nt1\tTent, 2-Person\tOutdoors > Camping\n"))
    assert cat.fmt == "tsv"
    assert cat.texts == ["Tent, 2-Person. Categories: Outdoors > Camping"]


@pytest.mark.parametrize("name", ["items.parquet", "items.parquet.gz"])
def test_parquet_with_numeric_ids_and_nested_categories(tmp_path, name):
    frame = pd.DataFrame({
        "item_id": [10, 11],
        "title": ["Board Game", None],
        "categories": [[["Toys", "Games"], ["Gifts"]], [["Toys", "Puzzles"]]],
        "price": [12.5, None],
    })
    raw = tmp_path / "raw.parquet"
    frame.to_parquet(raw)
    path = write(tmp_path, name, raw.read_bytes())
    cat = load_catalog(path)
    assert cat.fmt == "parquet"
    assert cat.item_ids == ["10", "11"]
    assert cat.texts == ["Board Game. Categories: Toys > Games | Gifts", "Categories: Toys > Puzzles"]
    assert cat.categories == ["Toys > Games", "Toys > Puzzles"]
    assert cat.frame.loc[1, "price"] == ""


@pytest.mark.parametrize("name", ["items.jsonl", "items.jsonl.gz", "items.ndjson"])
def test_jsonl_nested_values_become_text(tmp_path, name):
    lines = [
        {"item_id": "j1", "title": "Lamp", "categories": ["Home", "Lighting"], "description": ["Warm", "light."]},
        {"item_id": "j2", "title": "Desk", "extra": {"width": 120}},
    ]
    path = write(tmp_path, name, "\n".join(json.dumps(x) for x in lines) + "\n\n")
    cat = load_catalog(path)
    assert cat.fmt == "jsonl"
    assert cat.texts == ["Lamp. Categories: Home > Lighting. Warm light.", "Desk"]
    assert cat.frame.loc[1, "extra"] == "width: 120"
    assert cat.frame.loc[1, "categories"] == ""  # key missing on that line


# --- Amazon review metadata ------------------------------------------------------------

AMAZON_2014 = (
    "{'asin': '0000031852', 'title': 'Girls Ballet Tutu Zebra Hot Pink', 'price': 3.17, "
    "'salesRank': {'Toys & Games': 211836}, 'brand': 'Coxlures', "
    "'categories': [['Sports & Outdoors', 'Other Sports', 'Dance'], ['Clothing', 'Girls']]}\n"
    "{'asin': '0000032034', 'title': \"Adult Ballet Tutu 'Yellow'\", "
    "'categories': [['Beauty', 'Makeup']], 'description': 'Tutu &amp; more'}\n"
)


def test_amazon_2014_python_literals(tmp_path):
    cat = load_catalog(write(tmp_path, "meta_Toys.json.gz", AMAZON_2014))
    assert cat.fmt == "amazon-2014"
    assert cat.item_ids == ["0000031852", "0000032034"]
    assert cat.categories == ["Sports & Outdoors > Other Sports > Dance", "Beauty > Makeup"]
    assert cat.texts[0] == (
        "Girls Ballet Tutu Zebra Hot Pink. Brand: Coxlures. "
        "Categories: Sports & Outdoors > Other Sports > Dance | Clothing > Girls"
    )
    assert cat.texts[1] == "Adult Ballet Tutu 'Yellow'. Categories: Beauty > Makeup. Tutu & more"
    assert cat.frame.loc[0, "price"] == "3.17"


def test_amazon_2018_json_lines(tmp_path):
    record = {
        "asin": "B0001", "title": "Hair Dryer", "brand": "Conair", "main_cat": "All Beauty",
        "category": ["Beauty", "Hair Care", "Styling Tools"],
        "description": ["<b>Fast</b> drying.", "Two heat settings."], "price": "$19.99",
        "feature": ["1875 watts"],
    }
    bare = {"asin": "B0002", "title": "Comb", "main_cat": "All Beauty", "category": []}
    path = write(tmp_path, "meta_All_Beauty.json", json.dumps(record) + "\n" + json.dumps(bare) + "\n")
    cat = load_catalog(path)
    assert cat.fmt == "amazon-2018"
    assert cat.texts[0] == (
        "Hair Dryer. Brand: Conair. Categories: Beauty > Hair Care > Styling Tools. "
        "Fast drying. Two heat settings."
    )
    assert cat.categories == ["Beauty > Hair Care > Styling Tools", "All Beauty"]
    assert cat.frame.loc[0, "features"] == "1875 watts" and cat.frame.loc[0, "price"] == "$19.99"


def test_amazon_2023_parent_asin_and_store(tmp_path):
    record = {
        "main_category": "All Beauty", "title": "Lip Balm", "store": "Burt's Bees",
        "categories": [], "description": [], "features": ["Beeswax"], "parent_asin": "B07P",
        "price": None, "details": {"Brand": "Burt's Bees"},
    }
    cat = load_catalog(write(tmp_path, "meta_All_Beauty.jsonl", json.dumps(record) + "\n"))
    assert cat.fmt == "amazon-2023"
    assert cat.item_ids == ["B07P"]
    assert cat.texts == ["Lip Balm. Brand: Burt's Bees. Categories: All Beauty"]
    assert cat.frame.loc[0, "parent_asin"] == "B07P"


def test_amazon_forced_on_any_file_name(tmp_path):
    cat = load_catalog(write(tmp_path, "dump.txt", AMAZON_2014), fmt="amazon")
    assert cat.fmt == "amazon-2014" and len(cat) == 2


@pytest.mark.parametrize("position", ["first", "second"])
def test_malicious_2014_line_is_rejected_not_executed(tmp_path, position):
    marker = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {marker}')\n"
    good = "{'asin': 'A1', 'title': 'Fine'}\n"
    content = evil + good if position == "first" else good + evil
    message = load_error(write(tmp_path, "meta.json", content), fmt="amazon")
    assert "literal" in message or "JSON" in message
    assert "line 1" in message if position == "first" else "line 2" in message
    assert not marker.exists()


def test_code_inside_a_2014_dict_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    content = "{'asin': 'A1', 'title': 'Fine'}\n" + f"{{'asin': __import__('os').system('touch {marker}')}}\n"
    message = load_error(write(tmp_path, "meta_Toys.json", content))
    assert "line 2" in message and "ast.literal_eval" in message
    assert not marker.exists()


# --- MovieLens ---------------------------------------------------------------------------


def test_movielens_movies_csv_detected_by_header(tmp_path):
    content = (
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children\n"
        '2,"Godfather, The (1972)",Crime|Drama\n'
        "3,Unknown Film (2001),(no genres listed)\n"
    )
    cat = load_catalog(write(tmp_path, "movies.csv", content))
    assert cat.fmt == "movielens-movies"
    assert cat.item_ids == ["1", "2", "3"]
    assert cat.texts == [
        "Toy Story (1995). Genres: Adventure, Animation, Children",
        "Godfather, The (1972). Genres: Crime, Drama",
        "Unknown Film (2001)",
    ]
    assert cat.categories == ["Adventure", "Crime", ""]


def test_movielens_100k_u_item_latin1(tmp_path):
    flags = ["0"] * 19
    flags[3] = flags[4] = "1"  # Animation, Children's
    line1 = "1|Toy Story (1995)|01-Jan-1995||http://imdb/toy|" + "|".join(flags)
    line2 = "2|Café Society (1995)|01-Jan-1995||http://imdb/cafe|" + "|".join(["1"] + ["0"] * 18)
    path = write(tmp_path, "u.item", (line1 + "\n" + line2 + "\n").encode("latin-1"))
    cat = load_catalog(path)
    assert cat.fmt == "movielens-100k"
    assert cat.texts == ["Toy Story (1995). Genres: Animation, Children's", "Café Society (1995)"]
    assert cat.categories == ["Animation", ""]
    renamed = write(tmp_path, "movies_100k.txt", path.read_bytes())
    assert load_catalog(renamed, fmt="movielens").item_ids == ["1", "2"]


def test_u_item_with_wrong_field_count(tmp_path):
    message = load_error(write(tmp_path, "u.item", "1|Toy Story|01-Jan-1995\n"))
    assert "line 1" in message and "24" in message


# --- templates -----------------------------------------------------------------------


def test_template_fills_columns_and_blanks_missing(tmp_path):
    path = write(tmp_path, "items.csv", CSV)
    cat = load_catalog(path, template="{title}. Brand: {brand}. {categories}")
    assert cat.texts[0] == "Red Lipstick. Brand: Lumiere. Beauty > Makeup > Lipstick"
    assert cat.texts[1] == "Soft Cream, 50 ml. Brand: . Beauty > Skin Care | Gifts > For Her"
    assert cat.text_fields == ("title", "brand", "categories")
    short = load_catalog(path, template="{title:.4} costs {price!r}")
    assert short.texts == ["Red costs '9.99'", "Soft costs ''", "Chef costs '30'"]  # whitespace squashed


def test_template_unknown_placeholder_named(tmp_path):
    message = load_error(write(tmp_path, "items.csv", CSV), template="{title} by {maker} in {colour}")
    assert "{colour}" in message and "{maker}" in message and "item_id" in message


@pytest.mark.parametrize("template", ["no placeholders", "{}", "{0}", "{title"])
def test_bad_templates(tmp_path, template):
    assert "template" in load_error(write(tmp_path, "items.csv", CSV), template=template)


def test_template_empty_when_all_fields_blank(tmp_path):
    path = write(tmp_path, "items.csv", "item_id,title,brand\na,,\nb,Mug,\n")
    message = load_error(path, template="{title} by {brand}")
    assert "1 of 2" in message and "'a'" in message


# --- bad input ---------------------------------------------------------------------------


def test_missing_id_column_names_columns_found(tmp_path):
    message = load_error(write(tmp_path, "items.csv", "sku,title\nx,Mug\n"))
    assert "'item_id'" in message and "sku, title" in message and "--id-col" in message


def test_blank_id_is_an_error(tmp_path):
    assert "empty 'item_id'" in load_error(write(tmp_path, "items.csv", "item_id,title\na,Mug\n ,Cup\n"))


def test_duplicate_ids_error_and_keep_first(tmp_path):
    path = write(tmp_path, "items.csv", "item_id,title\na,First\nb,Bee\na,Second\nc,Sea\nb,Again\na,Third\n")
    message = load_error(path)
    assert "2 item id(s)" in message and "'a' x3" in message and "'b' x2" in message
    assert "--on-duplicate first" in message
    cat = load_catalog(path, on_duplicate="first")
    assert cat.item_ids == ["a", "b", "c"] and cat.texts == ["First", "Bee", "Sea"]
    assert cat.dropped_duplicates == 3
    assert "on_duplicate" in load_error(path, on_duplicate="last")


def test_many_duplicates_are_abbreviated(tmp_path):
    rows = "".join(f"id{i},x\nid{i},y\n" for i in range(8))
    message = load_error(write(tmp_path, "items.csv", "item_id,title\n" + rows))
    assert "8 item id(s)" in message and "and 3 more" in message and "id7" not in message


def test_empty_text_error_counts_and_drop(tmp_path):
    path = write(tmp_path, "items.csv", "item_id,title,description,price\na,,,1\nb,Mug,,2\nc,  ,,3\nd,,Nice cup,4\n")
    message = load_error(path)
    assert "2 of 4" in message and "'a'" in message and "'c'" in message and "--drop-empty" in message
    cat = load_catalog(path, drop_empty=True)
    assert cat.item_ids == ["b", "d"] and cat.texts == ["Mug", "Nice cup"] and cat.dropped_empty == 2
    assert list(cat.frame["price"]) == ["2", "4"]


def test_all_empty_text_fails_even_with_drop(tmp_path):
    assert "every item" in load_error(write(tmp_path, "items.csv", "item_id,title\na,\n"), drop_empty=True)


def test_no_text_columns(tmp_path):
    path = write(tmp_path, "items.csv", "item_id,colour\na,blue\n")
    assert "--text-cols" in load_error(path)
    assert "unknown text column(s) size" in load_error(path, text_cols=["colour", "size"])
    assert "not both" in load_error(path, text_cols=["colour"], template="{colour}")


@pytest.mark.parametrize("name", ["items.csv", "items.csv.gz", "items.jsonl"])
def test_non_utf8_reports_file_and_byte_offset(tmp_path, name):
    head = "item_id,title\na,Caf" if name.endswith(("csv", "gz")) else '{"item_id": "a", "title": "Caf'
    tail = "\n" if name != "items.jsonl" else '"}\n'
    path = write(tmp_path, name, head.encode() + b"\xe9 noir" + tail.encode())
    message = load_error(path)
    assert str(path) in message and f"byte offset {len(head)}" in message and "0xe9" in message
    assert ("decompressed" in message) == name.endswith(".gz")


def test_non_utf8_offset_across_read_chunks(tmp_path):
    # A 2-byte character split by the 1 MiB read boundary, then a bad byte later.
    prefix = b"item_id,title\n" + b"a," + b"x" * ((1 << 20) - 17) + "é".encode() + b"\n"
    path = write(tmp_path, "items.csv", prefix + b"b,\xff\n")
    assert f"byte offset {len(prefix) + 2}" in load_error(path)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("items.csv", "", "is empty"),
        ("items.csv", "\n  \n", "is empty"),
        ("items.csv", "item_id,title\n", "no rows"),
        ("items.csv.gz", "", "is empty"),
        ("items.jsonl", "\n\n", "is empty"),
        ("meta.json", "", "is empty"),
        ("u.item", "\n", "is empty"),
    ],
)
def test_empty_files(tmp_path, name, content, expected):
    assert expected in load_error(write(tmp_path, name, content))


def test_unknown_format(tmp_path):
    path = write(tmp_path, "items.xlsx", "whatever")
    message = load_error(path)
    assert "cannot tell the format" in message and "--format" in message
    assert "unknown catalog format 'excel'" in load_error(path, fmt="excel")


def test_missing_file(tmp_path):
    assert "catalog file not found" in load_error(tmp_path / "nope.csv")


def test_corrupt_inputs(tmp_path):
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    assert "cannot read" in load_error(tmp_path / "bad.csv.gz")
    assert "Parquet" in load_error(write(tmp_path, "items.parquet", b"PAR1 nope"))
    assert "line 2 is not valid JSON" in load_error(write(tmp_path, "items.jsonl", '{"item_id": 1}\n{oops\n'))
    assert "not a JSON object" in load_error(write(tmp_path, "items.jsonl", "[1, 2]\n"))
    assert "cannot parse" in load_error(write(tmp_path, "ragged.csv", "item_id,title\na,x\nb,y,extra,more\n"))


def test_failed_load_writes_nothing(tmp_path):
    path = write(tmp_path, "items.csv", "item_id,title\na,x\na,y\n")
    load_error(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv"]


# --- shared CLI flags ----------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_catalog_args(parser)
    return parser.parse_args(argv)


def test_cli_flags_map_onto_load_catalog(tmp_path, capsys):
    path = write(tmp_path, "items.txt", "sku\tname\tnote\nx\tMug\t\ny\t\t\nx\tDup\t\n")
    args = parse(["--catalog", str(path), "--format", "tsv", "--id-col", "sku", "--text-cols", "name, note",
                  "--on-duplicate", "first", "--drop-empty"])
    cat = catalog_from_args(args)
    assert cat.item_ids == ["x"] and cat.texts == ["Mug"]
    err = capsys.readouterr().err
    assert "dropped 1 row(s)" in err and "dropped 1 item(s) with empty text" in err


def test_cli_flag_errors(tmp_path):
    path = write(tmp_path, "items.csv", CSV)
    with pytest.raises(UserError, match="not both"):
        catalog_from_args(parse(["--catalog", str(path), "--text-cols", "title", "--template", "{title}"]))
    with pytest.raises(UserError, match="names no column"):
        catalog_from_args(parse(["--catalog", str(path), "--text-cols", " , "]))
    with pytest.raises(SystemExit):
        parse([])  # --catalog is required
    assert catalog_from_args(parse(["--catalog", str(path), "--template", "{title}"])).texts[2] == "Chef Knife"


# --- real data ---------------------------------------------------------------------------------


def test_demo_catalog_loads(tmp_path):
    from pathlib import Path

    cat = load_catalog(Path(__file__).resolve().parents[1] / "data" / "demo" / "items.csv")
    assert len(cat) == 5000 and all(cat.texts) and cat.categories is not None
    assert all(c.count(" > ") == 2 for c in cat.categories)


def test_amazon_toys_loads_with_defaults(shared_data):
    cat = load_catalog(shared_data / "amazon-toys" / "items.csv")  # its speed: bench/, not a test
    assert len(cat) == 11924 and cat.dropped_empty == 0
    untitled = (cat.frame["title"] == "").sum()
    assert untitled == 59
    assert all(cat.texts) and all(cat.categories)
