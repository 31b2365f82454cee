"""The shipped demo catalog: reproducible byte for byte, and shaped as documented."""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def load_generator():
    spec = importlib.util.spec_from_file_location("demo_generate", DEMO / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def items() -> list[dict]:
    with open(DEMO / "items.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sequences() -> dict[str, list[tuple[int, str]]]:
    """user -> [(timestamp, item_id)] in file order."""
    out: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with open(DEMO / "interactions.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            out[row["user_id"]].append((int(row["timestamp"]), row["item_id"]))
    return out


def test_generator_recreates_shipped_files_byte_for_byte(tmp_path):
    stats = load_generator().generate(tmp_path)
    for name in ("items.csv", "interactions.csv"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), f"{name} differs from a fresh run"
    assert stats["items"] == 5000 and stats["users"] == 5000


def test_other_seed_gives_other_data(tmp_path):
    load_generator().generate(tmp_path, seed=1)
    assert (tmp_path / "items.csv").read_bytes() != (DEMO / "items.csv").read_bytes()


def test_files_stay_small():
    assert (DEMO / "items.csv").stat().st_size < 2_000_000
    assert (DEMO / "interactions.csv").stat().st_size < 4_000_000


def test_items_have_three_level_taxonomy_and_full_text(items):
    assert list(items[0]) == ["item_id", "title", "brand", "categories", "description", "price"]
    assert len(items) == 5000
    assert len({it["item_id"] for it in items}) == len(items)
    paths = [it["categories"].split(" > ") for it in items]
    assert all(len(p) == 3 for p in paths)
    assert len({p[0] for p in paths}) == 10
    assert 60 <= len({tuple(p) for p in paths}) <= 120
    assert all(it["title"] and it["brand"] for it in items)
    assert all(float(it["price"]) > 0 for it in items)


def test_sequences_are_chronological_and_within_bounds(items, sequences):
    catalog = {it["item_id"] for it in items}
    assert len(sequences) == 5000
    for seq in sequences.values():
        assert 5 <= len(seq) <= 50
        times = [t for t, _ in seq]
        assert all(a < b for a, b in zip(times, times[1:]))
        assert len({i for _, i in seq}) == len(seq)  # no repeats within a user
        assert {i for _, i in seq} <= catalog


def test_next_item_follows_the_taxonomy_but_not_always(items, sequences):
    """Learnable but not trivial: the last item often shares the previous item's leaf."""
    leaf = {it["item_id"]: it["categories"] for it in items}
    same = [leaf[seq[-1][1]] == leaf[seq[-2][1]] for seq in sequences.values()]
    share = sum(same) / len(same)
    assert 0.3 < share < 0.7
