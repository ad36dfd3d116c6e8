"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper), speckle.

Each corruption is a pair: `draw_*(gen, p, ctx)` draws one image's random
fields from its own generator (CPU), `apply_*(x, p, ctx, fields)` maps a batch
x (float, [0, 1], NCHW) to the float image the reference casts to uint8
(0..255 scale, before clipping and truncation). Noise is drawn per channel, so
a 1-channel image gets one noise field and a 3-channel image three.
"""
from __future__ import annotations

import torch


def draw_normal(gen, p, ctx):
    return {"normal": torch.randn(ctx.shape, generator=gen, dtype=torch.float32)}


def apply_gaussian_noise(x, p, ctx, f):
    """np.clip(x + N(0, c), 0, 1) * 255; `normal` is the standard normal field (N, C, H, W)."""
    return (x + p * f["normal"]).clamp(0, 1) * 255


def draw_shot_noise(gen, p, ctx):
    rate = ctx.image.double() / 255.0 * p
    return {"counts": torch.poisson(rate, generator=gen).float()}


def apply_shot_noise(x, p, ctx, f):
    """np.clip(poisson(x * c) / c, 0, 1) * 255; `counts` are the Poisson draws (N, C, H, W)."""
    return (f["counts"] / float(p)).clamp(0, 1) * 255


def draw_impulse_noise(gen, p, ctx):
    flip = torch.rand(ctx.shape, generator=gen, dtype=torch.float64) <= p
    salt = torch.rand(ctx.shape, generator=gen, dtype=torch.float64) <= 0.5
    return {"flipped": flip, "salted": salt}


def apply_impulse_noise(x, p, ctx, f):
    """skimage random_noise(mode='s&p', amount=c): each element is replaced with
    probability c, by 1 or 0 with equal odds; `flipped`, `salted` are the bool fields."""
    fl, sa = f["flipped"], f["salted"]
    y = torch.where(fl & sa, torch.ones_like(x), x)
    y = torch.where(fl & ~sa, torch.zeros_like(x), y)
    return y.clamp(0, 1) * 255


def apply_speckle_noise(x, p, ctx, f):
    """np.clip(x + x * N(0, c), 0, 1) * 255."""
    return (x + x * (p * f["normal"])).clamp(0, 1) * 255


CORRUPTIONS = {
    "gaussian_noise": (apply_gaussian_noise, draw_normal),
    "shot_noise": (apply_shot_noise, draw_shot_noise),
    "impulse_noise": (apply_impulse_noise, draw_impulse_noise),
    "speckle_noise": (apply_speckle_noise, draw_normal),
}
