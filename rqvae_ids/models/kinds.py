"""The tokenizer kinds, in the registry's order: importable without torch (the CLI's --help lists them),
and the default `auto`, resolved once it is known whether training reads CF embeddings."""

KINDS = ("rqvae", "vqvae", "vae", "ae", "rqkmeans", "rqkmeans-cf", "opq")
FITTED = ("rqkmeans", "rqkmeans-cf", "opq")  # fitted by k-means in seconds, no epochs (the others: `neural`)
AUTO = "auto"
# What `auto` trains (issue 25: a tokenizer is judged by what its codes add to the hybrid retriever's
# validation Recall@10; bench/RESULTS.md "Issue 25: the default switch"). With CF embeddings
# rqkmeans-cf led the collaborative RQ-VAE (Toys +0.0127 vs +0.0107 over no codes, like for like;
# demo +0.0054 vs +0.0028); text-only, rqkmeans led rqvae-text (Toys +0.0039 vs +0.0016; demo
# +0.0026 vs +0.0012). The RQ-VAE stays one `--model rqvae` away.
AUTO_WITH_CF, AUTO_TEXT_ONLY = "rqkmeans-cf", "rqkmeans"


def resolve_kind(kind: str, with_cf: bool) -> str:
    """The kind to train: `kind` itself, or for `auto` rqkmeans-cf when training reads CF embeddings
    (interactions given) and rqkmeans when it does not."""
    if kind != AUTO:
        return kind
    return AUTO_WITH_CF if with_cf else AUTO_TEXT_ONLY


def fitted_by(kind: str, epochs) -> str:
    """How a trained model of `kind` was fitted, for one-line reports: "k-means" or "N epochs"."""
    return "k-means" if kind in FITTED else f"{epochs} epochs"
