"""C-bar additive noises: single_frequency_greyscale, cocentric_sine_waves, plasma_noise,
perlin_noise, blue_noise_sample, brownish_noise (see cbar.py for the conventions).

Each function maps a uint8 batch (n, C, im, im) and its fields (CPU tensors) to the
uint8 result. Coordinates: `row` is the reference's y (the array's first axis), `col`
its x; each function says which one a formula takes first.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from dstlib.corruptions._ops import LUMA
from dstlib.corruptions.cbar import fp, parts, random_state


@lru_cache(maxsize=32)
def _arange(im: int, device: str, dtype=torch.float64) -> torch.Tensor:
    return torch.arange(im, dtype=dtype, device=device)


def _scalar(v: torch.Tensor, dev, dtype=torch.float32) -> torch.Tensor:
    """A per-image field (n,) as an (n, 1, 1) tensor on the device."""
    return v.to(device=dev, dtype=dtype).view(-1, 1, 1)


def to_uint8(y: torch.Tensor) -> torch.Tensor:
    """np.clip(y, 0, 255).astype(np.uint8) on a float tensor of 0..255-scale values (truncation;
    through int16, ~3x as fast as a float -> uint8 cast on the CPU). In place on y."""
    return y.clamp_(0, 255).to(torch.int16).to(torch.uint8)


def per_part(kernel, weight: int = 1):
    """Run kernel(x, level, fields) -> uint8 on the cache-sized parts of a batch (cbar.parts),
    the fields sliced alike; `weight`: parts that many times smaller (kernels whose
    intermediates hold several float64 channels per pixel)."""
    def run(x, lev, f):
        out = torch.empty_like(x)
        for s in parts(x.shape[0], x.shape[2] * x.shape[3] * weight, x.device):
            out[s] = kernel(x[s], lev, {k: v[s] for k, v in f.items()})
        return out
    run.__name__, run.__doc__ = kernel.__name__, kernel.__doc__
    return run


def _add_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """clip(image + noise) as uint8; noise (n, 1 or C, im, im) float32 on the 0..255 scale."""
    return to_uint8(noise + x.to(torch.float32))


# ---------------------------------------------------------------- single frequency
def single_frequency_greyscale(x, lev, f):
    """noise[row, col] = sin(col * freq[0] + row * freq[1] + phase) (the reference's x is the
    column), the same on every channel; out = clip(image + fp(level, 196) * noise).
    The angle splits into a column and a row part (sin(a + b) = sin a cos b + cos a sin b),
    each computed in float64; only their products are summed per pixel (float32)."""
    dev, im = x.device, x.shape[-1]
    inten = fp(lev, 196)
    c = _arange(im, str(dev))
    freq = f["freq"].to(dev, torch.float64)
    a = c * freq[:, 0:1]                                                   # (n, im) columns
    b = c * freq[:, 1:2] + f["phase"].to(dev, torch.float64)[:, None]      # (n, im) rows
    sa, ca = (torch.sin(a) * inten).float()[:, None, :], (torch.cos(a) * inten).float()[:, None, :]
    sb, cb = torch.sin(b).float()[:, :, None], torch.cos(b).float()[:, :, None]
    noise = torch.mul(cb, sa).addcmul_(sb, ca)
    return _add_noise(x, noise[:, None])


# ---------------------------------------------------------------- cocentric sine waves
def cocentric_sine_waves(x, lev, f):
    """With (x0, y0) = offset (column, row): angle = arctan2(col - x0, row - y0) * freq (column
    first, as the reference); d = ((distance + sin(angle) * amplitude) mod ring_width) / ring_width
    - 1/2 with Python's floor modulo; out = clip(image + fp(level, 128) * d). float64 up to d
    (the modulo decides a jump of the whole intensity)."""
    dev, im = x.device, x.shape[-1]
    c = _arange(im, str(dev))
    off = f["offset"].to(dev, torch.float64)
    dx = (c - off[:, 0:1])[:, None, :]   # (n, 1, im): columns
    dy = (c - off[:, 1:2])[:, :, None]   # (n, im, 1): rows
    v = torch.atan2(dx, dy).mul_(_scalar(f["freq"], dev, torch.float64)).sin_()
    dist = torch.add(dy * dy, dx * dx).sqrt_()
    v = dist.addcmul_(v, _scalar(f["amplitude"], dev, torch.float64))
    rw = _scalar(f["ring_width"], dev, torch.float64)
    d = torch.remainder(v, rw).div_(rw).sub_(0.5)
    return _add_noise(x, d.mul_(fp(lev, 128)).float()[:, None])


# ---------------------------------------------------------------- plasma
def plasma_noise(x, lev, f):
    """The reference's plasma kernel at (col, row) / scale, `iterations` steps of
    r = (cos(y i0 + t / i1), sin(x i0 + t / i1)) / i2, r += (-r1, r0) * 0.3, (x, y) += r,
    i *= (1.93, 1.15, 2.25 - sharpness) (its i3 stays 0); noise (R, G, B) = (sin(x - t),
    sin((x + y + sin t) / 2), sin(y + t)); out = clip((1 - I/255) image + I noise), I =
    fp(level, 64). The first step depends on rows and columns apart (1-D); float32 after it.
    An image with fewer steps than the batch's most gets zero steps (1 / i2 -> 0) after its last.
    Gray: the luma of the three clipped channels."""
    dev, im = x.device, x.shape[-1]
    n = x.shape[0]
    inten = fp(lev, 64)
    t = f["time"].double()
    its = f["iterations"].long()
    sharp = f["sharpness"].double()
    c = _arange(im, str(dev))
    u = c * (1.0 / f["scale"].double()).to(dev)[:, None]   # (n, im): x = col / scale, y = row / scale
    td = t.to(dev)[:, None]
    r0 = torch.cos(u + td)    # step 1, i = (1, 1, 1): r0 a function of the row, r1 of the column
    r1 = torch.sin(u + td)
    xx = ((u - 0.3 * r1).float()[:, None, :] + (r0.float())[:, :, None]).contiguous()
    yy = ((u + 0.3 * r0).float()[:, :, None] + (r1.float())[:, None, :]).contiguous()
    i0 = torch.full((n,), 1.93, dtype=torch.float64)
    i1 = torch.full((n,), 1.15, dtype=torch.float64)
    i2 = 2.25 - sharp
    a = torch.empty_like(xx)
    b = torch.empty_like(xx)
    for s in range(1, int(its.max())):
        live = its > s
        k0, kt = _scalar(i0, dev), _scalar(t / i1, dev)
        kc = _scalar(torch.where(live, 1.0 / i2, torch.zeros_like(i2)), dev)
        torch.addcmul(kt, yy, k0, out=a).cos_().mul_(kc)
        torch.addcmul(kt, xx, k0, out=b).sin_().mul_(kc)
        xx.add_(a).add_(b, alpha=-0.3)
        yy.add_(b).add_(a, alpha=0.3)
        i0, i1, i2 = i0 * 1.93, i1 * 1.15, i2 * (2.25 - sharp)
    tt = _scalar(t, dev)
    noise = (torch.sub(xx, tt).sin_(),
             torch.add(xx, yy).add_(_scalar(torch.sin(t), dev)).mul_(0.5).sin_(),
             torch.add(yy, tt).sin_())
    keep = 1 - inten / 255
    if x.shape[1] == 3:
        out = torch.empty_like(x)
        for ch in range(3):
            out[:, ch] = to_uint8(x[:, ch].to(torch.float32).mul_(keep).add_(noise[ch], alpha=inten))
        return out
    g = x[:, 0].to(torch.float32).mul_(keep)
    y = None
    for ch in range(3):
        v = torch.add(g, noise[ch], alpha=inten).clamp_(0, 255).mul_(LUMA[ch])
        y = v if y is None else y.add_(v)
    return to_uint8(y)[:, None]


# ---------------------------------------------------------------- Perlin
PERLIN_B, PERLIN_N = 256, 4096


def perlin_tables(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's PerlinNoiseGenerator(RandomState(seed)) tables: permutation p (514,)
    and gradients g (514, 2) (a zero draw normalises to NaN, as there)."""
    rs = random_state(seed)
    b = PERLIN_B
    raw = ((rs.randint(0, 2 ** 31, size=(2 * b + 2, 2)) % (2 * b)) - b) / b
    with np.errstate(invalid="ignore", divide="ignore"):
        g = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    js = (rs.randint(0, 2 ** 31, size=b) % b).tolist()
    p = list(range(2 * b + 2))
    for k, i in enumerate(range(b - 1, -1, -1)):
        j = js[k]
        p[i], p[j] = p[j], p[i]
    p[b:] = p[:b + 2]
    g[b:] = g[:b + 2]
    return np.asarray(p, dtype=np.int64), g


def perlin_noise(x, lev, f):
    """f = clip(0.5 * turbulence(row / s, col / s) + 0.5, 0, 1), s = 32 im / 224 (the row is
    the generator's first coordinate), turbulence = sum over octaves o = 1, 2, 4, 8, 16 of
    |noise2(o x, o y)| / o, the reference's classic Perlin noise2 on tables from
    RandomState(seed); out = clip((1 - a) image + 255 a f), a = fp(level, 0.5).

    noise2 = 1.5 (a + sy (b - a)) with a = ux[v0] + ry0 uy[v0], b = ux[v1] + ry1 uy[v1], where
    for a row (x) ux, uy mix the gradients of its two lattice rows u0, u1 at every lattice
    column v: ux = (1 - sx) rx0 gx[u0, v] + sx rx1 gx[u1, v], uy = (1 - sx) gy[u0, v] + sx gy[u1, v],
    and v0, v1, ry0, ry1, sy belong to the pixel's column. Gradients are looked up once per
    lattice point, ux and uy once per row and lattice column; per pixel an octave is then
    two row copies (in column-major order) and four multiply-adds (float32)."""
    dev, im = x.device, x.shape[-1]
    n = x.shape[0]
    tabs = [perlin_tables(int(s)) for s in f["seed"].tolist()]
    p = torch.from_numpy(np.stack([t[0] for t in tabs])).to(dev)            # (n, 514)
    g = torch.from_numpy(np.stack([t[1] for t in tabs])).to(dev)            # (n, 514, 2) float64
    gx, gy = g[..., 0].contiguous(), g[..., 1].contiguous()
    turb = torch.zeros((n, im, im), dtype=torch.float32, device=dev)         # [col, row]
    octave = 1.0
    while octave <= 16.0:
        t = _perlin_axis(im, octave, str(dev))
        lat, pos0, pos1 = t["lattice"], t["pos0"], t["pos1"]
        nl = lat.shape[0]
        idx = p.index_select(1, lat)[:, :, None] + lat.view(1, 1, nl)        # p[u] + v
        b = torch.gather(p, 1, idx.view(n, -1))
        lx = torch.gather(gx, 1, b).view(n, nl, nl).float()                  # [u, v]
        ly = torch.gather(gy, 1, b).view(n, nl, nl).float()
        ux = lx.index_select(1, pos0).mul_(t["w0"]).addcmul_(lx.index_select(1, pos1), t["w1"])  # [row, v]
        uy = ly.index_select(1, pos0).mul_(t["v0"]).addcmul_(ly.index_select(1, pos1), t["v1"])
        uu = torch.stack([ux.transpose(1, 2), uy.transpose(1, 2)], 1)        # (n, 2, v, row)
        a = uu.index_select(2, pos0)                                         # (n, 2, col, row)
        a = a[:, 0].addcmul_(a[:, 1], t["r0"])
        bb = uu.index_select(2, pos1)
        bb = bb[:, 0].addcmul_(bb[:, 1], t["r1"])
        turb.add_(a.lerp_(bb, t["s"]).abs_(), alpha=1.5 / octave)
        octave *= 2
    alpha = fp(lev, 0.5)
    noise = turb.mul_(0.5).add_(0.5).clamp_(0, 1).mul_(255 * alpha).transpose(1, 2)[:, None]
    y = x.to(torch.float32).mul_(1 - alpha).add_(noise)
    return to_uint8(torch.nan_to_num_(y, nan=0.0))  # NaN (a zero gradient) -> 0, as numpy's cast


@lru_cache(maxsize=64)
def _perlin_axis(im: int, f: float, device: str) -> dict:
    """Per pixel along an axis, for coordinate t = f * (pixel * m) + 4096, m = 1 / (32 im / 224):
    the lattice indices int(t) % 256 and the next, as positions pos0, pos1 in the sorted
    `lattice` of those used; r0 = t % 1, r1 = r0 - 1, s = r0^2 (3 - 2 r0); the row mixing
    weights w0 = (1 - s) r0, w1 = s r1, v0 = 1 - s, v1 = s as (1, im, 1) tensors (float32)."""
    m = 1.0 / (32 * im / 224)
    t = f * (np.arange(im) * m) + PERLIN_N
    b0 = t.astype(np.int64) % PERLIN_B
    b1 = (b0 + 1) % PERLIN_B
    r0 = t % 1
    r1 = r0 - 1.0
    s = r0 * r0 * (3.0 - 2.0 * r0)
    lat = np.unique(np.concatenate([b0, b1]))
    col = lambda v: torch.from_numpy(np.asarray(v, dtype=np.float32)).view(1, im, 1).to(device)  # noqa: E731
    return {"lattice": torch.from_numpy(lat).to(device), "pos0": torch.from_numpy(np.searchsorted(lat, b0)).to(device),
            "pos1": torch.from_numpy(np.searchsorted(lat, b1)).to(device),
            "w0": col((1 - s) * r0), "w1": col(s * r1), "v0": col(1 - s), "v1": col(s),
            "r0": col(r0), "r1": col(r1), "s": col(s)}


# ---------------------------------------------------------------- blue / brownish noise
@lru_cache(maxsize=16)
def _spectrum_maps(im: int, kind: str):
    """For the reference's gen_noise at side im: the Hermitian part of the rolled spectrum,
    on the half spectrum irfft2 reads, needs at (ky, kx), kx <= im // 2, the unrolled entries
    A = ((ky - h) % im, (kx - h) % im) and B = ((-ky - h) % im, (-kx - h) % im), h = im // 2:
    their flat indices and the power there (float32)."""
    h = im // 2
    k = np.arange(im)
    kh = np.arange(h + 1)
    ra, ca = (k - h) % im, (kh - h) % im
    rb, cb = (-k - h) % im, (-kh - h) % im
    ia = (ra[:, None] * im + ca[None, :]).ravel()
    ib = (rb[:, None] * im + cb[None, :]).ravel()
    yy, xx = np.meshgrid(k, k, indexing="ij")
    dist = np.sqrt((xx - im / 2) ** 2 + (yy - im / 2) ** 2)
    power = dist if kind == "blue" else 1 / (dist ** 2 + 1)
    pw = power.ravel()
    return (torch.from_numpy(ia), torch.from_numpy(ib), torch.from_numpy(pw[ia]).float(),
            torch.from_numpy(pw[ib]).float())


def phases(rs: np.random.RandomState, im: int) -> np.ndarray:
    """One gen_noise call's phase array (im, im), drawn from rs as the reference draws it."""
    ph = rs.uniform(low=0, high=2 * np.pi, size=(im, im // 2))
    if im % 2 == 0:
        return np.concatenate((ph, ph[::-1, ::-1]), axis=1)
    cf = rs.uniform(low=0, high=2 * np.pi, size=(im // 2, 1))
    cf = np.concatenate((cf, np.array([[0.0]]), cf[::-1, :]), axis=0)
    return np.concatenate((ph, cf, ph[::-1, ::-1]), axis=1)


def spectrum_noise(seeds, im: int, channels: int, kind: str, device) -> torch.Tensor:
    """(n, channels, im, im) float32: per image, `channels` successive gen_noise draws from
    RandomState(seed), each real(ifft2(roll(power * exp(i phases)))) / its population std.
    The real part is the inverse real FFT of the spectrum's Hermitian part
    (F(k) + conj F(-k)) / 2, which is all the reference keeps; float32."""
    ia, ib, pa, pb = (t.to(device) for t in _spectrum_maps(im, kind))
    ph = np.empty((len(seeds), channels, im, im), dtype=np.float32)
    for i, s in enumerate(seeds):
        rs = random_state(int(s))
        for c in range(channels):  # the reference's gen_noise calls, in turn from one generator
            ph[i, c] = phases(rs, im)
    phs = torch.from_numpy(ph).to(device).view(-1, im * im)
    a = phs.index_select(1, ia)
    b = phs.index_select(1, ib)
    re = torch.cos(a).mul_(pa).addcmul_(torch.cos(b), pb).mul_(0.5)
    im_ = torch.sin(a).mul_(pa).addcmul_(torch.sin(b), pb, value=-1).mul_(0.5)
    noise = torch.fft.irfft2(torch.complex(re, im_).view(-1, im, im // 2 + 1), s=(im, im))
    flat = noise.view(noise.shape[0], -1)
    k = flat.shape[1]
    mean = flat.sum(dim=1).double() / k      # float32 sums (pairwise: ~1e-7 relative), combined in float64
    std = (torch.mul(flat, flat).sum(dim=1).double() / k - mean * mean).clamp_(min=0).sqrt_().float().view(-1, 1, 1)
    return noise.div_(std).view(-1, channels, im, im)


def blue_noise_sample(x, lev, f):
    """mask = noise > fp(level, 3) - 2.5 for one blue-noise map (power |k - centre|) per image;
    out = image * mask (masked pixels black, every channel)."""
    im = x.shape[-1]
    noise = spectrum_noise(f["seed"].tolist(), im, 1, "blue", x.device)
    return x * (noise > fp(lev, 3.0) - 2.5)


def brownish_noise(x, lev, f):
    """out = clip(image + fp(level, 64) * noise_c): an independent brownish map (power
    1 / (|k - centre|^2 + 1)) per channel, drawn R, G, B in turn (gray: the first)."""
    im = x.shape[-1]
    noise = spectrum_noise(f["seed"].tolist(), im, x.shape[1], "brown", x.device)
    return _add_noise(x, noise.mul_(fp(lev, 64)))


CORRUPTIONS = {f.__name__: per_part(f) for f in (
    single_frequency_greyscale, cocentric_sine_waves, plasma_noise, perlin_noise, blue_noise_sample, brownish_noise)}
