"""Robustness evaluation: exact accuracies on a toy problem, the cache key, mCE and relative gain,
the real generator (as saved: JPEG for the tiny/imagenet tables), and two tiny real runs from the store.

In the toy tests `dstlib.corruptions` is replaced by two transparent corruptions whose
effect on the toy model is known exactly.
"""
from __future__ import annotations

import warnings

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

    def corrupt_as_saved(x, name, severity, *, seed, table, index, jpeg):
        calls.append((name, severity, seed, index.tolist(), table, jpeg))
        if name == "invert":
            return 255 - x
        return x.clone()  # "identity"

    for attr in ("NAMES", "COMMON", "GRAY_NAMES"):
        monkeypatch.setattr(dc, attr, ("invert", "identity"))
    monkeypatch.setattr(dc, "corrupt_as_saved", corrupt_as_saved)
    monkeypatch.delattr(dc, "VERSION", raising=False)
    return calls


def test_exact_accuracies_and_dims(fake_corruptions):
    r = evaluate.robustness(MeanSign(), _toy(), severities=(1, 3), batch_size=4, progress=False)
    assert r["correct"].dims == ("corruption", "severity", "image") and r["correct"].shape == (2, 2, 10)
    assert r["accuracy"].sel(corruption="invert").values.tolist() == [0.0, 0.0]
    assert r["accuracy"].sel(corruption="identity").values.tolist() == [1.0, 1.0]
    assert float(r["clean_accuracy"]) == 1.0 and float(r["robustness_accuracy"]) == 0.5
    # image indices passed to the generator are the test-set positions, batch by batch
    assert fake_corruptions[0] == ("invert", 1, 0, [0, 1, 2, 3], "tiny", None)
    assert fake_corruptions[-1] == ("identity", 3, 0, [8, 9], "tiny", None)
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


def test_relative_ce_is_undefined_where_the_baseline_loses_nothing():
    dense = _result([[0.9, 0.9], [0.5, 0.5]], 0.9)  # corruption a costs the baseline nothing
    sparse = _result([[0.8, 0.9], [0.6, 0.5]], 0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce = evaluate.corruption_error({"dense": dense, "sparse": sparse}, "dense")
    assert np.isnan(float(ce["relative_ce"].sel(model="sparse", corruption="a")))
    b = float(ce["relative_ce"].sel(model="sparse", corruption="b"))
    assert b == pytest.approx((0.3 + 0.4) / (0.4 + 0.4))
    assert float(ce["relative_mce"].sel(model="sparse")) == pytest.approx(b)  # the mean leaves a out


def test_accuracy_with_class_restriction():
    ds = _toy()
    full = evaluate.accuracy(MeanSign(), ds, progress=False)
    assert float(full["accuracy"]) == 1.0
    only0 = evaluate.accuracy(MeanSign(), ds, classes=[0], progress=False)
    assert float(only0["accuracy"]) == 0.5




def test_accuracy_on_a_prefix_not_a_multiple_of_the_batch():
    ds = _toy()
    r = evaluate.accuracy(MeanSign(), ds, n_test=7, batch_size=4, progress=False)
    assert r.sizes["image"] == 7 and float(r["accuracy"]) == 1.0
    with pytest.raises(ValueError, match="n_test"):
        evaluate.accuracy(MeanSign(), ds, n_test=True, progress=False)
    with pytest.raises(ValueError, match="model"):
        evaluate.accuracy("resnet", ds, progress=False)


def test_more_bad_inputs(fake_corruptions):
    ds = _toy()
    with pytest.raises(ValueError, match="table='small'"):
        evaluate.robustness(MeanSign(), ds, table="small", progress=False)
    with pytest.raises(ValueError, match="jpeg='yes'"):
        evaluate.robustness(MeanSign(), ds, jpeg="yes", progress=False)
    with pytest.raises(ValueError, match="repeats"):
        evaluate.robustness(MeanSign(), ds, corruptions=["invert", "invert"], progress=False)
    with pytest.raises(ValueError, match="severities"):
        evaluate.robustness(MeanSign(), ds, severities=(True,), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate.robustness(MeanSign(), ds, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="benchmark"):
        evaluate.robustness(MeanSign(), ds, severities=(1,), benchmark=lambda c, s: ds.images[:3],
                            benchmark_name="short", progress=False)
    assert not fake_corruptions


def test_table_and_jpeg_are_passed_to_the_generator(fake_corruptions):
    evaluate.robustness(MeanSign(), _toy(), severities=(1,), table="cifar", jpeg=False, progress=False)
    assert {(c[4], c[5]) for c in fake_corruptions} == {("cifar", False)}


def test_cache_key_has_what_changes_the_result_and_nothing_else(fake_corruptions, tmp_path, monkeypatch):
    run = FakeRun(tmp_path / "run")
    base = dict(corruptions=["invert"], severities=(1,), n_test=6, progress=False)
    key = evaluate.robustness(run, _toy(), **base).attrs["key"]
    # batch size, device and progress bar: same key, nothing evaluated or loaded again
    n_calls, loads = len(fake_corruptions), run.loads
    for extra in (dict(batch_size=1), dict(device="cpu"), dict(progress=True)):
        assert evaluate.robustness(run, _toy(), **{**base, **extra}).attrs["key"] == key
    assert len(fake_corruptions) == n_calls and run.loads == loads
    # each of these changes the images or the measurement: a new key
    keys = {key}
    for change in (dict(corruptions=["identity"]), dict(corruptions=["invert", "identity"]), dict(severities=(2,)),
                   dict(seed=1), dict(n_test=5), dict(jpeg=False), dict(jpeg=True), dict(table="imagenet")):
        keys.add(evaluate.robustness(run, _toy(), **{**base, **change}).attrs["key"])
    monkeypatch.setattr(dc, "VERSION", 7, raising=False)  # a corruption code version, once the generator has one
    keys.add(evaluate.robustness(run, _toy(), **base).attrs["key"])
    assert len(keys) == 10 and len(list((tmp_path / "run" / "eval").glob("*.nc"))) == 10
    other_images = _toy()
    other_images.images[0] = 255 - other_images.images[0]
    assert evaluate.robustness(run, other_images, **base).attrs["key"] not in keys


def test_default_corruptions_drop_saturate_for_gray():
    gray = DatasetInfo("g", 1, 10, 28, (0.5,), (0.5,), "cifar")
    colour = DatasetInfo("c", 3, 10, 32, (0.5,) * 3, (0.5,) * 3, "cifar")
    assert evaluate.default_corruptions(gray) == tuple(dc.GRAY_NAMES) and "saturate" not in dc.GRAY_NAMES
    assert evaluate.default_corruptions(colour) == tuple(dc.NAMES) and len(dc.NAMES) == 19
    tiny = DatasetInfo("t", 3, 200, 64, (0.5,) * 3, (0.5,) * 3, "tiny")
    assert evaluate.default_corruptions(tiny) == tuple(dc.COMMON) and len(dc.COMMON) == 15
    from dstlib.data import INFO
    assert evaluate.default_corruptions(INFO["fashion_mnist"]) == tuple(dc.GRAY_NAMES)


class _Recorder(nn.Module):
    """Records every (normalised) input batch; predicts class 0."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1) + self.w


@pytest.mark.parametrize("jpeg", [None, False])
def test_real_generator_as_saved_for_the_tiny_table(jpeg):
    from dstlib.data import normalize
    info = DatasetInfo("toy64", 3, 2, 64, (0.5,) * 3, (0.5,) * 3, "tiny")
    g = torch.Generator().manual_seed(1)
    ds = ImageSet(info, torch.randint(0, 255, (5, 3, 64, 64), generator=g, dtype=torch.uint8), torch.zeros(5).long())
    model = _Recorder()
    evaluate.robustness(model, ds, corruptions=["gaussian_noise"], severities=(3,), batch_size=3, jpeg=jpeg,
                        progress=False)
    # per batch: clean, then the corrupted images
    got = torch.cat([model.seen[1], model.seen[3]])
    saved = dc.corrupt_as_saved(ds.images, "gaussian_noise", 3, seed=0, table="tiny", index=torch.arange(5))
    plain = dc.corrupt(ds.images, "gaussian_noise", 3, seed=0, table="tiny", index=torch.arange(5))
    assert not torch.equal(saved, plain)  # the JPEG step is visible
    assert torch.equal(got, normalize(saved if jpeg is None else plain, info))


# --- two tiny real runs from the store -------------------------------------------------------
@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    from dstlib.config import RunSpec
    from dstlib.store import Store

    store = Store(tmp_path_factory.mktemp("store"))
    dense = RunSpec(model="mlp", widths=(32,), epochs=2, batch_size=64, train_subset=512, lr=0.05)
    sparse = dense.replace(method="set", sparsity=0.5)
    return store.run(dense, progress=False), store.run(sparse, progress=False)


@pytest.fixture(scope="module")
def fmnist_test():
    from dstlib import data
    return data.load("fashion_mnist", "test")


def _spy(monkeypatch):
    """Wrap the real generator; record a digest of each corrupted batch per (name, severity, indices)."""
    import hashlib
    real, seen = dc.corrupt_as_saved, {}

    def spy(x, name, severity, **kw):
        y = real(x, name, severity, **kw)
        key = (name, severity, tuple(kw["index"].tolist()))
        seen.setdefault(key, []).append(hashlib.sha256(y.cpu().numpy().tobytes()).hexdigest())
        return y

    monkeypatch.setattr(dc, "corrupt_as_saved", spy)
    return seen


N_TEST = 96


def test_real_runs_are_paired_and_cached(real_runs, fmnist_test, monkeypatch):
    from dstlib.data import normalize
    dense, sparse = real_runs
    assert dense.masks == {} and 0.49 < float(sparse.masks["features.1.weight"].float().mean()) < 0.51
    seen = _spy(monkeypatch)
    rd = evaluate.robustness(dense, fmnist_test, severities=(1, 5), n_test=N_TEST, batch_size=64, progress=False)
    rs = evaluate.robustness(sparse, fmnist_test, severities=(1, 5), n_test=N_TEST, batch_size=64, progress=False)
    # the very same corrupted images for both models: every batch generated twice, identical both times
    assert len(seen) == len(dc.GRAY_NAMES) * 2 * 2 and all(len(v) == 2 and v[0] == v[1] for v in seen.values())
    for v in ("correct", "clean_correct", "label"):
        assert rd[v].dims == rs[v].dims
    for c in ("corruption", "severity", "image"):
        np.testing.assert_array_equal(rd[c].values, rs[c].values)
    assert list(rd["corruption"].values) == list(dc.GRAY_NAMES) and rd["image"].values.tolist() == list(range(N_TEST))
    np.testing.assert_array_equal(rd["label"].values, fmnist_test.labels[:N_TEST].numpy())
    # a stored cell is the model's correctness on the generator's images
    x = dc.corrupt_as_saved(fmnist_test.images[:N_TEST], "gaussian_noise", 5, seed=0, table="cifar",
                            index=torch.arange(N_TEST))
    with torch.no_grad():
        want = (sparse.model()(normalize(x, fmnist_test.info)).argmax(1) == fmnist_test.labels[:N_TEST]).numpy()
    np.testing.assert_array_equal(rs["correct"].sel(corruption="gaussian_noise", severity=5).values, want)

    # second call: a cache hit (other batch size and device do not matter): no generation, no model load
    n_seen = sum(len(v) for v in seen.values())
    monkeypatch.setattr(dense, "model", lambda: pytest.fail("the model was loaded on a cache hit"))
    again = evaluate.robustness(dense, fmnist_test, severities=(1, 5), n_test=N_TEST, batch_size=7, device="cpu",
                                progress=False)
    assert sum(len(v) for v in seen.values()) == n_seen
    xr.testing.assert_identical(again, rd)
    assert [p.name for p in (dense.path / "eval").iterdir()] == [f"{rd.attrs['key']}.nc"]
    assert again.attrs["model"] == dense.id

    # relative gain agrees with the accuracies recomputed from the per-image arrays
    g = evaluate.relative_gain(rs, rd)
    acc_s, acc_d = rs["correct"].values.mean(-1), rd["correct"].values.mean(-1)
    np.testing.assert_allclose(g["gain"].transpose("corruption", "severity").values, (acc_s - acc_d) / acc_d)
    assert float(g["robustness_gain"]) == pytest.approx((acc_s.mean() - acc_d.mean()) / acc_d.mean())
    cs, cd = rs["clean_correct"].values.mean(), rd["clean_correct"].values.mean()
    assert float(g["clean_gain"]) == pytest.approx((cs - cd) / cd)
    ce = evaluate.corruption_error({"dense": rd, "set": rs}, "dense")
    assert float(ce["mce"].sel(model="dense")) == pytest.approx(1.0)


def test_real_run_accuracy_matches_its_history(real_runs, fmnist_test):
    for run in real_runs:
        r = evaluate.accuracy(run, fmnist_test, batch_size=2500, progress=False)
        assert float(r["accuracy"]) == pytest.approx(run.history[-1]["test_acc"], abs=1e-12)


def test_folder_decoded_set(tmp_path):
    """A set decoded on access (ImageNet-V2 layout): images are decoded per batch and keyed by their files."""
    from PIL import Image
    from dstlib.data import normalize, ood
    for k, v in ((3, 40), (7, 200)):
        folder = tmp_path / "imagenetv2-top-images-format-val" / str(k)
        folder.mkdir(parents=True)
        Image.fromarray(np.full((240, 260, 3), v, np.uint8)).save(folder / "a.jpeg")
    ds = ood.imagenet_v2("top-images", tmp_path)
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 1000))
    r = evaluate.robustness(model, ds, corruptions=["gaussian_noise"], severities=(2,), batch_size=1,
                            cache_dir=tmp_path / "cache", progress=False)
    x = torch.stack([ds[i][0] for i in range(2)])
    xc = dc.corrupt_as_saved(x, "gaussian_noise", 2, seed=0, table="imagenet", index=torch.arange(2))
    with torch.no_grad():
        want = (model(normalize(xc, ds.info)).argmax(1) == ds.labels).numpy()
        clean = (model(normalize(x, ds.info)).argmax(1) == ds.labels).numpy()
    np.testing.assert_array_equal(r["correct"].values[0, 0], want)
    np.testing.assert_array_equal(r["clean_correct"].values, clean)
    acc = evaluate.accuracy(model, ds, classes=[3, 7], batch_size=1, progress=False)
    with torch.no_grad():
        logits = model(normalize(x, ds.info))[:, [3, 7]]
    np.testing.assert_array_equal(acc["correct"].values, (torch.tensor([3, 7])[logits.argmax(1)] == ds.labels).numpy())
