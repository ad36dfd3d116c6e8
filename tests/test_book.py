"""dstlib.book and the notebook-parameter block of dstlib.config: validation, plans, saving, verdicts, summary."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from pathlib import Path

from dstlib import book, config

ROOT = Path(__file__).resolve().parents[1]


def smoke_params(section: str, tmp_path, **changes):
    p = yaml.safe_load((ROOT / "params/smoke" / f"{section}.yaml").read_text())
    p.update(store=str(tmp_path / "runs"), results=str(tmp_path / "results"), **changes)
    return p


@pytest.mark.parametrize("name,value,needle", [
    ("methods", ["set", "bogus"], "methods=['set', 'bogus'] is invalid; allowed: a non-empty list"),
    ("methods", ["dense"], "methods=['dense'] is invalid"),
    ("seeds", [0], "seeds=[0] is invalid; allowed: at least 2 distinct"),
    ("sparsities", [0.5, 1.0], "sparsities=[0.5, 1.0] is invalid"),
    ("severities", [0, 3], "severities=[0, 3] is invalid"),
    ("epochs", "3", "epochs='3' is invalid; allowed: an integer"),
    ("device", "gpu", "device='gpu' is invalid; allowed: cpu, cuda"),
    ("dataset", "mnist", "dataset='mnist' is invalid; allowed: fashion_mnist"),
    ("corruptions", ["gaussian_noise", "rain"], "corruptions=['gaussian_noise', 'rain'] is invalid"),
    ("train", "yes", "train='yes' is invalid; allowed: True or False"),
    ("confidence", 95, "confidence=95.0 is invalid"),
])
def test_validate_names_parameter_value_and_choices_in_one_line(tmp_path, name, value, needle):
    with pytest.raises(ValueError) as e:
        book.validate("overall", smoke_params("overall", tmp_path, **{name: value}))
    assert str(e.value).startswith(needle) and "\n" not in str(e.value)


def test_validate_unknown_model_and_section_and_missing_parameter(tmp_path):
    with pytest.raises(ValueError, match=r"^model='resnet5' is unknown; valid: .*did you mean"):
        book.validate("overall", smoke_params("overall", tmp_path, model="resnet5"))
    with pytest.raises(ValueError, match=r"^section='tables' is invalid; allowed: overall"):
        book.validate("tables", smoke_params("overall", tmp_path))
    p = smoke_params("spectral", tmp_path)
    del p["radii"]
    with pytest.raises(ValueError, match=r"^radii is missing; the spectral notebook needs"):
        book.validate("spectral", p)


def test_validate_missing_dataset_files_is_a_file_not_found_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTLIB_DATA", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=r"^dataset='cifar100' needs local files"):
        book.validate("overall", smoke_params("overall", tmp_path, dataset="cifar100"))


def test_validate_coerces_and_keeps_only_the_sections_names(tmp_path):
    p = book.validate("overall", {**smoke_params("overall", tmp_path, epochs=2.0, sparsities=[1 / 2]), "extra": 1})
    assert p["epochs"] == 2 and isinstance(p["epochs"], int) and p["sparsities"] == [0.5]
    assert set(p) == set(config.SECTION_PARAMS["overall"])


def test_specs_grid_and_augmentation_twins(tmp_path):
    p = book.validate("overall", smoke_params("overall", tmp_path, methods=["set", "rigl"], sparsities=[0.3, 0.5]))
    specs = book.specs("overall", p)
    assert len(specs) == len(p["seeds"]) * (1 + 2 * 2) and len({s.hash() for s in specs}) == len(specs)
    a = book.validate("augmentation", smoke_params("augmentation", tmp_path))
    aug = book.specs("augmentation", a)
    assert len(aug) == 2 * len(a["seeds"]) * (1 + len(a["methods"]))
    assert sorted({s.mixup for s in aug}) == [0.0, a["mixup"]]


def test_sections_with_the_same_settings_share_runs():
    q = {s: yaml.safe_load((ROOT / "params/quick" / f"{s}.yaml").read_text()) for s in config.SECTIONS}
    ids = {s: {x.short_id() for x in book.specs(s, book.validate(s, q[s]))} for s in config.SECTIONS}
    assert ids["corruptions"] <= ids["overall"] and ids["cost"] == ids["overall"] == ids["ood"]
    assert ids["spatial"] == ids["gradcam"] == ids["spectral"]
    assert len(ids["augmentation"] - ids["overall"]) == len(ids["augmentation"]) // 2


def test_plan_scales_an_expensive_model_to_the_budget_deterministically(tmp_path, capsys):
    p = book.validate("spectral", smoke_params("spectral", tmp_path, widths=[], train_subset=0, n_test=0,
                                               budget_minutes=4.0, epochs=2))
    full = book.estimate("spectral", dict(p, _snapshots=True))
    assert full["total_s"] > 4 * 60
    plan = book.plan("spectral", p)
    out = capsys.readouterr().out
    assert "over the budget" in out and "Estimate on a 2-core CPU" in out and "too costly" not in out
    assert plan.params["train_subset"] < 60_000 and plan.params["n_test"] < 10_000 and plan.scale < 1
    assert book.estimate("spectral", plan.params)["total_s"] <= 4 * 60  # the scaled setting fits the budget
    again = book.plan("spectral", p, verbose=False)
    assert [s.hash() for s in again.specs] == [s.hash() for s in plan.specs]
    assert all(s.snapshots == tuple(range(1, plan.params["epochs"] + 1)) for s in plan.specs)


def test_plan_says_so_when_even_the_smallest_setting_is_over_budget(tmp_path, capsys):
    p = book.validate("overall", smoke_params("overall", tmp_path, model="cnn", widths=[], train_subset=0, n_test=0,
                                              budget_minutes=0.001, seeds=[0, 1, 2], severities=[1, 3, 5]))
    plan = book.plan("overall", p)
    out = capsys.readouterr().out
    assert "too costly for the budget" in out and plan.notes[-1].startswith("Even so the estimate is")
    # the ladder went all the way down: one epoch, one severity, one method, one sparsity, two seeds
    q = plan.params
    assert (q["epochs"], q["severities"], len(q["methods"]), len(q["sparsities"]), q["seeds"]) == (1, [3], 1, 1, [0, 1])
    assert any("too costly" in line for line in book.provenance(plan, {}).splitlines())


def test_plan_within_budget_is_unchanged_and_estimate_skips_stored_runs(tmp_path):
    p = book.validate("overall", smoke_params("overall", tmp_path, methods=["set"], train_subset=128, n_test=16,
                                              budget_minutes=10.0))
    plan = book.plan("overall", p, verbose=False)
    assert plan.scale == 1 and plan.params["train_subset"] == 128
    before = book.estimate("overall", plan.params, plan.store)
    assert before["runs_to_train"] == len(plan.specs) and before["train_s"] > 0
    runs = book.train(plan, progress=False)
    assert len(runs) == len(plan.specs)
    after = book.estimate("overall", plan.params, plan.store)
    assert after["runs_to_train"] == 0 and after["train_s"] == 0
    # train=False with a missing run stops before anything is trained
    p2 = dict(p, train=False, seeds=[5, 6])
    with pytest.raises(LookupError, match="train=False and run"):
        book.train(book.plan("overall", p2, verbose=False))


def test_corrupted_images_are_the_evaluators_images_and_cached(tmp_path):
    import dstlib.corruptions as dc
    from dstlib import data
    ds = data.load("fashion_mnist", "test")
    a = book.CorruptedImages(ds, 40, ["fog"], [2], seed=0, root=tmp_path)
    x = a("fog", 2)
    ref = dc.corrupt(ds.images[:40], "fog", 2, seed=0, index=torch.arange(40))
    assert torch.equal(x, ref)
    files = list((tmp_path / "_corrupted").glob("*.safetensors"))
    assert len(files) == 1 and not list((tmp_path / "_corrupted").glob("*.tmp*"))
    b = book.CorruptedImages(ds, 40, ["fog"], [2], seed=0, root=tmp_path)
    assert torch.equal(b("fog", 2), ref)


def _plan(tmp_path, section="overall"):
    p = book.validate(section, smoke_params(section, tmp_path))
    return book.plan(section, p, verbose=False)


def test_save_round_trips_strings_bools_and_unsigned_and_leaves_no_temp(tmp_path):
    plan = _plan(tmp_path)
    ds = xr.Dataset({"acc": (("method", "seed"), np.array([[0.5, 0.6]])),
                     "ok": (("seed",), np.array([True, False])),
                     "pix": (("seed",), np.array([3, 250], dtype=np.uint8)),
                     "verdict": (("seed",), np.array(["better", "worse"]))},
                    coords={"method": np.array(["set"], dtype=object), "seed": [0, 1]}, attrs={"d": {"a": 1}})
    path = book.save(ds, plan, "x")
    assert path == Path(plan.params["results"]) / "overall_x.nc"
    back = book.load(path)
    assert list(back["method"].values) == ["set"] and back["pix"].values.tolist() == [3, 250]
    assert back["acc"].values.tolist() == [[0.5, 0.6]] and back["ok"].values.tolist() == [1, 0]
    assert json.loads(back.attrs["params"])["profile"] == "smoke"
    assert [p.name for p in path.parent.iterdir()] == ["overall_x.nc"]


def _verdicts(values):
    v = np.array(values, dtype=object)
    return xr.Dataset({"verdict": ("k", v.astype(str)), "mdd": ("k", np.full(len(v), 0.01)),
                       "diff": ("k", np.zeros(len(v))), "n_a": 3}, attrs={"confidence": 0.95})


def test_status_reads_the_verdict_counts():
    assert book.status(_verdicts(["better", "better", "no detectable difference"])).startswith("reproduced")
    assert book.status(_verdicts(["worse", "worse", "no detectable difference"])).startswith("contradicted")
    assert book.status(_verdicts(["better", "worse", "better"])).startswith("not reproduced at this scale")
    assert book.status(_verdicts(["no detectable difference"] * 3)).endswith("detectable difference 1.00-1.00 pp)")
    assert book.status(_verdicts(["worse", "worse"]), claim="worse").startswith("reproduced")


def test_verdicts_are_seed_paired_and_detect_a_clear_difference():
    rng = np.random.default_rng(0)
    seeds = [0, 1, 2, 3]
    dense = xr.DataArray(0.80 + 0.01 * rng.standard_normal(4), dims="seed", coords={"seed": seeds})
    sparse = xr.concat([dense + 0.05, dense - 0.05, dense + 0.0001 * rng.standard_normal(4)],
                       dim=xr.DataArray(["a", "b", "c"], dims="method", name="method"))
    v = book.verdicts(sparse, dense, 0.95)
    assert list(v["verdict"].values) == ["better", "worse", "no detectable difference"]
    sentence = book.verdict_sentence(v, "accuracy")
    assert "better in 1**" in sentence and "worse in 1**" in sentence and "no detectable difference in 1**" in sentence
    table = book.win_tie_loss(v)
    assert table.loc["a", "wins"] == 1 and table.loc["b", "losses"] == 1 and table.loc["c", "ties"] == 1


def test_summary_table_and_cli(tmp_path):
    plan = _plan(tmp_path)
    book.save_verdict(plan, "DST beats dense", "reproduced (better 3/3)", "mlp")
    text = book.summary(plan.params["results"])
    assert "| [overall](sections/overall.ipynb) | DST beats dense | reproduced (better 3/3) | mlp |" in text
    assert "| [spectral](sections/spectral.ipynb) | | not run | |" in text
    out = tmp_path / "s.md"
    assert book.main(["summary", plan.params["results"], str(out)]) == 0 and out.read_text() == text
    assert book.main(["bogus"]) == 2


def test_provenance_names_versions_commit_and_run_hashes(tmp_path):
    p = book.validate("overall", smoke_params("overall", tmp_path, methods=["set"], train_subset=64, n_test=8))
    plan = book.plan("overall", p, verbose=False)
    runs = book.train(plan, progress=False)
    text = book.provenance(plan, runs)
    assert "git commit" in text and "torch " in text and "xarray " in text
    for run in runs.values():
        assert run.spec.hash() in text and run.id in text


def test_spectral_curves_are_cached_per_run_and_identical(tmp_path):
    p = book.validate("spectral", smoke_params("spectral", tmp_path, train_subset=128, n_test=16, radii=[0, 6]))
    plan = book.plan("spectral", p, verbose=False)
    runs = book.train(plan, progress=False)
    first = book.spectral_curves(plan, runs, progress=False)
    assert first["accuracy"].dims == ("model", "seed", "epoch", "band", "radius")
    assert list(first["epoch"].values) == list(range(1, p["epochs"] + 1))
    cached = [f for r in runs.values() for f in (r.path / "eval").glob("spectral_*.nc")]
    assert len(cached) == len(runs)
    again = book.spectral_curves(plan, runs, progress=False)
    assert bool((first["accuracy"] == again["accuracy"]).all())
    # r = 0 removes nothing: both bands give the same accuracy there
    a0 = first["accuracy"].loc[dict(radius=0.0)]
    assert bool((a0.loc[dict(band="high")] == a0.loc[dict(band="low")]).all())


def test_corrupted_images_name_changes_with_the_corruption_output(tmp_path, monkeypatch):
    import dstlib.corruptions as dc
    from dstlib import data
    ds = data.load("fashion_mnist", "test")
    a = book.CorruptedImages(ds, 8, ["fog"], [1], seed=0, root=tmp_path)
    real = dc.corrupt
    monkeypatch.setattr(dc, "corrupt", lambda x, *args, **kw: real(x, *args, **kw) // 2)
    b = book.CorruptedImages(ds, 8, ["fog"], [1], seed=0, root=tmp_path)
    assert a.name != b.name and a._path("fog", 1) != b._path("fog", 1)
