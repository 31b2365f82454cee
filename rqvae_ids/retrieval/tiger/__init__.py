"""The token-level generative retriever (TIGER-style): one position per semantic-ID token, decoded by
beam search constrained to valid IDs (`trie` -> `model` -> `data` -> `beam` -> `trainer` -> `generative`)."""
