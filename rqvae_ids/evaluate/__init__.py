"""Measuring semantic IDs: ID quality, neighbour recall, next-item retrieval.

Imports nothing above it: the comparison that drives these measurements lives in
`rqvae_ids.compare`.
"""
