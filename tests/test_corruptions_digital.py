"""dstlib.corruptions.digital: the closed forms of brightness / saturate / contrast against
the plain float64 formulas (HSV round trip), the elastic sampler against scipy's
map_coordinates (reflect) for displacements up to nearly the image size and for
non-square images, batch invariance across the CPU sampling chunks, and the JPEG
round trip on non-contiguous and gray input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dstlib import corruptions as C
from dstlib.corruptions import _ops, digital
from dstlib.corruptions.tables import params
from _corruption_refs import natural_images


def _edge_pixels() -> torch.Tensor:
    """(1, 3, 16, 16) uint8: natural pixels plus black, white, gray, pure and near-gray colours."""
    x = natural_images(1, 16, seed=21).clone()
    special = torch.tensor([[0, 0, 0], [255, 255, 255], [128, 128, 128], [255, 0, 0], [0, 255, 0],
                            [0, 0, 255], [1, 0, 0], [254, 255, 255], [10, 10, 11], [200, 100, 100],
                            [3, 2, 1], [0, 1, 1], [250, 250, 0], [255, 254, 0], [7, 7, 7], [0, 0, 1]],
                           dtype=torch.uint8)
    x[0, :, 0, :] = special.t()
    return x


def _check_levels(ours: torch.Tensor, y: torch.Tensor, what):
    """ours (uint8) against the float64 result y on the 0..1 scale, truncated: equal wherever
    255 y is not within 1e-3 of an integer level (there float32 and float64 may truncate to
    neighbouring levels), and never more than one level apart."""
    y255 = y.clamp(0, 1) * 255
    ref = y255.floor().int()
    d = (ours.int() - ref).abs()
    tie = (y255 - y255.round()).abs() < 1e-3
    assert int(d.max()) <= 1, (what, int(d.max()))
    assert not bool((d[~tie] > 0).any()), (what, int((d[~tie] > 0).sum()))


def _hsv_reference(x: torch.Tensor, name: str, p) -> torch.Tensor:
    """skimage-style HSV round trip in float64 (_ops.rgb_to_hsv / hsv_to_rgb), 0..1 scale."""
    hsv = _ops.rgb_to_hsv(x.double() / 255)
    if name == "brightness":
        hsv[:, 2] = (hsv[:, 2] + p).clamp(0, 1)
    else:
        hsv[:, 1] = (hsv[:, 1] * p[0] + p[1]).clamp(0, 1)
    return _ops.hsv_to_rgb(hsv)


@pytest.mark.parametrize("table", ["cifar", "imagenet"])
@pytest.mark.parametrize("name", ["brightness", "saturate"])
def test_hsv_closed_forms_equal_the_round_trip(name, table):
    x = torch.cat([natural_images(3, 16, seed=22), _edge_pixels()])
    for s in range(1, 6):
        p = params(table, name, s)
        ours = C.corrupt(x, name, s, table=table)
        _check_levels(ours, _hsv_reference(x, name, p), (name, table, s))
        # black, white and gray pixels: exactly v' (brightness) or v, and red at b > 0 (saturate)
        e = _edge_pixels()
        ref = (_hsv_reference(e, name, p).clamp(0, 1) * 255).floor().to(torch.uint8)
        assert torch.equal(C.corrupt(e, name, s, table=table)[0, :, 0, :3], ref[0, :, 0, :3]), (name, table, s)


def test_contrast_in_place_form():
    x = natural_images(4, 24, seed=23)
    for s in range(1, 6):
        c = params("imagenet", "contrast", s)
        xd = x.double() / 255
        m = xd.mean(dim=(2, 3), keepdim=True)
        _check_levels(C.corrupt(x, "contrast", s, table="imagenet"), (xd - m) * c + m, s)


def _map_coordinates_reflect(img: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    h, w = dx.shape
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([yy + dy, xx + dx])
    return np.stack([map_coordinates(img[c], coords, order=1, mode="reflect") for c in range(img.shape[0])])


@pytest.mark.parametrize("amp", [0.7, 5.0, 17.0])
def test_sampler_equals_map_coordinates_reflect(amp):
    """Positions folded about -0.5 and size - 0.5, then a 'border' grid_sample: scipy's
    reflect mode for displacements up to nearly the image size (one fold per side)."""
    pytest.importorskip("scipy")
    g = torch.Generator().manual_seed(3)
    n, c, h, w = 2, 3, 20, 18
    u8 = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=g)
    d = (torch.rand((n, 2, h, w), generator=g, dtype=torch.float64) * 2 - 1) * amp
    dn = d.clone()
    dn[:, 0] *= 2.0 / w
    dn[:, 1] *= 2.0 / h
    ours = digital._sample_reflect(u8, None, dn.float())
    for i in range(n):
        ref = _map_coordinates_reflect(u8[i].double().numpy(), d[i, 0].numpy(), d[i, 1].numpy())
        diff = np.abs(ours[i].int().numpy() - np.floor(np.clip(ref, 0, 255)).astype(int))
        assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (amp, diff.max())


def _elastic_package_reference(x: np.ndarray, disp: np.ndarray, alpha: float) -> np.ndarray:
    """The `imagenet` elastic with given draws in float64 (scipy): displacement U * 0.005 H,
    smoothed with sigma 0.01 H along y and 0.01 W along x ('reflect', truncate 3), times alpha."""
    from scipy.ndimage import correlate1d

    c, h, w = x.shape
    kh, kw = _ops.gaussian_kernel1d(h * 0.01, 3.0), _ops.gaussian_kernel1d(w * 0.01, 3.0)
    d = [correlate1d(correlate1d(disp[k] * h * 0.005, kh, axis=0, mode="reflect"), kw, axis=1, mode="reflect")
         * alpha for k in range(2)]
    return _map_coordinates_reflect(x / 255.0, d[0], d[1])


@pytest.mark.parametrize("shape", [(40, 40), (48, 30), (30, 52)])
def test_elastic_package_style_on_square_and_non_square_images(shape):
    pytest.importorskip("scipy")
    h, w = shape
    x = torch.nn.functional.interpolate(natural_images(2, 64, seed=24).float(), size=shape, mode="bilinear",
                                        align_corners=False).round().clamp(0, 255).to(torch.uint8)
    for s in (1, 3, 5):
        f = C.random_fields(x, "elastic_transform", s, seed=s, table="imagenet")
        ours = C.corrupt(x, "elastic_transform", s, table="imagenet", fields=f).int().numpy()
        alpha = params("imagenet", "elastic_transform", s)
        for i in range(2):
            ref = _elastic_package_reference(x[i].double().numpy(), f["displacement"][i].double().numpy(), alpha)
            ref = np.floor(np.clip(ref, 0, 1) * 255).astype(int)
            diff = np.abs(ours[i] - ref)
            assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (shape, s, diff.max(), np.mean(diff > 0))


def test_elastic_batch_invariance_across_sampling_chunks():
    """Big images are sampled in chunks on the CPU: an image's result does not depend on
    its batch or its place in a chunk."""
    n = 2 * max(1, digital.ELASTIC_CHUNK_PIXELS // (224 * 224)) + 1
    x = natural_images(n, 224, seed=25)
    idx = torch.arange(10, 10 + n)
    full = C.corrupt(x, "elastic_transform", 3, index=idx)
    for lo, hi in ((0, 1), (1, n), (n - 2, n)):
        assert torch.equal(C.corrupt(x[lo:hi], "elastic_transform", 3, index=idx[lo:hi]), full[lo:hi])


def test_elastic_beyond_one_fold_uses_repeated_reflection():
    """Displacements that may exceed the image size (bound >= size - 1) go through
    grid_sample's own repeated reflection and still match scipy."""
    pytest.importorskip("scipy")
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, 256, (1, 3, 12, 12), dtype=torch.uint8, generator=g)
    f = {"displacement": torch.rand((1, 2, 12, 12), generator=g) * 2 - 1}
    ctx = C._Ctx("imagenet", C.STYLE["imagenet"], (3, 12, 12), uint8=x)
    alpha = 400.0  # bound alpha * 0.06 = 24 px on a 12-px image
    y = digital.apply_elastic_transform(None, alpha, ctx, f)
    ref = _elastic_package_reference(x[0].double().numpy(), f["displacement"][0].double().numpy(), alpha)
    ours = y[0].clamp(0, 255).to(torch.int32).numpy() if y.dtype != torch.uint8 else y[0].int().numpy()
    diff = np.abs(ours - np.floor(np.clip(ref, 0, 1) * 255).astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.02


def test_jpeg_roundtrip_on_non_contiguous_and_gray_input():
    from dstlib.corruptions.digital import _pil_jpeg_roundtrip

    x = natural_images(3, 32, seed=26)
    cl = x.contiguous(memory_format=torch.channels_last)
    gray = natural_images(2, 24, seed=27, gray=True)
    for q in (25, 85):
        ref = _pil_jpeg_roundtrip(x, q)
        assert torch.equal(C.jpeg_roundtrip(x, q), ref)
        assert torch.equal(C.jpeg_roundtrip(cl, q), ref)
        assert torch.equal(C.jpeg_roundtrip(x[:, :, 4:28, 2:30], q), _pil_jpeg_roundtrip(x[:, :, 4:28, 2:30], q))
        assert torch.equal(C.jpeg_roundtrip(gray, q), _pil_jpeg_roundtrip(gray, q))
