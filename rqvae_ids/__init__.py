"""rqvae-ids: semantic IDs for generative retrieval.

The library holds all logic and imports no Prefect; `flows/` orchestrates it.
Heavy dependencies (torch, sentence-transformers, faiss) are imported lazily by
the modules that need them, so `rqvae-ids --help` stays fast.
"""

__version__ = "0.1.0"
