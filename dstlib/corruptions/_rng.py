"""Counter-based random draws for the corruptions, batched in torch integer ops.

Element j of stream t of image i gets the 32 bits

    bits = lowbias32(a_i,t + j * b_i,t)      (mod 2^32, int32 arithmetic that wraps)

where lowbias32 is C. Wellons' 32-bit integer hash (xorshift 16, * 0x7feb352d,
xorshift 15, * 0x846ca68b, xorshift 16) and (a, b) are the image's keys: the
low and high halves of its 63-bit seed (`image_seeds`), each hashed with the
stream number t, b made odd (a Weyl sequence per image and stream, hashed).
The bits depend only on (seed, name, severity, index, stream, j): never on the
batch or the device (integer ops are exact everywhere). The tensor hash runs in
place (13 int32 passes: the Weyl step, then shift into a scratch buffer, mask
(int32 shifts are arithmetic), xor; two multiplies). Derived draws:

- uniform: (bits >>> 8) * 2^-24 in float32, or (bits mod 2^32) * 2^-32 in float64;
- normal: Box-Muller. A field of m normals is P = ceil(m/2) pairs; pair k takes
  its radius from draw k, r = sqrt(-2 ln u1) with u1 = (2 (w ^ 2^22) + 1) / 2^24,
  w = bits >>> 9 (23 bits, u1 in (0, 1), |z| <= 5.77; the xor comes from an int32
  arithmetic shift: ((bits >> 8) | 1) + 2^23), and its angle from a 16-bit half of draw
  P + k // 2 (low half for even k, high half for odd k), theta = 2 pi (a + 1/2) / 2^16
  for a the half's unsigned value, cos and sin read from two 2^16-entry tables
  (float32 of the float64 values); elements k and P + k are r cos, r sin (r in
  float32; on the CPU numpy's log and sqrt, elsewhere torch's: within an ulp). The
  16-bit angle is sound: the density of r cos(theta) over 2^16 equally spaced
  angles is a periodic trapezoid rule of the exact one (error decays faster than
  any power of the spacing), except within ~pi/2^16 of zero (there it dips: no
  exact zeros); 3 draws per 4 normals;
- integers in [0, m): floor(bits * m / 2^32) (multiply-shift, bias <= m / 2^32);
- Poisson: Walker's alias method on the pmf quantised to 2^-32 (see `poisson`).

bits, uniform and integers give the same integers as in corruptions VERSION 2;
normal and poisson changed scheme in VERSION 3, pairs_pow2 (packed: one draw per
32 // (2 b) pairs) in VERSION 4 (same distributions). Big
CPU intermediates live in per-thread scratch buffers (`_scratch`), so repeated
draws do not page-fault; results never share them.
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np
import torch

M32 = 0xFFFFFFFF
_C1, _C2 = 0x7FEB352D, 0x846CA68B - (1 << 32)  # lowbias32's multipliers as int32


def positions(index, n: int) -> list[int]:
    """The images' dataset positions, which key their draws: `index` (None: 0..n-1), checked."""
    if index is None:
        return list(range(n))
    idx = torch.as_tensor(index)
    if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or idx.shape != (n,):
        raise ValueError(f"index={tuple(idx.shape)} {idx.dtype} is invalid; allowed: None or an integer tensor "
                         f"of shape ({n},)")
    if n and int(idx.min()) < 0:
        raise ValueError(f"index={int(idx.min())} is invalid; allowed: positions >= 0")
    return idx.tolist()


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


def _xorshift_(h: torch.Tensor, k: int, tmp: torch.Tensor) -> None:
    """h ^= h >>> k in place, through the scratch tensor tmp (same shape)."""
    torch.bitwise_right_shift(h, k, out=tmp)
    tmp &= (1 << (32 - k)) - 1
    h ^= tmp


_POOL = threading.local()
POOL_MAX_BYTES = 1 << 24


def _scratch(slot: str, shape, dtype, device) -> torch.Tensor:
    """A scratch tensor for intermediates, never returned to callers. On CPU one byte
    buffer per slot and thread (this module's "hash", "bits", "a", "b", "c", used also
    by noise.py, and zoom blur's "zoom_*"; a caller's slot must not be in use further up
    its call chain; up to POOL_MAX_BYTES each, bigger ones are fresh) is kept and reused,
    because fresh pages cost more than the passes over them (about 1 us per 4 KiB page
    fault here)."""
    n = math.prod(shape)
    nbytes = n * dtype.itemsize
    if torch.device(device).type != "cpu" or nbytes > POOL_MAX_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    buf = _POOL.__dict__.get(slot)
    if buf is None or buf.numel() < nbytes:
        buf = torch.empty(max(nbytes, 1 << 16), dtype=torch.uint8)
        _POOL.__dict__[slot] = buf
    return buf[:nbytes].view(dtype).view(shape)


def lowbias32_(h: torch.Tensor) -> torch.Tensor:
    """The hash in place on a contiguous int32 tensor."""
    tmp = _scratch("hash", h.shape, torch.int32, h.device)
    _xorshift_(h, 16, tmp)
    h *= _C1
    _xorshift_(h, 15, tmp)
    h *= _C2
    _xorshift_(h, 16, tmp)
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


@lru_cache(maxsize=16)
def _counter(m: int, device: str) -> torch.Tensor:
    """0..m-1 as int32 (cached: the Weyl step reads it)."""
    return torch.arange(m, dtype=torch.int32, device=device)


def bits(seeds, stream: int, shape, device="cpu", _slot: str | None = None) -> torch.Tensor:
    """(N, *shape) int32 tensor of 32 random bits per element (`_slot`: into a scratch
    buffer, for this module's and noise.py's intermediates)."""
    a, b = keys(seeds, stream)
    n, m = len(a), math.prod(shape)
    dev = torch.device(device)
    at = torch.from_numpy(a).to(dev).view(n, 1)
    bt = torch.from_numpy(b).to(dev).view(n, 1)
    out = None if _slot is None else _scratch(_slot, (n, m), torch.int32, dev)
    h = torch.mul(_counter(m, str(dev)).view(1, m), bt, out=out)
    h += at
    return lowbias32_(h).view(n, *shape)


def uniform(seeds, stream: int, shape, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """U[0, 1): 24 bits in float32, 32 bits in float64."""
    h = bits(seeds, stream, shape, device, _slot="bits")
    if dtype == torch.float64:
        u = h.to(torch.int64)
        u &= M32
        return u.to(torch.float64).mul_(2.0 ** -32)
    h >>= 8
    h &= (1 << 24) - 1
    return h.to(dtype).mul_(2.0 ** -24)


def integers(seeds, stream: int, shape, high, device="cpu") -> torch.Tensor:
    """Integers in [0, high) by multiply-shift; `high` a number or a tensor broadcastable
    to (N, *shape). A number below 128 uses the top 24 bits in int32 ((bits >>> 8) *
    high >>> 24, bias <= high / 2^24; int32 result), otherwise all 32 bits (int64)."""
    small = isinstance(high, int) and 0 < high < 128
    h = bits(seeds, stream, shape, device, _slot=None if small else "bits")
    if small:
        h >>= 8
        h &= (1 << 24) - 1
        h *= high
        h >>= 24
        return h  # < 2^7 * 2^24 / 2^24: already non-negative
    h = h.to(torch.int64)
    h &= M32
    h = h * torch.as_tensor(high, device=h.device)
    h >>= 32  # floor(bits * high / 2^32): bits * high >= 0
    return h


def pairs_pow2(seeds, stream: int, shape, log2_high: int, device="cpu") -> torch.Tensor:
    """(N, *shape, 2) int32 pairs, each member uniform in [0, 2^b) exactly (b = log2_high
    <= 16), k = 32 // (2 b) pairs per 32-bit draw: with M = ceil(m / k) draws for the m
    pairs of an image, pair j reads bit group g = j // M (bits 2 b g .. 2 b g + 2 b - 1,
    from the lowest) of draw j % M, its high b bits as the first member, its low b bits
    as the second. The pair axis is a view of planar storage (N, 2, *shape)."""
    b = int(log2_high)
    m = math.prod(shape)
    k = 32 // (2 * b)
    mm = -(-m // k)
    h = bits(seeds, stream, (mm,), device, _slot="bits")
    n = h.shape[0]
    out = torch.empty((n, 2, k * mm), dtype=torch.int32, device=h.device)
    mask = (1 << b) - 1
    for g in range(k):  # contiguous blocks of the field: one shift and one mask each
        torch.bitwise_right_shift(h, 2 * b * g + b, out=out[:, 0, g * mm:(g + 1) * mm]).bitwise_and_(mask)
        torch.bitwise_right_shift(h, 2 * b * g, out=out[:, 1, g * mm:(g + 1) * mm]).bitwise_and_(mask)
    return out[:, :, :m].view(n, 2, *shape).movedim(1, -1)


ANGLE_BITS = 16


@lru_cache(maxsize=None)
def _cos_sin(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of 2 pi (a + 1/2) / 2^16, a = 0..2^16-1 (float64 values rounded to float32)."""
    th = (np.arange(1 << ANGLE_BITS, dtype=np.float64) + 0.5) * (2 * math.pi / (1 << ANGLE_BITS))
    return (torch.from_numpy(np.cos(th).astype(np.float32)).to(device),
            torch.from_numpy(np.sin(th).astype(np.float32)).to(device))


def normal(seeds, stream: int, shape, device="cpu") -> torch.Tensor:
    """Standard normals (float32) by Box-Muller with a 16-bit angle (module docstring):
    pair k gives r cos(theta), r sin(theta) to elements k and k + ceil(m/2) of the
    flattened field."""
    m = math.prod(shape)
    p = (m + 1) // 2
    q = (p + 1) // 2
    h = bits(seeds, stream, (p + q,), device, _slot="bits")
    n, dev = h.shape[0], h.device
    hu = h[:, :p]
    hu >>= 8  # arithmetic: v in [-2^23, 2^23)
    hu |= 1   # odd: v + 2^23 in [1, 2^24 - 1]
    r = _scratch("a", (n, p), torch.float32, dev)
    r.copy_(hu).mul_(2.0 ** -24).add_(0.5)  # u1 = (v + 2^23) / 2^24, exact
    if r.device.type == "cpu":  # numpy's vectorised log and sqrt take about half torch's time here
        rn = r.numpy()
        np.log(rn, out=rn)
        np.multiply(rn, -2.0, out=rn)
        np.sqrt(rn, out=rn)
    else:
        r.log_().mul_(-2.0).sqrt_()
    a = _scratch("b", (n, p), torch.int32, dev)
    a.copy_(h[:, p:].view(torch.int16)[:, :p])
    a &= (1 << ANGLE_BITS) - 1
    a = a.view(-1)
    cos, sin = _cos_sin(str(dev))
    g = _scratch("c", (n * p,), torch.float32, dev)
    z = torch.empty((n, 2, p), dtype=torch.float32, device=dev)
    torch.mul(torch.index_select(cos, 0, a, out=g).view(n, p), r, out=z[:, 0])
    torch.mul(torch.index_select(sin, 0, a, out=g).view(n, p), r, out=z[:, 1])
    z = z.view(n, 2 * p)
    if 2 * p != m:
        z = z[:, :m]
    return z.reshape(n, *shape)


@lru_cache(maxsize=64)
def _poisson_alias(rate_per_level: float, levels: int = 256):
    """Alias tables of Poisson(v * rate), v = 0..levels-1, on 2^g cells (g the bits for the
    support, pmf support 0..kk-1 covering the tail beyond 2^-40, whose mass goes to kk-1).

    The pmf is quantised to integers P[k] summing to 2^32 (P[k] = T[k] - T[k-1] with
    T[k] = ceil(CDF(k) 2^32) - 1, the inversion's thresholds); Vose's construction in
    exact integers gives cell c a count t_c in [0, 2^(32-g)) of its own value c and
    the rest to its alias, so P(k) = P[k] / 2^32 exactly. Entry (levels * 2^g,) int32:
    (t_c - 2^(31-g)) << g | alias_c."""
    from scipy.special import gammaln

    lam_max = rate_per_level * (levels - 1)
    kk = int(math.ceil(lam_max + 12 * math.sqrt(lam_max) + 30))
    g = max(1, (kk - 1).bit_length())
    ncell, cap = 1 << g, 1 << (32 - g)
    k = np.arange(kk, dtype=np.float64)
    lam = np.arange(levels, dtype=np.float64)[:, None] * rate_per_level
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(lam > 0, k * np.log(np.where(lam > 0, lam, 1.0)) - lam - gammaln(k + 1), -np.inf)
    p = np.exp(logp)
    p[:, 0] = np.where(lam[:, 0] > 0, p[:, 0], 1.0)
    cdf = np.minimum(np.cumsum(p, axis=1), 1.0)
    cdf[:, -1] = 1.0
    thr = (np.ceil(cdf * 2.0 ** 32) - 1).astype(np.int64)
    mass = np.diff(thr, axis=1, prepend=-1)  # sums to 2^32 per row
    table = np.empty((levels, ncell), dtype=np.int64)
    for v in range(levels):
        q = mass[v].tolist() + [0] * (ncell - kk)
        own, alias = [cap] * ncell, list(range(ncell))
        small = [c for c in range(ncell) if q[c] < cap]
        large = [c for c in range(ncell) if q[c] >= cap]
        while small and large:
            s, big = small.pop(), large[-1]
            own[s], alias[s] = q[s], big
            q[big] -= cap - q[s]
            if q[big] < cap:
                large.pop()
                small.append(big)
        assert not small  # exact integers: the cells left over are full (exactly cap)
        row = np.asarray(own, dtype=np.int64)
        al = np.asarray(alias, dtype=np.int64)
        full = row >= cap
        row[full], al[full] = 0, np.arange(ncell)[full]  # never the 'own' branch: alias = itself
        table[v] = ((row - (cap >> 1)) << g) | al
    return torch.from_numpy(table.astype(np.int32).ravel()), g


@lru_cache(maxsize=16)
def _poisson_alias_on(rate_per_level: float, device: str):
    table, g = _poisson_alias(rate_per_level)
    return table.to(device), g


def poisson(levels: torch.Tensor, rate: float, seeds, stream: int) -> torch.Tensor:
    """Poisson(levels * rate) per element of an integer tensor `levels` (N, ...) in 0..255
    (float32 counts).

    Walker's alias method, exact for the pmf quantised to multiples of 2^-32 (support
    covering the tail beyond 2^-40; `_poisson_alias`): the low g bits of the draw pick
    a cell c, the other 32 - g bits (arithmetic shift: offset by 2^(31-g), as the
    stored threshold) keep c if below its threshold, else give its alias; all in
    int32 passes with one table gather. The reference draws the same distribution
    with numpy's sampler, so single draws differ.
    """
    dev = levels.device
    table, g = _poisson_alias_on(float(rate), str(dev))
    shape = levels.shape
    h = bits(seeds, stream, tuple(shape[1:]), dev, _slot="bits").view(-1)
    c = torch.bitwise_and(h, (1 << g) - 1, out=_scratch("a", h.shape, torch.int32, dev))
    idx = _scratch("b", h.shape, torch.int32, dev)
    idx.copy_(levels.reshape(-1))
    idx <<= g
    idx |= c
    e = torch.index_select(table, 0, idx, out=_scratch("c", h.shape, torch.int32, dev))
    h >>= g                    # the draw's top 32 - g bits, minus 2^(31-g)
    h -= torch.bitwise_right_shift(e, g, out=idx)   # minus the cell's threshold (same offset)
    h >>= 31                   # -1: keep the cell, 0: its alias
    e &= (1 << g) - 1          # alias
    c ^= e
    c &= h
    e ^= c                     # alias ^ ((alias ^ cell) & keep)
    return e.to(torch.float32).view(shape)
