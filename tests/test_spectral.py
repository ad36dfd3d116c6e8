"""Fourier attenuation: sinusoids survive or vanish, r = 0 is the identity, curves have the stated dims."""
from __future__ import annotations

import math

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


def test_high_frequency_energy_ranks_by_measurement(monkeypatch):
    import dstlib.corruptions as dc

    def corrupt(x, name, severity, *, seed, index):
        if name == "brighter":  # adds only the mean (DC)
            return (x.int() + 10 * severity).clamp(0, 255).to(torch.uint8)
        checker = ((torch.arange(x.shape[-2]).view(-1, 1) + torch.arange(x.shape[-1])) % 2) * 20 * severity
        return (x.int() + checker).clamp(0, 255).to(torch.uint8)  # "checker": the highest frequency

    monkeypatch.setattr(dc, "NAMES", ("checker", "brighter"), raising=False)
    monkeypatch.setattr(dc, "corrupt", corrupt, raising=False)
    images = torch.full((3, 1, 8, 8), 100, dtype=torch.uint8)
    e = spectral.high_frequency_energy(images, severities=(1, 2), batch_size=2)
    assert e.dims == ("corruption", "severity")
    assert float(e.sel(corruption="brighter").max()) < 1e-12
    # checkerboard of amplitude a/2 around its mean a/2: high-pass power (a/2)^2 per pixel
    a = 20 / 255
    assert float(e.sel(corruption="checker", severity=1)) == pytest.approx((a / 2) ** 2, rel=1e-5)
    assert spectral.rank_corruptions(e) == ["brighter", "checker"]
    with pytest.raises(ValueError, match="corruptions contains"):
        spectral.high_frequency_energy(images, ["fog"])
