"""Blur corruptions: gaussian, defocus, glass, motion, zoom (see noise.py for the pattern)."""
from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from dstlib.corruptions import _ops, _rng


def apply_gaussian_blur(x, p, ctx, f):
    """skimage gaussian(sigma=c), edges repeated, truncate 4 (from the uint8 batch: on the
    CPU's depthwise path straight to bytes, else through corrupt's float copy)."""
    y = _ops.gaussian_blur_uint8(ctx.uint8, float(p))
    if y is not None:
        return y
    return _ops.gaussian_blur(ctx.uint8.float().div_(255.0), p).clamp_(0, 1).mul_(255)


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
def _glass_grid(d: int, h: int, w: int, device: str) -> tuple[torch.Tensor, ...]:
    """Per-position int32 constants of the pass: the loop's domain (1 inside), the flat
    position, and the bounds' slack for a source in the domain (>= 0 when it is)."""
    hh = torch.arange(h, device=device, dtype=torch.int32).view(h, 1)
    ww = torch.arange(w, device=device, dtype=torch.int32).view(1, w)
    dom = ((hh > d) & (hh <= h - d) & (ww > d) & (ww <= w - d)).to(torch.int32)
    return dom, hh * w + ww, (h - d) - hh, ww - (d + 1), (w - d) - ww


def _source_map(off: torch.Tensor, d: int, h: int, w: int) -> torch.Tensor:
    """One pass of the reference's pixel loop as a source map: after the pass, pixel p
    holds the pass's input at map[p] (flat int32 indices into the N images).

    The loop does `x[h, w] <- x[h + dy, w + dx]` for h from H-d down to d+1 and,
    inside, w from W-d down to d+1; off (N, H, W, 2) holds (dy, dx) in [-d, d-1].
    With d = 1 every source is still unvisited, so the map is the plain source. With
    d >= 2 a source later in raster order (dy > 0, or dy = 0 and dx > 0) inside the
    loop's domain was overwritten before: such chains are followed to their end by
    pointer jumping, which reproduces the sequential result exactly. Indices are
    int32 (half the memory traffic of int64; N H W < 2^31 is checked by the caller);
    the tests are sign bits of int32 differences (comparisons into bool tensors take
    several times longer on the CPU).
    """
    n = off.shape[0]
    dom, pos, below, right_of, left_of = _glass_grid(d, h, w, str(off.device))
    dy, dx = off[..., 0], off[..., 1]
    delta = dy * w
    delta += dx
    delta *= dom  # (N, H, W) int32; 0 outside the domain
    img = (torch.arange(n, device=off.device, dtype=torch.int32) * (h * w)).view(n, 1, 1)
    if d == 1:
        return (delta + pos).add_(img).view(-1)
    # later <=> delta > 0 and the source (y + dy, x + dx) inside the domain; given the pixel
    # is inside, that leaves y + dy <= H - d, x + dx > d and x + dx <= W - d to test
    miss = delta - 1
    miss |= below - dy
    miss |= dx + right_of
    miss |= left_of - dx
    miss >>= 31  # -1 unless every test holds
    parent = miss.bitwise_not_().bitwise_and_(delta).add_(pos).add_(img).view(-1)
    src = delta.add_(pos).add_(img).view(-1)
    # pointer jumping: every pixel ends at its chain's last pixel. parent[p] >= p, so
    # parent[parent] >= parent elementwise: done when the largest step is 0. Four unchecked
    # jumps first (chains of up to 16; the longest in a 224-px batch is ~11-16)
    for k in itertools.count():
        nxt = parent.index_select(0, parent)
        if k >= 3 and not int(torch.sub(nxt, parent, out=parent).amax()):
            return src.index_select(0, nxt)
        parent = nxt


def apply_glass_blur(x, p, ctx, f):
    """Blur, np.uint8(* 255), shuffle pixels `iterations` times, blur again (sigma, max_delta, iterations).

    The passes' source maps are composed first, so the image is gathered once."""
    sigma, d, iters = float(p[0]), int(p[1]), int(p[2])
    n, c, h, w = x.shape
    if n * h * w >= 2 ** 31:
        raise ValueError(f"x.shape={tuple(x.shape)} is invalid for glass_blur; allowed: N*H*W < 2^31 (split the batch)")
    y = torch.floor_(_ops.gaussian_blur(x, sigma).mul_(255))
    off = f["offsets"].to(device=x.device, dtype=torch.int32)
    q = None
    for i in range(iters - 1, -1, -1):  # composed map: last pass's map into the earlier ones
        m = _source_map(off[:, i], d, h, w)
        q = m if q is None else m.index_select(0, q)
    y = torch.stack([y[:, j].reshape(-1).index_select(0, q).view(n, h, w) for j in range(c)], 1)
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
    y = _ops.motion_blur(x.mul_(255), int(p[0]), float(p[1]), f["angle"])  # a fresh tensor
    if ctx.style["motion_round"]:
        y = y.round_()
    return y.clamp_(0, 255)


def zoom_factors(p) -> np.ndarray:
    """float64 numpy arange(start, stop, step): its length decides the layers (7, 12, 16, 21, 26 for CIFAR)."""
    return np.arange(p[0], p[1], p[2])


# planes-last buffers hold a multiple of this many planes (zero planes added): the bilinear
# kernel's channel loop computes multiples of 8 floats with vector code on AVX2 and AVX-512
# alike (measured: 8, 16 and 24 planes give bit-identical planes, 5 or 17 do not)
PLANE_BLOCK = 8


def _to_planes_last(x: torch.Tensor, slot: str | None = None) -> torch.Tensor:
    """(N, C, H, W), any dtype -> float32 (1, P', H, W) in channels_last memory: the N*C
    planes as channels, zero planes up to a multiple of PLANE_BLOCK. Channel-vectorised
    kernels then treat every real plane alike in any batch (no scalar tail). `slot`: in
    that per-thread scratch buffer (see _rng._scratch)."""
    n, c, h, w = x.shape
    p = n * c
    pp = -(-p // PLANE_BLOCK) * PLANE_BLOCK
    if slot is None:
        buf = torch.empty((h, w, pp), dtype=torch.float32, device=x.device)
    else:
        buf = _rng._scratch(slot, (h, w, pp), torch.float32, x.device)
    buf[..., :p] = x.reshape(p, h * w).t().view(h, w, p)
    if pp > p:
        buf[..., p:] = 0
    return buf.permute(2, 0, 1).unsqueeze(0)


def _cl_view(flat: torch.Tensor, c: int, h: int, w: int) -> torch.Tensor:
    """A dense channels_last (1, c, h, w) tensor on the start of the 1-D buffer `flat`."""
    return flat[:c * h * w].as_strided((1, c, h, w), (c * h * w, 1, w * c, c))


def _zoom_layer(xc: torch.Tensor, z: float, trim: str, bufs: tuple | None = None) -> torch.Tensor:
    """_ops.clipped_zoom on a planes-last image (corner-aligned bilinear on the centre crop).
    `bufs`: two 1-D buffers of at least xc's size for the crop and the zoomed image, reused
    across layers (fresh multi-megabyte tensors per layer cost page faults)."""
    h, w = xc.shape[-2:]
    p = xc.shape[1]
    ch, cw = int(math.ceil(h / z)), int(math.ceil(w / z))
    oh, ow = _ops.scipy_zoom_size(ch, z), _ops.scipy_zoom_size(cw, z)
    t0, l0 = (h - ch) // 2, (w - cw) // 2
    crop = xc[:, :, t0:t0 + ch, l0:l0 + cw]
    if (oh, ow) == (ch, cw):
        big = crop
    elif bufs is None or bufs[1].numel() < p * oh * ow:
        crop = crop.contiguous(memory_format=torch.channels_last)
        big = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)
    else:
        crop = _cl_view(bufs[0], p, ch, cw).copy_(crop)
        big = torch._C._nn.upsample_bilinear2d(crop, (oh, ow), True, None, None, out=_cl_view(bufs[1], p, oh, ow))
    th, tw = ((oh - h) // 2, (ow - w) // 2) if trim == "center" else (0, 0)
    return big[:, :, th:th + h, tw:tw + w]


def apply_zoom_blur(x, p, ctx, f):
    """(x + sum of clipped zooms) / (n + 1), clipped, truncated to uint8. The zooms run on
    one planes-last copy of the batch (bilinear vectorised over all planes), made from the
    uint8 batch and divided by 255 there (the values `corrupt`'s float copy holds), summed
    in factor order; the result goes back to NCHW as bytes."""
    zs = zoom_factors(p)
    u8 = ctx.uint8
    n, c, h, w = u8.shape
    # the big intermediates live in per-thread scratch buffers on the CPU: fresh ones cost
    # page faults whose number varies from call to call with the heap's state
    xc = _to_planes_last(u8, "zoom_x").div_(255.0)
    pp, dev = xc.shape[1], xc.device
    big = max(_ops.scipy_zoom_size(int(math.ceil(s / float(z))), float(z)) for z in zs for s in (h, w)) if len(zs) else h
    bufs = (_rng._scratch("zoom_crop", (xc.numel(),), torch.float32, dev),
            _rng._scratch("zoom_big", (pp * big * big,), torch.float32, dev))
    acc = _cl_view(_rng._scratch("zoom_acc", (xc.numel(),), torch.float32, dev), pp, h, w)
    first = True
    for z in zs:
        layer = _zoom_layer(xc, float(z), ctx.style["zoom_trim"], bufs)
        acc = acc.copy_(layer) if first else acc.add_(layer)
        first = False
    out = acc.copy_(xc) if first else acc.add_(xc, alpha=1)
    # x + sum, as the reference adds them (addition commutes exactly); then corrupt's
    # clamp and truncation, in planes-last order, and one byte transpose back
    q = out.div_(len(zs) + 1).clamp_(0, 1).mul_(255).to(torch.int16)
    return torch.empty(u8.shape, dtype=torch.uint8, device=u8.device).copy_(q[0, :n * c].view(n, c, h, w))


CORRUPTIONS = {
    "gaussian_blur": (apply_gaussian_blur, None),
    "defocus_blur": (apply_defocus_blur, None),
    "glass_blur": (apply_glass_blur, draw_glass_blur),
    "motion_blur": (apply_motion_blur, draw_motion_blur),
    "zoom_blur": (apply_zoom_blur, None),
}
