"""Fidelity of dstlib.corruptions against the reference algorithms.

- deterministic corruptions, `cifar` (32 px) and `tiny` (64 px) tables: against a
  test-only port of make_cifar_c.py's functions (tests/_corruption_refs.py);
- deterministic corruptions, `imagenet` table, 224 px: against imagecorruptions-imaug;
- stochastic corruptions: against imagecorruptions-imaug given the same random
  draws (numpy's draws replayed into our fields), and the CIFAR-script elastic
  transform (random affine + displacement) given the same draws;
- the OpenCV / PIL / numpy building blocks the reference relies on.
Tolerance (the issue's): within 2 intensity levels on >= 99% of pixels; we also
require >= 99% within 1 level (measured: every pixel within 1 level).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dstlib import corruptions as C
from dstlib.corruptions.tables import params
from _corruption_refs import (cifar_elastic_reference, cifar_reference, frost_crop_fields, natural_images,
                              reference_with_fields, to_hwc)

imagecorruptions = pytest.importorskip("imagecorruptions")
cv2 = pytest.importorskip("cv2")


def assert_close(ours: np.ndarray, ref: np.ndarray, what):
    d = np.abs(ours.astype(int) - ref.astype(int))
    assert ours.shape == ref.shape
    assert np.mean(d <= 2) >= 0.99 and np.mean(d <= 1) >= 0.99, (what, np.mean(d <= 2), d.max())


@pytest.mark.parametrize("table,size,n", [("cifar", 32, 8), ("tiny", 64, 3)])
@pytest.mark.parametrize("name", C.DETERMINISTIC)
def test_deterministic_against_the_script(name, table, size, n):
    x = natural_images(n, size, seed=11)
    for s in range(1, 6):
        ours = to_hwc(C.corrupt(x, name, s, table=table))
        ref = np.stack([cifar_reference(name, im, params(table, name, s)) for im in to_hwc(x)])
        assert_close(ours, ref, (name, table, s))


@pytest.mark.parametrize("name", C.DETERMINISTIC)
def test_deterministic_against_the_package_224(name):
    x = natural_images(1, 224, seed=12)
    for s in range(1, 6):
        ours = to_hwc(C.corrupt(x, name, s, table="imagenet"))
        ref = np.stack([imagecorruptions.corrupt(im, s, name) for im in to_hwc(x)])
        assert_close(ours, ref, (name, s))


@pytest.mark.parametrize("name", C.STOCHASTIC)
def test_stochastic_against_the_package_with_the_same_draws(name):
    size = 40 if name == "glass_blur" else 48  # the package's glass loop runs as plain Python here
    x = natural_images(2, size, seed=13)
    for s in range(1, 6):
        refs, fl = [], []
        for i, im in enumerate(to_hwc(x)):
            r, f = reference_with_fields(name, im, s, 100 * s + i)
            if name == "frost":
                f = frost_crop_fields(im, s, 100 * s + i)
            refs.append(r)
            fl.append(f)
        fields = {k: torch.stack([f[k] for f in fl]) for k in fl[0]}
        ours = to_hwc(C.corrupt(x, name, s, table="imagenet", fields=fields))
        assert_close(ours, np.stack(refs), (name, s))


def test_cifar_elastic_against_the_script_with_the_same_draws():
    x = natural_images(4, 32, seed=14)
    for s in range(1, 6):
        f = C.random_fields(x, "elastic_transform", s, seed=s, table="cifar")
        ours = to_hwc(C.corrupt(x, "elastic_transform", s, table="cifar", fields=f))
        ref = np.stack([cifar_elastic_reference(im, params("cifar", "elastic_transform", s),
                                                f["affine"][i].numpy(), f["displacement"][i].numpy())
                        for i, im in enumerate(to_hwc(x))])
        assert_close(ours, ref, s)


def test_plasma_matches_the_reference_given_the_same_uniforms():
    from imagecorruptions.corruptions import plasma_fractal

    from dstlib.corruptions.weather import plasma_draws
    from dstlib.corruptions.weather import plasma_map as ours

    for size, decay in ((32, 3.0), (256, 1.4)):
        np.random.seed(5)
        u = np.random.random_sample(plasma_draws(size))
        np.random.seed(5)
        ref = plasma_fractal(mapsize=size, wibbledecay=decay)
        got = ours(torch.from_numpy(u)[None], size, decay)[0].numpy()
        assert np.abs(got - ref).max() < 1e-5


def test_opencv_steps_of_water_spatter_are_exact():
    from dstlib.corruptions.weather import canny, distance_to_zero, equalize_hist

    rng = np.random.default_rng(0)
    for size, sigma in ((32, 0.8), (96, 3.0)):
        from skimage.filters import gaussian
        liquid = gaussian(rng.normal(0.65, 0.3, (size, size)), sigma=sigma)
        liquid[liquid < 0.68] = 0
        l8 = (liquid * 255).astype(np.uint8)
        ref_edges = cv2.Canny(l8, 50, 150)
        edges = canny(torch.from_numpy(l8).float()[None])[0].numpy()
        assert np.array_equal(edges, ref_edges > 0)
        dist = cv2.distanceTransform(255 - ref_edges, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        got = distance_to_zero(torch.from_numpy(255 - ref_edges.astype(np.int64))[None])[0].numpy()
        assert np.abs(got - dist).max() < 1e-4
        img = rng.integers(0, 21, (size, size)).astype(np.uint8)
        assert np.array_equal(equalize_hist(torch.from_numpy(img).float()[None])[0].numpy(), cv2.equalizeHist(img))


def test_pil_box_resize_is_exact():
    from PIL import Image

    from dstlib.corruptions.digital import pil_box_resize

    x = natural_images(2, 224, seed=15)
    for out in (134, 112, 56, 30, 27):
        ours = pil_box_resize(x.double(), out, out).to(torch.uint8)
        ref = np.stack([np.asarray(Image.fromarray(im).resize((out, out), Image.BOX)) for im in to_hwc(x)])
        assert np.array_equal(to_hwc(ours), ref)
