"""Next-item retrieval over semantic IDs, in two families (`choice.py` picks one by name):

- `tiger/`: the token-level generative retriever (TIGER-style): prefix trie of valid IDs (`trie`),
  sequence Transformer (`model`), training examples (`data`), constrained beam search (`beam`),
  training loop with safetensors checkpoints (`trainer`) and the `GenerativeRetriever` meeting the
  harness's `Retriever` protocol (`generative`).
- `item/`: the item-level retrievers (`sasrec`, `parallel`, `hybrid`): item features (`features`),
  one causal Transformer over item positions with its heads (`model`), training with exact
  full-catalog validation (`trainer`) and the `ItemRetriever` (`retriever`).

Importing this package does not import torch; the model modules do.
"""

from .tiger.generative import GenerativeRetriever, retriever_for, sid_codes, train_retriever
from .tiger.trainer import RetrievalConfig

__all__ = ["GenerativeRetriever", "RetrievalConfig", "retriever_for", "sid_codes", "train_retriever"]
