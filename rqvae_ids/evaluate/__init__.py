"""Evaluation of semantic IDs: ID quality, neighbour recall, next-item retrieval."""
