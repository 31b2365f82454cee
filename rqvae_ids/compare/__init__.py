"""The comparison: every tokenizer on one catalog, measured alike, one report.

`config` (CompareConfig, ModelIds) -> `comparison` (build each model's IDs, run the
retrievers, `evaluate_and_write`, `run_comparison`), `generative` (the generative
retriever's rows), `report` and `plots` (report.md, PNGs), `steps` (the same, one
model per call, for the compare-baselines flow). The measuring itself lives below, in
`rqvae_ids.evaluate`.
"""
