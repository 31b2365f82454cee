"""VQ-VAE: one learned codebook (level 0); levels 1..L-1 are residual k-means fitted after
training on what level 0 leaves of the latents, so it spends the same L x K code budget."""

from .base import Tokenizer


class VQVAE(Tokenizer):
    kind = "vqvae"

    @property
    def trained_levels(self) -> int:
        return 1
