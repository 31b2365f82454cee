"""The comparison: every tokenizer on one catalog, measured alike, one report.

`config` (CompareConfig, ModelIds) -> `comparison` (build each model's IDs, run the
retrievers, `evaluate_and_write`, `run_comparison`), `generative` (the generative
retriever's rows), `report` and `plots` (report.md, PNGs). The CLI `compare` and the
compare-baselines flow both call `run_comparison`. The measuring itself lives below, in
`rqvae_ids.evaluate`.
"""
