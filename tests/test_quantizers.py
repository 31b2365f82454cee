"""Quantizer maths on tiny tensors: STE gradient, losses, EMA, k-means init, dead codes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rqvae_ids.quantizers import ResidualQuantizer, VectorQuantizer, assign, kmeans, residual_kmeans, straight_through


def blobs(n=200, d=4, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 5
    return centres[torch.arange(n) % k] + 0.05 * torch.randn(n, d, generator=g), centres


def test_straight_through_gradient_reaches_encoder():
    enc = torch.nn.Linear(4, 4)
    vq = VectorQuantizer(4, 8)
    x, _ = blobs()
    out = vq(enc(x))
    out.quantized.sum().backward()
    assert enc.weight.grad is not None and enc.weight.grad.abs().sum() > 0
    # The forward value is the codeword, exactly.
    assert torch.allclose(out.quantized, vq.embed[out.codes].detach(), atol=1e-6)


@pytest.mark.parametrize("mode", ["ste", "rotation"])
def test_straight_through_value_and_grad(mode):
    x = torch.randn(5, 3, requires_grad=True)
    e = torch.randn(5, 3)
    q = straight_through(x, e, mode)
    assert torch.allclose(q, e, atol=1e-5)
    q.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_loss_is_codebook_plus_beta_commitment():
    vq = VectorQuantizer(2, 2, beta=0.25, dead_code_steps=0)
    vq.set_embed_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    x = torch.tensor([[1.0, 0.0], [9.0, 10.0]])
    out = vq(x)
    assert out.codes.tolist() == [0, 1]
    mse = 0.5  # each point is 1 away in one of 2 dims -> mean squared error 0.5
    assert out.loss.item() == pytest.approx(mse + 0.25 * mse)
    vq_ema = VectorQuantizer(2, 2, beta=0.25, ema=True, dead_code_steps=0).eval()
    vq_ema.set_embed_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    assert vq_ema(x).loss.item() == pytest.approx(0.25 * mse)


def test_ema_update_moves_codes_towards_assigned_mean():
    vq = VectorQuantizer(2, 2, ema=True, decay=0.5, eps=0.0, dead_code_steps=0)
    vq.set_embed_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    x = torch.tensor([[2.0, 0.0], [2.0, 0.0], [8.0, 10.0], [8.0, 10.0]])
    vq(x)
    # cluster_size: 0.5*1 + 0.5*2 = 1.5; embed_avg: 0.5*e + 0.5*sum(x) -> embed = avg / size.
    assert vq.cluster_size.tolist() == pytest.approx([1.5, 1.5])
    assert vq.embed[0].tolist() == pytest.approx([(0 + 0.5 * 4) / 1.5, 0.0])
    assert vq.embed[1].tolist() == pytest.approx([(5 + 0.5 * 16) / 1.5, (5 + 0.5 * 20) / 1.5])
    assert not vq.embed.requires_grad


def test_kmeans_init_places_codes_on_data():
    x, centres = blobs(k=4)
    vq = VectorQuantizer(4, 8)
    assert not bool(vq.initted)
    vq.train()(x)  # lazy init on the first batch
    assert bool(vq.initted)
    # every blob gets a code, and every code sits at a data point's blob (no code in empty space)
    assert (torch.cdist(centres, vq.embed.detach()).min(1).values < 0.2).all()
    assert (torch.cdist(vq.embed.detach(), x).min(1).values < 0.5).all()


def test_dead_codes_are_reseeded_from_far_vectors():
    x, _ = blobs(k=2)
    vq = VectorQuantizer(4, 8, dead_code_steps=2)
    far = torch.full((8, 4), 1e3)  # every code but 0 far away from the data: never used
    far[0] = x.mean(0)
    vq.set_embed_(far)
    vq.train()
    vq(x)
    assert int(vq.reseeded) == 0
    vq(x)
    assert int(vq.reseeded) == 7
    # Re-seeded codes now sit on data points.
    gap = (vq.embed[1:].detach()[:, None, :] - x[None]).abs().amax(-1).min(1).values
    assert gap.max() < 1e-6


def test_residual_quantizer_levels_and_inverse():
    x, _ = blobs(n=256, d=4, k=8)
    rq = ResidualQuantizer(3, 8, 4)
    rq.init_embed_(x)
    out = rq.eval()(x)
    assert out.codes.shape == (256, 3) and out.codes.dtype == torch.int64
    assert len(out.level_losses) == 3
    assert torch.equal(rq.encode(x), out.codes)
    assert torch.allclose(rq.decode(out.codes), out.quantized, atol=1e-5)
    # each level removes error
    errs = [((x - rq.decode(torch.cat([out.codes[:, :l + 1], torch.zeros(256, 2 - l, dtype=torch.long)], 1)
                             if l < 2 else out.codes)) ** 2).sum() for l in range(3)]
    assert errs[2] <= errs[0]


def test_kmeans_helpers():
    x = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    c = kmeans(x, 60)  # fewer points than k still works
    assert c.shape == (60, 3)
    codes, dist = assign(x, c)
    assert codes.shape == (50,) and (dist >= 0).all()
    books, codes = residual_kmeans(x, 2, 4)
    assert len(books) == 2 and codes.shape == (50, 2) and codes.max() < 4


def test_distinct_last_level_separates_duplicates_keeps_prefix():
    x, _ = blobs(n=64, d=4, k=4)
    x = torch.cat([x, x[:10]])  # exact duplicates collide under greedy codes
    rq = ResidualQuantizer(2, 16, 4)
    rq.init_embed_(x)
    greedy, distinct = rq.encode(x), rq.encode(x, distinct_last=True)
    assert torch.equal(greedy[:, 0], distinct[:, 0])  # the prefix is untouched
    assert torch.unique(greedy, dim=0).shape[0] < len(x)
    # every prefix group of <= 16 items gets distinct last codes
    for g in torch.unique(distinct[:, 0]):
        rows = distinct[distinct[:, 0] == g]
        assert torch.unique(rows[:, 1]).numel() == min(len(rows), 16)
