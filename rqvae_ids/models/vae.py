"""VAE: reparameterised Gaussian latent, KL weight warmed up linearly by the training loop;
codes are residual k-means on the latent mean."""

from .base import Tokenizer


class VAE(Tokenizer):
    kind = "vae"
    variational = True
