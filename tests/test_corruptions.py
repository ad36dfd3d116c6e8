"""dstlib.corruptions: shapes, every corruption x severity on 1 and 3 channels,
per-image determinism, tables, grayscale behaviour and input validation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dstlib import corruptions as C
from dstlib.corruptions import tables
from _corruption_refs import lowbias32, natural_images

RGB32 = natural_images(6, 32, seed=1)
GRAY28 = natural_images(6, 28, seed=2, gray=True)


def test_names_order_and_sets():
    assert len(C.NAMES) == 19 and C.NAMES[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert C.NAMES[14] == "jpeg_compression" and C.NAMES[15:] == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert set(C.STOCHASTIC) | set(C.DETERMINISTIC) == set(C.NAMES)
    assert "saturate" not in C.GRAY_NAMES and len(C.GRAY_NAMES) == 18


@pytest.mark.parametrize("name", C.NAMES)
def test_every_severity_on_rgb_and_gray(name):
    for x in (RGB32, GRAY28):
        prev = None
        for s in range(1, 6):
            y = C.corrupt(x, name, s, seed=3)
            assert y.dtype == torch.uint8 and y.shape == x.shape
            change = (y.float() - x.float()).abs().mean().item()
            if not (name == "saturate" and x.shape[1] == 1):
                assert change > 0.05, (name, s, x.shape)
            prev = y
        assert prev is not None


@pytest.mark.parametrize("name", C.NAMES)
def test_same_image_same_corruption_in_any_batch(name):
    x = RGB32
    full = C.corrupt(x, name, 4, seed=7)
    idx = torch.tensor([4, 1])
    part = C.corrupt(x[idx], name, 4, seed=7, index=idx)
    assert torch.equal(part, full[idx])
    single = C.corrupt(x[3:4], name, 4, seed=7, index=torch.tensor([3]))
    assert torch.equal(single, full[3:4])
    if name in C.STOCHASTIC:
        assert not torch.equal(C.corrupt(x, name, 4, seed=8), full)
        assert torch.equal(C.corrupt(x, name, 4, seed=7, fields=C.random_fields(x, name, 4, seed=7)), full)


@pytest.mark.parametrize("name", C.NAMES)
def test_any_memory_layout_in_nchw_out(name):
    x = RGB32.contiguous(memory_format=torch.channels_last)
    y = C.corrupt(x, name, 3, seed=2)
    # contiguous NCHW, except the JPEG codec's interleaved RGB (channels_last memory)
    layout = torch.channels_last if name == "jpeg_compression" else torch.contiguous_format
    assert y.is_contiguous(memory_format=layout) and torch.equal(y, C.corrupt(RGB32.contiguous(), name, 3, seed=2))


@pytest.mark.parametrize("name", C.NAMES)
def test_cpu_chunks_change_no_value(name, monkeypatch):
    whole = C.corrupt(RGB32, name, 2, seed=3)
    fields = C.random_fields(RGB32, name, 2, seed=3)
    monkeypatch.setattr(C, "CPU_CHUNK_PIXELS", 2 * 32 * 32)  # chunks of two images
    assert torch.equal(C.corrupt(RGB32, name, 2, seed=3), whole)
    assert torch.equal(C.corrupt(RGB32, name, 2, seed=3, fields=fields), whole)


def test_batch_invariance_with_sequential_glass_blur_and_big_images():
    x = natural_images(3, 64, seed=4)
    for name in ("glass_blur", "spatter", "defocus_blur", "snow"):
        full = C.corrupt(x, name, 5, seed=1)  # tiny table; glass max_delta 2 (sequential loop)
        assert torch.equal(C.corrupt(x[2:], name, 5, seed=1, index=torch.tensor([2])), full[2:])


def test_gray_counterparts():
    g = GRAY28
    rgb = g.expand(-1, 3, -1, -1).contiguous()
    for s in (1, 2, 3):  # a gray pixel has no saturation: saturate does nothing
        assert torch.equal(C.corrupt(g, "saturate", s), g)
    for name in ("gaussian_blur", "defocus_blur", "zoom_blur", "contrast", "brightness", "pixelate"):
        assert torch.equal(C.corrupt(g, name, 3), C.corrupt(rgb, name, 3)[:, :1]), name


def test_tables_and_defaults():
    assert tables.default_table(28, 28) == "cifar" and tables.default_table(32, 32) == "cifar"
    assert tables.default_table(64, 64) == "tiny" and tables.default_table(224, 224) == "imagenet"
    from dstlib.corruptions.blur import zoom_factors

    assert [len(zoom_factors(p)) for p in tables.CIFAR["zoom_blur"]] == [7, 12, 16, 21, 26]
    # the table changes the result
    assert not torch.equal(C.corrupt(RGB32, "contrast", 1, table="cifar"), C.corrupt(RGB32, "contrast", 1, table="imagenet"))


def test_saved_jpeg_step():
    x64 = natural_images(2, 64)
    y = C.corrupt(x64, "contrast", 2)
    assert torch.equal(C.corrupt_as_saved(x64, "contrast", 2, jpeg=False), y)
    saved = C.corrupt_as_saved(x64, "contrast", 2)
    assert torch.equal(saved, C.jpeg_roundtrip(y, 85)) and not torch.equal(saved, y)
    assert torch.equal(C.corrupt_as_saved(RGB32, "contrast", 2), C.corrupt(RGB32, "contrast", 2))


def test_seed_hash_is_per_image():
    a = C.image_seeds(0, "snow", 3, [0, 1, 2])
    assert len(set(a)) == 3 and a == C.image_seeds(0, "snow", 3, [0, 1, 2])
    assert a[1] == C.image_seeds(0, "snow", 3, [1])[0] and a != C.image_seeds(1, "snow", 3, [0, 1, 2])


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="blurr"), "name='blurr' is invalid; allowed: gaussian_noise"),
    (dict(severity=0), "severity=0 is invalid; allowed: 1, 2, 3, 4, 5"),
    (dict(severity=6), "severity=6"),
    (dict(severity=2.0), "severity=2.0"),
    (dict(severity=True), "severity=True"),
    (dict(table="cifar10"), "table='cifar10' is invalid"),
    (dict(x=RGB32.float()), "x.dtype=torch.float32 is invalid"),
    (dict(x=RGB32[:, :2]), r"x.shape=\(6, 2, 32, 32\) is invalid"),
    (dict(x=RGB32[0]), r"x.shape=\(3, 32, 32\) is invalid"),
    (dict(x=RGB32.numpy()), "x=ndarray is invalid"),
    (dict(index=torch.arange(5)), r"index=\(5,\)"),
    (dict(index=torch.zeros(6)), "index="),
])
def test_clear_errors(kwargs, match):
    args = dict(x=RGB32, name="fog", severity=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        C.corrupt(args.pop("x"), args.pop("name"), args.pop("severity"), **args)


# ------------------------------------------------------------------ the counter-based draws
def test_draw_bits_equal_the_python_int_hash():
    """The int32 tensor hash (wrapping multiplies) is the exact 32-bit lowbias32 of
    a + j * b: the same integers on any device."""
    from dstlib.corruptions import _rng

    seeds = C.image_seeds(3, "fog", 2, [0, 7, 123456])
    got = _rng.bits(seeds, 2, (5, 7)).reshape(3, -1).tolist()
    a, b = _rng.keys(seeds, 2)
    for i in range(3):
        want = [_rng.lowbias32_int(int(a[i]) + j * int(b[i])) for j in range(35)]
        assert [v & 0xFFFFFFFF for v in got[i]] == want

    vals = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1] + np.random.default_rng(0).integers(0, 2 ** 32, 200).tolist()
    t = torch.tensor([v - 2 ** 32 if v >= 2 ** 31 else v for v in vals], dtype=torch.int32)
    assert [v & 0xFFFFFFFF for v in _rng.lowbias32_(t.clone()).tolist()] == [lowbias32(v) for v in vals]


def test_uniforms_and_normals_are_well_distributed_and_independent():
    from dstlib.corruptions import _rng

    seeds = C.image_seeds(0, "x", 1, range(4))
    u = _rng.uniform(seeds, 0, (100_000,), dtype=torch.float64)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    c = lambda p, q: torch.corrcoef(torch.stack([p, q]))[0, 1].abs().item()  # noqa: E731
    assert c(u[0, :-1], u[0, 1:]) < 0.02 and c(u[0], u[1]) < 0.02  # lag 1, neighbouring images
    assert c(u[0], _rng.uniform(seeds, 1, (100_000,), dtype=torch.float64)[0]) < 0.02  # another stream
    z = _rng.normal(seeds, 0, (3, 100, 100)).reshape(-1).double()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(((z - z.mean()) ** 4).mean() / z.var() ** 2 - 3) < 0.1  # Gaussian kurtosis
    assert 0.31 < (z.abs() > 1).double().mean() < 0.325  # P(|z| > 1) = 0.3173
    k = _rng.integers(seeds, 0, (60_000,), 6).long()
    assert torch.equal(torch.unique(k), torch.arange(6))
    assert (torch.bincount(k.reshape(-1), minlength=6).double() / k.numel() - 1 / 6).abs().max() < 0.005


@pytest.mark.parametrize("rate", [12 / 255, 500 / 255])
def test_poisson_inversion_matches_the_exact_distribution(rate):
    from scipy.stats import poisson

    from dstlib.corruptions import _rng

    for v in (0, 1, 37, 255):
        lam = v * rate
        k = _rng.poisson(torch.full((2, 1, 200, 200), v, dtype=torch.uint8), rate, [11, 12], 0).reshape(-1)
        assert torch.equal(k, k.round()) and k.min() >= 0
        if lam == 0:
            assert k.max() == 0
            continue
        m = k.numel()
        assert abs(k.double().mean().item() - lam) < 5 * (lam / m) ** 0.5
        assert abs(k.double().var().item() / lam - 1) < 0.03
        # chi-square over the bins with an expected count >= 20
        counts = torch.bincount(k.long()).double().numpy()
        ks = np.arange(len(counts))
        exp = poisson.pmf(ks, lam) * m
        keep = exp >= 20
        chi2 = (((counts[keep] - exp[keep]) ** 2) / exp[keep]).sum()
        assert chi2 < keep.sum() + 6 * (2 * keep.sum()) ** 0.5, (v, chi2, keep.sum())


def test_jpeg_roundtrip_is_bit_identical_to_pil():
    from dstlib.corruptions.digital import _pil_jpeg_roundtrip

    for x in (RGB32, GRAY28, natural_images(2, 64, seed=9), natural_images(2, 37, seed=9)):
        for q in (7, 58, 85):
            assert torch.equal(C.jpeg_roundtrip(x, q), _pil_jpeg_roundtrip(x, q)), (x.shape, q)


def test_pixelate_batched_port_equals_pillow():
    """The batched box-filter port (GPU path) and the CPU path (Pillow) give the same pixels."""
    from dstlib.corruptions.digital import _pil_pixelate, pil_box_resize, pil_nearest_index

    for x in (RGB32, GRAY28, natural_images(2, 224, seed=5)):
        h, w = x.shape[-2:]
        for c in (0.95, 0.6, 0.25):
            oh, ow = int(h * c), int(w * c)
            y = pil_box_resize(x, oh, ow).to(torch.uint8)
            y = y.index_select(-1, pil_nearest_index(ow, w)).index_select(-2, pil_nearest_index(oh, h))
            assert torch.equal(y, _pil_pixelate(x, oh, ow)), (x.shape, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", C.NAMES)
def test_cpu_and_cuda_agree_within_one_level(name):
    """The same draws on both devices (integer hashing); only floating point differs.
    Threshold steps (Canny edges, hysteresis) may flip a rare pixel, hence 99.9%."""
    for x in (RGB32, natural_images(4, 64, seed=5), natural_images(2, 224, seed=6)):
        for s in range(1, 6):
            a = C.corrupt(x, name, s, seed=3).int()
            b = C.corrupt(x.cuda(), name, s, seed=3).cpu().int()
            close = ((a - b).abs() <= 1).float().mean().item()
            assert close >= 0.999, (name, s, tuple(x.shape), close)
