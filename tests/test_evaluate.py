"""Robustness evaluation: exact accuracies on a toy problem, caching, mCE and relative gain.

`dstlib.corruptions` is replaced here by two transparent corruptions whose
effect on the toy model is known exactly; a last test runs the real
generator when it is importable.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import dstlib.corruptions as dc
from dstlib import evaluate
from dstlib.data import DatasetInfo, ImageSet

INFO = DatasetInfo("toy", 1, 2, 8, (0.5,), (0.5,), "tiny")


class MeanSign(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        m = x.mean((1, 2, 3)) * self.w
        return torch.stack([-m, m], 1)


def _toy():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randint(170, 255, (5, 1, 8, 8), generator=g, dtype=torch.uint8),
                   torch.randint(0, 80, (5, 1, 8, 8), generator=g, dtype=torch.uint8)])
    return ImageSet(INFO, x, torch.tensor([1] * 5 + [0] * 5))


@pytest.fixture
def fake_corruptions(monkeypatch):
    calls = []

    def corrupt(x, name, severity, *, seed, index):
        calls.append((name, severity, seed, index.tolist()))
        if name == "invert":
            return 255 - x
        return x.clone()  # "identity"

    monkeypatch.setattr(dc, "NAMES", ("invert", "identity"), raising=False)
    monkeypatch.setattr(dc, "COMMON", ("invert", "identity"), raising=False)
    monkeypatch.setattr(dc, "corrupt", corrupt, raising=False)
    return calls


def test_exact_accuracies_and_dims(fake_corruptions):
    r = evaluate.robustness(MeanSign(), _toy(), severities=(1, 3), batch_size=4, progress=False)
    assert r["correct"].dims == ("corruption", "severity", "image") and r["correct"].shape == (2, 2, 10)
    assert r["accuracy"].sel(corruption="invert").values.tolist() == [0.0, 0.0]
    assert r["accuracy"].sel(corruption="identity").values.tolist() == [1.0, 1.0]
    assert float(r["clean_accuracy"]) == 1.0 and float(r["robustness_accuracy"]) == 0.5
    # image indices passed to the generator are the test-set positions, batch by batch
    assert fake_corruptions[0] == ("invert", 1, 0, [0, 1, 2, 3]) and fake_corruptions[-1] == ("identity", 3, 0, [8, 9])
    assert list(r["corruption"].values) == ["invert", "identity"]  # the "tiny" table's default set


class FakeRun:
    def __init__(self, path):
        self.path, self.id, self.loads = path, "abc123", 0

    def model(self):
        self.loads += 1
        return MeanSign()


def test_run_results_are_cached(fake_corruptions, tmp_path):
    run = FakeRun(tmp_path / "run")
    first = evaluate.robustness(run, _toy(), severities=(2,), n_test=6, progress=False)
    n_calls = len(fake_corruptions)
    files = list((tmp_path / "run" / "eval").glob("*.nc"))
    assert len(files) == 1 and n_calls > 0
    again = evaluate.robustness(run, _toy(), severities=(2,), n_test=6, progress=False)
    assert len(fake_corruptions) == n_calls  # nothing evaluated again
    xr.testing.assert_equal(first, again)
    other = evaluate.robustness(run, _toy(), severities=(2,), n_test=6, seed=1, progress=False)
    assert len(list((tmp_path / "run" / "eval").glob("*.nc"))) == 2 and other.attrs["key"] != first.attrs["key"]


def test_plain_model_cached_only_with_a_folder(fake_corruptions, tmp_path):
    evaluate.robustness(MeanSign(), _toy(), severities=(1,), progress=False)
    assert not any(tmp_path.iterdir())
    evaluate.robustness(MeanSign(), _toy(), severities=(1,), cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.nc"))) == 1


def test_benchmark_source(fake_corruptions):
    ds = _toy()
    r = evaluate.robustness(MeanSign(), ds, corruptions=["identity"], severities=(1,),
                            benchmark=lambda c, s: 255 - ds.images, benchmark_name="toy-c", progress=False)
    assert float(r["robustness_accuracy"]) == 0.0 and not fake_corruptions


def test_bad_inputs(fake_corruptions):
    ds = _toy()
    with pytest.raises(ValueError, match="corruptions contains 'fog'"):
        evaluate.robustness(MeanSign(), ds, corruptions=["fog"], progress=False)
    with pytest.raises(ValueError, match="severities"):
        evaluate.robustness(MeanSign(), ds, severities=(0,), progress=False)
    with pytest.raises(ValueError, match="n_test"):
        evaluate.robustness(MeanSign(), ds, n_test=11, progress=False)
    with pytest.raises(ValueError, match="model"):
        evaluate.robustness("resnet", ds, progress=False)
    with pytest.raises(ValueError, match="benchmark_name"):
        evaluate.robustness(MeanSign(), ds, benchmark=lambda c, s: ds.images, progress=False)
    assert not fake_corruptions


def _result(acc, clean):
    acc = np.asarray(acc, float)
    return xr.Dataset({"accuracy": (("corruption", "severity"), acc), "clean_accuracy": clean,
                       "robustness_accuracy": acc.mean()},
                      coords={"corruption": ["a", "b"][:acc.shape[0]], "severity": [1, 2][:acc.shape[1]]})


def test_mce_and_relative_gain_by_hand():
    dense = _result([[0.8, 0.6], [0.5, 0.5]], 0.9)
    sparse = _result([[0.9, 0.7], [0.5, 0.6]], 0.9)
    ce = evaluate.corruption_error({"dense": dense, "sparse": sparse}, "dense")
    assert ce["ce"].dims == ("model", "corruption")
    assert float(ce["mce"].sel(model="dense")) == pytest.approx(1.0)
    assert float(ce["ce"].sel(model="sparse", corruption="a")) == pytest.approx(0.4 / 0.6)
    assert float(ce["relative_ce"].sel(model="sparse", corruption="b")) == pytest.approx(((0.5 - 0.1) + (0.4 - 0.1)) / ((0.5 - 0.1) + (0.5 - 0.1)))
    g = evaluate.relative_gain(sparse, dense)
    assert float(g["gain"].sel(corruption="a", severity=2)) == pytest.approx(0.1 / 0.6)
    assert float(g["robustness_gain"]) == pytest.approx((0.675 - 0.6) / 0.6)
    with pytest.raises(ValueError, match="baseline"):
        evaluate.corruption_error({"dense": dense}, "static")


def test_accuracy_with_class_restriction():
    ds = _toy()
    full = evaluate.accuracy(MeanSign(), ds, progress=False)
    assert float(full["accuracy"]) == 1.0
    only0 = evaluate.accuracy(MeanSign(), ds, classes=[0], progress=False)
    assert float(only0["accuracy"]) == 0.5


def test_real_generator_is_used_when_present():
    import importlib
    real = importlib.reload(dc)
    if not hasattr(real, "corrupt"):
        pytest.skip("dstlib.corruptions.corrupt is not available yet")
    info = DatasetInfo("toy3", 3, 2, 32, (0.5,) * 3, (0.5,) * 3, "cifar")
    g = torch.Generator().manual_seed(1)
    ds = ImageSet(info, torch.randint(0, 255, (4, 3, 32, 32), generator=g, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    r = evaluate.robustness(model, ds, corruptions=["gaussian_noise"], severities=(5,), batch_size=3, progress=False)
    xc = real.corrupt(ds.images, "gaussian_noise", 5, seed=0, index=torch.arange(4))
    from dstlib.data import normalize
    with torch.no_grad():
        expected = (model(normalize(xc, info)).argmax(1) == ds.labels).numpy()
    np.testing.assert_array_equal(r["correct"].sel(corruption="gaussian_noise", severity=5).values, expected)
    assert r.sizes["corruption"] == 1
