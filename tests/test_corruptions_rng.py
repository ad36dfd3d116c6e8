"""dstlib.corruptions._rng and the noise draws: exactness of the integer schemes,
statistical quality (bytes, normals, Poisson, salt and pepper), independence of
neighbours, pair partners, images and streams, batch invariance, and that the
scratch buffers never leak into results."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from scipy import stats

from dstlib import corruptions as C
from dstlib.corruptions import _rng, noise
from _corruption_refs import lowbias32


def _u32(t: torch.Tensor) -> np.ndarray:
    return t.numpy().astype(np.int64) & 0xFFFFFFFF


SEEDS = C.image_seeds(5, "rng-test", 2, range(4))


# ------------------------------------------------------------------ the integer schemes
def test_bits_are_the_hashed_weyl_sequence_with_and_without_scratch():
    a, b = _rng.keys(SEEDS, 3)
    for shape in [(5, 7), (1,), (3, 1, 9)]:
        m = math.prod(shape)
        want = [[lowbias32((int(a[i]) + j * int(b[i])) % 2 ** 32) for j in range(m)] for i in range(4)]
        got = _rng.bits(SEEDS, 3, shape)
        assert got.shape == (4, *shape) and got.dtype == torch.int32
        assert _u32(got.reshape(4, -1)).tolist() == want
        assert torch.equal(_rng.bits(SEEDS, 3, shape, _slot="bits"), got)


def test_derived_integer_draws_follow_their_documented_formulas():
    h = _u32(_rng.bits(SEEDS, 1, (6, 5)))
    assert np.array_equal(_rng.uniform(SEEDS, 1, (6, 5)).numpy(), ((h >> 8) * 2.0 ** -24).astype(np.float32))
    assert np.array_equal(_rng.uniform(SEEDS, 1, (6, 5), dtype=torch.float64).numpy(), h * 2.0 ** -32)
    assert np.array_equal(_rng.integers(SEEDS, 1, (6, 5), 7).numpy(), ((h >> 8) * 7) >> 24)
    assert np.array_equal(_rng.integers(SEEDS, 1, (6, 5), 1000).numpy(), (h * 1000) >> 32)
    for log2 in (1, 2, 3, 16):
        k = 32 // (2 * log2)
        mm = -(-30 // k)  # draws per image for the 30 pairs
        hp = _u32(_rng.bits(SEEDS, 1, (mm,)))
        pr = _rng.pairs_pow2(SEEDS, 1, (6, 5), log2).numpy().reshape(4, 30, 2)
        j = np.arange(30)
        group = (hp[:, j % mm] >> (2 * log2 * (j // mm))) & ((1 << 2 * log2) - 1)
        assert np.array_equal(pr[..., 0], group >> log2)
        assert np.array_equal(pr[..., 1], group & ((1 << log2) - 1))


def test_bytes_of_the_bits_are_uniform_and_bits_unbiased():
    h = _rng.bits(C.image_seeds(0, "bytes", 1, range(3)), 0, (200_000,))
    by = h.view(torch.uint8).reshape(-1, 4).long()
    for k in range(4):  # each byte position: chi-square with 255 degrees of freedom
        counts = torch.bincount(by[:, k], minlength=256).double()
        e = by.shape[0] / 256
        chi2 = ((counts - e) ** 2 / e).sum().item()
        assert stats.chi2.sf(chi2, 255) > 1e-4, (k, chi2)
    u = _u32(h).reshape(-1)
    for bit in range(32):
        frac = ((u >> bit) & 1).mean()
        assert abs(frac - 0.5) < 5 * 0.5 / math.sqrt(u.size), (bit, frac)


def test_uniforms_of_neighbours_images_and_streams_are_independent():
    u = _rng.uniform(SEEDS, 0, (120_000,), dtype=torch.float64)
    v = _rng.uniform(SEEDS, 1, (120_000,), dtype=torch.float64)
    c = lambda p, q: abs(np.corrcoef(p.numpy(), q.numpy())[0, 1])  # noqa: E731
    lim = 5 / math.sqrt(120_000)
    for i in range(4):
        assert c(u[i, :-1], u[i, 1:]) < lim and c(u[i, :-2], u[i, 2:]) < lim
        assert c(u[i], v[i]) < lim
    assert c(u[0], u[1]) < lim and c(u[2], u[3]) < lim
    # 2-D uniformity of consecutive pairs: a 16 x 16 grid, chi-square
    cells = (u[0, 0::2] * 16).long() * 16 + (u[0, 1::2] * 16).long()
    counts = torch.bincount(cells, minlength=256).double()
    e = cells.numel() / 256
    assert stats.chi2.sf(((counts - e) ** 2 / e).sum().item(), 255) > 1e-4


# ------------------------------------------------------------------ normals
def test_angle_tables_are_the_float64_values_rounded():
    cos, sin = _rng._cos_sin("cpu")
    th = (np.arange(1 << _rng.ANGLE_BITS) + 0.5) * (2 * np.pi / (1 << _rng.ANGLE_BITS))
    assert np.abs(cos.double().numpy() - np.cos(th)).max() < 6e-8
    assert np.abs(sin.double().numpy() - np.sin(th)).max() < 6e-8


def test_normal_field_is_the_documented_box_muller():
    shape = (3, 5, 7)  # m = 105 odd: P = 53 pairs, 27 angle draws
    m, p = 105, 53
    h = _u32(_rng.bits(SEEDS, 2, (p + 27,)))
    z = _rng.normal(SEEDS, 2, shape).reshape(4, -1).double().numpy()
    for i in range(4):
        w = h[i, :p] >> 9
        u1 = (2 * (w ^ (1 << 22)) + 1) / 2.0 ** 24
        halves = np.stack([h[i, p:] & 0xFFFF, h[i, p:] >> 16], axis=1).reshape(-1)[:p]
        th = (halves + 0.5) * (2 * np.pi / 2 ** 16)
        r = np.sqrt(-2 * np.log(u1))
        want = np.concatenate([r * np.cos(th), r * np.sin(th)])[:m]
        assert np.abs(z[i] - want).max() < 2e-6 * (1 + np.abs(want)).max()


def test_normals_are_standard_normal_and_independent():
    seeds = C.image_seeds(0, "normal", 1, range(4))
    z = _rng.normal(seeds, 0, (3, 128, 128)).reshape(4, -1).double()
    assert torch.isfinite(z).all() and z.abs().max() <= 5.78
    x = z.reshape(-1).numpy()
    n = x.size
    assert abs(x.mean()) < 5 / math.sqrt(n) and abs(x.std() - 1) < 0.005
    assert abs(stats.skew(x)) < 0.015 and abs(stats.kurtosis(x)) < 0.03
    for t, pr in ((1, 0.3173105), (2, 0.0455003), (3, 0.0026998)):
        f = (np.abs(x) > t).mean()
        assert abs(f - pr) < 5 * math.sqrt(pr * (1 - pr) / n), (t, f)
    # chi-square on 100 equiprobable bins
    counts = np.bincount(np.clip((stats.norm.cdf(x) * 100).astype(int), 0, 99), minlength=100)
    assert stats.chi2.sf((((counts - n / 100) ** 2) / (n / 100)).sum(), 99) > 1e-4
    # small |z|: no gap at zero at the resolution of the 16-bit angles
    assert abs((np.abs(x) < 0.01).mean() - (2 * stats.norm.cdf(0.01) - 1)) < 5 * math.sqrt(0.008 / n)
    lim = 5 / math.sqrt(z.shape[1] // 2)
    c = lambda p, q: abs(np.corrcoef(p.numpy(), q.numpy())[0, 1])  # noqa: E731
    half = z.shape[1] // 2
    for i in range(4):
        assert c(z[i, :-1], z[i, 1:]) < lim  # neighbours
        assert c(z[i, :half], z[i, half:]) < lim  # the two outputs of one pair
        assert c(z[i, :half] ** 2, z[i, half:] ** 2) < lim  # ... independent, not just uncorrelated
        assert c(z[i, :half:2], z[i, 1:half:2]) < lim  # pairs sharing an angle draw
    assert c(z[0], z[1]) < lim
    z2 = _rng.normal(seeds, 1, (3, 128, 128)).reshape(4, -1).double()
    assert c(z[0], z2[0]) < lim


# ------------------------------------------------------------------ Poisson
@pytest.mark.parametrize("rate", [3 / 255, 60 / 255, 500 / 255])
def test_alias_tables_reproduce_the_quantised_pmf_exactly(rate):
    table, g = _rng._poisson_alias(rate)
    ncell, cap = 1 << g, 1 << (32 - g)
    e = table.numpy().astype(np.int64).reshape(256, ncell)
    own = (e >> g) + (cap >> 1)
    alias = e & (ncell - 1)
    assert own.min() >= 0 and own.max() < cap
    for v in (0, 1, 17, 128, 255):
        got = np.bincount(np.arange(ncell), weights=own[v], minlength=ncell)
        got += np.bincount(alias[v], weights=cap - own[v], minlength=ncell)
        lam = v * rate
        kk = int(math.ceil(255 * rate + 12 * math.sqrt(255 * rate) + 30))
        cdf = np.minimum(np.cumsum(stats.poisson.pmf(np.arange(kk), lam)), 1.0) if lam else np.ones(kk)
        cdf[-1] = 1.0
        want = np.diff(np.ceil(cdf * 2.0 ** 32) - 1, prepend=-1)
        assert got.sum() == 2 ** 32
        assert np.abs(got[:kk] - want).max() <= 2 ** 32 * 1e-12 + 1 and not got[kk:].any()


@pytest.mark.parametrize("rate,levels", [(3 / 255, (255, 90)), (60 / 255, (3, 200)), (25 / 255, (128,))])
def test_poisson_counts_have_the_poisson_distribution(rate, levels):
    for v in levels:
        k = _rng.poisson(torch.full((3, 1, 150, 150), v, dtype=torch.uint8), rate, [1, 2, 3], 4)
        assert k.dtype == torch.float32 and torch.equal(k, k.round()) and k.min() >= 0
        k = k.reshape(-1).long().numpy()
        lam, m = v * rate, k.size
        assert abs(k.mean() - lam) < 5 * math.sqrt(lam / m)
        counts = np.bincount(k)
        exp = stats.poisson.pmf(np.arange(len(counts)), lam) * m
        keep = exp >= 20
        chi2 = (((counts[keep] - exp[keep]) ** 2) / exp[keep]).sum()
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4, (v, chi2)


def test_poisson_per_pixel_rates_and_batch_invariance():
    x = torch.randint(0, 256, (3, 3, 40, 40), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    seeds = C.image_seeds(1, "shot_noise", 3, range(3))
    k = _rng.poisson(x, 12 / 255, seeds, 0)
    assert torch.equal(_rng.poisson(x[1:2], 12 / 255, seeds[1:2], 0), k[1:2])
    assert (k[x == 0] == 0).all()
    # E[k | v] = v * rate: pooled over all pixels, standardised
    lam = x.double() * 12 / 255
    zstat = ((k.double() - lam).sum() / lam.sum().sqrt()).item()
    assert abs(zstat) < 5


# ------------------------------------------------------------------ impulse fields
def test_impulse_fields_flip_and_salt_rates_and_independence():
    ctx = C._Ctx("imagenet", {}, (3, 100, 101), device=torch.device("cpu"))
    seeds = C.image_seeds(2, "impulse_noise", 1, range(6))
    for amount in (0.01, 0.27):
        f = noise.draw_impulse_noise(seeds, amount, ctx)
        fl, sa = f["flipped"], f["salted"]
        assert fl.dtype == torch.bool and sa.dtype == torch.bool and fl.shape == (6, 3, 100, 101)
        for t in (fl, sa):
            assert set(t.view(torch.uint8).unique().tolist()) <= {0, 1}
        n = fl.numel()
        q = round(amount * 2 ** 15) / 2 ** 15
        assert abs(fl.double().mean().item() - q) < 5 * math.sqrt(q * (1 - q) / n)
        assert abs(sa.double().mean().item() - 0.5) < 5 * math.sqrt(0.25 / n)
        nf = int(fl.sum())
        assert abs(sa[fl].double().mean().item() - 0.5) < 5 * math.sqrt(0.25 / nf)  # salt independent of flip
        lim = 5 / math.sqrt(n)
        a = fl.reshape(-1).double().numpy()
        assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < lim
        part = noise.draw_impulse_noise(seeds[4:5], amount, ctx)
        assert torch.equal(part["flipped"], fl[4:5]) and torch.equal(part["salted"], sa[4:5])


def test_impulse_apply_matches_the_where_formula():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (2, 3, 9, 11), generator=g, dtype=torch.uint8)
    fl = torch.rand(x.shape, generator=g) < 0.3
    sa = torch.rand(x.shape, generator=g) < 0.5
    ctx = C._Ctx("cifar", {}, tuple(x.shape[1:]), uint8=x)
    want = torch.where(fl, sa.to(torch.uint8) * 255, x)
    assert torch.equal(noise.apply_impulse_noise(None, 0.3, ctx, {"flipped": fl, "salted": sa}), want)
    got = noise.apply_impulse_noise(None, 0.3, ctx, {"flipped": fl.to(torch.uint8) * 3, "salted": sa.double()})
    assert torch.equal(got, want)


# ------------------------------------------------------------------ scratch buffers
def test_results_never_share_the_scratch_buffers():
    s1, s2 = C.image_seeds(0, "a", 1, range(2)), C.image_seeds(0, "b", 1, range(2))
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    ctx = C._Ctx("cifar", {}, (3, 16, 16), device=torch.device("cpu"), uint8=x)
    def draws(s):
        return [_rng.normal(s, 0, (3, 16, 16)), _rng.poisson(x, 0.2, s, 0), _rng.bits(s, 0, (50,)),
                _rng.uniform(s, 0, (50,)), _rng.uniform(s, 0, (50,), dtype=torch.float64),
                _rng.integers(s, 0, (50,), 5), _rng.integers(s, 0, (50,), 5000), _rng.pairs_pow2(s, 0, (50,), 2),
                *noise.draw_impulse_noise(s, 0.1, ctx).values()]

    first = draws(s1)
    keep = [t.clone() for t in first]
    draws(s2)
    _rng.bits(s2, 0, (50,), _slot="bits")
    assert all(torch.equal(a, b) for a, b in zip(first, keep))


def test_draws_in_threads_equal_serial_draws():
    seeds = [C.image_seeds(0, "thr", 1, range(i, i + 3)) for i in range(4)]
    want = [_rng.normal(s, 0, (3, 64, 64)) for s in seeds]
    got = [None] * 4

    def work(i):
        for _ in range(3):
            got[i] = _rng.normal(seeds[i], 0, (3, 64, 64))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_normal_batch_invariance_for_odd_sizes():
    for shape in [(1, 7, 9), (3, 5, 5), (1, 1, 1)]:
        z = _rng.normal(SEEDS, 0, shape)
        assert z.shape == (4, *shape)
        assert torch.equal(_rng.normal(SEEDS[2:3], 0, shape), z[2:3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_integers_on_cuda():
    x = torch.randint(0, 256, (2, 3, 33, 35), dtype=torch.uint8)
    ctx = C._Ctx("cifar", {}, tuple(x.shape[1:]), device=torch.device("cpu"), uint8=x)
    ctxc = C._Ctx("cifar", {}, tuple(x.shape[1:]), device=torch.device("cuda"), uint8=x.cuda())
    s = SEEDS[:2]
    assert torch.equal(_rng.bits(s, 0, (3, 33, 35)), _rng.bits(s, 0, (3, 33, 35), "cuda").cpu())
    assert torch.equal(_rng.poisson(x, 0.3, s, 0), _rng.poisson(x.cuda(), 0.3, s, 0).cpu())
    for k in ("flipped", "salted"):
        assert torch.equal(noise.draw_impulse_noise(s, 0.1, ctx)[k], noise.draw_impulse_noise(s, 0.1, ctxc)[k].cpu())
    assert torch.allclose(_rng.normal(s, 0, (3, 33, 35)), _rng.normal(s, 0, (3, 33, 35), "cuda").cpu(), atol=1e-5)


# ------------------------------------------------------------------ exhaustive checks on forged bits
def test_impulse_flip_probability_is_exactly_the_quantised_amount(monkeypatch):
    """Every 16-bit value once: exactly 2 round(c 2^15) flips in 2^16, half of them salt."""
    every = torch.arange(-2 ** 15, 2 ** 15, dtype=torch.int32).to(torch.int16).view(torch.int32).view(1, -1)
    monkeypatch.setattr(_rng, "bits", lambda seeds, stream, shape, device="cpu", _slot=None: every.clone())
    ctx = C._Ctx("imagenet", {}, (1, 256, 256), device=torch.device("cpu"))
    for amount in (0.01, 0.03, 0.27, 1.0):
        f = noise.draw_impulse_noise([0], amount, ctx)
        k = round(amount * 2 ** 15)
        assert int(f["flipped"].sum()) == 2 * k
        assert int((f["flipped"] & f["salted"]).sum()) == k and int(f["salted"].sum()) == 2 ** 15


def test_extreme_radius_draws_stay_finite(monkeypatch):
    """The smallest u1 = 2^-24 (bits 0x80000000..., also 0x800000ff) gives |z| = sqrt(48 ln 2);
    the largest gives a radius near 0."""
    p = 4
    h = torch.tensor([[-2 ** 31, -2 ** 31 + 255, 2 ** 31 - 1, 2 ** 31 - 256, 0, 0]], dtype=torch.int32)
    monkeypatch.setattr(_rng, "bits", lambda seeds, stream, shape, device="cpu", _slot=None: h.clone())
    z = _rng.normal([0], 0, (2 * p,))[0].double()
    r = torch.sqrt(z[:p] ** 2 + z[p:] ** 2)
    assert torch.isfinite(z).all()
    big = math.sqrt(48 * math.log(2))
    assert torch.allclose(r[:2], torch.full((2,), big, dtype=torch.float64), rtol=1e-6)
    assert (r[2:] < 1e-3).all() and (r[2:] > 0).all()
