"""Semantic IDs on Amazon Toys: raw collisions per model, both resolutions, stability.

    .venv/bin/python bench/ids_toys.py --models DIR --embeddings FILE --work DIR [--retrained DIR]

--models holds one trained model directory per kind (rqvae, vqvae, vae, ae, rqkmeans;
missing kinds are skipped). For each: assign_ids with `suffix` and with `reassign`.
Stability (rqvae): rerun with --previous on the unchanged catalog, then on a copy with
1% of items edited (text hash changed, vector perturbed). With --retrained (a second
rqvae), write_id_mapping old -> new. Writes bench/out/ids_toys.md and .json.
Each assign_ids call is what `rqvae-ids assign --model-dir M --embeddings E --out O
[--resolve R] [--previous P]` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
KINDS = ("rqvae", "vqvae", "vae", "ae", "rqkmeans")


def edited_copy(emb: Path, out: Path, share: float, seed: int = 0) -> set[str]:
    """Copy of `emb` with `share` of the items edited: new text hash, vector nudged and renormalised."""
    import numpy as np

    from rqvae_ids.core.io import sha256_text
    from rqvae_ids.core.embedding_table import read_embeddings, write_embeddings

    t = read_embeddings(emb)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(t), size=max(1, int(round(share * len(t)))), replace=False)
    v, h = t.vectors.copy(), t.text_sha256.copy()
    v[pick] += 0.3 * rng.standard_normal((pick.size, t.dim)).astype(np.float32) / np.sqrt(t.dim)
    v[pick] /= np.linalg.norm(v[pick], axis=1, keepdims=True)
    h[pick] = [sha256_text("edited " + s) for s in h[pick]]
    write_embeddings(out, t.item_ids, h, v, model=t.model)
    return set(t.item_ids[pick].tolist())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--embeddings", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="scratch output folder (outside the repo)")
    p.add_argument("--retrained", type=Path, default=None, help="a second rqvae checkpoint for id_mapping")
    args = p.parse_args()

    import numpy as np

    from rqvae_ids.ids import assign_ids, read_semantic_ids, write_id_mapping

    res: dict = {"models": {}}
    for kind in KINDS:
        mdir = args.models / kind
        if not (mdir / "train_report.json").is_file():  # absent or still training
            continue
        row = {}
        for resolve in ("suffix", "reassign"):
            out = args.work / kind / resolve
            t = time.perf_counter()
            try:
                rep = assign_ids(mdir, args.embeddings, out, resolve=resolve)
            except Exception as e:  # a collapsed model can overflow the suffix / last level
                row[resolve] = {"error": str(e)}
                continue
            ids = read_semantic_ids(out / "semantic_ids.parquet")
            row["collisions"] = rep["collisions"]
            row[resolve] = {**rep["resolution"], "duplicates_after": int(len(ids) - len(set(ids.sids))),
                            "seconds": time.perf_counter() - t}
        res["models"][kind] = row

    stab: dict = {}
    mdir = args.models / "rqvae"
    for resolve in ("suffix", "reassign"):
        base = args.work / "rqvae" / resolve / "semantic_ids.parquet"
        if not base.is_file():
            continue
        prev = read_semantic_ids(base)
        same = args.work / "stability" / resolve / "same"
        rep = assign_ids(mdir, args.embeddings, same, resolve=resolve, previous=base)
        now = read_semantic_ids(same / "semantic_ids.parquet")
        ident = float(np.mean(now.sids == prev.sids))
        edited_emb = args.work / "stability" / "embeddings_edited_1pct.parquet"
        edited = edited_copy(args.embeddings, edited_emb, 0.01)
        ed = args.work / "stability" / resolve / "edited"
        rep2 = assign_ids(mdir, edited_emb, ed, resolve=resolve, previous=base)
        after = read_semantic_ids(ed / "semantic_ids.parquet")
        old = dict(zip(prev.item_ids, prev.sids))
        unedited = [(i, s) for i, s in zip(after.item_ids, after.sids) if i not in edited]
        edited_rows = [(i, s) for i, s in zip(after.item_ids, after.sids) if i in edited]
        stab[resolve] = {
            "unchanged_catalog_identical_share": ident,
            "unchanged_catalog_stability": rep["stability"],
            "edited_items": len(edited),
            "unedited_keep_share": float(np.mean([old[i] == s for i, s in unedited])),
            "edited_id_changed": int(sum(old[i] != s for i, s in edited_rows)),
            "duplicates_after_edit": int(len(after) - len(set(after.sids))),
            "edit_stability": rep2["stability"],
        }
    res["stability"] = stab
    if args.retrained and (args.work / "rqvae" / "suffix" / "semantic_ids.parquet").is_file():
        rt = args.work / "retrained" / "suffix"
        assign_ids(args.retrained, args.embeddings, rt)
        res["id_mapping"] = write_id_mapping(args.work / "rqvae" / "suffix" / "semantic_ids.parquet",
                                             rt / "semantic_ids.parquet", args.work / "retrained" / "id_mapping.parquet")

    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ids_toys.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (out_dir / "ids_toys.md").write_text(render(res, args))
    print((out_dir / "ids_toys.md").read_text())
    return 0


def render(res: dict, args) -> str:
    pct = lambda v: f"{100 * v:.2f}%"
    lines = ["## Semantic IDs on Amazon Toys (L=3, K=256)", "",
             f"`{' '.join(sys.argv)}`", "",
             "| model | items | raw duplicate_rate (1 - distinct/items) | items in colliding groups | largest group | level-0 used | "
             "suffix: items with suffix > 0 | largest suffix | dups after | reassign: items moved | "
             "latent distortion before -> after (moved) | added per item (all) | dups after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, row in res["models"].items():
        c, s, r = row.get("collisions", {}), row.get("suffix", {}), row.get("reassign", {})
        suf = (f"{s['items_with_suffix_gt0']} ({pct(s['share_suffix_gt0'])}) | {s['max_suffix']} | {s['duplicates_after']}"
               if "max_suffix" in s else f"error: {s.get('error')} | | ")
        rea = (f"{r['items_moved']} ({pct(r['moved_share'])}) | {r['distortion_before_mean_moved']:.4f} -> "
               f"{r['distortion_after_mean_moved']:.4f} | {r['distortion_added_mean_all_items']:.5f} | {r['duplicates_after']}"
               if "items_moved" in r else f"error: {r.get('error')} | | | ")
        lines.append(f"| {kind} | {c.get('items')} | {pct(c.get('duplicate_rate', c.get('collision_rate', 0)))} | "
                     f"{c.get('items_in_colliding_groups')} ({pct(c.get('colliding_share', 0))}) | {c.get('largest_group')} | "
                     f"{round(256 * c['utilisation'][0]) if c else ''}/256 | {suf} | {rea} |")
    lines += ["", "Distortion: L2 distance in the model's latent space between z and the sum of its tuple's "
              "codewords (rqkmeans: the raw 384-d embedding space), mean over moved items.", ""]
    for resolve, s in res.get("stability", {}).items():
        lines += [f"Stability (rqvae, {resolve}): unchanged catalog with --previous -> "
                  f"{pct(s['unchanged_catalog_identical_share'])} identical IDs; after editing "
                  f"{s['edited_items']} items (1%), {pct(s['unedited_keep_share'])} of unedited items keep their ID, "
                  f"{s['edited_id_changed']} edited items got a different ID, {s['duplicates_after_edit']} duplicates."]
    if "id_mapping" in res:
        m = res["id_mapping"]
        lines += ["", f"Retrain (second rqvae, other seed) -> id_mapping.parquet: {m['changed']} of "
                  f"{m['items_common']} SIDs changed ({pct(m['changed_share'])})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
