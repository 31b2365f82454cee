"""RQ-VAE (TIGER): MLP encoder -> residual quantizer (all L levels trained) -> MLP decoder."""

from .base import Tokenizer


class RQVAE(Tokenizer):
    kind = "rqvae"

    @property
    def trained_levels(self) -> int:
        return self.levels
