"""Blur building blocks: padding, glass blur's shuffle map, batch invariance of the
planes-last zoom and the matmul filter paths."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dstlib import corruptions as C
from dstlib.corruptions import _ops
from dstlib.corruptions.blur import _source_map
from _corruption_refs import natural_images


def _pad_by_gather(x, top, bottom, left, right, mode):
    hi = _ops.border_index(x.shape[-2], max(top, bottom), mode)
    wi = _ops.border_index(x.shape[-1], max(left, right), mode)
    hi = hi[max(top, bottom) - top:len(hi) - (max(top, bottom) - bottom)]
    wi = wi[max(left, right) - left:len(wi) - (max(left, right) - right)]
    return x.index_select(-2, hi).index_select(-1, wi)


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror"])
def test_pad_equals_index_gather(mode):
    g = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 7, 9), (3, 5, 6), (1, 1, 1, 4)):
        for dtype in (torch.float32, torch.int32):
            x = (torch.rand(shape, generator=g) * 100).to(dtype)
            for t, b, l, r in ((0, 0, 2, 2), (3, 3, 0, 0), (1, 6, 2, 11), (9, 9, 9, 9)):
                got = _ops.pad2d_asym(x, t, b, l, r, mode)
                assert torch.equal(got, _pad_by_gather(x, t, b, l, r, mode)), (shape, dtype, t, b, l, r)


def _sequential_pass(img, off, d):
    """The reference's loop, literally: x[h, w] <- x[h + dy, w + dx], bottom-right first."""
    x = img.copy()
    hgt, wid = x.shape
    for h in range(hgt - d, d, -1):
        for w in range(wid - d, d, -1):
            dy, dx = off[h, w]
            x[h, w] = x[h + dy, w + dx]
    return x


@pytest.mark.parametrize("planar", [False, True])
@pytest.mark.parametrize("d,h,w", [(1, 13, 11), (2, 13, 11), (3, 13, 11), (2, 60, 70)])
def test_glass_source_map_equals_the_sequential_loop(d, h, w, planar):
    rng = np.random.default_rng(d + h)
    n = 3
    off = rng.integers(-d, d, size=(n, h, w, 2))
    img = rng.integers(0, 1000, size=(n, h, w))
    t = torch.from_numpy(off).to(torch.int32)
    if planar:  # the layout the drawer returns: (dy, dx) planes behind a (.., 2) view
        t = t.movedim(-1, 1).contiguous().movedim(1, -1)
    q = _source_map(t, d, h, w)
    got = torch.from_numpy(img).reshape(-1)[q].view(n, h, w).numpy()
    for i in range(n):
        assert np.array_equal(got[i], _sequential_pass(img[i], off[i], d))
    assert torch.equal(t, torch.from_numpy(off).to(torch.int32))  # the offsets are left alone


@pytest.mark.parametrize("name,size,table", [("zoom_blur", 32, "cifar"), ("zoom_blur", 40, "imagenet"),
                                             ("gaussian_blur", 32, "imagenet"), ("defocus_blur", 32, "imagenet")])
def test_planes_last_and_matmul_paths_are_batch_invariant(name, size, table):
    x = natural_images(7, size, seed=9)  # 21 planes: one full 16-plane block and a partial one
    full = C.corrupt(x, name, 5, table=table)
    for lo, hi in ((0, 1), (6, 7), (2, 7)):
        assert torch.equal(C.corrupt(x[lo:hi], name, 5, table=table, index=torch.arange(lo, hi)), full[lo:hi])


@pytest.mark.parametrize("planes,size,sigma,mode", [(3 * 7, 140, 3.0, "nearest"), (2 * 9, 130, 2.0, "reflect"),
                                                     (16, 128, 2.5, "mirror")])
def test_depthwise_path_equals_the_shifted_views_in_any_batch(planes, size, sigma, mode):
    from dstlib.corruptions import _ops
    c = 3 if planes % 3 == 0 else 2 if planes % 2 == 0 else 1
    x = torch.rand(planes // c, c, size, size, generator=torch.Generator().manual_seed(planes))
    k = _ops.gaussian_kernel1d(sigma)
    assert _ops._depthwise_pays(x, k, k) and size > _ops.DENSE_MAX_RATIO * len(k)  # the depthwise path
    y = _ops.conv_separable(x, k * 1.5, k, mode)
    assert torch.equal(y, _ops.separable_shifted(x, k * 1.5, k, mode))
    # an image alone (below the plane threshold: shifted views) gets the same values
    assert not _ops._depthwise_pays(x[1:2], k, k)
    assert torch.equal(_ops.conv_separable(x[1:2], k * 1.5, k, mode), y[1:2])


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror"])
def test_gaussian_blur_from_bytes_equals_the_float_path(mode):
    from dstlib.corruptions import _ops
    u8 = natural_images(6, 140, seed=4)  # 18 planes of 140 x 140: the depthwise path
    for sigma in (2.0, 3.0):
        got = _ops.gaussian_blur_uint8(u8, sigma, mode)
        want = _ops.gaussian_blur(u8.float().div_(255.0), sigma, mode).clamp_(0, 1).mul_(255).to(torch.uint8)
        assert got is not None and got.is_contiguous() and torch.equal(got, want)
    assert _ops.gaussian_blur_uint8(u8[:1], 3.0, mode) is None  # 3 planes: the float path


def test_a_one_tap_axis_still_scales():
    from dstlib.corruptions import _ops
    x = torch.rand(2, 1, 20, 40)
    k = _ops.gaussian_kernel1d(1.0)
    want = _ops.conv_separable(x, np.ones(1), k, "reflect") * 3.0
    assert torch.allclose(_ops.conv_separable(x, np.full(1, 3.0), k, "reflect"), want)


def _motion_naive(x, radius, sigma, angle):
    """MagickCore's taps read one value at a time with clamped indices (float64)."""
    n, c, h, w = x.shape
    i = np.arange(2 * radius + 1, dtype=np.float64)
    k = np.exp(-(i ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    out = torch.zeros(x.shape, dtype=torch.float64)
    ys, xs = torch.arange(h).view(h, 1), torch.arange(w).view(1, w)
    for b in range(n):
        a = np.deg2rad(float(angle[b]))
        py, px = len(i) * np.sin(a), len(i) * np.cos(a)
        hyp = np.hypot(py, px)
        for t in range(len(i)):
            dy, dx = int(np.ceil(i[t] * py / hyp - 0.5)), int(np.ceil(i[t] * px / hyp - 0.5))
            if abs(dy) >= h or abs(dx) >= w:
                break  # the port stops at the first tap outside the image
            src = x[b].double()[:, (ys + dy).clamp(0, h - 1), (xs + dx).clamp(0, w - 1)]
            out[b] += k[t] * src
    return out


@pytest.mark.parametrize("c,h,w", [(3, 12, 20), (1, 9, 8), (3, 32, 32)])
def test_motion_blur_row_copies_equal_clamped_reads_and_are_batch_invariant(c, h, w):
    """The small-image path (windows of a column-padded channels-last copy) against a
    direct clamped-index loop, including angles outside +-45 degrees and taps that
    leave the image (dead); each image alone gives the same bits as in the batch."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand((5, c, h, w), generator=g) * 255
    angle = torch.tensor([-45.0, 13.7, 44.9, 170.0, -100.0], dtype=torch.float64)
    got = _ops.motion_blur(x, 10, 4.0, angle)
    torch.testing.assert_close(got.double(), _motion_naive(x, 10, 4.0, angle), rtol=0, atol=1e-3)
    for b in (0, 3, 4):
        assert torch.equal(_ops.motion_blur(x[b:b + 1], 10, 4.0, angle[b:b + 1]), got[b:b + 1])
