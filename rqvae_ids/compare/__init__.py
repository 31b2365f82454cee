"""The comparison: every tokenizer on one catalog, measured alike, one report.

`config` (CompareConfig, RetrieverRows, CompareOptions: what a comparison is given) ->
`build` (each row's tokenizer and resolved IDs, the embeddings read once) -> the trained-retriever
row families (`families`: FAMILIES, their builders in `tiger` and `item`) -> `comparison` (`compare_options`,
`run_comparison`). The CLI `compare` and the compare-baselines flow both call `run_comparison`.
Measuring and writing the report live below, in `rqvae_ids.evaluate` (`evaluate_and_write`), which
the pipeline's evaluate stage calls too.
"""
