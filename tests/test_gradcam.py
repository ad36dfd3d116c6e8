"""Grad-CAM on a model whose answer depends on one image region."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dstlib import gradcam, stats


class _TopLeft(nn.Module):
    """Identity conv features; the answer is the mean activation (class 1 when something is bright)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(1, 2, 3, padding=1)
        with torch.no_grad():
            self.features.weight.zero_()
            self.features.weight[:, 0, 1, 1] = 1.0
            self.features.bias.zero_()

    def forward(self, x):
        s = torch.relu(self.features(x)).mean((2, 3))
        return torch.stack([-s.sum(1), s.sum(1)], 1)


def test_cam_marks_the_region_the_answer_depends_on():
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    corners = [(0, 0), (5, 5), (2, 4), (4, 1)]
    for i, (r, c) in enumerate(corners):
        images[i, 0, r:r + 3, c:c + 3] = 255  # the only region the answer depends on
    maps = gradcam.cams(_TopLeft(), images, batch_size=3)
    assert maps.dims == ("image", "y", "x") and maps.shape == (4, 8, 8)
    assert maps.attrs["layer"] == "features" and list(maps["prediction"].values) == [1] * 4
    for i, (r, c) in enumerate(corners):
        region = torch.zeros(8, 8, dtype=torch.bool)
        region[r:r + 3, c:c + 3] = True
        m = torch.from_numpy(maps.values[i])
        assert (m[region] > 0).all() and (m[~region] == 0).all()
    area = gradcam.attention_area(maps)
    assert area.dims == ("image",) and (abs(area - 9 / 64) < 1e-9).all()


def test_attention_area_by_hand_and_side_by_side():
    import xarray as xr
    m = xr.DataArray(torch.zeros(2, 4, 4).numpy(), dims=("image", "y", "x"))
    m[0, 0, :] = 1.0
    m[0, 1, 0] = 0.6
    a = gradcam.attention_area(m)
    assert float(a[0]) == pytest.approx(5 / 16) and bool(a[1].isnull())
    images = torch.randint(0, 255, (3, 1, 8, 8), dtype=torch.uint8)
    both = gradcam.side_by_side({"dense": _TopLeft(), "sparse": _TopLeft()}, images)
    assert both.dims == ("model", "image", "y", "x") and list(both["model"].values) == ["dense", "sparse"]
    # areas per (seed, image) feed the seed-level comparison
    areas = gradcam.attention_area(both).rename(model="seed").assign_coords(seed=[0, 1])
    r = stats.compare(areas, areas)
    assert str(r["verdict"].values) == "no detectable difference"


def test_bad_inputs():
    with pytest.raises(ValueError, match="images"):
        gradcam.cams(_TopLeft(), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="layer"):
        gradcam.cams(_TopLeft(), torch.zeros(1, 1, 8, 8, dtype=torch.uint8), layer="nope")
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        gradcam.last_conv(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="threshold"):
        import xarray as xr
        gradcam.attention_area(xr.DataArray(torch.ones(1, 2, 2).numpy(), dims=("image", "y", "x")), 0)


def test_targets_are_used():
    # for class 0 the answer falls as the region brightens: negative weights, all-zero map after the ReLU
    images = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    images[:, 0, 2:5, 2:5] = 255
    maps = gradcam.cams(_TopLeft(), images, targets=torch.tensor([0, 1]))
    assert float(maps[0].max()) == 0.0 and float(maps[1].max()) > 0
    area = gradcam.attention_area(maps)
    assert bool(area[0].isnull()) and float(area[1]) == pytest.approx(9 / 64)
    with pytest.raises(ValueError, match="targets"):
        gradcam.cams(_TopLeft(), images, targets=torch.tensor([0]))


def test_mode_is_restored():
    model = _TopLeft().train()
    gradcam.cams(model, torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    assert model.training
    with pytest.raises(ValueError, match="batch_size"):
        gradcam.cams(model, torch.zeros(1, 1, 8, 8, dtype=torch.uint8), batch_size=0)
