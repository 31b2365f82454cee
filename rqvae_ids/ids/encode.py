"""Chunked code assignment and latent residuals for the few items that need them.

The model's own `encode_codes` is the single source of truth for codes (so IDs agree
with anything else that encodes with the same checkpoint); we only run it chunk by
chunk so memory stays bounded whatever the catalog size. Distances to the tuple's
reconstruction are needed only for items whose tuple collides (suffix order,
reassignment), so `LatentOracle` re-encodes just those items instead of keeping
a (N, D) latent for the whole catalog.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

# 8k rows x 512 hidden floats = 16 MiB per activation. Matrix products run at full speed from
# a few thousand rows on, and below glibc's 32 MiB mmap ceiling the allocator reuses the freed
# activations of the last chunk; at 32k rows (64 MiB) each chunk's activations were fresh
# mmap'd pages: 260k-340k page faults and 1-2 s of kernel time per 200k items on 2 cores,
# against 34k faults and 0.2 s at 8k (bench/RESULTS.md, issue 15).
DEFAULT_CHUNK_SIZE = 8192


@dataclass
class Encoded:
    """codes (N, L) int64; distance (N,) float32 = ||z - sum of the tuple's codewords||, or
    None when the generic path ran (then LatentOracle recomputes it for the items that
    need it); path: "residual_search" or "model.encode_codes"; vectors: the (N, d) rows
    encoded, when `encode_stream` was asked to keep them (or had to: no distances), else None."""

    codes: np.ndarray
    distance: np.ndarray | None
    path: str
    vectors: np.ndarray | None = None


def encode_chunked(model: Any, vectors: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Encoded:
    """Codes of every row of `vectors` (N, d) float32, `chunk_size` rows at a time.

    Uses `ResidualSearch` (the torch-side latent + faiss nearest-codeword search, which also
    yields the distance to the reconstruction for free) when the model offers it and it
    reproduces `model.encode_codes` on a sample; otherwise the model's own `encode_codes`.
    """
    return encode_stream(model, [vectors], len(vectors), chunk_size)


def encode_stream(model: Any, blocks: Iterable[np.ndarray], n: int, chunk_size: int = DEFAULT_CHUNK_SIZE,
                  keep: bool = False) -> Encoded:
    """`encode_chunked` of the n rows that `blocks` yields in order ((b, d) float32 blocks of
    any sizes, e.g. `embedding_table.iter_vectors` under `io.prefetched`), without holding them.

    Rows are encoded in encode_chunked's chunks (and the fast path is checked on the same
    first VERIFY_ROWS rows), so codes and distances are exactly its; a chunk lying inside one
    block is encoded from the block itself, one spanning blocks from a reused chunk buffer.
    keep=True also copies every row into `Encoded.vectors`; without a fast path (no distances:
    the caller re-encodes colliding items) they are kept regardless."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    stream = _StreamEncoder(model, n, chunk_size, keep)
    with warnings.catch_warnings():
        # embeddings read from Parquet are read-only views; the encoder only reads them,
        # and copying each chunk would cost memory bandwidth for nothing
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for block in blocks:
            stream.add(block)
    return stream.result()


class _StreamEncoder:
    """The state of one `encode_stream`: rows arrive in blocks, codes leave in chunks."""

    def __init__(self, model: Any, n: int, chunk_size: int, keep: bool):
        self.model, self.n, self.chunk, self.keep = model, n, chunk_size, keep
        self.codes = np.empty((n, int(model.levels)), dtype=np.int64)
        self.distance: np.ndarray | None = None
        self.vectors: np.ndarray | None = None
        self.fast: ResidualSearch | bool | None = None  # None: not chosen yet
        # the first encoding waits for the rows the fast path is checked on: whole chunks
        self.first = min(n, chunk_size * -(-min(VERIFY_ROWS, n) // chunk_size))
        self.stage: np.ndarray | None = None  # rows gathered for a chunk that spans blocks
        self.staged = 0
        self.done = 0  # rows encoded

    def add(self, block: np.ndarray) -> None:
        pos = 0
        while pos < len(block):
            want = self._next_size() - self.staged
            if want <= 0:
                raise ValueError(f"more than {self.n} rows")
            take = block[pos:pos + want]
            if self.vectors is not None:
                at = self.done + self.staged
                self.vectors[at:at + len(take)] = take
            if self.staged == 0 and len(take) == want:  # a whole encoding step inside this block
                self._encode(take)
            else:
                if self.stage is None:
                    self.stage = np.empty((max(self.first, self.chunk), block.shape[1]), dtype=np.float32)
                self.stage[self.staged:self.staged + len(take)] = take
                self.staged += len(take)
                if self.staged == self._next_size():
                    self._encode(self.stage[:self.staged])
                    self.staged = 0
            pos += len(take)

    def _next_size(self) -> int:
        return min(self.first if self.done == 0 else self.chunk, self.n - self.done)

    def _encode(self, rows: np.ndarray) -> None:
        """Encode `rows` (the next rows, whole chunks but at the end) chunk by chunk."""
        if self.fast is None:
            self._choose_path(rows)
        for s in range(0, len(rows), self.chunk):
            block = np.ascontiguousarray(rows[s:s + self.chunk], dtype=np.float32)
            stop = self.done + len(block)
            if self.fast:
                self.codes[self.done:stop], self.distance[self.done:stop] = self.fast(block)
            else:
                self.codes[self.done:stop] = _to_numpy(self.model.encode_codes(block))
            self.done = stop

    def _choose_path(self, rows: np.ndarray) -> None:
        self.fast = ResidualSearch.verified(self.model, rows[:VERIFY_ROWS]) or False
        if self.fast:
            self.distance = np.empty(self.n, dtype=np.float32)
        if self.keep or not self.fast:  # no distances: LatentOracle will need the rows
            self.vectors = np.empty((self.n, rows.shape[1]), dtype=np.float32)
            self.vectors[:len(rows)] = rows

    def result(self) -> Encoded:
        if self.done != self.n:
            raise ValueError(f"only {self.done + self.staged} of {self.n} rows were given")
        return Encoded(self.codes, self.distance, "residual_search" if self.fast else "model.encode_codes",
                       self.vectors)


def encode_codes_chunked(model: Any, vectors: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """(N, d) float32 -> (N, L) int64 codes, chunk by chunk (see `encode_chunked`)."""
    return encode_chunked(model, vectors, chunk_size).codes


VERIFY_ROWS = 2048  # rows on which the fast path must reproduce model.encode_codes exactly


class ResidualSearch:
    """Codes straight from the model's torch latent: z = model.latent(x)[0], then per level
    the nearest codeword of the residual (faiss exact L2, k=1) and r -= codeword. This is
    the contract's definition of the codes. faiss fuses distance and argmin (~5x faster
    than torch's addmm + argmin on a busy 2-core CPU), and the torch latent skips the
    numpy round trips of the generic path. Equal to `model.encode_codes` up to float
    near-ties between two codewords (checked on a sample before use).

    __call__(block (B, d) float32) -> (codes (B, L) int64, distance (B,) float32), the
    distance being ||z - sum of the chosen codewords||.
    """

    def __init__(self, model: Any):
        import faiss
        import torch

        self.torch, self.model = torch, model
        self.books = [np.ascontiguousarray(_to_numpy(b), dtype=np.float32) for b in model.codebooks()]
        self.index = []
        for book in self.books:
            index = faiss.IndexFlatL2(book.shape[1])
            index.add(book)
            self.index.append(index)

    @classmethod
    def verified(cls, model: Any, sample: np.ndarray) -> "ResidualSearch | None":
        """The fast path if `model` is a torch Tokenizer and agrees with encode_codes on `sample`."""
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return None
        if not (isinstance(model, torch.nn.Module) and callable(getattr(model, "latent", None))):
            return None
        if not getattr(model, "residual_search", True):  # codes are not nearest codewords of the latent
            return None
        if model.training or _device(model).type != "cpu":
            return None
        block = np.ascontiguousarray(sample, dtype=np.float32)
        try:
            fast = cls(model)
            ok = np.array_equal(fast(block)[0], _to_numpy(model.encode_codes(block)))
        except Exception:  # an unexpected model: fall back to the generic path
            return None
        return fast if ok else None

    def latent(self, block: np.ndarray) -> np.ndarray:
        """(B, d) float32 -> writable (B, D) float32 latent."""
        torch = self.torch
        with torch.inference_mode():
            z = self.model.latent(torch.from_numpy(block))[0].float()
        return np.array(z.numpy(), dtype=np.float32, order="C")

    def __call__(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.latent(block)
        out = np.empty((len(block), len(self.books)), dtype=np.int64)
        for l, (book, index) in enumerate(zip(self.books, self.index)):
            _, nearest = index.search(r, 1)
            out[:, l] = nearest[:, 0]
            r -= book[out[:, l]]
        # the exact norm of what is left (faiss' distances use the expanded, less exact form)
        return out, np.sqrt(np.einsum("ij,ij->i", r, r))


def _device(model: Any):
    for t in model.buffers():
        return t.device
    for t in model.parameters():
        return t.device
    import torch

    return torch.device("cpu")


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


class LatentOracle:
    """Latent-space geometry of selected items under a Tokenizer.

    vectors: (N, d) float32 embeddings (catalog order; None when every distance needed is
    `distance`'s known one); codes: (N, L) int64.
    `residual_before_last(idx)` -> (m, D) float32: z - sum of codewords of levels < L-1
    for items `idx`; `last_codebook` (K, D) float32; `distance(idx)` -> (m,) float32:
    ||z - sum of all L codewords||, the distance to the tuple's reconstruction.
    """

    def __init__(self, model: Any, vectors: np.ndarray, codes: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 distance: np.ndarray | None = None):
        self.model = model
        self.vectors = vectors
        self.codes = codes
        self.chunk_size = chunk_size
        self.known_distance = distance  # (N,) float32 from the encoding pass (NaN: unknown), or None
        self.codebooks = [np.ascontiguousarray(_to_numpy(c), dtype=np.float32) for c in model.codebooks()]
        self.last_codebook = self.codebooks[-1]

    def residual_before_last(self, idx: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        """z - sum_{l < L-1} C_l[codes[:, l]] for items `idx` (codes default to self.codes[idx])."""
        idx = np.asarray(idx, dtype=np.int64)
        if self.vectors is None:
            raise RuntimeError("the embeddings were streamed, not kept: read them with keep=True")
        codes = self.codes[idx] if codes is None else codes
        out = np.empty((idx.size, self.last_codebook.shape[1]), dtype=np.float32)
        for s in range(0, idx.size, self.chunk_size):
            sel = idx[s:s + self.chunk_size]  # fancy indexing copies: a writable block
            r = np.array(_to_numpy(self.model.encode_latent(
                np.ascontiguousarray(self.vectors[sel], dtype=np.float32))), dtype=np.float32)
            for l, book in enumerate(self.codebooks[:-1]):
                r -= book[codes[s:s + self.chunk_size, l]]
            out[s:s + len(sel)] = r
        return out

    def distance(self, idx: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        """||z - reconstruction of the item's full tuple|| for items `idx`, (m,) float32."""
        idx = np.asarray(idx, dtype=np.int64)
        if codes is None and self.known_distance is not None:
            known = self.known_distance[idx]
            if np.isfinite(known).all():
                return known
        codes = self.codes[idx] if codes is None else codes
        r = self.residual_before_last(idx, codes)
        return np.linalg.norm(r - self.last_codebook[codes[:, -1]], axis=1).astype(np.float32)
