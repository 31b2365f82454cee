"""Prefect flows over `rqvae_ids.pipeline` (see docs/flows.md).

pipeline.semantic_ids_pipeline · refresh.refresh_ids · retrain.retrain ·
compare.compare_baselines · train_retriever.train_retriever ·
embed_sharded.embed_catalog_sharded / embed_items_sharded · deployments (serve helpers).
"""
