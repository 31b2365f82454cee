"""The one Tokenizer interface every model kind meets, plus its config and save/load.

Every model is a residual quantizer over a latent (GRID's view): z = encode_latent(x);
the code at level l is the nearest codeword of codebook l to the residual left by the
levels above. The kinds differ only in the encoder/decoder and in which levels are
trained by gradient (the rest are fitted by residual k-means on the latents):

| kind     | encoder/decoder | levels trained in the loop | levels fitted by k-means after |
|----------|-----------------|----------------------------|--------------------------------|
| rqvae    | MLP             | all L                      | none                           |
| vqvae    | MLP             | level 0                    | 1..L-1                         |
| ae, vae  | MLP (VAE: mean) | none                       | all L                          |
| rqkmeans | identity        | none (no training)         | all L, on the raw embeddings   |

The default kind `auto` is not a model: training resolves it (`kinds.resolve_kind`) to rqkmeans-cf
when it reads CF embeddings and to rqkmeans when it does not.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import check, to_dict
from ..core.io import provenance, write_bytes_atomic, write_json_atomic
from ..quantizers import ResidualQuantizer
from .cf_input import fit_ridge, layout, predicted_part
from .kinds import AUTO, KINDS
from .mlp import MLP, SkipMLP

WEIGHTS, CONFIG = "model.safetensors", "config.json"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a tokenizer. input_dim is set from the embeddings file."""

    kind: str = "auto"  # kinds.KINDS, or auto: rqkmeans-cf with CF embeddings, rqkmeans without (kinds.py)
    input_dim: int = 384
    levels: int = 3
    codebook_size: int = 256
    latent_dim: int = 32
    hidden: tuple[int, ...] = (512, 256, 128)  # TIGER's encoder; the decoder mirrors it
    dropout: float = 0.0
    recon: Literal["mse", "cosine"] = "mse"
    beta: float = 0.25  # commitment weight (VQ-VAE, TIGER)
    quant_weight: float = 1.0  # weight of the summed quantization losses against reconstruction
    ema: bool = True  # EMA codebooks follow their assigned latents (no lag behind a moving encoder)
    decay: float = 0.99
    dead_code_steps: int = 20  # re-seed codes unused for this many consecutive steps (0: never)
    kmeans_iters: int = 20
    grad: Literal["ste", "rotation"] = "ste"
    kl_weight: float = 1e-3  # VAE only: final weight of the KL term (reached by linear warm-up)
    pca_skip: bool = True  # linear encoder/decoder path initialised to PCA of the data (+ MLP branch)
    sim_weight: float = 0.0  # neighbour-preserving term: latent cosine similarities match the input's
    # neighbour term: latents of exact top-k cosine neighbours close, random pairs apart. Needs an
    # exact k-NN search over all items before training (O(N^2 d): fine for ~100k items, not 1M).
    nbr_weight: float = 0.0
    nbr_k: int = 10  # neighbours per item the neighbour term samples from
    nbr_source: Literal["text", "cf"] = "text"  # neighbours in the text or in the CF embeddings
    # Collaborative term (LETTER-style, issue 14): InfoNCE with in-batch negatives between a linear
    # projection of the straight-through quantized latent and the item's CF embedding (cf.py).
    # Active only when trained with interactions: cf_dim is then set from cf_embeddings.parquet.
    cf_dim: int = 0
    cf_weight: float = 0.1  # lambda
    cf_temperature: float = 0.1
    # which latent the term aligns: "quantized" (straight-through codeword sum, LETTER),
    # "latent" (the encoder output before quantization) or "prefix" (the straight-through level-0
    # codeword alone: items of one first code share one projection, so co-consumed items are
    # pulled into the same prefix, which is what a sid-prefix retriever reads)
    cf_target: Literal["quantized", "latent", "prefix"] = "quantized"
    cf_alpha: float = 0.7  # weight of the CF part in [text, alpha * CF] (best for rqkmeans-cf on Toys validation)
    # Collaborative inputs (issue 25, models/cf_input.py): trained with CF, the neural kinds read
    # [text, alpha * CF] like rqkmeans-cf (False: text only, CF as the InfoNCE target alone, issue 14).
    cf_input: bool = True
    cf_dropout: float = 0.5  # training: share of warm rows whose CF part is replaced by the cold part (Toys: issue 25)
    # CF part of items without CF (models/cf_input.py); "auto": the kind's `default_cold`, "regress" for
    # every kind: on Toys' held-out items it gave the hybrid retriever's best cold Recall@10 on validation
    # for rqkmeans-cf (0.1440 vs 0.1055 with "zero") and the RQ-VAE (bench/RESULTS.md, issue 25)
    cf_cold: Literal["auto", "zero", "regress"] = "auto"
    cf_ridge: float = 1.0  # L2 penalty of the text -> CF ridge regression (cf_cold "regress")

    def __post_init__(self):
        check(self.kind in (AUTO, *KINDS), f"unknown model kind {self.kind!r}; choose from {[AUTO, *KINDS]}")
        check(self.levels >= 1, f"levels must be >= 1, got {self.levels}")
        check(2 <= self.codebook_size <= 65535, f"codebook_size must be in [2, 65535], got {self.codebook_size}")
        check(self.latent_dim >= 1 and self.input_dim >= 1, "latent_dim and input_dim must be >= 1")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.beta >= 0 and self.quant_weight >= 0 and self.kl_weight >= 0, "loss weights must be >= 0")
        check(self.sim_weight >= 0 and self.nbr_weight >= 0, "loss weights must be >= 0")
        check(self.nbr_k >= 1, f"nbr_k must be >= 1, got {self.nbr_k}")
        check(self.cf_dim >= 0 and self.cf_weight >= 0 and self.cf_alpha >= 0, "cf_dim, cf_weight, cf_alpha must be >= 0")
        check(self.cf_temperature > 0, f"cf_temperature must be > 0, got {self.cf_temperature}")
        check(0.0 <= self.cf_dropout < 1.0 and self.cf_ridge > 0, "cf_dropout must be in [0, 1), cf_ridge > 0")


class ModelOutput(NamedTuple):
    recon: torch.Tensor  # (B, d) reconstruction of the embedding
    codes: torch.Tensor | None  # (B, L') codes of the trained levels, None when none are trained
    loss: torch.Tensor  # scalar total loss
    parts: dict  # name -> scalar tensor (recon, quant, kl)


def neighbour_loss(z: torch.Tensor, z_nbr: torch.Tensor) -> torch.Tensor:
    """Mean squared latent distance of each item (B, D) to one of its embedding-space
    neighbours (B, D), relative to that of random pairs (the batch shifted by one): pulls
    neighbours into the same codes and pushes the rest apart, whatever the latent's scale."""
    if len(z) < 2:  # no random pair to compare with (a last batch of one item)
        return z.new_zeros(())
    near = (z - z_nbr).pow(2).sum(-1).mean()
    far = (z - z.roll(1, 0)).pow(2).sum(-1).mean()
    return near / (far + 1e-8)


def info_nce(p: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of paired rows p (B, c) and t (B, c), in-batch negatives, cosine logits
    over `temperature`: pulls each p towards its own t and away from the batch's other rows."""
    if len(p) < 2:  # no negative to contrast with
        return p.new_zeros(())
    logits = F.normalize(p.float(), dim=-1) @ F.normalize(t.float(), dim=-1).t() / temperature
    labels = torch.arange(len(p), device=p.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def similarity_loss(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared gap between the batch's pairwise cosine similarities in latent z (B, D)
    and in input x (B, d): keeps embedding-space neighbours near each other in the latent."""
    zn, xn = F.normalize(z.float(), dim=-1), F.normalize(x.float(), dim=-1)
    return (zn @ zn.t() - xn @ xn.t()).pow(2).mean()


class Tokenizer(nn.Module):
    """Shared body of every kind; subclasses set `kind`, `trained_levels`, `variational`, `neural`.

    Numpy-facing API (float32 in, float32/int64 out, inference mode, batched):
    encode_latent (N,d)->(N,D); encode_codes (N,d)->(N,L) int64; decode_codes (N,L)->(N,d);
    codebooks() -> L arrays (K, D). `meta` holds what config.json records besides the
    architecture (embedding model/dim, data hash, train config).
    """

    kind = "base"
    variational = False
    neural = True
    default_cold = "regress"  # cf_cold "auto" (see ModelConfig)

    @classmethod
    def cold_rule(cls, cfg: ModelConfig) -> str:
        """The cf_cold rule a model of this kind built from `cfg` uses ("auto": the kind's default)."""
        return cls.default_cold if cfg.cf_cold == "auto" else cfg.cf_cold

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = replace(cfg, cf_cold=self.cold_rule(cfg))
        cfg = self.cfg
        self.meta: dict[str, Any] = {}
        if self.neural:
            out = cfg.latent_dim * (2 if self.variational else 1)
            block = SkipMLP if cfg.pca_skip else MLP
            width = cfg.input_dim + (cfg.cf_dim if self.reads_cf else 0)  # decoded back whole
            self.encoder = block(width, cfg.hidden, out, cfg.dropout)
            self.decoder = block(cfg.latent_dim, tuple(reversed(cfg.hidden)), width, cfg.dropout)
        else:
            self.encoder = self.decoder = nn.Identity()
        self.quantizer = ResidualQuantizer(
            cfg.levels, cfg.codebook_size, cfg.latent_dim, grad=cfg.grad, beta=cfg.beta, ema=cfg.ema,
            decay=cfg.decay, dead_code_steps=cfg.dead_code_steps, kmeans_iters=cfg.kmeans_iters,
        )
        for vq in self.quantizer.layers[self.trained_levels:]:
            vq.embed.requires_grad_(False)  # fitted by k-means after training, not by gradient
        if self.neural and cfg.cf_dim > 0 and cfg.cf_weight > 0:
            # created last, so a text-only model draws the same initial weights as before
            self.cf_proj = nn.Linear(cfg.latent_dim, cfg.cf_dim)
        if self.reads_cf and cfg.cf_cold == "regress":  # text -> CF ridge weights (fit_cf_inputs_)
            self.register_buffer("cf_reg_w", torch.zeros(cfg.input_dim, cfg.cf_dim))
            self.register_buffer("cf_reg_b", torch.zeros(cfg.cf_dim))

    @property
    def collaborative(self) -> bool:
        """Whether training adds the CF InfoNCE term (trained with CF embeddings)."""
        return hasattr(self, "cf_proj")

    @property
    def reads_cf(self) -> bool:
        """Whether the inputs are [text, alpha * CF] rows (models/cf_input.py), not text alone."""
        return self.neural and self.cfg.cf_input and self.cfg.cf_dim > 0

    # -- shape of the code budget ----------------------------------------------------------
    levels = property(lambda self: self.cfg.levels)
    codebook_size = property(lambda self: self.cfg.codebook_size)
    latent_dim = property(lambda self: self.cfg.latent_dim)

    @property
    def trained_levels(self) -> int:
        """How many quantizer levels the training loop trains by gradient."""
        return 0

    # -- torch side -------------------------------------------------------------------------
    def latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, d) -> (z (B, D), kl scalar or None). VAE: z sampled in training, mean in eval.
        A CF-reading model also takes text-only rows (B, input_dim): they get the cold CF part."""
        x = self.with_cold_part(x)
        h = self.encoder(x)
        if not self.variational:
            return h, None
        mu, logvar = h.chunk(2, dim=-1)
        logvar = logvar.clamp(-30, 20)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1).mean()
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return z, kl

    def recon_loss(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.recon == "cosine":
            return (1 - F.cosine_similarity(recon.float(), x.float(), dim=-1)).mean()
        return F.mse_loss(recon.float(), x.float(), reduction="none").sum(-1).mean()

    def forward(self, x: torch.Tensor, kl_weight: float | None = None,
                neighbours: torch.Tensor | None = None, quantize: bool = True,
                cf: torch.Tensor | None = None, cf_mask: torch.Tensor | None = None) -> ModelOutput:
        """x (B, d) float -> ModelOutput. kl_weight overrides cfg.kl_weight (warm-up);
        neighbours (B, d): one embedding-space neighbour per row, for the neighbour term;
        quantize=False: skip the quantizer (AE warm-up, before the codebooks are fitted);
        cf (B, c) / cf_mask (B,) bool: CF embeddings for the collaborative term (rows without
        one, mask False, contribute reconstruction and quantization losses only)."""
        z, kl = self.latent(self.cf_dropped(x) if self.training else x)
        parts: dict[str, torch.Tensor] = {}
        if self.cfg.sim_weight > 0:
            parts["sim"] = similarity_loss(z, x)
        if neighbours is not None and self.cfg.nbr_weight > 0:
            parts["nbr"] = neighbour_loss(z, self.latent(neighbours)[0])
        codes, z_cont = None, z
        if quantize and self.trained_levels:
            q = self.quantizer(z, levels=self.trained_levels)
            z, codes = q.quantized, q.codes
            parts["quant"] = q.loss
            for l, ll in enumerate(q.level_losses):
                parts[f"quant_l{l}"] = ll.detach()
        if cf is not None and self.collaborative:
            keep = cf_mask if cf_mask is not None else torch.ones(len(z), dtype=torch.bool, device=z.device)
            parts["cf"] = info_nce(self.cf_proj(self._cf_latent(z, z_cont, codes)[keep]), cf[keep],
                                   self.cfg.cf_temperature)
        recon = self.decoder(z)
        parts["recon"] = self.input_recon_loss(recon, x)
        loss = parts["recon"] + self.cfg.quant_weight * parts.get("quant", 0.0)
        if "sim" in parts:
            loss = loss + self.cfg.sim_weight * parts["sim"]
        if "nbr" in parts:
            loss = loss + self.cfg.nbr_weight * parts["nbr"]
        if "cf" in parts:
            loss = loss + self.cfg.cf_weight * parts["cf"]
        if kl is not None:
            parts["kl"] = kl
            loss = loss + (self.cfg.kl_weight if kl_weight is None else kl_weight) * kl
        return ModelOutput(recon, codes, loss, parts)

    # -- collaborative inputs [text, alpha * CF] (models/cf_input.py) ---------------------------
    def cold_part(self, text: torch.Tensor) -> torch.Tensor:
        """(B, c) CF part of rows without a CF embedding, by cfg.cf_cold."""
        if self.cfg.cf_cold == "regress":
            return predicted_part(text, self.cf_reg_w, self.cf_reg_b, self.cfg.cf_alpha).to(text.dtype)
        return text.new_zeros(len(text), self.cfg.cf_dim)

    def with_cold_part(self, x: torch.Tensor) -> torch.Tensor:
        """Text-only rows (B, input_dim) of a CF-reading model -> (B, input_dim + cf_dim); others as given."""
        if self.reads_cf and x.shape[1] == self.cfg.input_dim:
            return torch.cat([x, self.cold_part(x)], dim=1)
        return x

    def cf_dropped(self, x: torch.Tensor) -> torch.Tensor:
        """Training: each row with a CF part takes the cold part instead with probability cf_dropout,
        so text-only inputs learn to land where their warm twins do (the target stays the full row)."""
        d, p = self.cfg.input_dim, self.cfg.cf_dropout
        if not (self.reads_cf and p > 0 and x.shape[1] > d):
            return x
        drop = (torch.rand(len(x), device=x.device) < p) & x[:, d:].ne(0).any(1)
        return torch.where(drop[:, None], self.with_cold_part(x[:, :d]), x)

    def input_recon_loss(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of the inputs; a CF-reading model's CF part counts only on rows that have one
        (rows of items without CF would teach text-only rows to decode a zero CF part)."""
        d = self.cfg.input_dim
        if x.shape[1] == d:
            return self.recon_loss(recon[:, :d], x)
        has = x[:, d:].ne(0).any(1)
        loss = self.recon_loss(recon[:, :d], x[:, :d])
        if has.any():
            loss = loss + self.recon_loss(recon[has, d:], x[has, d:]) * has.float().mean()
        return loss

    def cf_inputs(self, text: np.ndarray, cf: np.ndarray | None, has: np.ndarray | None) -> np.ndarray:
        """(N, d + c) float32 inputs: text ⊕ α·CF where `has`, text ⊕ the cold part elsewhere."""
        if not self.cfg.cf_dim:
            return np.ascontiguousarray(text, np.float32)
        # Filled in place, the cold part computed for the cold rows only: at 1M items the
        # concatenate-then-overwrite version held three (N, d + c) copies (~5 GB) and
        # predicted a cold part for every warm row too.
        d = self.cfg.input_dim
        out = np.empty((len(text), d + self.cfg.cf_dim), np.float32)
        out[:, :d] = text
        has = np.zeros(len(text), bool) if cf is None else np.asarray(has, bool)
        if has.any():
            out[has, d:] = self.cfg.cf_alpha * np.asarray(cf, np.float32)[has]
        cold = np.flatnonzero(~has)
        if len(cold):
            out[cold, d:] = self._batched(lambda t: self.cold_part(t.float()), out[cold, :d])
        return out

    @torch.no_grad()
    def fit_cf_inputs_(self, text: np.ndarray, cf: np.ndarray, has: np.ndarray) -> np.ndarray:
        """Before training: fit the text -> CF regression (cf_cold "regress") on the items with CF,
        then return their `cf_inputs`."""
        if self.cfg.cf_cold == "regress":
            w, b = fit_ridge(text, cf, has, self.cfg.cf_ridge)
            self.cf_reg_w.copy_(torch.from_numpy(w))
            self.cf_reg_b.copy_(torch.from_numpy(b))
        return self.cf_inputs(text, cf, has)

    def _cf_latent(self, z_q: torch.Tensor, z: torch.Tensor, codes: torch.Tensor | None) -> torch.Tensor:
        """The (B, D) latent the collaborative term reads (cfg.cf_target); before the codebooks are
        fitted (codes None) every target falls back to the encoder output."""
        if codes is None or self.cfg.cf_target == "latent":
            return z
        if self.cfg.cf_target == "prefix":
            first = self.quantizer.layers[0].embed[codes[:, 0]]
            return z + (first - z).detach()  # value: the level-0 codeword; gradient: to the encoder
        return z_q

    @torch.no_grad()
    def init_linear_(self, x: torch.Tensor) -> None:
        """pca_skip: set the linear paths to PCA of x (N, d): z = V (x - mean), x' = V^T z + mean."""
        if not (self.neural and self.cfg.pca_skip):
            return
        x = x.float()
        mean = x.mean(0)
        # top right singular vectors of the centred data (torch.linalg.svd: deterministic on CPU);
        # a sample smaller than the latent gives fewer, and the other latent dims start at zero
        v = torch.linalg.svd(x - mean, full_matrices=False).Vh[: self.latent_dim]  # (d, input_dim)
        d = v.shape[0]
        enc_bias = torch.zeros(self.encoder.linear.out_features, device=x.device)
        enc_bias[:d] = -(v @ mean)
        if self.variational:
            enc_bias[self.latent_dim:] = -8.0  # small initial variance next to PCA scales
        self.encoder.set_linear_(v, enc_bias)
        w_dec = torch.zeros(x.shape[1], self.latent_dim, device=x.device)
        w_dec[:, :d] = v.t()
        self.decoder.set_linear_(w_dec, mean)

    @torch.no_grad()
    def init_codebooks_(self, x: torch.Tensor, seed: int = 0) -> None:
        """Before training: k-means init of the trained levels on the latents of x (N, d),
        a large sample rather than one batch (see train.py for why)."""
        if self.trained_levels:
            z, _ = self._eval(self.latent, x)
            self.quantizer.init_embed_(z, seed=seed)

    @torch.no_grad()
    def fit_codebooks_(self, x: torch.Tensor, seed: int = 0) -> None:
        """After training: residual k-means on the latents of x (N, d) for the untrained levels."""
        if self.trained_levels < self.levels:
            z, _ = self._eval(self.latent, x)
            self.quantizer.init_embed_(z, start=self.trained_levels, seed=seed)

    def _eval(self, fn, x):
        was = self.training
        self.eval()
        try:
            return fn(x)
        finally:
            self.train(was)

    # -- numpy side ---------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.quantizer.layers[0].embed.device

    def _batched(self, fn, x: np.ndarray, batch: int = 8192) -> np.ndarray:
        was = self.training
        self.eval()
        try:
            with torch.inference_mode():
                # np.require copies read-only slices (arrays straight from Arrow), which
                # torch would otherwise warn about; writable ones pass through untouched
                outs = [fn(torch.as_tensor(np.require(x[s:s + batch], requirements="W"), device=self._device()))
                        for s in range(0, len(x), batch)]
        finally:
            self.train(was)
        return torch.cat(outs).cpu().numpy() if outs else np.zeros((0,), dtype=np.float32)

    def encode_latent(self, x: np.ndarray) -> np.ndarray:
        """(N, d) float32 -> (N, D) float32 latent (the VAE's mean)."""
        return self._batched(lambda t: self.latent(t.float())[0].float(), x).astype(np.float32)

    def encode_codes(self, x: np.ndarray, distinct_last: bool = False) -> np.ndarray:
        """(N, d) float32 -> (N, L) int64 codes (greedy: each item its nearest codes).

        distinct_last=True: items that share their first L-1 codes get distinct last codes
        (see ResidualQuantizer.encode); codes then depend on the whole input, not one row.
        """
        if distinct_last:
            z = torch.from_numpy(np.ascontiguousarray(self.encode_latent(x))).to(self._device())
            out = self.quantizer.encode(z, distinct_last=True).cpu().numpy()
        else:
            out = self._batched(lambda t: self.quantizer.encode(self.latent(t.float())[0]), x)
        return out.astype(np.int64).reshape(len(x), self.levels)

    def decode_codes(self, codes: np.ndarray) -> np.ndarray:
        """(N, L) ints -> (N, d) float32 reconstruction of the embedding."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != self.levels:
            raise ValueError(f"codes must have shape (N, {self.levels}), got {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size})")
        out = self._batched(lambda c: self.decoder(self.quantizer.decode(c)).float(), codes).astype(np.float32)
        return out[:, : self.cfg.input_dim] if out.ndim == 2 else out  # the text part of [text, alpha * CF]

    def codebooks(self) -> list[np.ndarray]:
        """L arrays (K, D) float32."""
        return [vq.embed.detach().float().cpu().numpy().copy() for vq in self.quantizer.layers]

    # -- persistence ---------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "levels": self.levels,
            "codebook_size": self.codebook_size,
            "latent_dim": self.latent_dim,
            "embedding_model": self.meta.get("embedding_model"),
            "embedding_dim": self.meta.get("embedding_dim", self.cfg.input_dim),
            "data_sha256": self.meta.get("data_sha256"),
            "model": to_dict(self.cfg),
            "train": self.meta.get("train"),
            "cf": self.meta.get("cf") or {"used": False},
            **({"inputs": layout(self.cfg)} if self.reads_cf else {}),
            "provenance": self.meta.get("provenance") or provenance(),
        }

    def save(self, out_dir: str | Path) -> None:
        """Write model.safetensors and config.json atomically into out_dir."""
        from safetensors.torch import save

        out = Path(out_dir)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        write_bytes_atomic(out / WEIGHTS, save(tensors, metadata={"kind": self.kind}))
        write_json_atomic(out / CONFIG, self.config_dict())


# Architecture keys added after the first checkpoints were written, with the value those
# checkpoints were built with: a config.json without them still loads as what it was
# (`ema` was always written; it is listed for files edited by hand).
# `cf_input`: collaborative RQ-VAEs before issue 25 read text only. `cf_cold`: rqkmeans-cf coded
# cold items by the text part of its codewords before the rule existed. `kind`: rqvae before `auto`.
LEGACY_MODEL_DEFAULTS = {"kind": "rqvae", "pca_skip": False, "ema": False, "cf_input": False, "cf_cold": "zero"}


def saved_model_config(saved: dict[str, Any], where: str = "config") -> ModelConfig:
    """The ModelConfig recorded in a config.json's "model" entry (older files included)."""
    from ..core.config import from_dict

    model = saved.get("model")
    if isinstance(model, dict):
        model = {**LEGACY_MODEL_DEFAULTS, **model}
    return from_dict(ModelConfig, model, where=where)


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """config.json of a model directory, with clear errors."""
    from ..core.errors import UserError

    p = Path(model_dir) / CONFIG
    if not p.is_file():
        raise UserError(f"not a model directory (no {CONFIG}): {model_dir}")
    try:
        cfg = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"corrupt {p}: {e}") from None
    if not isinstance(cfg, dict) or "kind" not in cfg or "model" not in cfg:
        raise UserError(f"corrupt {p}: missing 'kind' or 'model'")
    return cfg


def load_state(model: nn.Module, path: str | Path) -> None:
    """Load safetensors weights into model; corrupt or mismatched files -> UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..core.errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint weights missing: {p}")
    try:
        state = load_file(str(p))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"corrupt checkpoint {p}: {e}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()
        raise UserError(f"checkpoint {p} does not match its config: {' '.join(first[:3])[:400]}") from None


def replace(cfg: ModelConfig, **kw) -> ModelConfig:
    return dataclasses.replace(cfg, **kw)
