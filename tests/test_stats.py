"""Seed-level comparisons: known differences, pairing, the image level, seeds needed."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from dstlib import stats


def _seeds(values, seeds=None):
    values = np.asarray(values, float)
    return xr.DataArray(values, dims=("seed",), coords={"seed": seeds or list(range(len(values)))})


def test_summary():
    s = stats.seed_summary(_seeds([1.0, 2.0, 3.0]))
    assert float(s["mean"]) == 2.0 and float(s["std"]) == 1.0 and int(s["n"]) == 3


def test_paired_verdicts():
    a = _seeds([0.80, 0.82, 0.81, 0.83])
    better = stats.compare(a + 0.02, a)  # identical seed effects: a constant difference
    assert str(better["verdict"].values) == "better"
    assert float(better["diff"]) == pytest.approx(0.02)
    assert str(stats.compare(a, a + 0.02)["verdict"].values) == "worse"
    assert better.attrs["paired"] == 1 and better.attrs["unit"] == "seed"
    noisy = stats.compare(_seeds([0.80, 0.84, 0.79, 0.85]), _seeds([0.82, 0.80, 0.83, 0.81]))
    assert str(noisy["verdict"].values) == "no detectable difference"
    assert float(noisy["lower"]) < 0 < float(noisy["upper"]) and float(noisy["mdd"]) > 0


def test_seed_is_the_unit_not_images():
    # 3 seeds x 2000 images; one method is 0.5 points better on one seed only: a seed effect,
    # which 6000 independent images would call certain but 3 seeds cannot
    rng = np.random.default_rng(0)
    p = np.array([0.800, 0.805, 0.810])
    a = xr.DataArray(rng.random((3, 2000)) < (p[:, None] + np.array([0.0, 0.0, 0.015])[:, None]),
                     dims=("seed", "image"), coords={"seed": [0, 1, 2]})
    b = xr.DataArray(rng.random((3, 2000)) < p[:, None], dims=("seed", "image"), coords={"seed": [0, 1, 2]})
    r = stats.compare(a, b)
    assert str(r["verdict"].values) == "no detectable difference"
    boot = stats.compare(a, b, method="bootstrap", n_boot=300)
    assert boot.attrs["method"] == "bootstrap" and float(boot["lower"]) < float(boot["upper"])


def test_unpaired_and_extra_dims():
    a = xr.DataArray([[0.9, 0.5], [0.92, 0.52], [0.91, 0.51]], dims=("seed", "sparsity"),
                     coords={"seed": [0, 1, 2], "sparsity": [0.1, 0.5]})
    b = xr.DataArray([[0.80, 0.5], [0.81, 0.53], [0.79, 0.49]], dims=("seed", "sparsity"),
                     coords={"seed": [3, 4, 5], "sparsity": [0.1, 0.5]})
    r = stats.compare(a, b)
    assert r.attrs["paired"] == 0 and r["verdict"].dims == ("sparsity",)
    assert list(r["verdict"].values) == ["better", "no detectable difference"]


def test_seeds_needed_consistent_with_mdd():
    n = stats.seeds_needed(0.5, 0.5)
    assert n > 2
    se = 0.5 / np.sqrt(n)
    assert stats._t_mdd(se, n - 1, 0.95, 0.8) <= 0.5 < stats._t_mdd(0.5 / np.sqrt(n - 1), n - 2, 0.95, 0.8)
    assert stats.seeds_needed(0.5, 0.5, paired=False) > n


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        stats.compare(_seeds([0.8]), _seeds([0.7]))
    with pytest.raises(ValueError, match="confidence"):
        stats.compare(_seeds([0.8, 0.9]), _seeds([0.7, 0.8]), confidence=95)
    with pytest.raises(ValueError, match="paired"):
        stats.compare(_seeds([0.8, 0.9]), _seeds([0.7, 0.8], seeds=[5, 6]), paired=True)
    with pytest.raises(ValueError, match="difference"):
        stats.seeds_needed(0.0, 1.0)
    with pytest.raises(ValueError, match="seed"):
        stats.compare(np.array([1, 2]), _seeds([0.7, 0.8]))


def test_bootstrap_calls_a_clear_paired_difference():
    # 4 seeds x 400 images; b is a wrongly answered on 40 fixed images of every seed
    rng = np.random.default_rng(1)
    a = xr.DataArray(rng.random((4, 400)) < 0.9, dims=("seed", "image"), coords={"seed": [0, 1, 2, 3]})
    b = a.copy(data=a.values.copy())
    b[:, :40] = False
    for method in ("t", "bootstrap"):
        r = stats.compare(a, b, method=method, n_boot=300)
        assert str(r["verdict"].values) == "better" and r.attrs["paired"] == 1
        assert float(r["diff"]) == pytest.approx(float(a.mean() - b.mean()))
        assert float(r["lower"]) <= float(r["diff"]) <= float(r["upper"])
    with pytest.raises(ValueError, match="image"):
        stats.compare(a.mean("image"), b.mean("image"), method="bootstrap")
