"""Fidelity of the C-bar corruptions against per-pixel oracles of the reference
(tests/_cbar_refs.py), given the same drawn parameters (`random_fields`).

Tolerance (the issue's): within 2 intensity levels on >= 99% of pixels; we also ask
>= 99% within 1 level. The CIFAR-10-C-bar table runs on whole 32-px images (and 28-px
gray ones); the ImageNet-C-bar table on 224-px images at sampled pixels (every pixel
for the FFT noises), plus 64-px images (the same table, every pixel) for the two
whose oracle has to compute whole-image maps per pixel.
"""
from __future__ import annotations

import numpy as np
import pytest

from dstlib import corruptions as C
from dstlib.corruptions import cbar
from _cbar_refs import oracle
from _corruption_refs import natural_images, to_hwc

pytest.importorskip("scipy")


def assert_close(ours: np.ndarray, ref: np.ndarray, what):
    d = np.abs(ours.astype(int) - ref.astype(int))
    assert ours.shape == ref.shape, (what, ours.shape, ref.shape)
    assert np.mean(d <= 2) >= 0.99 and np.mean(d <= 1) >= 0.99, (what, np.mean(d <= 1), np.mean(d <= 2), d.max())


def _compare(name, x, table, severity, seed, pixels=None):
    f = C.random_fields(x, name, severity, seed=seed, table=table)
    ours = to_hwc(C.corrupt(x, name, severity, table=table, fields=f))
    lev = cbar.level(table, name, severity)
    for i, im in enumerate(to_hwc(x)):
        fi = {k: v[i] for k, v in f.items()}
        ref = oracle(name, im, fi, lev, pixels)
        got = ours[i] if pixels is None else np.stack([ours[i][r, c] for r, c in pixels])
        assert_close(got, ref, (name, table, severity, i))


@pytest.mark.parametrize("name", C.CIFAR_CBAR_NAMES)
def test_cifar_table_against_the_oracle(name):
    x = natural_images(2, 32, seed=21)
    for s in range(1, 6):
        _compare(name, x, "cifar", s, seed=s)


@pytest.mark.parametrize("name", C.CIFAR_CBAR_NAMES)
def test_gray_28px_against_the_oracle(name):
    x = natural_images(2, 28, seed=22, gray=True)
    for s in (1, 5):
        _compare(name, x, "cifar", s, seed=10 + s)


def _pixels(im, k, seed):
    rng = np.random.default_rng(seed)
    border = ([(0, c) for c in range(0, im, 37)] + [(im - 1, c) for c in range(0, im, 41)]
              + [(r, 0) for r in range(0, im, 43)])
    return border + [tuple(v) for v in rng.integers(0, im, (k, 2)).tolist()]


PER_PIXEL_224 = ("single_frequency_greyscale", "cocentric_sine_waves", "plasma_noise", "perlin_noise",
                 "sparkles", "inverse_sparkles", "checkerboard_cutout")


@pytest.mark.parametrize("name", PER_PIXEL_224)
def test_imagenet_table_at_224_sampled_pixels(name):
    x = natural_images(1, 224, seed=23)
    for s in range(1, 6):
        _compare(name, x, "imagenet", s, seed=20 + s, pixels=_pixels(224, 500, s))


@pytest.mark.parametrize("name", ["blue_noise_sample", "brownish_noise"])
def test_imagenet_fft_noises_at_224(name):
    x = natural_images(1, 224, seed=24)
    for s in (1, 3, 5):
        _compare(name, x, "imagenet", s, seed=30 + s)


def test_caustic_refraction_at_224_sampled_pixels():
    x = natural_images(1, 224, seed=25)
    _compare("caustic_refraction", x, "imagenet", 5, seed=41, pixels=_pixels(224, 1500, 5))


@pytest.mark.parametrize("name", ["caustic_refraction", "blue_noise_sample", "brownish_noise"])
def test_imagenet_table_at_64px_every_pixel(name):
    x = natural_images(2, 64, seed=26)
    for s in range(1, 6):
        _compare(name, x, "imagenet", s, seed=50 + s)


@pytest.mark.parametrize("name", ["sparkles", "plasma_noise", "perlin_noise", "checkerboard_cutout"])
def test_gray_imagenet_table(name):
    x = natural_images(1, 64, seed=27, gray=True)
    _compare(name, x, "imagenet", 4, seed=60)


def test_odd_size_fft_noise():
    x = natural_images(1, 33, seed=28)
    for name in ("blue_noise_sample", "brownish_noise"):
        _compare(name, x, "cifar", 5, seed=61)
