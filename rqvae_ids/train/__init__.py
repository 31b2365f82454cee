"""The train stage: the one training loop for every tokenizer kind."""
