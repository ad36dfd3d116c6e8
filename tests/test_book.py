"""dstlib.book: validation, plans and their evidence rules, folders, saving, verdicts, the front page."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from dstlib import book, config
from dstlib.book import evidence, params as book_params

ROOT = Path(__file__).resolve().parents[1]


def smoke_params(section: str, tmp_path, **changes):
    p = yaml.safe_load((ROOT / "params/smoke" / f"{section}.yaml").read_text())
    p.update(store=str(tmp_path / "runs"), results=str(tmp_path / "results"), **changes)
    return p


def quick_params(section: str, **changes):
    return {**yaml.safe_load((ROOT / "params/quick" / f"{section}.yaml").read_text()), **changes}


# --- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,value,needle", [
    ("methods", ["set", "bogus"], "methods=['set', 'bogus'] is invalid; allowed: a non-empty list"),
    ("methods", ["dense"], "methods=['dense'] is invalid"),
    ("seeds", [0], "seeds=[0] is invalid; allowed: at least 2 distinct"),
    ("sparsities", [0.5, 1.0], "sparsities=[0.5, 1.0] is invalid"),
    ("sparsities", "[1.5]", "sparsities=[1.5] is invalid; allowed: a non-empty list of distinct numbers in (0, 1)"),
    ("severities", [0, 3], "severities=[0, 3] is invalid"),
    ("epochs", "three", "epochs='three' is invalid; allowed: an integer"),
    ("device", "gpu", "device='gpu' is invalid; allowed: cpu, cuda"),
    ("dataset", "mnist", "dataset='mnist' is invalid; allowed: fashion_mnist"),
    ("corruptions", ["gaussian_noise", "rain"], "corruptions=['gaussian_noise', 'rain'] is invalid"),
    ("train", "yes", "train='yes' is invalid; allowed: True or False"),
    ("confidence", 95, "confidence=95.0 is invalid"),
    ("workers", -1, "workers=-1 is invalid; allowed: an integer >= 0"),
])
def test_validate_names_parameter_value_and_choices_in_one_line(tmp_path, name, value, needle):
    with pytest.raises(ValueError) as e:
        book.validate("overall", smoke_params("overall", tmp_path, **{name: value}))
    assert str(e.value).startswith(needle) and "\n" not in str(e.value)


def test_lists_given_as_text_are_read_as_yaml(tmp_path):
    # papermill's `-p seeds '[0, 1]'` hands the notebook a string
    p = book.validate("overall", smoke_params("overall", tmp_path, seeds="[3, 4]", methods="[set, rigl]",
                                              epochs="2"))
    assert p["seeds"] == [3, 4] and p["methods"] == ["set", "rigl"] and p["epochs"] == 2


def test_an_injected_unknown_parameter_is_an_error_naming_it():
    # a notebook's globals: the annotated parameters plus what papermill injected
    g = {**quick_params("spectral"), "__annotations__": {k: str for k in config.SECTION_PARAMS["spectral"]},
         "modle": "resnet50", "In": [], "Out": {}, "book": book, "display": print}
    with pytest.raises(ValueError, match=r"^parameter 'modle' is unknown to the spectral notebook "
                                         r"\(did you mean model\?\); valid: profile, model"):
        book.validate("spectral", g)
    del g["modle"]
    assert book.validate("spectral", g)["model"] == "lenet5"


def test_validate_unknown_model_and_section_and_missing_parameter(tmp_path):
    with pytest.raises(ValueError, match=r"^model='resnet5' is unknown; valid: .*did you mean"):
        book.validate("overall", smoke_params("overall", tmp_path, model="resnet5"))
    with pytest.raises(ValueError, match=r"^section='tables' is invalid; allowed: overall"):
        book.validate("tables", smoke_params("overall", tmp_path))
    p = smoke_params("spectral", tmp_path)
    del p["radii"]
    with pytest.raises(ValueError, match=r"^radii is missing; the spectral notebook needs"):
        book.validate("spectral", p)


def test_settings_a_section_cannot_use_fail_at_validation(tmp_path):
    with pytest.raises(ValueError, match=r"^model='lenet300_100' has no convolution, which the spatial section"):
        book.validate("spatial", smoke_params("spatial", tmp_path, model="lenet300_100", widths=[]))
    with pytest.raises(ValueError, match=r"^model='mlp' has no convolution, which the gradcam section"):
        book.validate("gradcam", smoke_params("gradcam", tmp_path, model="mlp", widths=[]))
    with pytest.raises(ValueError, match=r"^radii=\[0.0, 25.0\] is invalid: 25 is beyond the largest radius of a 28-px "
                                         r"image; allowed: numbers in \[0, 19.8\]"):
        book.validate("spectral", smoke_params("spectral", tmp_path, radii=[0, 25]))


def test_validate_missing_dataset_files_is_a_file_not_found_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTLIB_DATA", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=r"^dataset='cifar100' needs local files"):
        book.validate("overall", smoke_params("overall", tmp_path, dataset="cifar100"))


def test_validate_coerces_and_keeps_only_the_sections_names(tmp_path):
    p = book.validate("overall", {**smoke_params("overall", tmp_path, epochs=2.0, sparsities=[1 / 2]), "extra": 1})
    assert p["epochs"] == 2 and isinstance(p["epochs"], int) and p["sparsities"] == [0.5]
    assert set(p) == set(config.SECTION_PARAMS["overall"])


# --- folders: a custom run never overwrites the book ----------------------------------------------
def test_results_folder_is_the_profiles_only_for_the_profiles_parameters():
    root = book.repo_root()
    assert root == ROOT
    p = book.validate("overall", quick_params("overall"))
    assert book.results_dir("overall", p) == ROOT / "results" / "quick"
    # where things run does not change what is measured: still the book's folder
    assert book.results_dir("overall", dict(p, workers=1, budget_minutes=0.0)) == ROOT / "results" / "quick"
    custom = book.results_dir("overall", dict(p, model="lenet5", seeds=[0, 1]))
    assert custom == ROOT / "results" / "quick+model=lenet5+seeds=0,1"
    assert book.results_dir("overall", dict(p, model="lenet5", results="elsewhere")) == Path("elsewhere")
    plan = book.plan("overall", dict(p, model="lenet5", seeds=[0, 1]), verbose=False)
    assert plan.results_dir == custom and "quick+model=lenet5" in book.header(plan)


def test_store_and_repository_are_found_from_the_notebooks_folder(monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")
    monkeypatch.delenv("DSTLIB_STORE", raising=False)
    assert book.repo_root() == ROOT and book.store_dir({"store": ""}) == ROOT / "runs"
    monkeypatch.setenv("DSTLIB_STORE", "/somewhere/runs")
    assert book.store_dir({"store": ""}) == Path("/somewhere/runs")
    assert book.store_dir({"store": "mine"}) == Path("mine")


# --- plans and the evidence rules -----------------------------------------------------------------
def test_specs_grid_and_augmentation_twins(tmp_path):
    p = book.validate("overall", smoke_params("overall", tmp_path, methods=["set", "rigl"], sparsities=[0.3, 0.5]))
    specs = book.specs("overall", p)
    assert len(specs) == len(p["seeds"]) * (1 + 2 * 2) and len({s.hash() for s in specs}) == len(specs)
    a = book.validate("augmentation", smoke_params("augmentation", tmp_path))
    aug = book.specs("augmentation", a)
    assert len(aug) == 2 * len(a["seeds"]) * (1 + len(a["methods"]))
    assert sorted({s.mixup for s in aug}) == [0.0, a["mixup"]]


def test_quick_sections_share_runs_and_plan_the_spectral_snapshots_from_the_start():
    q = {s: book.validate(s, quick_params(s)) for s in config.SECTIONS}
    specs = {s: book.specs(s, q[s]) for s in config.SECTIONS}
    ids = {s: {x.short_id() for x in specs[s]} for s in config.SECTIONS}
    assert ids["cost"] == ids["overall"] == ids["ood"]
    assert ids["corruptions"] == ids["spatial"] == ids["gradcam"] == ids["spectral"]
    assert len(ids["augmentation"] - ids["overall"]) >= len(ids["augmentation"]) // 2
    # whichever section trains a run the spectral section uses, it keeps the per-epoch snapshots
    for s in ("corruptions", "spatial", "gradcam"):
        assert all(x.snapshots == tuple(range(1, x.epochs + 1)) for x in specs[s])
    assert all(not x.snapshots for x in specs["overall"])


def test_the_worker_training_a_shared_run_prepares_every_section_that_uses_it():
    from dstlib.book.plan import sharing_sections
    q = book.validate("corruptions", quick_params("corruptions"))
    shared = sharing_sections("corruptions", q)
    for s in book.specs("corruptions", q):  # the spectral curves are computed where the run is trained
        assert {sec for sec, _ in shared[s.hash()]} == {"spatial", "spectral", "gradcam"}
    assert all(p["device"] == q["device"] for v in shared.values() for _, p in v)
    # a custom run pays only for its own section
    assert sharing_sections("corruptions", dict(q, seeds=[0, 1])) == {}
    assert sharing_sections("corruptions", dict(q, workers=1)) != {}


def test_the_default_book_meets_every_evidence_rule():
    for s in config.SECTIONS:
        plan = book.plan(s, book.validate(s, quick_params(s)), verbose=False)
        assert plan.shortfalls == [] and plan.scale == 1, (s, plan.shortfalls, plan.notes)
        for spec in plan.specs:
            if spec.method not in evidence.NOT_DYNAMIC:
                assert book.planned_updates(spec, 60_000) >= book.MIN_UPDATES


def test_planned_updates_follow_the_methods_schedules():
    from dstlib.config import RunSpec
    steps = evidence.steps_per_epoch(60_000, 128)
    assert steps == 469
    rigl = RunSpec(model="lenet300_100", method="rigl", epochs=15, update_interval=20)
    # RigL stops at 75% of the run: steps 20, 40, ... up to 0.75 x 7035
    assert book.planned_updates(rigl, 60_000) == int(0.75 * 15 * steps) // 20
    assert book.planned_updates(rigl.replace(method="dense"), 60_000) == 0
    assert book.planned_updates(rigl.replace(epochs=1, update_interval=100), 256) == 0


def test_a_smoke_plan_lists_why_it_cannot_support_a_verdict(tmp_path):
    plan = book.plan("overall", book.validate("overall", smoke_params("overall", tmp_path)), verbose=False)
    text = "; ".join(plan.shortfalls)
    assert "trained on 256 of 60,000 training images" in text
    assert "convergence of mlp [16] on fashion_mnist was never measured" in text
    assert "topology updates per run: rigl 0, set 0 (fewer than 50)" in text
    v = _verdicts(["better", "better"])
    assert book.page_verdict(v, plan.shortfalls).startswith("no verdict: smoke run (trained on 256")
    assert book.page_verdict(v, []).startswith("reproduced")


def test_under_trained_models_fail_the_convergence_rule():
    p = book.validate("overall", quick_params("overall", epochs=3))
    plan = book.plan("overall", p, verbose=False)
    assert plan.shortfalls == ["lenet300_100 trained 3 epochs, fewer than the 15 it needs to converge"]


def test_ties_with_a_large_detectable_difference_give_no_verdict():
    v = _verdicts(["no detectable difference"] * 2, mdd=0.03)
    assert book.page_verdict(v, []) == "no verdict: too few seeds (the design detects only differences above " \
                                       "3.00 pp (more than 2 pp))"


def test_ties_that_cannot_detect_2_pp_are_left_out_of_the_verdict_and_counted():
    v = _verdicts(["better", "better", "no detectable difference"])
    v["mdd"] = ("k", np.array([0.004, 0.005, 0.03]))
    assert book.page_verdict(v, []) == ("reproduced (better 2/2, worse 0/2; detectable difference 0.40-0.50 pp; "
                                        "1 of 3 ties left out: they could detect only differences above 2 pp)")
    # a detected difference counts whatever its MDD: its interval excludes zero
    v = _verdicts(["worse", "worse"], mdd=0.03)
    assert book.page_verdict(v, []).startswith("contradicted (better 0/2, worse 2/2")


def test_budget_scaling_keeps_at_least_50_topology_updates(tmp_path, capsys):
    p = book.validate("overall", quick_params("overall", store=str(tmp_path / "runs"), results=str(tmp_path / "r"),
                                              budget_minutes=0.1, seeds=[0, 1], sparsities=[0.5]))
    plan = book.plan("overall", p)
    assert plan.scale < 1 and plan.params["train_subset"] < 60_000
    n = plan.params["train_subset"]
    for spec in plan.specs:
        if spec.method != "dense":
            assert book.planned_updates(spec, n) >= book.MIN_UPDATES, (spec.method, spec.update_interval)
    assert plan.params["update_interval"] < 20
    assert "To keep at least 50 topology updates per sparse run: update_interval 20 ->" in capsys.readouterr().out
    assert any("trained on" in s for s in plan.shortfalls)  # a scaled plan never supports a verdict


def test_budget_scaling_refuses_rather_than_training_static_masks(tmp_path):
    p = book.validate("overall", quick_params("overall", store=str(tmp_path / "runs"), results=str(tmp_path / "r"),
                                              budget_minutes=0.01, batch_size=1024, seeds=[0, 1], sparsities=[0.5]))
    with pytest.raises(ValueError, match=r"^budget_minutes=0.01 leaves \d+ optimiser steps per run, too few for 50 "
                                         r"topology updates even at update_interval=1; allowed: a larger budget"):
        book.plan("overall", p, verbose=False)


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
    p2 = dict(p, train=False, seeds=[5, 6])
    with pytest.raises(LookupError, match="train=False and run"):
        book.train(book.plan("overall", p2, verbose=False))


def test_runs_trained_by_worker_processes_equal_those_trained_here(tmp_path, monkeypatch):
    from dstlib.book import runs as book_runs
    monkeypatch.setattr(book_runs, "_threads", lambda workers: 1)  # the workers' thread count, here too
    p = book.validate("overall", smoke_params("overall", tmp_path, methods=["rigl"], train_subset=128, n_test=16,
                                              corruptions=["fog"], severities=[2]))
    one = book.plan("overall", dict(p, workers=1), verbose=False)
    two = book.plan("overall", dict(p, workers=2, store=str(tmp_path / "runs2")), verbose=False)
    assert two.workers == 2
    a, b = book.train(one, progress=False), book.train(two, progress=False)
    assert a.keys() == b.keys()
    for k in a:
        wa, wb = a[k].model().state_dict(), b[k].model().state_dict()
        assert all(torch.equal(wa[n], wb[n]) for n in wa)
    # the workers also evaluated each run: the grid only reads the cache
    assert all(list((r.path / "eval").glob("*.nc")) for r in b.values())
    ga, gb = book.grid(one, a), book.grid(two, b)
    assert bool((ga["robustness_accuracy"] == gb["robustness_accuracy"]).all())


# --- measurements ---------------------------------------------------------------------------------
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


def test_corrupted_clips_are_the_evaluators_clips_and_cached(tmp_path):
    import dstlib.corruptions as dc
    from dstlib import data
    ds = data.load("moving_fashion_mnist", "test")
    a = book.CorruptedClips(ds, 30, ["jumble", "translate"], [2], seed=0, root=tmp_path, temporal="video")
    videos = torch.stack(ds.videos(range(30)))
    assert torch.equal(a("jumble", 2), dc.corrupt_video(videos, "jumble", 2, index=torch.arange(30), frames=8))
    assert torch.equal(a("translate", 2), dc.corrupt_video(ds.images[:30], "translate", 2, index=torch.arange(30)))
    assert len(list((tmp_path / "_corrupted").glob("*.safetensors"))) == 2
    clip = book.CorruptedClips(ds, 30, ["jumble"], [2], seed=0, root=tmp_path, temporal="clip")
    assert clip.name != a.name and not torch.equal(clip("jumble", 2), a("jumble", 2))


def test_the_video_section_takes_clips_and_video_networks_only(tmp_path):
    p = book.validate("video", smoke_params("video", tmp_path))
    assert p["dataset"] == "moving_fashion_mnist" and p["temporal"] == "video"
    specs = book.specs("video", p)
    assert {s.dataset for s in specs} == {"moving_fashion_mnist"} and {s.weight_decay for s in specs} == {0.0005}
    with pytest.raises(ValueError, match=r"^dataset='fashion_mnist' is invalid; allowed: for the video section "
                                         r"moving_fashion_mnist, ucf101"):
        book.validate("video", smoke_params("video", tmp_path, dataset="fashion_mnist"))
    with pytest.raises(ValueError, match=r"^dataset='moving_fashion_mnist' is invalid; allowed: for the overall"):
        book.validate("overall", smoke_params("overall", tmp_path, dataset="moving_fashion_mnist"))
    with pytest.raises(ValueError, match=r"^model='lenet5' is invalid for dataset 'moving_fashion_mnist', which "
                                         r"needs a video network; allowed: slow_r50"):
        book.validate("video", smoke_params("video", tmp_path, model="lenet5", widths=[]))
    with pytest.raises(ValueError, match=r"^corruptions=\['fog'\] is invalid; allowed: an empty list or distinct "
                                         r"names from motion_blur"):
        book.validate("video", smoke_params("video", tmp_path, corruptions=["fog"]))
    with pytest.raises(ValueError, match=r"^temporal='both' is invalid; allowed: video, clip"):
        book.validate("video", smoke_params("video", tmp_path, temporal="both"))
    paper = yaml.safe_load((ROOT / "params/paper/video.yaml").read_text())
    q = config.check_notebook_params("video", paper)  # UCF101 itself is not here: the parameters alone
    assert (q["epochs"], q["lr"], q["batch_size"], q["weight_decay"], q["update_interval"]) == (80, 0.1, 8, 1e-3, 300)
    assert q["distribution"] == "erk" and q["sparsity"] == 0.1 and q["severities"] == [1, 2, 3, 4]


def test_video_estimate_counts_clips_and_their_corruption():
    from dstlib.book.plan import CORRUPT_S_PER_CLIP, TRAIN_S_PER_IMAGE, _corrupt_clips_s
    p = book.validate("video", quick_params("video"))
    est = book.estimate("video", p)
    n_runs = len(p["seeds"]) * (1 + len(p["methods"]))
    train = 12_000 * p["epochs"] * TRAIN_S_PER_IMAGE["cnn3d"] * n_runs
    assert train / est["workers"] < est["train_s"] < 1.2 * train / est["workers"]  # sparse runs a little dearer
    assert _corrupt_clips_s("video", p, 1000) == pytest.approx(1000 * 16 * 4 * CORRUPT_S_PER_CLIP)
    assert est["total_s"] < 60 * p["budget_minutes"]


def test_corrupted_images_name_changes_with_the_corruption_output(tmp_path, monkeypatch):
    import dstlib.corruptions as dc
    from dstlib import data
    ds = data.load("fashion_mnist", "test")
    a = book.CorruptedImages(ds, 8, ["fog"], [1], seed=0, root=tmp_path)
    real = dc.corrupt
    monkeypatch.setattr(dc, "corrupt", lambda x, *args, **kw: real(x, *args, **kw) // 2)
    b = book.CorruptedImages(ds, 8, ["fog"], [1], seed=0, root=tmp_path)
    assert a.name != b.name and a._path("fog", 1) != b._path("fog", 1)


def test_spectral_curves_are_cached_per_run_and_identical(tmp_path):
    p = book.validate("spectral", smoke_params("spectral", tmp_path, train_subset=128, n_test=16, radii=[0, 6]))
    plan = book.plan("spectral", p, verbose=False)
    runs = book.train(plan, progress=False)
    cached = [f for r in runs.values() for f in (r.path / "eval").glob("spectral_*.nc")]
    assert len(cached) == len(runs)  # computed by the training step already
    first = book.spectral_curves(plan, runs)
    assert first["accuracy"].dims == ("model", "seed", "epoch", "band", "radius")
    assert list(first["epoch"].values) == list(range(1, p["epochs"] + 1))
    again = book.spectral_curves(plan, runs)
    assert bool((first["accuracy"] == again["accuracy"]).all())
    a0 = first["accuracy"].loc[dict(radius=0.0)]
    assert bool((a0.loc[dict(band="high")] == a0.loc[dict(band="low")]).all())


def test_spatial_baselines_keep_each_layers_count():
    from dstlib.book import measure
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Conv2d(4, 4, 3))
    masks = {"0.weight": torch.rand(4, 2, 3, 3) < 0.3, "1.weight": torch.rand(4, 4, 3, 3) < 0.6}
    for kind in ("pruned", "random"):
        b = measure.baseline_masks(net, masks, kind, seed=1)
        assert {k: int(v.sum()) for k, v in b.items()} == {k: int(v.sum()) for k, v in masks.items()}
    pruned = measure.baseline_masks(net, masks, "pruned", seed=1)["1.weight"]
    w = net[1].weight.detach().abs()
    assert float(w[pruned].min()) >= float(w[~pruned].max())


# --- verdicts -------------------------------------------------------------------------------------
def _verdicts(values, mdd=0.01):
    v = np.array(values, dtype=object)
    return xr.Dataset({"verdict": ("k", v.astype(str)), "mdd": ("k", np.full(len(v), mdd)),
                       "diff": ("k", np.zeros(len(v))), "n_a": 3}, attrs={"confidence": 0.95})


def test_status_reads_the_verdict_counts():
    assert book.status(_verdicts(["better", "better", "no detectable difference"])).startswith("reproduced")
    assert book.status(_verdicts(["worse", "worse", "no detectable difference"])).startswith("contradicted")
    assert book.status(_verdicts(["better", "worse", "better"])).startswith("not reproduced (better 2/3")
    assert book.status(_verdicts(["no detectable difference"] * 3)).endswith("detectable difference 1.00 pp)")
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
    rows = book.verdict_table(v, ["method"])
    assert list(rows["verdict"]) == ["better", "worse", "no detectable difference"]
    assert not rows.isna().any().any()


def test_per_corruption_verdicts_find_the_one_corruption_that_differs():
    rng = np.random.default_rng(1)
    seeds, corr = [0, 1, 2, 3, 4], ["fog", "snow", "frost"]
    dense = xr.DataArray(0.7 + 0.01 * rng.standard_normal((5, 3)), dims=("seed", "corruption"),
                         coords={"seed": seeds, "corruption": corr})
    shift = 0.04 * rng.standard_normal((5, 3))          # snow and frost: noise around no difference
    shift[:, 0] = 0.02 + 0.001 * rng.standard_normal(5)   # fog: a clear, consistent gain
    sparse = (dense + xr.DataArray(shift, dims=dense.dims, coords=dense.coords)).expand_dims(method=["rigl"])
    per = book.verdicts(sparse, dense, 0.95)
    overall = book.verdicts(sparse.mean("corruption"), dense.mean("corruption"), 0.95)
    assert per["verdict"].dims == ("method", "corruption")
    assert str(per["verdict"].loc[dict(method="rigl", corruption="fog")].values) == "better"
    assert str(overall["verdict"].loc[dict(method="rigl")].values) == "no detectable difference"


def test_gain_energy_association_has_an_interval_over_seeds():
    rng = np.random.default_rng(2)
    corr = [f"c{i}" for i in range(8)]
    energy = xr.DataArray(np.linspace(-1, 1, 8), dims="corruption", coords={"corruption": corr})
    base = np.linspace(-0.02, 0.02, 8)
    gain = xr.DataArray(np.stack([base + 0.002 * rng.standard_normal((6, 8)),
                                  0.02 * rng.standard_normal((6, 8))]),
                        dims=("method", "seed", "corruption"), coords={"method": ["up", "none"], "corruption": corr})
    a = book.gain_energy_association(gain, energy, n_boot=300)
    assert str(a["verdict"].loc[dict(method="up")].values) == book.HIGHER_GAIN
    assert float(a["lower"].loc[dict(method="up")]) > 0.5
    assert float(a["lower"].loc[dict(method="none")]) < 0 < float(a["upper"].loc[dict(method="none")])
    assert book.association_verdict(a, []).startswith("not reproduced (1/2")
    assert book.association_verdict(a, ["smoke"]).startswith("no verdict")


def test_image_noise_is_the_standard_error_from_the_test_images():
    rng = np.random.default_rng(3)
    seeds = [0, 1, 2]
    dense = xr.DataArray(rng.random((3, 400)) < 0.8, dims=("seed", "image"), coords={"seed": seeds})
    sparse = xr.DataArray(rng.random((3, 400)) < 0.8, dims=("seed", "image"), coords={"seed": seeds})
    se = book.image_noise(sparse, dense)
    d = (sparse.astype(float) - dense.astype(float)).mean("seed")
    assert abs(se - float(d.std(ddof=1)) / np.sqrt(400)) < 0.3 * se
    assert book.image_noise(dense, dense) == 0.0


# --- files and the front page ---------------------------------------------------------------------
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


def test_summary_lists_verdicts_and_table3_beside_the_papers(tmp_path):
    plan = _plan(tmp_path)
    book.save_verdict(plan, "DST beats dense", "reproduced (better 3/3)", "mlp")
    best = {"rigl": {"sparsity": 0.3, "accuracy": 0.7123, "verdict": "better", "diff": 0.004, "mdd": 0.003}}
    book.save_table3(plan, [book.table3_row(plan, "Fashion-MNIST, 18 corruptions", 0.70, best, "reproduced")])
    text = book.summary(plan.params["results"])
    assert "| [overall](sections/overall.ipynb) | DST beats dense | reproduced (better 3/3) | mlp |" in text
    assert "| [spectral](sections/spectral.ipynb) | | not run | |" in text
    assert "| Fashion-MNIST, 18 corruptions | mlp | 2 | 70.00 | 71.23 at 0.3: better (+0.40, MDD 0.30) |" in text
    assert "| CIFAR10-C | VGG16 | 73.32 | 0.4 | 73.64 | 73.47 | 73.32 |" in text and "NaN" not in text
    smoke_row = book.table3_row(plan, "x", 0.7, best, "no verdict: smoke run (tiny)")
    assert smoke_row["methods"]["rigl"]["verdict"] == "no verdict" and "smoke run" in smoke_row["evidence"]
    # a tie whose design cannot see 2 pp is no verdict; a detected difference stands whatever its MDD
    cells = {"rigl": dict(best["rigl"], verdict="no detectable difference", mdd=0.025),
             "set": dict(best["rigl"], verdict="worse", diff=-0.04, mdd=0.025)}
    row = book.table3_row(plan, "x", 0.7, cells, "not reproduced (...)")
    assert row["methods"]["rigl"]["verdict"] == "no verdict" and row["methods"]["set"]["verdict"] == "worse"
    out = tmp_path / "s.md"
    assert book.main(["summary", plan.params["results"], str(out)]) == 0 and out.read_text() == text
    assert book.main(["bogus"]) == 2


def test_page_header_and_files_never_show_the_builders_paths(tmp_path):
    plan = _plan(tmp_path)
    for text in (book.header(plan), book.files_note(plan), book.parameters_table("overall", plan.params)):
        assert str(tmp_path) not in text and "/tmp/" not in text
    assert "| `profile` | `\"smoke\"` | `\"quick\"` |" in book.parameters_table("overall", plan.params)
    quick = book.validate("overall", quick_params("overall"))
    assert book.parameters_table("overall", quick).startswith("All parameters at their defaults")
    assert "papermill notebooks/overall.ipynb book/sections/overall.ipynb -f params/smoke/overall.yaml" in \
        book.files_note(plan)


def test_provenance_names_versions_commit_and_run_hashes(tmp_path):
    p = book.validate("overall", smoke_params("overall", tmp_path, methods=["set"], train_subset=64, n_test=8))
    plan = book.plan("overall", p, verbose=False)
    runs = book.train(plan, progress=False)
    text = book.provenance(plan, runs)
    assert "git commit" in text and "torch " in text and "xarray " in text and str(tmp_path) not in text
    for run in runs.values():
        assert run.spec.hash() in text and run.id in text


def test_tidy_hides_the_parameter_cells(tmp_path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("a = 2", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(a)")]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert book.main(["tidy", str(path)]) == 0
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert tags == [["parameters", "remove-cell"], ["injected-parameters", "remove-cell"], []]
