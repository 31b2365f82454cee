"""The tokenizer kinds, in the registry's order: importable without torch (the CLI's --help lists them)."""

KINDS = ("rqvae", "vqvae", "vae", "ae", "rqkmeans", "rqkmeans-cf", "opq")
