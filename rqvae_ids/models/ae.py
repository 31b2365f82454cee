"""Plain autoencoder: trained on reconstruction only; codes are residual k-means on its latent."""

from .base import Tokenizer


class AE(Tokenizer):
    kind = "ae"
