"""Counter-based random draws for the corruptions, batched in torch integer ops.

Element j of stream t of image i gets the 32 bits

    bits = lowbias32(a_i,t + j * b_i,t)      (mod 2^32, int32 arithmetic that wraps)

where lowbias32 is C. Wellons' 32-bit integer hash (xorshift 16, * 0x7feb352d,
xorshift 15, * 0x846ca68b, xorshift 16) and (a, b) are the image's keys: the
low and high halves of its 63-bit seed (`image_seeds`), each hashed with the
stream number t, b made odd (a Weyl sequence per image and stream, hashed).
The bits depend only on (seed, name, severity, index, stream, j): never on the
batch or the device (integer ops are exact everywhere). Derived draws:

- uniform: (bits >>> 8) * 2^-24 in float32, or (bits mod 2^32) * 2^-32 in float64;
- normal: Box-Muller on two consecutive uniforms, u1 in (0, 1] (float32: |z| <= 5.77);
- integers in [0, m): floor(bits * m / 2^32) (multiply-shift, bias <= m / 2^32);
- Poisson: inversion of the exact CDF (see `poisson`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

M32 = 0xFFFFFFFF
_C1, _C2 = 0x7FEB352D, 0x846CA68B - (1 << 32)  # lowbias32's multipliers as int32


def lowbias32_int(v: int) -> int:
    """Python-int version of the hash (the reference for the tensor one)."""
    v &= M32
    v ^= v >> 16
    v = (v * 0x7FEB352D) & M32
    v ^= v >> 15
    v = (v * 0x846CA68B) & M32
    return v ^ (v >> 16)


@lru_cache(maxsize=None)
def _shift(k: int, device: str) -> torch.Tensor:
    return torch.tensor(k, dtype=torch.int32, device=device)


def _srl(h: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int32 (uint32 bit patterns): arithmetic shift, then mask."""
    return torch.bitwise_right_shift(h, _shift(k, str(h.device))) & ((1 << (32 - k)) - 1)


def lowbias32_(h: torch.Tensor) -> torch.Tensor:
    """The hash in place on an int32 tensor."""
    h ^= _srl(h, 16)
    h *= _C1
    h ^= _srl(h, 15)
    h *= _C2
    h ^= _srl(h, 16)
    return h


def _lowbias32_np(v: np.ndarray) -> np.ndarray:
    """The hash on a uint64 numpy array of 32-bit values."""
    v = v & M32
    v ^= v >> 16
    v = (v * 0x7FEB352D) & M32
    v ^= v >> 15
    v = (v * 0x846CA68B) & M32
    return v ^ (v >> 16)


def keys(seeds, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (a, b) keys of a stream as int32 arrays (b odd): a = lowbias32(low half of
    the seed ^ t), b = lowbias32(high half ^ lowbias32(t + 1)) | 1, t = lowbias32(golden * (stream + 1))."""
    s = np.asarray([int(v) for v in seeds], dtype=np.uint64)
    ts = lowbias32_int(0x9E3779B9 * (stream + 1))
    a = _lowbias32_np((s & M32) ^ ts)
    b = _lowbias32_np(((s >> 32) & M32) ^ lowbias32_int(ts + 1)) | 1
    return a.astype(np.uint32).view(np.int32), b.astype(np.uint32).view(np.int32)


def bits(seeds, stream: int, shape, device="cpu") -> torch.Tensor:
    """(N, *shape) int32 tensor of 32 random bits per element."""
    a, b = keys(seeds, stream)
    n, m = len(a), math.prod(shape)
    at = torch.from_numpy(a).to(device).view(n, 1)
    bt = torch.from_numpy(b).to(device).view(n, 1)
    h = torch.arange(m, dtype=torch.int32, device=device).view(1, m) * bt
    h += at
    return lowbias32_(h).view(n, *shape)


def uniform(seeds, stream: int, shape, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """U[0, 1): 24 bits in float32, 32 bits in float64."""
    h = bits(seeds, stream, shape, device)
    if dtype == torch.float64:
        return (h.to(torch.int64) & M32).to(torch.float64) * 2.0 ** -32
    return _srl(h, 8).to(dtype) * 2.0 ** -24


def integers(seeds, stream: int, shape, high, device="cpu") -> torch.Tensor:
    """Integers in [0, high) by multiply-shift; `high` a number or a tensor broadcastable
    to (N, *shape). A number below 128 uses the top 24 bits in int32 ((bits >>> 8) *
    high >>> 24, bias <= high / 2^24; int32 result), otherwise all 32 bits (int64)."""
    h = bits(seeds, stream, shape, device)
    if isinstance(high, int) and 0 < high < 128:
        return _srl(_srl(h, 8) * high, 24)
    h = h.to(torch.int64) & M32
    return torch.div(h * torch.as_tensor(high, device=device), 1 << 32, rounding_mode="floor")


def pairs_pow2(seeds, stream: int, shape, log2_high: int, device="cpu") -> torch.Tensor:
    """(N, *shape, 2) int32 pairs, each uniform in [0, 2^log2_high) exactly, from one draw:
    the top bits of its high and of its low 16-bit half (log2_high <= 16)."""
    h = bits(seeds, stream, shape, device)
    return torch.stack([_srl(h, 32 - log2_high), _srl(h & 0xFFFF, 16 - log2_high)], dim=-1)


def normal(seeds, stream: int, shape, device="cpu") -> torch.Tensor:
    """Standard normals (float32) by Box-Muller: pair k uses uniforms 2k and 2k+1 and gives
    r cos(2 pi u2), r sin(2 pi u2) for elements k and k + ceil(m/2) of the flattened field."""
    m = math.prod(shape)
    half = (m + 1) // 2
    h = bits(seeds, stream, (half, 2), device)
    u1 = (_srl(h[..., 0], 8) + 1).to(torch.float32) * 2.0 ** -24  # (0, 1]
    u2 = _srl(h[..., 1], 8).to(torch.float32) * (2.0 ** -24 * 2 * math.pi)
    r = torch.sqrt(-2.0 * torch.log(u1))
    z = torch.cat([r * torch.cos(u2), r * torch.sin(u2)], dim=1)[:, :m]
    return z.reshape(len(h), *shape)


GUIDE_BITS = 10  # 1024 guide buckets per image value


@lru_cache(maxsize=64)
def _poisson_tables(rate_per_level: float, levels: int = 256):
    """For lam_v = v * rate, v = 0..levels-1: thresholds T (levels * K,) int32 with
    u < CDF_v(k) <=> (bits - 2^31) <= T[v K + k] for u = bits / 2^32, and a guide
    G (levels * 2^GUIDE_BITS,) int32: the first k with CDF_v(k) > bucket start.
    K covers the tail beyond 2^-40; the last threshold of each row accepts every u."""
    from scipy.special import gammaln

    lam_max = rate_per_level * (levels - 1)
    kk = int(math.ceil(lam_max + 12 * math.sqrt(lam_max) + 30))
    k = np.arange(kk, dtype=np.float64)
    lam = np.arange(levels, dtype=np.float64)[:, None] * rate_per_level
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(lam > 0, k * np.log(np.where(lam > 0, lam, 1.0)) - lam - gammaln(k + 1), -np.inf)
    p = np.exp(logp)
    p[:, 0] = np.where(lam[:, 0] > 0, p[:, 0], 1.0)
    cdf = np.minimum(np.cumsum(p, axis=1), 1.0)
    cdf[:, -1] = 1.0
    thr = np.ceil(cdf * 2.0 ** 32) - 1 - 2.0 ** 31  # u < cdf <=> bits <= ceil(cdf 2^32) - 1
    nb = 1 << GUIDE_BITS
    starts = np.arange(nb, dtype=np.float64) / nb
    guide = np.stack([np.searchsorted(cdf[v], starts, side="right") for v in range(levels)])
    return (torch.from_numpy(thr.astype(np.int32).ravel()), torch.from_numpy(guide.astype(np.int32).ravel()), kk)


def poisson(levels: torch.Tensor, rate: float, seeds, stream: int) -> torch.Tensor:
    """Poisson(levels * rate) per element of an integer tensor `levels` (N, ...) in 0..255.

    Exact inversion: k = the first k with CDF(k) > u for a 32-bit uniform u, in a
    table of the 256 possible CDFs (one rate per image value): a guide table on
    the top 10 bits of u gives a k at most the answer, then k steps up while
    CDF(k) <= u (integer comparisons; rare long tails run on the few elements
    left). The reference draws the same distribution with numpy's sampler.
    """
    thr, guide, kk = (t if isinstance(t, int) else t.to(levels.device) for t in _poisson_tables(float(rate)))
    shape = levels.shape
    lv = levels.reshape(shape[0], -1).to(torch.int32)
    h = bits(seeds, stream, tuple(shape[1:]), levels.device).reshape(shape[0], -1)
    hs = (h ^ -(1 << 31)).reshape(-1)
    k = guide.index_select(0, (lv * (1 << GUIDE_BITS) + _srl(h, 32 - GUIDE_BITS)).reshape(-1))
    base = (lv * kk).reshape(-1)
    for _ in range(2):
        k += (hs > thr.index_select(0, base + k)).to(torch.int32)
    left = (hs > thr.index_select(0, base + k)).nonzero().squeeze(1)
    while left.numel():
        k[left] += 1
        more = hs[left] > thr.index_select(0, base[left] + k[left])
        left = left[more]
    return k.to(torch.float32).reshape(shape)
