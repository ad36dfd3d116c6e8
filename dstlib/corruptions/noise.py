"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper), speckle.

Each corruption is a pair: `draw_*(seeds, p, ctx)` draws the random fields of
the whole batch from the counter-based generator (`_rng`, one key per image),
`apply_*(x, p, ctx, fields)` maps a batch x (float, [0, 1], NCHW) to the float
image the reference casts to uint8 (0..255 scale, before clipping and
truncation), or directly to the uint8 result where that is exact (all four
do: clip, scale and truncate in place). gaussian and speckle overwrite x (the
float copy `corrupt` makes), never the fields. Noise is drawn per channel, so a
1-channel image gets one noise field and a 3-channel image three.
"""
from __future__ import annotations

import math
import sys

import torch

from dstlib.corruptions import _rng


def draw_normal(seeds, p, ctx):
    return {"normal": _rng.normal(seeds, 0, ctx.shape, ctx.device)}


def _to_uint8(y):
    """np.uint8(np.clip(y, 0, 1) * 255) in place on a float tensor y (truncation; through
    an int16 scratch buffer: exact for 0..255, and on CPU ~3x as fast as float -> uint8)."""
    y.clamp_(0, 1).mul_(255)
    return _rng._scratch("b", y.shape, torch.int16, y.device).copy_(y).to(torch.uint8)


def apply_gaussian_noise(x, p, ctx, f):
    """np.clip(x + N(0, c), 0, 1) * 255; `normal` is the standard normal field (N, C, H, W)."""
    return _to_uint8(x.add_(f["normal"], alpha=p))


def draw_shot_noise(seeds, p, ctx):
    """Poisson(x / 255 * c) counts by the alias method (`_rng.poisson`)."""
    return {"counts": _rng.poisson(ctx.uint8, float(p) / 255.0, seeds, 0)}


def apply_shot_noise(x, p, ctx, f):
    """np.clip(poisson(x * c) / c, 0, 1) * 255; `counts` are the Poisson draws (N, C, H, W)."""
    c = f["counts"]
    return _to_uint8(torch.div(c, float(p), out=_rng._scratch("a", c.shape, torch.float32, c.device)))


def draw_impulse_noise(seeds, p, ctx):
    """16 bits per element (the two halves of each 32-bit draw, low half first), read
    as int16 s: the flip is d < round(c 2^15) - 2^14 for d = s >> 1 (its top 15 bits,
    uniform in [-2^14, 2^14): probability round(c 2^15) / 2^15, the amount quantised
    to 2^-15), salt or pepper the lowest bit (independent of the flip, exactly 1/2).
    Bool fields, computed as 0/1 bytes in int16 passes."""
    m = math.prod(ctx.shape)
    h = _rng.bits(seeds, 0, ((m + 1) // 2,), ctx.device, _slot="bits")
    v = h.view(torch.int16)[:, :m]
    if sys.byteorder == "little":  # the low byte of each int16
        salted = torch.bitwise_and(v.view(torch.uint8)[:, 0::2], 1)
    else:
        salted = torch.bitwise_and(v, 1).to(torch.uint8)
    k = min(round(p * 2 ** 15), 2 ** 15)
    d = torch.bitwise_right_shift(v, 1, out=_rng._scratch("a", v.shape, torch.int16, v.device))
    # d: the top 15 bits, minus 2^14: in [-2^14, 2^14)
    d -= k - 2 ** 14                      # in [-2^15, 2^15): no int16 overflow
    d >>= 15                              # -1: flipped
    flipped = d.to(torch.uint8)
    flipped &= 1
    n = len(seeds)
    return {"flipped": flipped.view(torch.bool).view(n, *ctx.shape),
            "salted": salted.view(torch.bool).view(n, *ctx.shape)}


def apply_impulse_noise(x, p, ctx, f):
    """skimage random_noise(mode='s&p', amount=c): each element is replaced with
    probability c, by 1 or 0 with equal odds; `flipped`, `salted` are the bool fields.
    Works on the uint8 batch (exact: the float path returns the unchanged values), as
    (x & keep) | salt in uint8 passes: keep = flipped - 1, salt = -(flipped & salted)."""
    fl, sa = f["flipped"].bool().view(torch.uint8), f["salted"].bool().view(torch.uint8)
    salt = torch.bitwise_and(fl, sa).neg_()   # 255 where salted
    y = torch.bitwise_and(ctx.uint8, torch.sub(fl, 1))
    return y.bitwise_or_(salt)


def apply_speckle_noise(x, p, ctx, f):
    """np.clip(x + x * N(0, c), 0, 1) * 255."""
    return _to_uint8(x.addcmul_(x, f["normal"], value=p))


CORRUPTIONS = {
    "gaussian_noise": (apply_gaussian_noise, draw_normal),
    "shot_noise": (apply_shot_noise, draw_shot_noise),
    "impulse_noise": (apply_impulse_noise, draw_impulse_noise),
    "speckle_noise": (apply_speckle_noise, draw_normal),
}
