"""The collaborative signal: CF item embeddings from the interactions' training part.

`vectors` (CFConfig; co-occurrence -> PPMI -> randomized SVD) -> `build` (the interactions read and
split, the cf_embeddings.parquet cache: `build_cf_table`, `check_interactions`, `cf_for_embeddings`).
The file format is `rqvae_ids.core.cf_table` (floor 0); its names are re-exported here.
"""

from ..core.cf_table import CF_FILE, CFTable, catalog_sha256, cf_for_items, read_cf_table, write_cf_table
from .build import build_cf_table, cf_for_embeddings, check_interactions, train_part
from .vectors import CFConfig, cf_vectors

__all__ = ["CF_FILE", "CFConfig", "CFTable", "build_cf_table", "catalog_sha256", "cf_for_embeddings", "cf_for_items",
           "check_interactions", "cf_vectors", "read_cf_table", "train_part", "write_cf_table"]
