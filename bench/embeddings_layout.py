"""Parquet write/read time of N x d float32 vectors in four layouts of the `embedding` column.

    python bench/embeddings_layout.py --like EMB/embeddings.parquet [--items 200000] [--repeat 3]

Layouts: fixed_size_list<float32>[d] (the embeddings.parquet contract layout), list<float32>,
d float32 columns, fixed_size_binary[4d] (float32 little-endian bytes; measured only: the contract keeps the list).
Every file is written with plain, uncompressed pages (no dictionary) so that only the
layout differs; one thread (use_threads=False); read time = file -> (N, d) float32 numpy,
best of --repeat. Rows: --like's vectors repeated to --items. Writes bench/out/embeddings_layout.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def tables(x):
    """layout name -> (pa.Table, reader: table -> (N, d) ndarray)."""
    import numpy as np
    import pyarrow as pa

    n, d = x.shape
    flat = pa.array(x.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, n * d + 1, d, dtype=np.int32))
    binary = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * d), n, [None, pa.py_buffer(x)])

    def values(t):
        return t.column(0).combine_chunks().flatten().to_numpy().reshape(n, d)

    return {
        "fixed_size_list<float32>": (pa.table({"embedding": pa.FixedSizeListArray.from_arrays(flat, d)}), values),
        "list<float32>": (pa.table({"embedding": pa.ListArray.from_arrays(offsets, flat)}), values),
        f"{d} float32 columns": (pa.table({f"e{i}": x[:, i] for i in range(d)}),
                                 lambda t: np.stack([t.column(i).to_numpy() for i in range(d)], axis=1)),
        f"fixed_size_binary[{4 * d}]": (pa.table({"embedding": binary}), lambda t: np.frombuffer(
            t.column(0).combine_chunks().buffers()[1], "<f4").reshape(n, d)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--like", type=Path, required=True, help="an embeddings.parquet whose vectors are repeated")
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import pyarrow.parquet as pq

    from rqvae_ids.core.embedding_table import read_embeddings

    v = read_embeddings(args.like).vectors
    x = np.ascontiguousarray(np.tile(v, (-(-args.items // len(v)), 1))[:args.items], dtype="<f4")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (table, read) in tables(x).items():
            path = Path(tmp) / "e.parquet"
            t = time.perf_counter()
            pq.write_table(table, path, use_dictionary=False, compression="none")
            write_s = time.perf_counter() - t
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                got = read(pq.read_table(path, use_threads=False))
                best = min(best, time.perf_counter() - t)
            assert np.array_equal(got, x), name
            res[name] = {"write_s": round(write_s, 3), "read_s": round(best, 3), "bytes": path.stat().st_size}
            print(f"{name:28s} write {write_s:6.2f} s  read -> numpy {best:6.2f} s", flush=True)
    out = REPO / "bench" / "out" / "embeddings_layout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"items": args.items, "dim": int(x.shape[1]), "repeat": args.repeat,
                               "layouts": res}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
