"""Quantizers, independent of any autoencoder: one VQ level, the residual stack, faiss k-means."""

from .kmeans import assign, kmeans, residual_kmeans
from .residual import ResidualQuantizer, RQOutput
from .vq import VectorQuantizer, VQOutput, straight_through

__all__ = ["VectorQuantizer", "VQOutput", "ResidualQuantizer", "RQOutput", "kmeans", "assign",
           "residual_kmeans", "straight_through"]
