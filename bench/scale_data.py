"""A synthetic catalog of N distinct, realistic item texts and power-law interactions (bench/scale.py).

Texts recombine the demo generator's vocabulary (data/demo/generate.py: 10 top categories,
30 subcategories, 88 leaves, brands, adjectives, qualifiers, product nouns, variants,
features and uses). An item is one combination inside its leaf:

    title        "<brand> <adjective> <qualifier> <noun>, <variant>"
    description  "<adjective> <noun> by <brand>. <feature a>. <feature b>. Great for <use>."

drawn without replacement from the leaf's combinations (8 brands x 8 adjectives x 5
qualifiers x 2-3 nouns x 6 variants x 30 ordered feature pairs x 4 uses, 0.46-0.69 M per
leaf, 55 M in all), so no two items share a text (checked). Leaf sizes are lognormal, as in
the demo.

Interactions: N/2 users, sequence lengths 5 + exponential(mean 10) capped at 50 (the demo's
shape), items drawn from a power law of popularity (Zipf exponent `ALPHA` over a random rank
order); each user has a favourite leaf, and half of a user's items come from it (so the
collaborative signal and next-item retrieval have something to learn), the rest from the
whole catalog. Timestamps increase along each sequence. No repeats within a user.

Everything is vectorised numpy (1 M items + 7.5 M interactions in about a minute) and seeded:
the same N and seed give the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data" / "demo"))
import generate as demo  # noqa: E402  (the demo generator's vocabulary)

ALPHA = 0.9  # Zipf exponent of item popularity
FAVOURITE_SHARE = 0.5  # share of a user's items drawn from their favourite leaf
MEAN_EXTRA_LENGTH, MIN_SEQ, MAX_SEQ = 10.0, 5, 50
USERS_PER_ITEM = 0.5


def _leaf_vocab(leaf) -> dict[str, list[str]]:
    spec = demo.TAXONOMY[leaf.top]
    pairs = [f"{a}. {b}" for a in spec["features"] for b in spec["features"] if a != b]
    return {"brand": spec["brands"], "adjective": spec["adjectives"], "qualifier": leaf.qualifiers,
            "noun": leaf.nouns, "variant": spec["variants"], "features": pairs, "use": spec["uses"]}


def _combinations(vocab: dict[str, list[str]], picks: np.ndarray) -> dict[str, np.ndarray]:
    """Mixed-radix decoding of combination numbers into one index per vocabulary slot."""
    out = {}
    for slot, words in vocab.items():
        out[slot] = picks % len(words)
        picks = picks // len(words)
    return out


def _leaf_items(rng: np.random.Generator, leaf, size: int) -> pd.DataFrame:
    vocab = _leaf_vocab(leaf)
    space = int(np.prod([len(v) for v in vocab.values()]))
    if size > space:
        raise ValueError(f"leaf {leaf.path}: {size} items but only {space} distinct texts")
    idx = _combinations(vocab, rng.choice(space, size=size, replace=False))
    w = {slot: np.asarray(vocab[slot], dtype=object)[idx[slot]] for slot in vocab}
    title = w["brand"] + " " + w["adjective"] + " " + w["qualifier"] + " " + w["noun"] + ", " + w["variant"]
    lower = np.asarray([n.lower() for n in vocab["noun"]], dtype=object)[idx["noun"]]
    description = (w["adjective"] + " " + lower + " by " + w["brand"] + ". " + w["features"] + ". Great for "
                   + w["use"] + ".")
    price = demo.TAXONOMY[leaf.top]["price"] * np.exp(0.35 * rng.standard_normal(size))
    return pd.DataFrame({"title": title, "brand": w["brand"], "categories": leaf.path,
                         "description": description, "price": np.round(np.maximum(price, 0.99), 2)})


def make_items(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(items in shuffled file order with item_id, the leaf index of each row)."""
    rng = np.random.default_rng(seed)
    leaves = demo.list_leaves()
    weights = rng.lognormal(0.0, 0.5, size=len(leaves))
    sizes = np.floor(n * weights / weights.sum()).astype(int)
    sizes[: n - int(sizes.sum())] += 1
    parts = [_leaf_items(rng, leaf, int(s)) for leaf, s in zip(leaves, sizes)]
    leaf_of = np.repeat(np.arange(len(leaves)), sizes)
    items = pd.concat(parts, ignore_index=True)
    order = rng.permutation(n)  # the file order must not leak the taxonomy
    items, leaf_of = items.iloc[order].reset_index(drop=True), leaf_of[order]
    items.insert(0, "item_id", [f"SC{i:08d}" for i in range(n)])
    return items, leaf_of


def make_interactions(leaf_of: np.ndarray, seed: int) -> pd.DataFrame:
    """user_id, item (catalog row), timestamp: N/2 users, power-law popularity, a favourite leaf each."""
    rng = np.random.default_rng(seed + 1)
    n = len(leaf_of)
    users = max(1, int(n * USERS_PER_ITEM))
    pop = np.empty(n)
    pop[rng.permutation(n)] = 1.0 / np.arange(1, n + 1) ** ALPHA
    lengths = np.minimum(MIN_SEQ + np.floor(rng.exponential(MEAN_EXTRA_LENGTH, size=users)), MAX_SEQ).astype(np.int64)
    # Items sorted by leaf with cumulative popularity: a draw inside leaf l is a search in its segment.
    by_leaf = np.argsort(leaf_of, kind="stable")
    cum = np.cumsum(pop[by_leaf])
    before = cum - pop[by_leaf]
    starts = np.searchsorted(leaf_of[by_leaf], np.arange(leaf_of.max() + 1))
    ends = np.append(starts[1:], n)
    leaf_pop = cum[ends - 1] - before[starts]
    favourite = np.minimum(np.searchsorted(np.cumsum(leaf_pop), rng.random(users) * leaf_pop.sum()), len(starts) - 1)
    # Three draws per needed item; repeats within a user are dropped, the first `length` kept.
    user_of = np.repeat(np.arange(users), 3 * lengths)
    fav = rng.random(len(user_of)) < FAVOURITE_SHARE
    leaf = favourite[user_of]
    lo = np.where(fav, before[starts[leaf]], 0.0)
    hi = np.where(fav, cum[ends[leaf] - 1], cum[-1])
    pos = np.searchsorted(cum, lo + rng.random(len(user_of)) * (hi - lo), side="right")
    pos = np.clip(pos, np.where(fav, starts[leaf], 0), np.where(fav, ends[leaf] - 1, n - 1))
    frame = pd.DataFrame({"user": user_of, "item": by_leaf[pos]}).drop_duplicates(["user", "item"])
    frame = frame[frame.groupby("user").cumcount().to_numpy() < lengths[frame["user"].to_numpy()]]
    counts = np.bincount(frame["user"].to_numpy(), minlength=users)
    frame = frame[counts[frame["user"].to_numpy()] >= MIN_SEQ]  # the few users whose leaf ran out of items
    user = frame["user"].to_numpy()
    start = demo.T_START + (rng.random(users) * (demo.T_END - demo.T_START) * 0.6).astype(np.int64)
    gaps = 60 + np.floor(rng.exponential(demo.MEAN_GAP_S, size=len(frame))).astype(np.int64)
    ts = start[user] + pd.Series(gaps).groupby(user).cumsum().to_numpy()
    return pd.DataFrame({"user_id": np.char.add("U", user.astype(str)), "item": frame["item"].to_numpy(),
                         "timestamp": ts})


def write(out_dir: str | Path, n: int, seed: int = 0) -> dict:
    """Write out_dir/items.csv and out_dir/interactions.csv (reused when their summary matches)."""
    import json
    import time

    out = Path(out_dir)
    summary_path = out / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if summary.get("n") == n and summary.get("seed") == seed:
            return summary
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    items, leaf_of = make_items(n, seed)
    texts = items["title"] + items["brand"] + items["categories"] + items["description"]
    assert texts.nunique() == n, "two items share a text"
    events = make_interactions(leaf_of, seed)
    events.insert(1, "item_id", items["item_id"].to_numpy()[events.pop("item").to_numpy()])
    items.to_csv(out / "items.csv", index=False)
    events.to_csv(out / "interactions.csv", index=False)
    per_user = events.groupby("user_id").size()
    summary = {"n": n, "seed": seed, "items": n, "users": int(len(per_user)), "interactions": int(len(events)),
               "sequence_length": {"min": int(per_user.min()), "mean": round(float(per_user.mean()), 2),
                                   "max": int(per_user.max())},
               "items_with_interactions": int(events["item_id"].nunique()),
               "top_1pct_items_share": _top_share(events["item_id"], n),
               "seconds": round(time.perf_counter() - start, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _top_share(item_ids: pd.Series, n: int) -> float:
    counts = item_ids.value_counts().to_numpy()
    return round(float(counts[: max(1, n // 100)].sum() / counts.sum()), 4)
