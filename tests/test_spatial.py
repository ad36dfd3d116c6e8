"""Per-kernel counts and concentration numbers on hand-built conv layers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dstlib import spatial


def _layer():
    conv = nn.Conv2d(3, 4, 3, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[0] = 0.0          # output channel 0: all kernels empty
        conv.weight[:, 2] = 0.0       # input channel 2: all kernels empty
        conv.weight[1, 0, 0, :] = 0.0  # kernel (1, 0): 6 non-zeros
        conv.weight[2, 1] *= -2.0      # kernel (2, 1): magnitudes 2
    return conv


def test_kernel_counts_and_sums():
    k = spatial.kernels(_layer())
    assert k["nonzero"].dims == ("out_channel", "in_channel") and k["nonzero"].shape == (4, 3)
    expected = np.array([[0, 0, 0], [6, 9, 0], [9, 9, 0], [9, 9, 0]])
    np.testing.assert_array_equal(k["nonzero"].values, expected)
    assert float(k["abs_sum"][2, 1]) == 18.0 and float(k["abs_sum"][1, 0]) == 6.0


def test_mask_is_applied():
    conv = _layer()
    mask = torch.ones_like(conv.weight, dtype=torch.bool)
    mask[3] = False
    k = spatial.kernels(conv, mask=mask)
    assert int(k["nonzero"][3].sum()) == 0


def test_summary_numbers():
    model = nn.Sequential(_layer(), nn.ReLU(), nn.Conv2d(4, 2, 1))
    s = spatial.summary(model)
    assert list(s["layer"].values) == ["0", "2"]
    first = s.sel(layer="0")
    assert float(first["empty_fraction"]) == pytest.approx(6 / 12)
    assert float(first["empty_out"]) == pytest.approx(1 / 4) and float(first["empty_in"]) == pytest.approx(1 / 3)
    density = (6 + 9 * 5) / (12 * 9)
    assert float(first["density"]) == pytest.approx(density)
    assert float(first["empty_fraction_random"]) == pytest.approx((1 - density) ** 9)
    assert float(first["gini_out"]) > 0.2 and float(first["gini_in"]) > 0.2


def test_gini():
    assert spatial.gini([1, 1, 1, 1]) == pytest.approx(0.0)
    assert spatial.gini([0, 0, 0, 5]) == pytest.approx(0.75)
    assert spatial.gini([0, 0]) == 0.0
    with pytest.raises(ValueError, match="values"):
        spatial.gini([-1, 2])


def test_bad_inputs():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="layer='2'"):
        spatial.kernels(model, "2")
    with pytest.raises(ValueError, match="mask"):
        spatial.kernels(model, "0", mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="model_or_layer"):
        spatial.kernels(nn.Linear(2, 2).weight)


def test_summary_applies_masks_by_parameter_name():
    model = nn.Sequential(_layer(), nn.ReLU(), nn.Conv2d(4, 2, 1))
    mask = torch.ones(4, 3, 3, 3, dtype=torch.bool)
    mask[3] = False  # a second output channel emptied
    s = spatial.summary(model, layers=["0"], masks={"0.weight": mask})
    assert list(s["layer"].values) == ["0"] and float(s["empty_out"].sel(layer="0")) == pytest.approx(2 / 4)
    assert float(s["empty_fraction"].sel(layer="0")) == pytest.approx(8 / 12)
    with pytest.raises(ValueError, match="layer='1'"):
        spatial.summary(model, layers=["1"])
