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

# 32k rows x 512 hidden floats = 64 MiB per activation: large enough for full-speed
# matrix products on CPU, small enough that peak memory is a few hundred MiB.
DEFAULT_CHUNK_SIZE = 32768


@dataclass
class Encoded:
    """codes (N, L) int64; distance (N,) float32 = ||z - sum of the tuple's codewords||, or
    None when the generic path ran (then LatentOracle recomputes it for the items that
    need it); path: "residual_search" or "model.encode_codes"."""

    codes: np.ndarray
    distance: np.ndarray | None
    path: str


def encode_chunked(model: Any, vectors: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Encoded:
    """Codes of every row of `vectors` (N, d) float32, `chunk_size` rows at a time.

    Uses `ResidualSearch` (the torch-side latent + faiss nearest-codeword search, which also
    yields the distance to the reconstruction for free) when the model offers it and it
    reproduces `model.encode_codes` on a sample; otherwise the model's own `encode_codes`.
    """
    return encode_as_filled(model, vectors, [len(vectors)], chunk_size)


def encode_as_filled(model: Any, vectors: np.ndarray, filled: Iterable[int],
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> Encoded:
    """`encode_chunked` of `vectors` (N, d) while its rows are still being filled: `filled`
    yields how many leading rows hold their data so far (non-decreasing, last N), e.g.
    while another thread reads them (`embedding_table.fill_vectors` under `io.prefetched`).

    Each chunk is encoded as soon as all its rows are there; the chunks, the sample the
    fast path is checked on (the first VERIFY_ROWS rows) and so the codes are exactly
    `encode_chunked`'s."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    n = vectors.shape[0]
    codes = np.empty((n, int(model.levels)), dtype=np.int64)
    distance, fast, done = None, None, 0
    with warnings.catch_warnings():
        # embeddings read from Parquet are read-only views; the encoder only reads them,
        # and copying each chunk would cost memory bandwidth for nothing
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for ready in filled:
            if fast is None:  # not chosen yet: on the same sample as encode_chunked's
                if ready < min(VERIFY_ROWS, n):
                    continue
                fast = ResidualSearch.verified(model, vectors[:VERIFY_ROWS]) or False
                distance = np.empty(n, dtype=np.float32) if fast else None
            while done < n and (ready - done >= chunk_size or ready == n):
                block = np.ascontiguousarray(vectors[done:done + chunk_size], dtype=np.float32)
                stop = done + len(block)
                if fast:
                    codes[done:stop], distance[done:stop] = fast(block)
                else:
                    codes[done:stop] = _to_numpy(model.encode_codes(block))
                done = stop
    if done != n:
        raise ValueError(f"only {done} of {n} rows were filled")
    return Encoded(codes, distance, "residual_search" if fast else "model.encode_codes")


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

    vectors: (N, d) float32 embeddings (catalog order); codes: (N, L) int64.
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
