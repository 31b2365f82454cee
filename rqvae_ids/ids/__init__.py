"""Semantic IDs: chunked assignment, collision check and resolution, stable IDs, export.

Public API: `assign_ids`, `read_semantic_ids` / `SemanticIds`, `SidIndex`,
`format_sid` / `parse_sid`, `write_id_mapping`.
"""

from .assign import assign_ids, assign_table, write_assignment
from .index import SidIndex
from .lookup import format_sid, parse_sid
from .stability import write_id_mapping
from .table import SemanticIds, read_semantic_ids, token_vocabulary

__all__ = [
    "assign_ids",
    "assign_table",
    "write_assignment",
    "SidIndex",
    "format_sid",
    "parse_sid",
    "write_id_mapping",
    "SemanticIds",
    "read_semantic_ids",
    "token_vocabulary",
]
