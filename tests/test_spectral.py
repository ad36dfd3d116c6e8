"""Fourier attenuation: sinusoids survive or vanish, r = 0 is the identity, curves have the stated dims;
high-frequency power of corruptions (signed: noise adds, blur removes); Figure 18 on a real stored run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dstlib import spectral
from dstlib.data import DatasetInfo, ImageSet


def _sinusoid(k, size=32):
    x = torch.arange(size, dtype=torch.float64)
    return torch.cos(2 * math.pi * k * x / size).view(1, 1, 1, size).expand(2, 3, size, size).clone()


def test_identity_at_zero_and_monotone():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for band in spectral.BANDS:
        assert torch.allclose(spectral.attenuate(x, 0, band), x, atol=1e-6)
        kept = [int(spectral.keep_mask(16, 16, r, band).sum()) for r in range(0, 13)]
        assert all(a >= b for a, b in zip(kept, kept[1:])) and kept[0] == 256 and kept[-1] == 0


def test_sinusoid_survives_or_vanishes():
    x = _sinusoid(3)  # all energy at distance 3 from DC
    assert torch.allclose(spectral.attenuate(x, 3, "low"), x, atol=1e-9)   # removes d < 3 only
    assert spectral.attenuate(x, 4, "low").abs().max() < 1e-9
    R = spectral.max_radius(32, 32)
    assert R == pytest.approx(math.hypot(16, 16))
    assert torch.allclose(spectral.attenuate(x, R - 3, "high"), x, atol=1e-9)  # keeps d <= 3
    assert spectral.attenuate(x, R - 2.5, "high").abs().max() < 1e-9
    high = _sinusoid(12)
    assert torch.allclose(spectral.attenuate(high, 10, "high"), high, atol=1e-9)  # 12 <= R - 10 = 12.63
    assert spectral.attenuate(high, 11, "high").abs().max() < 1e-9                 # 12 > R - 11 = 11.63
    assert torch.allclose(spectral.attenuate(high, 11, "low"), high, atol=1e-9)


def test_bad_inputs():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="band"):
        spectral.attenuate(x, 1, "mid")
    with pytest.raises(ValueError, match="radius"):
        spectral.attenuate(x, -1, "low")
    with pytest.raises(ValueError, match="x is invalid"):
        spectral.attenuate(torch.zeros(8, 8), 1, "low")
    with pytest.raises(ValueError, match="x is invalid"):
        spectral.attenuate(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 1, "low")


class _MeanSign(nn.Module):
    """Class 1 if the image mean (after normalisation with mean 0.5) is positive."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        m = x.mean((1, 2, 3)) * self.w
        return torch.stack([-m, m], 1)


def test_radius_accuracy_dims_and_low_band_kills_the_mean():
    info = DatasetInfo("toy", 1, 2, 8, (0.5,), (0.5,), "cifar")
    g = torch.Generator().manual_seed(0)
    bright = torch.randint(180, 255, (6, 1, 8, 8), generator=g, dtype=torch.uint8)
    dark = torch.randint(0, 70, (6, 1, 8, 8), generator=g, dtype=torch.uint8)
    ds = ImageSet(info, torch.cat([bright, dark]), torch.tensor([1] * 6 + [0] * 6))
    r = spectral.radius_accuracy(_MeanSign(), ds, [0, 1, 2], batch_size=5, progress=False)
    assert r["accuracy"].dims == ("band", "radius") and r["correct"].dims == ("band", "radius", "image")
    assert float(r["accuracy"].sel(band="high", radius=0)) == 1.0
    assert float(r["accuracy"].sel(band="high", radius=2)) == 1.0  # the mean survives high attenuation
    assert float(r["accuracy"].sel(band="low", radius=1)) == 0.5   # without DC every image looks dark
    with pytest.raises(ValueError, match="n_test"):
        spectral.radius_accuracy(_MeanSign(), ds, [0], n_test=99, progress=False)


def test_rank_corruptions():
    import xarray as xr
    e = xr.DataArray([[3.0, 4.0], [0.1, 0.2], [1.0, 1.0]], dims=("corruption", "severity"),
                     coords={"corruption": ["noise", "fog", "blur"], "severity": [1, 2]})
    assert spectral.rank_corruptions(e) == ["fog", "blur", "noise"]


def _fake_generator(monkeypatch, corrupt):
    import dstlib.corruptions as dc

    def corrupt_as_saved(x, name, severity, *, seed, table, index, jpeg):
        return corrupt(x, name, severity)

    monkeypatch.setattr(dc, "NAMES", ("checker", "brighter", "wave"))
    monkeypatch.setattr(dc, "GRAY_NAMES", ("checker", "brighter", "wave"))
    monkeypatch.setattr(dc, "corrupt_as_saved", corrupt_as_saved)


def _wave(width, amplitude):
    """amplitude x cos(pi x / 2): the integers (a, 0, -a, 0, ...), all power at frequency width / 4."""
    return torch.tensor([amplitude, 0, -amplitude, 0]).repeat(width // 4)


def test_high_frequency_energy_ranks_by_measurement(monkeypatch):
    def corrupt(x, name, severity):
        if name == "brighter":  # adds only the mean (DC)
            return (x.int() + 10 * severity).clamp(0, 255).to(torch.uint8)
        if name == "wave":  # a low frequency (d = 2 of 8 px)
            return (x.int() + _wave(x.shape[-1], 10 * severity)).clamp(0, 255).to(torch.uint8)
        checker = ((torch.arange(x.shape[-2]).view(-1, 1) + torch.arange(x.shape[-1])) % 2) * 20 * severity
        return (x.int() + checker).clamp(0, 255).to(torch.uint8)  # "checker": the highest frequency

    _fake_generator(monkeypatch, corrupt)
    images = torch.full((3, 1, 8, 8), 100, dtype=torch.uint8)
    for measure in spectral.MEASURES:
        e = spectral.high_frequency_energy(images, severities=(1, 2), batch_size=2, measure=measure)
        assert e.dims == ("corruption", "severity") and e.attrs["measure"] == measure
        assert float(abs(e.sel(corruption=["brighter", "wave"])).max()) < 1e-15
        # checkerboard of amplitude a/2 around its mean a/2: high-pass power (a/2)^2 per pixel
        a = 20 / 255
        assert float(e.sel(corruption="checker", severity=1)) == pytest.approx((a / 2) ** 2, rel=1e-9)
        assert spectral.rank_corruptions(e)[-1] == "checker"
    with pytest.raises(ValueError, match="corruptions contains"):
        spectral.high_frequency_energy(images, ["fog"])
    with pytest.raises(ValueError, match="measure"):
        spectral.high_frequency_energy(images, measure="energy")
    with pytest.raises(ValueError, match="radius"):
        spectral.high_frequency_energy(images, radius=-1)


def test_radius_convention_and_normalisation(monkeypatch):
    # a wave at horizontal frequency 8 of 32 px (d = 8) added to images that vary only down the rows
    # (no power of their own at (0, +-8), so no cross term): counted beyond r < 8, not at r = 8
    _fake_generator(monkeypatch, lambda x, name, s: (x.int() + _wave(32, 30)).to(torch.uint8))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(40, 200, (5, 3, 32, 1), generator=g, dtype=torch.uint8).expand(5, 3, 32, 32).contiguous()
    power = 30 ** 2 / 2 / 255 ** 2  # mean square of the wave on the [0, 1] scale
    above = spectral.high_frequency_energy(images, ["wave"], (1,), radius=7.9)
    assert above.item() == pytest.approx(power, rel=1e-9)
    at = spectral.high_frequency_energy(images, ["wave"], (1,), radius=8)
    assert abs(at.item()) < 1e-15
    default = spectral.high_frequency_energy(images, ["wave"], (1,))
    assert default.attrs["radius"] == pytest.approx(math.hypot(16, 16) / 2) and abs(default.item()) < 1e-15


def test_noise_adds_and_blur_removes_on_real_images():
    from dstlib import data
    import dstlib.corruptions as dc
    images = data.load("fashion_mnist", "test").images[:32]
    names = ["gaussian_noise", "gaussian_blur", "defocus_blur"]
    change = spectral.high_frequency_energy(images, names, (1, 3, 5))
    assert (change.sel(corruption="gaussian_noise") > 0).all()
    assert (change.sel(corruption=["gaussian_blur", "defocus_blur"]) < 0).all()
    assert spectral.rank_corruptions(change)[-1] == "gaussian_noise"
    # the older measure, the power of x_c - x, is positive for both: it cannot tell adding from removing
    diff = spectral.high_frequency_energy(images, names, (1, 3, 5), measure="difference")
    assert (diff > 0).all()
    # by hand: the high-pass part is x minus the attenuation that keeps d <= r
    h, w = images.shape[-2:]
    R, r = spectral.max_radius(h, w), spectral.max_radius(h, w) / 2
    xc = dc.corrupt_as_saved(images, "gaussian_blur", 3, seed=0, index=torch.arange(32))

    def power(x):
        x = x.double() / 255
        return ((x - spectral.attenuate(x, R - r, "high")) ** 2).mean((1, 2, 3))

    assert float(change.sel(corruption="gaussian_blur", severity=3)) == pytest.approx(
        float((power(xc) - power(images)).mean()), rel=1e-9)
    assert spectral.high_frequency_energy(images, ["saturate"], (1,)).size == 1
    assert "saturate" not in spectral.high_frequency_energy(images[:2], severities=(1,))["corruption"].values


def test_snapshot_radius_accuracy_curve_on_a_real_run(tmp_path):
    from dstlib import data, evaluate
    from dstlib.config import RunSpec
    from dstlib.store import Store

    spec = RunSpec(model="mlp", widths=(32,), epochs=2, batch_size=64, train_subset=512, lr=0.05, snapshots=(1, 2))
    run = Store(tmp_path).run(spec, progress=False)
    ds = data.load("fashion_mnist", "test")
    radii = [0, 4, 12]
    curve = spectral.radius_accuracy_during_training(run, ds, radii, n_test=200, batch_size=128, progress=False)
    assert curve["accuracy"].dims == ("epoch", "band", "radius") and curve["epoch"].values.tolist() == [1, 2]
    assert curve["correct"].dims == ("epoch", "band", "radius", "image")
    for epoch in (1, 2):
        model, masks = run.snapshot(epoch)
        clean = evaluate.accuracy(model, ds, n_test=200, progress=False)["correct"].values
        for band in spectral.BANDS:  # radius 0 removes nothing: the clean correctness of that snapshot
            np.testing.assert_array_equal(curve["correct"].sel(epoch=epoch, band=band, radius=0).values, clean)
    # the last snapshot is the final model; the first one is a different model
    final = spectral.radius_accuracy(run, ds, radii, n_test=200, progress=False)
    np.testing.assert_array_equal(final["correct"].values, curve["correct"].sel(epoch=2).values)
    assert (curve["correct"].sel(epoch=1) != curve["correct"].sel(epoch=2)).any()
    # removing the low frequencies up to r = 12 (nearly everything of a 28-px image) costs accuracy
    assert float(curve["accuracy"].sel(epoch=2, band="low", radius=12)) < float(
        curve["accuracy"].sel(epoch=2, band="low", radius=0))
    with pytest.raises(ValueError, match="epochs"):
        spectral.radius_accuracy_during_training(run, ds, radii, epochs=[3], progress=False)
