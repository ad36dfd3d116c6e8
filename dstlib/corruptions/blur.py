"""Blur corruptions: gaussian, defocus, glass, motion, zoom (see noise.py for the pattern)."""
from __future__ import annotations

import math

import numpy as np
import torch

from dstlib.corruptions import _ops, _rng


def apply_gaussian_blur(x, p, ctx, f):
    """skimage gaussian(sigma=c), edges repeated, truncate 4."""
    return _ops.gaussian_blur(x, p).clamp(0, 1) * 255


def apply_defocus_blur(x, p, ctx, f):
    """Correlate each channel with the anti-aliased disk (OpenCV filter2D, BORDER_REFLECT_101)."""
    return _ops.conv2d_same(x, _ops.disk_kernel(float(p[0]), float(p[1])), "mirror").clamp_(0, 1).mul_(255)


def draw_glass_blur(seeds, p, ctx):
    """Offsets (dy, dx) uniform in [-d, d): one 32-bit draw per pixel and pass when 2d is a
    power of two (its two halves), else one draw per offset."""
    d, iters = int(p[1]), int(p[2])
    shape = (iters, ctx.shape[1], ctx.shape[2])
    if d & (d - 1) == 0:
        return {"offsets": _rng.pairs_pow2(seeds, 0, shape, (2 * d).bit_length() - 1, ctx.device) - d}
    return {"offsets": _rng.integers(seeds, 0, shape + (2,), 2 * d, ctx.device) - d}


def _shuffle(y: torch.Tensor, off: torch.Tensor, d: int) -> torch.Tensor:
    """One pass of the reference's pixel loop, `x[h, w] <- x[h + dy, w + dx]` for
    h from H-d down to d+1 and, inside, w from W-d down to d+1, in that order.

    off (N, H, W, 2) holds (dy, dx) in [-d, d-1]. With d = 1 every source is
    still unvisited, so the loop is a parallel gather. With d >= 2 a source may
    already have been overwritten (it comes later in raster order): those
    chains are followed by pointer jumping, which reproduces the sequential
    result exactly.
    """
    n, c, h, w = y.shape
    dev = y.device
    hh = torch.arange(h, device=dev).view(1, h, 1)
    ww = torch.arange(w, device=dev).view(1, 1, w)
    dom = ((hh > d) & (hh <= h - d) & (ww > d) & (ww <= w - d)).expand(n, h, w)
    p = (hh * w + ww).expand(n, h, w)
    q = (hh + off[..., 0]) * w + (ww + off[..., 1])
    q = torch.where(dom, q, p).reshape(n, h * w)
    p = p.reshape(n, h * w)
    domf = dom.reshape(n, h * w)
    if d > 1:
        later = domf & torch.gather(domf, 1, q) & (q > p)
        parent = torch.where(later, q, p)
        for _ in range(max(1, math.ceil(math.log2(h * w))) + 1):
            nxt = torch.gather(parent, 1, parent)
            if torch.equal(nxt, parent):  # every chain has reached its root
                break
            parent = nxt
        q = torch.gather(q, 1, parent)  # the root's source (a root that is not in the domain keeps itself)
    return torch.gather(y.reshape(n, c, h * w), 2, q.unsqueeze(1).expand(n, c, h * w)).view(n, c, h, w)


def apply_glass_blur(x, p, ctx, f):
    """Blur, np.uint8(* 255), shuffle pixels `iterations` times, blur again (sigma, max_delta, iterations)."""
    sigma, d, iters = float(p[0]), int(p[1]), int(p[2])
    y = torch.floor(_ops.gaussian_blur(x, sigma) * 255)
    off = f["offsets"].to(x.device).long()
    for i in range(iters):
        y = _shuffle(y, off[:, i], d)
    return _ops.gaussian_blur(y / 255.0, sigma).clamp(0, 1) * 255


def draw_motion_blur(seeds, p, ctx):
    return {"angle": _rng.uniform(seeds, 0, (), "cpu", torch.float64) * 90 - 45}


def apply_motion_blur(x, p, ctx, f):
    """ImageMagick-style motion blur (radius, sigma) at angle ~ U(-45, 45) degrees.

    The kernel and tap offsets are MagickCore's MotionBlurImage as the
    imagecorruptions package ports them (edges repeated). For the `cifar` and
    `tiny` tables the result is rounded to 8 bits as ImageMagick returns it;
    the `imagenet` table keeps the port's float result (then truncated).
    """
    y = _ops.motion_blur(x * 255, int(p[0]), float(p[1]), f["angle"])
    if ctx.style["motion_round"]:
        y = torch.round(y)
    return y.clamp(0, 255)


def zoom_factors(p) -> np.ndarray:
    """float64 numpy arange(start, stop, step): its length decides the layers (7, 12, 16, 21, 26 for CIFAR)."""
    return np.arange(p[0], p[1], p[2])


def apply_zoom_blur(x, p, ctx, f):
    """(x + sum of clipped zooms) / (n + 1), clipped."""
    zs = zoom_factors(p)
    out = torch.zeros_like(x)
    for z in zs:
        out = out + _ops.clipped_zoom(x, float(z), ctx.style["zoom_trim"])
    return ((x + out) / (len(zs) + 1)).clamp(0, 1) * 255


CORRUPTIONS = {
    "gaussian_blur": (apply_gaussian_blur, None),
    "defocus_blur": (apply_defocus_blur, None),
    "glass_blur": (apply_glass_blur, draw_glass_blur),
    "motion_blur": (apply_motion_blur, draw_motion_blur),
    "zoom_blur": (apply_zoom_blur, None),
}
