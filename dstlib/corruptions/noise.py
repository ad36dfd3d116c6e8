"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper), speckle.

Each corruption is a pair: `draw_*(seeds, p, ctx)` draws the random fields of
the whole batch from the counter-based generator (`_rng`, one key per image),
`apply_*(x, p, ctx, fields)` maps a batch x (float, [0, 1], NCHW) to the float
image the reference casts to uint8 (0..255 scale, before clipping and
truncation), or directly to the uint8 result where that is exact. Noise is
drawn per channel, so a 1-channel image gets one noise field and a 3-channel
image three.
"""
from __future__ import annotations

import math

import torch

from dstlib.corruptions import _rng


def draw_normal(seeds, p, ctx):
    return {"normal": _rng.normal(seeds, 0, ctx.shape, ctx.device)}


def apply_gaussian_noise(x, p, ctx, f):
    """np.clip(x + N(0, c), 0, 1) * 255; `normal` is the standard normal field (N, C, H, W)."""
    return (x + p * f["normal"]).clamp_(0, 1).mul_(255)


def draw_shot_noise(seeds, p, ctx):
    """Poisson(x / 255 * c) counts by exact CDF inversion (`_rng.poisson`)."""
    return {"counts": _rng.poisson(ctx.uint8, float(p) / 255.0, seeds, 0)}


def apply_shot_noise(x, p, ctx, f):
    """np.clip(poisson(x * c) / c, 0, 1) * 255; `counts` are the Poisson draws (N, C, H, W)."""
    return (f["counts"] / float(p)).clamp_(0, 1).mul_(255)


def draw_impulse_noise(seeds, p, ctx):
    """One 32-bit draw per element: the top 31 bits give the uniform compared with the
    amount (flip), the lowest bit salt or pepper."""
    h = _rng.bits(seeds, 0, ctx.shape, ctx.device)
    flip = _rng._srl(h, 1) <= math.floor(p * 2 ** 31)  # (bits >>> 1) / 2^31 <= p, in integers
    return {"flipped": flip, "salted": (h & 1).bool()}


def apply_impulse_noise(x, p, ctx, f):
    """skimage random_noise(mode='s&p', amount=c): each element is replaced with
    probability c, by 1 or 0 with equal odds; `flipped`, `salted` are the bool fields.
    Works on the uint8 batch (exact: the float path returns the unchanged values)."""
    fl, sa = f["flipped"].bool(), f["salted"].bool()
    u8 = ctx.uint8
    return torch.where(fl, sa.to(torch.uint8) * 255, u8)


def apply_speckle_noise(x, p, ctx, f):
    """np.clip(x + x * N(0, c), 0, 1) * 255."""
    return (x + x * (p * f["normal"])).clamp_(0, 1).mul_(255)


CORRUPTIONS = {
    "gaussian_noise": (apply_gaussian_noise, draw_normal),
    "shot_noise": (apply_shot_noise, draw_shot_noise),
    "impulse_noise": (apply_impulse_noise, draw_impulse_noise),
    "speckle_noise": (apply_speckle_noise, draw_normal),
}
