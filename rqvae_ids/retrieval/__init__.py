"""Generative retrieval over semantic IDs (TIGER-style): prefix trie of valid IDs
(`trie`), sequence Transformer (`model`), training examples (`data`), constrained beam
search (`beam`), training loop with safetensors checkpoints (`trainer`) and the
`GenerativeRetriever` meeting the harness's `Retriever` protocol (`generative`).

Importing this package does not import torch; the model modules do.
"""

from .generative import GenerativeRetriever, retriever_for, sid_codes, train_retriever
from .trainer import RetrievalConfig

__all__ = ["GenerativeRetriever", "RetrievalConfig", "retriever_for", "sid_codes", "train_retriever"]
