"""dstlib.corruptions: shapes, every corruption x severity on 1 and 3 channels,
per-image determinism, tables, grayscale behaviour and input validation."""
from __future__ import annotations

import pytest
import torch

from dstlib import corruptions as C
from dstlib.corruptions import tables
from _corruption_refs import natural_images

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
