"""Fashion-MNIST-C (Weiss and Tonella, ISSTA 2022), batched in torch.

    corrupt_mnist_c(x, name, seed=0, index=None, fields=None)   one corruption
    fashion_mnist_c(x, seed=0, index=None) -> (images, choice)   the mixed set

x is uint8 (N, 1, 28, 28) on any device; results are uint8, same shape and device.
The published set (testingautomated-usi/fashion-mnist-c, generator.py) gives every
image exactly one of 15 corruptions, drawn uniformly, each called at its MNIST-C
function's default severity (not at random severities, whatever its README says).
`FMNIST_C_NAMES` are the generator's keys in its order; two keys name the wrong
operation and are kept as published: "flip_left_right" turns the image 90 degrees
clockwise (np.rot90 k=3), "flip_top_bottom" 90 degrees counter-clockwise (k=1).

Each corruption follows the reference function (MNIST-C's corruptions.py as the
generator calls it, scikit-image 0.19), in float64 where the reference computes
in float64, then the generator's `astype(np.uint8)` of the float32 result, a
truncation. Byte-identical to the reference (tests/test_mnist_c.py): inverse,
the flips and turns, brightness and saturate (256-entry tables), contrast (the
image mean summed in numpy's pairwise order), scale, and shear and rotation given
the sign (bilinear sampling with out-of-image neighbours 0, 0.19's clipping to the
input's range); glass blur given the same swaps; motion blur given the same angle
(ImageMagick's MotionBlurImage and its Q16 quantisation). Random corruptions and their draws:

- shot_noise: Poisson(3 x / 255) / 3 per pixel (`_rng.poisson`, an alias table exact
  to 2^-32 per outcome), so only 0, 85, 170, 255 occur;
- impulse_noise: each pixel replaced with probability 0.17 (quantised to 2^-15), by
  0 or 255 with probability 1/2 (`noise.draw_impulse_noise`, reused);
- glass_blur: Gaussian sigma 0.7 vertically only, along axis 0 (the reference's
  `gaussian(..., multichannel=True)` on a 2-D image takes the last axis for
  channels), truncated to uint8, then two passes over h, w = 27..2 (descending) in
  which each pixel is swapped with probability 1/2 with (h + dy, w + dx), dy, dx
  uniform in {-1, 0} (three bits of one 32-bit draw per pixel and pass; a true swap:
  the reference's image is 2-D), then the same blur;
- motion_blur: angle uniform in [-45, 45) degrees (32-bit), radius 10, sigma 3;
- shear, rotate: the sign +-1 with probability 1/2 (one bit).
Draws come from the counter-based generator of `dstlib.corruptions` (`_rng`), keyed
by `image_seeds(seed, "mnist_c." + name, 0, index)`; the mixed set's choice by
`image_seeds(seed, "fashion_mnist_c", 0, index)`, an integer in [0, 15) by
multiply-shift on 24 bits (bias below 1e-6). So an image's result depends only on
(image, index, seed), never on the batch; CPU and CUDA should give the same bytes
(float64 arithmetic, integer draws, kernels, maps and tap offsets computed on the CPU;
the CUDA test runs only where a GPU is present).
The reference's own draws came from numpy's unseeded global generator, so the
published random images cannot be regenerated; `fields` replays given draws
(see `mnist_c_fields`).
"""
from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import torch

from dstlib.corruptions import _ops, _rng, blur, noise

FMNIST_C_NAMES = (
    "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate",
    "brightness", "contrast", "saturate", "inverse", "flip_sides", "flip_up_down",
    "flip_left_right", "flip_top_bottom",
)
OPERATION = {
    "flip_sides": "mirror left-right (np.fliplr)", "flip_up_down": "mirror up-down (np.flipud)",
    "flip_left_right": "turn 90 degrees clockwise (np.rot90 k=3)",
    "flip_top_bottom": "turn 90 degrees counter-clockwise (np.rot90 k=1)",
}
"""What the four image-turning keys actually do (two keys name a flip but turn)."""

PARAMS = {
    "shot_noise": 3, "impulse_noise": 0.17, "glass_blur": (0.7, 1, 2), "motion_blur": (10, 3),
    "shear": 0.4, "scale": 1 / 0.7, "rotate": 0.4, "brightness": 0.5, "contrast": 0.1, "saturate": (20, 0.2),
}
"""The reference functions' default severities: shot_noise 5, impulse_noise 4, glass_blur 1
(sigma, max_delta, iterations), motion_blur 1 (radius, sigma), shear 2, scale 3 (the inverse
map's factor), rotate 2 (radians), brightness 5, contrast 4, saturate 5 (scale, shift)."""

STOCHASTIC = ("shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "rotate")
MNIST_C_VERSION = 1
"""Bumped whenever the pixels `corrupt_mnist_c` returns change (keys cached evaluations)."""

SIZE = 28
CENTRE = 13.5  # the reference keeps (13.5, 13.5) fixed in its affine maps


def _check(x, name=None, seed=0):
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} is invalid; allowed: an int")
    if name is not None and name not in FMNIST_C_NAMES:
        raise ValueError(f"name={name!r} is invalid; allowed: {', '.join(FMNIST_C_NAMES)}")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x={type(x).__name__} is invalid; allowed: a uint8 torch.Tensor (N, 1, 28, 28)")
    if x.dtype != torch.uint8:
        raise ValueError(f"x.dtype={x.dtype} is invalid; allowed: torch.uint8 (images in 0..255)")
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, SIZE, SIZE):
        raise ValueError(f"x.shape={tuple(x.shape)} is invalid; allowed: (N, 1, 28, 28)")


def _seeds(seed: int, key: str, index) -> list[int]:
    from dstlib.corruptions import image_seeds
    return image_seeds(seed, key, 0, index)


def _to_uint8(y: torch.Tensor) -> torch.Tensor:
    """The generator's np.array(...).astype(np.uint8) of the reference's float32 output
    (y: float64 in 0..255): round to float32, then truncate."""
    return y.to(torch.float32).to(torch.int16).to(torch.uint8)


# ------------------------------------------------------------------ random draws
def _draw(x, name, seeds):
    dev = x.device
    ctx = SimpleNamespace(shape=(1, SIZE, SIZE), device=dev, uint8=x)
    if name == "shot_noise":
        return {"counts": _rng.poisson(x, PARAMS[name] / 255.0, seeds, 0)}  # Poisson(x / 255 * 3)
    if name == "impulse_noise":
        return noise.draw_impulse_noise(seeds, PARAMS[name], ctx)
    if name == "glass_blur":
        iters = PARAMS[name][2]
        b = _rng.bits(seeds, 0, (iters, SIZE, SIZE), dev)
        swap = (b & 1).bool()
        offsets = torch.stack([(b >> 1) & 1, (b >> 2) & 1], -1).neg_()  # (dy, dx) in {-1, 0}
        return {"swap": swap, "offsets": offsets}
    if name == "motion_blur":
        return blur.draw_motion_blur(seeds, PARAMS[name], ctx)
    if name in ("shear", "rotate"):
        b = _rng.bits(seeds, 0, (), dev)
        return {"sign": ((b & 1) * 2 - 1).to(torch.int64)}
    return {}


def mnist_c_fields(x: torch.Tensor, name: str, seed: int = 0, index=None) -> dict[str, torch.Tensor]:
    """The random draws `corrupt_mnist_c` makes for x (CPU tensors, batch first); {} for the
    deterministic corruptions. shot_noise `counts` (N, 1, 28, 28) Poisson counts;
    impulse_noise `flipped`, `salted` (N, 1, 28, 28) bool; glass_blur `swap` (N, 2, 28, 28)
    bool and `offsets` (N, 2, 28, 28, 2) as (dy, dx), read at the visited h, w = 27..2 of
    each pass; motion_blur `angle` (N,) degrees; shear and rotate `sign` (N,) +-1."""
    _check(x, name, seed)
    seeds = _seeds(seed, "mnist_c." + name, _rng.positions(index, x.shape[0]))
    return {k: v.cpu() for k, v in _draw(x.contiguous(), name, seeds).items()}


# ------------------------------------------------------------------ the corruptions
def _shot_noise(x, f):
    return _to_uint8(f["counts"].to(x.device, torch.float64).div_(PARAMS["shot_noise"]).clamp_(0, 1).mul_(255))


def _impulse_noise(x, f):
    """(x & keep) | salt on the uint8 images: exact, as the reference's untouched pixels
    come back as x / 255 * 255, which float32 rounds to x."""
    ctx = SimpleNamespace(uint8=x)
    return noise.apply_impulse_noise(None, PARAMS["impulse_noise"], ctx,
                                     {k: v.to(x.device) for k, v in f.items()})


def _gaussian_rows(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter1d along H (axis -2), mode 'nearest', truncate 4, float64,
    in scipy's order for a symmetric kernel: w0 x[i] + sum_{j=r..1} w_j (x[i-j] + x[i+j])."""
    k = _ops.gaussian_kernel1d(sigma)
    r = len(k) // 2
    h = y.shape[-2]
    p = _ops.pad2d(y, r, 0, "nearest")
    out = p[..., r:r + h, :] * float(k[r])
    for j in range(r, 0, -1):
        out += (p[..., r - j:r - j + h, :] + p[..., r + j:r + j + h, :]) * float(k[r + j])
    return out


@lru_cache(maxsize=None)
def _glass_levels(d: int) -> tuple[tuple[int, ...], ...]:
    """The visited positions h * 28 + w grouped into levels that replay the reference's
    sequential loop (h, then w, from 28-d down to d+1) exactly, for d = 1: a step touches
    at most the 2x2 block ending at (h, w); steps whose blocks do not overlap commute,
    and level c + 2 r (r = 27 - h, c = 27 - w) puts every overlapping pair in loop
    order and never two overlapping steps together. 76 levels instead of 625 steps."""
    assert d == 1, "the levels assume offsets in {-1, 0}"
    hs = range(SIZE - d, d, -1)
    levels: dict[int, list[int]] = {}
    for h in hs:
        for w in hs:
            levels.setdefault((SIZE - 1 - w) + 2 * (SIZE - 1 - h), []).append(h * SIZE + w)
    return tuple(tuple(levels[k]) for k in sorted(levels))


def _glass_blur(x, f):
    sigma, d, iters = PARAMS["glass_blur"]
    n, dev = x.shape[0], x.device
    u = _gaussian_rows(x.to(torch.float64).div_(255.0), sigma).mul_(255).to(torch.uint8)  # np.uint8: truncation
    z = u.view(n, SIZE * SIZE).clone()
    swap = f["swap"].to(dev).view(n, iters, SIZE * SIZE)
    off = f["offsets"].to(dev, torch.int64).view(n, iters, SIZE * SIZE, 2)
    partner = off[..., 0] * SIZE + off[..., 1] + torch.arange(SIZE * SIZE, device=dev)  # (h + dy) * 28 + w + dx
    levels = _glass_levels(d)
    order = torch.tensor([p for lv in levels for p in lv], dtype=torch.int64, device=dev)
    bounds = np.cumsum([0] + [len(lv) for lv in levels]).tolist()
    for i in range(iters):
        # the pass's draws in level order, then per level: the steps touch disjoint pixels,
        # so a level is one gather and one scatter for the pixels and one for the partners
        s_all = swap[:, i].index_select(1, order)
        q_all = partner[:, i].index_select(1, order)
        p_all = order.expand(n, -1)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            s, q, p = s_all[:, lo:hi], q_all[:, lo:hi], p_all[:, lo:hi]
            a, b = z.gather(1, p), z.gather(1, q)
            z.scatter_(1, p, torch.where(s, b, a))
            z.scatter_(1, q, torch.where(s, a, b))
    y = _gaussian_rows(z.view(n, 1, SIZE, SIZE).to(torch.float64).div_(255.0), sigma)
    return _to_uint8(y.clamp_(0, 1).mul_(255))


def _motion_blur(x, f):
    """MagickMotionBlurImage(radius 10, sigma 3, angle) on the 8-bit image (`_ops.motion_blur`:
    its kernel and tap offsets, edges repeated), with ImageMagick's quantisation (Q16):
    the 16-bit pixel round(257 s), written to the 8-bit PNG as floor(q / 257) (measured
    against ImageMagick 6.9.11 Q16: rounding s itself is off by one on ~30% of pixels)."""
    radius, sigma = PARAMS["motion_blur"]
    s = _ops.motion_blur(x.to(torch.float64), radius, sigma, f["angle"].cpu().double())
    q = s.mul_(257).add_(0.5).floor_().clamp_(0, 65535)
    return torch.div(q, 257, rounding_mode="floor").to(torch.uint8)


def _affine(scale=1.0, rotation=0.0, shear=0.0) -> tuple[float, ...]:
    """The reference's inverse map: scikit-image 0.19's AffineTransform matrix
    [[s cos r, -s sin(r + shear)], [s sin r, s cos(r + shear)]], translated so that
    (13.5, 13.5) stays fixed; (a1, a2, a3, b1, b2, b3) in Python floats (float64)."""
    a1, a2 = scale * math.cos(rotation), -scale * math.sin(rotation + shear)
    b1, b2 = scale * math.sin(rotation), scale * math.cos(rotation + shear)
    return a1, a2, CENTRE * (1 - a1 - a2), b1, b2, CENTRE * (1 - b1 - b2)


@lru_cache(maxsize=16)
def _warp_taps(m: tuple[float, ...], device: str):
    """Where the warp `m` samples, for every output pixel (flat (784,) tensors): the flat
    indices of the four neighbours (row floor / ceil x column floor / ceil, clamped), 1.0
    where the neighbour lies inside the image and 0.0 outside, and the weights dr, dc.
    Output pixel (r, c) reads column a1 c + a2 r + a3, row b1 c + b2 r + b3 (float64, in
    _warp_fast's order), the same for every image."""
    a1, a2, a3, b1, b2, b3 = m
    rr = torch.arange(SIZE, dtype=torch.float64).view(SIZE, 1).expand(SIZE, SIZE).reshape(-1)
    cc = torch.arange(SIZE, dtype=torch.float64).view(1, SIZE).expand(SIZE, SIZE).reshape(-1)
    c, r = (a1 * cc + a2 * rr) + a3, (b1 * cc + b2 * rr) + b3
    r0, c0, r1, c1 = r.floor(), c.floor(), r.ceil(), c.ceil()
    taps = []
    for ri, ci in ((r0, c0), (r0, c1), (r1, c0), (r1, c1)):
        inside = ((ri >= 0) & (ri < SIZE) & (ci >= 0) & (ci < SIZE)).to(torch.float64)
        flat = (ri.clamp(0, SIZE - 1) * SIZE + ci.clamp(0, SIZE - 1)).long()
        taps.append((flat.to(device), inside.to(device)))
    return taps, (r - r0).to(device), (c - c0).to(device)


def _warp(x: torch.Tensor, maps: list[tuple[float, ...]], which: torch.Tensor | None = None) -> torch.Tensor:
    """skimage.transform.warp(x / 255, inverse_map) as scikit-image 0.19 computes it, float64:
    bilinear between the floor and ceil of each sampled coordinate (`_warp_taps`), with
    out-of-image neighbours 0 (mode 'constant'), as (1 - dr) ((1 - dc) tl + dc tr) +
    dr ((1 - dc) bl + dc br); then clipped to the image's [min, max], pixels exactly 0
    kept when min > 0 (0.19's clip when cval lies outside the range). `which` (N,)
    picks one of `maps` per image."""
    n, dev = x.shape[0], x.device
    img = x.to(torch.float64).div_(255.0).view(n, SIZE * SIZE)
    out = torch.empty_like(img)
    for k, m in enumerate(maps):
        rows = None if which is None else (which == k).nonzero().view(-1)
        part = img if rows is None else img.index_select(0, rows)
        if part.shape[0] == 0:
            continue
        (tl, tr, bl, br), dr, dc = _warp_taps(m, str(dev))
        v = [part.index_select(1, flat).mul_(inside) for flat, inside in (tl, tr, bl, br)]  # 0 outside: x * 0.0
        top = (1 - dc) * v[0] + dc * v[1]
        bottom = (1 - dc) * v[2] + dc * v[3]
        res = (1 - dr) * top + dr * bottom
        if rows is None:
            out = res
        else:
            out.index_copy_(0, rows, res)
    lo, hi = img.amin(1, keepdim=True), img.amax(1, keepdim=True)
    keep = (out == 0) & (lo > 0)  # 0.19: cval outside [min, max] -> exact cval pixels survive the clip
    out = torch.where(keep, out, torch.minimum(torch.maximum(out, lo), hi))
    return out.view(n, 1, SIZE, SIZE)


def _signed_warp(x, f, name):
    c = PARAMS[name]
    kw = "shear" if name == "shear" else "rotation"
    maps = [_affine(**{kw: -c}), _affine(**{kw: c})]
    which = (f["sign"].to(x.device) > 0).long()
    return _to_uint8(_warp(x, maps, which).clamp_(0, 1).mul_(255.0))


def _scale(x, f):
    return _to_uint8(_warp(x, [_affine(scale=PARAMS["scale"])]).clamp_(0, 1).mul_(255))


def _gray_hsv_lut(name: str) -> torch.Tensor:
    """The pointwise brightness / saturate of a gray pixel, for every level (uint8 (256,)):
    gray2rgb, rgb2hsv (a gray pixel: h = s = 0, v = x / 255), the change in HSV, hsv2rgb,
    rgb2gray (0.2125 R + 0.7154 G + 0.0721 B), clip, * 255, float32, truncation.
    brightness: v + 0.5, clipped; saturate: every channel * 20 + 0.2, clipped."""
    v = torch.arange(256, dtype=torch.float64) / 255.0
    zero = torch.zeros_like(v)
    if name == "brightness":
        h, s, v = zero, zero, (v + PARAMS["brightness"]).clamp(0, 1)
    else:
        a, b = PARAMS["saturate"]
        h, s, v = ((t * a + b).clamp(0, 1) for t in (zero, zero, v))
    hi = torch.floor(h * 6)
    fr = h * 6 - hi
    p, q, t = v * (1 - s), v * (1 - fr * s), v * (1 - (1 - fr) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    sector = (hi.long() % 6).tolist()
    rgb = [torch.stack([table[k][ch][i] for i, k in enumerate(sector)]) for ch in range(3)]
    gray = rgb[0] * 0.2125 + rgb[1] * 0.7154 + rgb[2] * 0.0721
    return _to_uint8(gray.clamp(0, 1) * 255)


_LUTS: dict[str, torch.Tensor] = {}


def _pointwise(x, name):
    if name not in _LUTS:
        _LUTS[name] = _gray_hsv_lut(name)
    lut = _LUTS[name].to(x.device)
    return lut[x.long()]


def _numpy_sum(a: torch.Tensor) -> torch.Tensor:
    """Row sums of a float64 (N, n) tensor in numpy's pairwise order (np.add.reduce over a
    contiguous axis): blocks of <= 128 summed by 8 strided accumulators, combined
    ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), the tail added one by one; longer
    rows split at n/2 rounded down to a multiple of 8."""
    n = a.shape[1]
    if n < 8:
        res = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for i in range(n):
            res = res + a[:, i]
        return res
    if n <= 128:
        m = n - n % 8
        r = a[:, :m].reshape(a.shape[0], m // 8, 8)
        acc = r[:, 0].clone()
        for i in range(1, m // 8):
            acc += r[:, i]
        res = ((acc[:, 0] + acc[:, 1]) + (acc[:, 2] + acc[:, 3])) + ((acc[:, 4] + acc[:, 5]) + (acc[:, 6] + acc[:, 7]))
        for i in range(m, n):
            res = res + a[:, i]
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _numpy_sum(a[:, :n2]) + _numpy_sum(a[:, n2:])


def _contrast(x, f):
    n = x.shape[0]
    v = x.to(torch.float64).div_(255.0).view(n, -1)
    mean = (_numpy_sum(v) / v.shape[1]).view(n, 1)
    y = (v - mean) * PARAMS["contrast"] + mean
    return _to_uint8(y.clamp_(0, 1).mul_(255)).view(x.shape)


_APPLY = {
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur,
    "shear": lambda x, f: _signed_warp(x, f, "shear"),
    "scale": _scale,
    "rotate": lambda x, f: _signed_warp(x, f, "rotate"),
    "brightness": lambda x, f: _pointwise(x, "brightness"),
    "contrast": _contrast,
    "saturate": lambda x, f: _pointwise(x, "saturate"),
    "inverse": lambda x, f: 255 - x,
    "flip_sides": lambda x, f: x.flip(-1),
    "flip_up_down": lambda x, f: x.flip(-2),
    "flip_left_right": lambda x, f: torch.rot90(x, 3, dims=(-2, -1)),
    "flip_top_bottom": lambda x, f: torch.rot90(x, 1, dims=(-2, -1)),
}
assert tuple(_APPLY) == FMNIST_C_NAMES


def corrupt_mnist_c(x: torch.Tensor, name: str, seed: int = 0, index=None, fields: dict | None = None) -> torch.Tensor:
    """One Fashion-MNIST-C corruption at the generator's severity on uint8 (N, 1, 28, 28)
    (module docstring). `index`: the images' positions in their dataset (default 0..N-1),
    which key the draws; `fields` replaces the draws (`mnist_c_fields`' layout)."""
    _check(x, name, seed)
    x = x.contiguous()
    idx = _rng.positions(index, x.shape[0])
    if x.shape[0] == 0:
        return x.clone()
    if name not in STOCHASTIC:
        f = {}
    elif fields is None:
        f = _draw(x, name, _seeds(seed, "mnist_c." + name, idx))
    else:
        f = {k: torch.as_tensor(v) for k, v in fields.items()}
    return _APPLY[name](x, f).contiguous()


def fashion_mnist_c_choice(index, seed: int = 0) -> torch.Tensor:
    """The corruption each image gets in the mixed set: int64 positions in FMNIST_C_NAMES
    for the dataset indices `index` (a sequence or 1-d integer tensor)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} is invalid; allowed: an int")
    t = torch.as_tensor(index)
    if t.ndim != 1:
        raise ValueError(f"index={tuple(t.shape)} is invalid; allowed: a 1-d sequence of dataset positions")
    idx = _rng.positions(t, t.numel())
    if not idx:
        return torch.zeros(0, dtype=torch.int64)
    return _rng.integers(_seeds(seed, "fashion_mnist_c", idx), 0, (), len(FMNIST_C_NAMES)).to(torch.int64)


def fashion_mnist_c(x: torch.Tensor, seed: int = 0, index=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The mixed set: each image gets one corruption, uniform over FMNIST_C_NAMES
    (`fashion_mnist_c_choice`), applied as `corrupt_mnist_c` with the same seed and index.
    Returns (uint8 images like x, int64 (N,) choice on x's device)."""
    _check(x, None, seed)
    idx = torch.tensor(_rng.positions(index, x.shape[0]), dtype=torch.int64)
    choice = fashion_mnist_c_choice(idx, seed)
    out = torch.empty_like(x.contiguous())
    for k, name in enumerate(FMNIST_C_NAMES):
        sel = (choice == k).nonzero().view(-1)
        if len(sel):
            sd = sel.to(x.device)
            out[sd] = corrupt_mnist_c(x.index_select(0, sd), name, seed, idx[sel])
    return out, choice.to(x.device)


__all__ = ["FMNIST_C_NAMES", "OPERATION", "PARAMS", "MNIST_C_VERSION", "corrupt_mnist_c", "fashion_mnist_c",
           "fashion_mnist_c_choice", "mnist_c_fields"]
