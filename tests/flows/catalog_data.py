"""Small synthetic catalogs and interaction logs for the flow tests (written by the tests)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

TOPS = {
    "Toys": ["puzzle", "doll", "kite", "robot", "train set"],
    "Kitchen": ["kettle", "pan", "knife", "blender", "mug"],
    "Garden": ["hose", "rake", "planter", "shovel", "sprinkler"],
    "Books": ["novel", "atlas", "cookbook", "comic", "diary"],
}
COLOURS = ["red", "blue", "green", "black", "white", "yellow"]
BRANDS = ["Acme", "Nordic", "Zenith", "Orbit", "Maple", "Harbor"]
SIZES = ["small", "large", "compact", "family size", "travel"]


def items(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    tops = list(TOPS)
    for i in range(n):
        top = tops[i % len(tops)]
        noun = TOPS[top][int(rng.integers(len(TOPS[top])))]
        colour, brand, size = (str(rng.choice(v)) for v in (COLOURS, BRANDS, SIZES))
        rows.append(
            {
                "item_id": f"I{i:05d}",
                "title": f"{brand} {size} {colour} {noun} model {i}",
                "brand": brand,
                "categories": f"{top} > {noun.title()}",
                "description": f"A {size} {noun} in {colour} by {brand}.",
            }
        )
    return rows


def write_items(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_interactions(path: Path, item_rows: list[dict[str, str]], users: int = 120, seed: int = 0) -> Path:
    """Users walk mostly within one top category, so next-item retrieval has signal."""
    rng = np.random.default_rng(seed)
    by_top: dict[str, list[str]] = {}
    for row in item_rows:
        by_top.setdefault(row["categories"].split(" > ")[0], []).append(row["item_id"])
    tops = list(by_top)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "timestamp"])
        for u in range(users):
            top = tops[u % len(tops)]
            for t in range(int(rng.integers(5, 12))):
                pool = by_top[top] if rng.random() < 0.8 else by_top[tops[int(rng.integers(len(tops)))]]
                writer.writerow([f"U{u:04d}", pool[int(rng.integers(len(pool)))], 1_600_000_000 + t * 60])
    return path
