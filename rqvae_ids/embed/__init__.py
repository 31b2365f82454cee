"""The embed stage: item text -> L2-normalised float32 embeddings, with a content-hash cache."""
