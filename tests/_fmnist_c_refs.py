"""Test oracles for Fashion-MNIST-C (not collected by pytest).

A plain, per-image numpy port of the published generator's procedure (Weiss and
Tonella's generator.py over MNIST-C's corruption functions, at their default
severities), built on the library calls it makes: numpy, scikit-image
(`gaussian`, `warp`, `color`, `random_noise`), PIL and OpenCV, and ImageMagick's
MagickMotionBlurImage through Wand where the MagickWand library is installed.
Everything returns what the reference function returns (float32 in 0..255, or the
uint8 view of the flips and turns); `as_saved` is the generator's final
`np.array(...).astype(np.uint8)` (a truncation).

The reference was run with scikit-image 0.19.0, so where a newer scikit-image
changed a step the oracle states 0.19's semantics explicitly:
- glass blur's `gaussian(x, sigma, multichannel=True)` on a 2-D image treats the
  last axis as channels: it blurs vertically only (axis 0), i.e. `sigma=(sigma, 0)`;
- `AffineTransform(shear=s, rotation=r, scale=(sx, sy))` is the matrix
  [[sx cos r, -sy sin(r + s), tx], [sx sin r, sy cos(r + s), ty]];
- `warp` clips its output to the input's [min, max], keeping exact cval pixels
  when cval is outside that range (0.19's `_clip_warp_output`).
Random draws go through a numpy Generator passed in (the reference uses numpy's
global state), or are replayed from given arrays.
"""
from __future__ import annotations

from io import BytesIO

import numpy as np

SHOT_C, IMPULSE_AMOUNT = 3, 0.17            # shot_noise severity 5, impulse_noise severity 4
GLASS = (0.7, 1, 2)                         # glass_blur severity 1: sigma, max_delta, iterations
MOTION = (10, 3)                            # motion_blur severity 1: radius, sigma
SHEAR, ROTATE, SCALE = 0.4, 0.4, 1 / 0.7    # severities 2, 2, 3
BRIGHTNESS, CONTRAST, SATURATE = 0.5, 0.1, (20, 0.2)  # severities 5, 4, 5


def as_saved(y) -> np.ndarray:
    """The generator's last step: np.array(list of outputs).astype(np.uint8), a truncation of float32."""
    return np.asarray(y, dtype=np.float32).astype(np.uint8)


def shot_noise(x, rng):
    x = np.array(x) / 255.0
    return (np.clip(rng.poisson(x * SHOT_C) / float(SHOT_C), 0, 1) * 255).astype(np.float32)


def impulse_noise(x, rng):
    from skimage.util import random_noise

    y = random_noise(np.array(x) / 255.0, mode="s&p", amount=IMPULSE_AMOUNT, rng=rng)
    return (np.clip(y, 0, 1) * 255).astype(np.float32)


def _gaussian_rows(x):
    """skimage 0.19 `gaussian(x, 0.7, multichannel=True)` on a 2-D image: axis 0 only."""
    from skimage.filters import gaussian

    return gaussian(x, sigma=(GLASS[0], 0))


def glass_draws(rng, size: int = 28):
    """The reference's draws in its order, as arrays (iterations, size, size): `swap` (bool)
    and `dx`, `dy` in {-1, 0} at the visited (h, w) (0 elsewhere)."""
    d, iters = GLASS[1], GLASS[2]
    swap = np.zeros((iters, size, size), bool)
    dx = np.zeros((iters, size, size), np.int64)
    dy = np.zeros((iters, size, size), np.int64)
    for i in range(iters):
        for h in range(size - d, d, -1):
            for w in range(size - d, d, -1):
                if rng.choice([True, False], 1)[0]:
                    swap[i, h, w] = True
                    dx[i, h, w], dy[i, h, w] = rng.integers(-d, d, size=(2,))
    return swap, dx, dy


def glass_blur(x, swap, dx, dy):
    """The reference's glass_blur given its draws (see glass_draws)."""
    d, iters = GLASS[1], GLASS[2]
    n = x.shape[0]
    x = np.uint8(_gaussian_rows(np.array(x) / 255.0) * 255)
    for i in range(iters):
        for h in range(n - d, d, -1):
            for w in range(n - d, d, -1):
                if swap[i, h, w]:
                    hp, wp = h + dy[i, h, w], w + dx[i, h, w]
                    x[h, w], x[hp, wp] = x[hp, wp], x[h, w]
    return (np.clip(_gaussian_rows(x / 255.0), 0, 1) * 255).astype(np.float32)


def motion_blur(x, angle: float):
    """PNG through PIL, MagickMotionBlurImage(radius 10, sigma 3, angle), decoded by OpenCV."""
    import cv2
    from PIL import Image
    from wand.image import Image as WandImage

    buf = BytesIO()
    Image.fromarray(np.asarray(x).astype(np.uint8)).save(buf, format="PNG")
    with WandImage(blob=buf.getvalue()) as im:
        im.motion_blur(radius=MOTION[0], sigma=MOTION[1], angle=float(angle))
        blob = im.make_blob()
    y = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)
    return np.clip(np.array(y), 0, 255).astype(np.float32)


def affine_019(scale=(1.0, 1.0), rotation=0.0, shear=0.0) -> np.ndarray:
    """The centred inverse map the reference builds (skimage 0.19's AffineTransform matrix,
    translated so that (13.5, 13.5) stays fixed)."""
    import math

    sx, sy = scale
    m = np.array([[sx * math.cos(rotation), -sy * math.sin(rotation + shear), 0.0],
                  [sx * math.sin(rotation), sy * math.cos(rotation + shear), 0.0],
                  [0.0, 0.0, 1.0]])
    a1, a2 = m[0, :2]
    b1, b2 = m[1, :2]
    m[0, 2] = 13.5 * (1 - a1 - a2)
    m[1, 2] = 13.5 * (1 - b1 - b2)
    return m


def warp_019(x, matrix):
    """skimage.transform.warp(x / 255, inverse_map=matrix) with 0.19's output clipping."""
    from skimage.transform import warp

    img = np.array(x) / 255.0
    out = warp(img, matrix, clip=False)  # bilinear, mode constant, cval 0
    lo, hi = img.min(), img.max()
    keep = (out == 0) if not lo <= 0 <= hi else None
    np.clip(out, lo, hi, out=out)
    if keep is not None:
        out[keep] = 0
    return out


def shear(x, sign: int):
    return (np.clip(warp_019(x, affine_019(shear=SHEAR * sign)), 0, 1) * 255.0).astype(np.float32)


def rotate(x, sign: int):
    return (np.clip(warp_019(x, affine_019(rotation=ROTATE * sign)), 0, 1) * 255).astype(np.float32)


def scale(x):
    return (np.clip(warp_019(x, affine_019(scale=(SCALE, SCALE))), 0, 1) * 255).astype(np.float32)


def brightness(x):
    from skimage import color

    y = color.rgb2hsv(color.gray2rgb(np.array(x) / 255.0))
    y[:, :, 2] = np.clip(y[:, :, 2] + BRIGHTNESS, 0, 1)
    y = color.rgb2gray(color.hsv2rgb(y))
    return (np.clip(y, 0, 1) * 255).astype(np.float32)


def contrast(x):
    x = np.array(x) / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return (np.clip((x - means) * CONTRAST + means, 0, 1) * 255).astype(np.float32)


def saturate(x):
    from skimage import color

    y = color.rgb2hsv(color.gray2rgb(np.array(x) / 255.0))
    y = np.clip(y * SATURATE[0] + SATURATE[1], 0, 1)
    y = color.rgb2gray(color.hsv2rgb(y))
    return (np.clip(y, 0, 1) * 255).astype(np.float32)


def inverse(x):
    return 255.0 - np.array(x).astype(np.float32)


DETERMINISTIC = {
    "scale": scale, "brightness": brightness, "contrast": contrast, "saturate": saturate, "inverse": inverse,
    "flip_sides": np.fliplr, "flip_up_down": np.flipud,
    "flip_left_right": lambda x: np.rot90(x, 3),  # the key names a flip; the generator turns right
    "flip_top_bottom": lambda x: np.rot90(x),     # ... and left
}
SIGNED = {"shear": shear, "rotate": rotate}
