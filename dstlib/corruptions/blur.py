"""Blur corruptions: gaussian, defocus, glass, motion, zoom (see noise.py for the pattern)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

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
        return {"offsets": _rng.pairs_pow2(seeds, 0, shape, (2 * d).bit_length() - 1, ctx.device).sub_(d)}
    return {"offsets": _rng.integers(seeds, 0, shape + (2,), 2 * d, ctx.device).sub_(d)}


@lru_cache(maxsize=32)
def _glass_tables(d: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (pixel, offset code) lookup tables of one pass of the reference's loop, the code
    of (dy, dx) in [-d, d-1]^2 being (dy + d) 2d + dx + d: the pixel's local source (the
    pixel itself outside the loop's domain) and its chain parent (the source when that
    was overwritten earlier in the pass, i.e. later in raster order inside the domain,
    else the pixel itself)."""
    hh, ww = np.arange(h).reshape(h, 1, 1), np.arange(w).reshape(1, w, 1)
    code = np.arange(4 * d * d)
    dy, dx = code // (2 * d) - d, code % (2 * d) - d
    dom = (hh > d) & (hh <= h - d) & (ww > d) & (ww <= w - d)  # (H, W, 1)
    delta = dy * w + dx
    sy, sx = hh + dy, ww + dx
    later = dom & (delta > 0) & (sy > d) & (sy <= h - d) & (sx > d) & (sx <= w - d)
    pos = hh * w + ww
    src = pos + delta * dom
    par = pos + delta * later
    return src.reshape(-1), par.reshape(-1)


GLASS_JUMP_CHUNK = 1 << 19  # pointer jumping over at most this many pixels at once (whole slots)


def _jump(parent: torch.Tensor) -> torch.Tensor:
    """Pointer jumping: every pixel ends at its chain's last pixel. Parents never point
    back (parent[p] >= p), so a jump leaves every pointer or moves it forward: an
    unchanged sum means nothing moved. Jumps past a chain's end change nothing, so the
    first two (chains of up to 4 pixels) go unchecked."""
    parent = parent.index_select(0, parent).index_select(0, parent)
    total = int(parent.sum())
    while True:
        parent = parent.index_select(0, parent)
        t = int(parent.sum())
        if t == total:
            return parent
        total = t


def _glass_maps(off: torch.Tensor, d: int, h: int, w: int, out_base: torch.Tensor) -> torch.Tensor:
    """Source map of all the passes, composed: off (N, I, H, W, 2) holds each pass's
    (dy, dx) in [-d, d-1]; after the I passes, pixel p of image n holds the first
    pass's input at flat index result[n, p] = out_base[n] + its local index (result
    (N, H*W), out_base's dtype).

    One pass of the reference's loop does `x[h, w] <- x[h + dy, w + dx]` for h from
    H-d down to d+1 and, inside, w from W-d down to d+1. With d = 1 every source is
    still unvisited, so the map is the plain source. With d >= 2 a source later in
    raster order (dy > 0, or dy = 0 and dx > 0) inside the loop's domain was overwritten
    before: such chains are followed to their end by pointer jumping, which reproduces
    the sequential result exactly. All passes are mapped at once through per-(pixel,
    offset) tables; indices are global into the (N, I, H*W) maps."""
    n, iters = off.shape[0], off.shape[1]
    hw = h * w
    dev, dt = off.device, out_base.dtype
    src_t, par_t = (torch.from_numpy(t.astype(np.int64)).to(device=dev, dtype=dt) for t in _glass_tables(d, h, w))
    k = 4 * d * d
    pos_k = (torch.arange(hw, device=dev, dtype=dt) * k + (2 * d * d + d)).view(h, w)
    code = torch.add(off[..., 1].to(dt), off[..., 0].to(dt), alpha=2 * d).add_(pos_k).view(-1)  # (N, I, H, W)
    # pass i's sources point into pass i-1's slot (its input); pass 0's into the output space
    slot = torch.arange(n * iters, device=dev, dtype=dt).view(n, iters)
    base = torch.cat([out_base.view(n, 1).to(dt), (slot[:, :-1] * hw)], 1).view(n, iters, 1)
    src = src_t.index_select(0, code).view(n, iters, hw).add_(base).view(-1)
    if d > 1:
        parent = par_t.index_select(0, code).view(n, iters, hw).add_((slot * hw).view(n, iters, 1)).view(-1)
        # chains stay inside one (image, pass) slot: jump a few slots at a time, so the
        # pointers being chased stay in cache
        step = max(1, GLASS_JUMP_CHUNK // hw) * hw
        src = torch.cat([src[a:a + step].index_select(0, _jump(parent[a:a + step] - a))
                         for a in range(0, parent.numel(), step)])
    src = src.view(n, iters, hw)
    q = src[:, iters - 1].reshape(-1)
    flat = src.view(-1)
    for _ in range(iters - 1):  # composed map: the last pass's map into the earlier ones
        q = flat.index_select(0, q)
    return q.view(n, hw)


def _source_map(off: torch.Tensor, d: int, h: int, w: int) -> torch.Tensor:
    """One pass (off (N, H, W, 2)) as flat int32 indices into the N images."""
    n = off.shape[0]
    base = torch.arange(n, device=off.device, dtype=torch.int32) * (h * w)
    return _glass_maps(off.unsqueeze(1), d, h, w, base).view(-1)


def apply_glass_blur(x, p, ctx, f):
    """Blur, np.uint8(* 255), shuffle pixels `iterations` times, blur again (sigma, max_delta, iterations).

    The passes' source maps are composed first, so the image is gathered once
    (int32 indices while N * max(C, iterations) * H * W < 2^31, else int64)."""
    sigma, d, iters = float(p[0]), int(p[1]), int(p[2])
    n, c, h, w = x.shape
    y = torch.floor_(_ops.gaussian_blur(x, sigma).mul_(255))
    off = f["offsets"].to(device=x.device)
    dt = torch.int32 if n * max(c, iters) * h * w < 2 ** 31 else torch.int64
    base = torch.arange(n, device=x.device, dtype=dt) * (c * h * w)
    q = _glass_maps(off, d, h, w, base)  # (N, H*W) into y's flat storage, channel 0
    idx = q.view(n, 1, h * w) + (torch.arange(c, device=x.device, dtype=dt) * (h * w)).view(1, c, 1)
    y = y.reshape(-1).index_select(0, idx.view(-1)).view(n, c, h, w)
    return _ops.gaussian_blur(y.div_(255.0), sigma).clamp_(0, 1).mul_(255)


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


PLANE_BLOCK = 16  # planes-last buffers hold a multiple of this many planes (zero planes added)


def _to_planes_last(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (1, P', H, W) in channels_last memory: the N*C planes as channels,
    zero planes up to a multiple of PLANE_BLOCK. Channel-vectorised kernels then treat
    every real plane alike in any batch (no scalar tail)."""
    n, c, h, w = x.shape
    p = n * c
    pp = -(-p // PLANE_BLOCK) * PLANE_BLOCK
    buf = x.new_empty((h, w, pp))
    buf[..., :p] = x.reshape(p, h * w).t().view(h, w, p)
    if pp > p:
        buf[..., p:] = 0
    return buf.permute(2, 0, 1).unsqueeze(0)


def _zoom_layer(xc: torch.Tensor, z: float, trim: str) -> torch.Tensor:
    """_ops.clipped_zoom on a planes-last image (corner-aligned bilinear on the centre crop)."""
    h, w = xc.shape[-2:]
    ch, cw = int(math.ceil(h / z)), int(math.ceil(w / z))
    oh, ow = _ops.scipy_zoom_size(ch, z), _ops.scipy_zoom_size(cw, z)
    t0, l0 = (h - ch) // 2, (w - cw) // 2
    crop = xc[:, :, t0:t0 + ch, l0:l0 + cw]
    if (oh, ow) == (ch, cw):
        big = crop
    else:
        crop = crop.contiguous(memory_format=torch.channels_last)
        big = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)
    th, tw = ((oh - h) // 2, (ow - w) // 2) if trim == "center" else (0, 0)
    return big[:, :, th:th + h, tw:tw + w]


def apply_zoom_blur(x, p, ctx, f):
    """(x + sum of clipped zooms) / (n + 1), clipped. The zooms run on one planes-last
    copy of the batch (bilinear vectorised over all planes), summed in factor order."""
    zs = zoom_factors(p)
    n, c, h, w = x.shape
    xc = _to_planes_last(x)
    acc = None
    for z in zs:
        layer = _zoom_layer(xc, float(z), ctx.style["zoom_trim"])
        acc = layer.clone(memory_format=torch.channels_last) if acc is None else acc.add_(layer)
    out = acc.add_(xc, alpha=1) if acc is not None else xc.clone()
    # x + sum, as the reference adds them (addition commutes exactly)
    out = out.div_(len(zs) + 1)[0, :n * c].contiguous().view(n, c, h, w)
    return out.clamp_(0, 1).mul_(255)


CORRUPTIONS = {
    "gaussian_blur": (apply_gaussian_blur, None),
    "defocus_blur": (apply_defocus_blur, None),
    "glass_blur": (apply_glass_blur, draw_glass_blur),
    "motion_blur": (apply_motion_blur, draw_motion_blur),
    "zoom_blur": (apply_zoom_blur, None),
}
