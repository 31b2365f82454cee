"""Floor 0, the foundation every stage stands on: bad-input errors (`errors`), atomic files and
provenance (`io`), typed configs (`config`), code statistics (`metrics`), device and seeds
(`runtime`), exact neighbours (`knn`), and the two tables stages hand each other: the embeddings
(`embedding_table`) and the CF embeddings (`cf_table`). Imports nothing else of rqvae_ids.
"""
