"""Section plumbing shared by the book's notebooks: parameters -> runs -> results -> findings.

A section notebook does, one call each:

    P = book.validate("spectral", globals())    # one-line error before any compute
    plan = book.plan("spectral", P)             # run specs, scaled to budget_minutes; prints the estimate
    runs = book.train(plan)                     # load or train every run through dstlib.store (progress bars)
    ... one analysis call (book.robustness_table, book.spectral_curves, ...) -> xarray.Dataset
    book.save(ds, plan, "name"); book.save_figure(fig, plan, "name")   # results/<profile>/, atomic
    book.findings_*(...) -> Markdown generated from the numbers
    book.provenance(plan, runs) -> Markdown: versions, git commit, run hashes

Runs of a section: dense, and each method at each sparsity, for every seed
(`specs`). Sections that look at one sparsity use `P["sparsity"]`. The
training seed is the unit of replication: every verdict is
`dstlib.stats.compare` over seeds, paired (every method uses the same seeds),
and states its minimum detectable difference (MDD, 80% power).

Cost model of `estimate` (seconds on the project's 2-core CPU, uncontended,
2 threads, the figures measured for the quick profile): training costs
TRAIN_S_PER_IMAGE[model] per image and epoch for `mlp` and `cnn` (measured in
a quick-profile build); any other model 3 x its inference FLOPs (dstlib.flops),
dense layers at FALLBACK_FLOPS_PER_S and grouped (depthwise) convolutions at
GROUPED_FLOPS_PER_S; inference likewise with the *_INFER_* rates. Measured
on the idle machine, 2 threads, 28-px inputs (train batch 64, inference
256): ResNet-50 2.0e11 / 1.3e11 FLOP/s, VGG16 3.5e11 / 3.8e11,
EfficientNet-B0 4.6e10 / 7.3e10 overall, 8.5% of its FLOPs depthwise; the
rates are set so that each of these errs long rather than short;
for mlp and cnn inference costs a third of training. Each epoch of a
run also evaluates the section's first n_test test images (the runs'
`monitor_size`, history's test_acc). SHARED_FACTOR
multiplies everything: the machine is shared. `plan` shrinks `train_subset`
and `n_test` by one factor when the estimate exceeds `budget_minutes`.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import io as _io
import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from dstlib import config
from dstlib.config import RunSpec

# seconds per training image and epoch, measured in the first quick-profile build on this machine (2 threads,
# median epoch time in the runs' histories: mlp 1.4 s per 10,000 images, cnn 12 s per 6,000, dense and sparse
# alike); about twice the bare-loop figures (4 s and 50 s per 60,000 images)
TRAIN_S_PER_IMAGE = {"mlp": 1.4e-4, "cnn": 2.0e-3}
FALLBACK_FLOPS_PER_S = 1.5e11       # dense convolutions and linear layers, training
FALLBACK_INFER_FLOPS_PER_S = 1.2e11
GROUPED_FLOPS_PER_S = 5e9           # grouped / depthwise convolutions (and the small ops around them)
GROUPED_INFER_FLOPS_PER_S = 1.2e10
SHARED_FACTOR = 2.0
MIN_TRAIN_SUBSET = 128
MIN_N_TEST = 32
PACKAGES = ("dstlib", "torch", "numpy", "xarray", "scipy", "timm", "captum", "matplotlib", "papermill",
            "jupyter-book")


# --- parameters ---------------------------------------------------------------------------------
def validate(section: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The section's parameters from `params` (e.g. a notebook's globals()), checked through dstlib.config.

    Also checks the model name against the registry and that the dataset's
    files are there (FileNotFoundError naming where to put them), before any compute.
    """
    import dstlib.corruptions as dc
    from dstlib.data import ood

    p = config.check_notebook_params(section, params, {"corruptions": tuple(dc.NAMES),
                                                       "renditions": tuple(ood.RENDITIONS)})
    from dstlib import models
    models.check_name(p["model"])
    if p["model"] not in models.names() and p["widths"]:
        raise ValueError(f"widths={p['widths']!r} is invalid for timm model {p['model']!r}; allowed: []")
    _check_data(p["dataset"])
    if p["device"] != "cpu" and p["device"].startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={p['device']!r} is invalid here (no CUDA device); allowed: cpu")
    return p


def _check_data(dataset: str) -> None:
    from dstlib import data
    try:
        data.load(dataset, "test")
    except FileNotFoundError as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise FileNotFoundError(f"dataset={dataset!r} needs local files ({first}); allowed without local data: "
                                f"fashion_mnist; see the book's page on reproducing at paper scale") from None


# --- plan: the runs of a section, scaled to the budget ---------------------------------------
@dataclass
class Plan:
    section: str
    params: dict[str, Any]
    specs: list[RunSpec]
    estimate_s: float
    scale: float = 1.0
    notes: list[str] = field(default_factory=list)

    @property
    def results_dir(self) -> Path:
        return Path(self.params["results"] or Path("results") / self.params["profile"])

    @property
    def store(self):
        from dstlib.store import Store
        return Store(self.params["store"] or None)

    def spec(self, method: str, sparsity: float, seed: int, **changes: Any) -> RunSpec:
        """The run spec of (method, sparsity, seed) in this plan (sparsity ignored for dense)."""
        return base_spec(self.params, method, sparsity, seed, **changes)


def base_spec(p: Mapping[str, Any], method: str, sparsity: float, seed: int, **changes: Any) -> RunSpec:
    """The RunSpec a section's parameters give for one (method, sparsity, seed)."""
    fields = dict(model=p["model"], dataset=p["dataset"], widths=tuple(p["widths"]), seed=seed,
                  epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], method=method,
                  train_subset=p["train_subset"] or None, monitor_size=p["n_test"] or None)
    if method != "dense":
        fields.update(sparsity=float(sparsity), distribution=p["distribution"], update_interval=p["update_interval"])
    if p.get("_snapshots"):
        fields["snapshots"] = tuple(range(1, p["epochs"] + 1))
    fields.update(changes)
    return RunSpec(**fields)


def section_sparsities(section: str, p: Mapping[str, Any]) -> list[float]:
    return list(p["sparsities"]) if "sparsities" in p else [p["sparsity"]]


def specs(section: str, p: Mapping[str, Any]) -> list[RunSpec]:
    """Every run the section needs: dense and each method x sparsity, for each seed (mixup twins for augmentation)."""
    out = []
    for seed in p["seeds"]:
        out.append(base_spec(p, "dense", 0.0, seed))
        for m in p["methods"]:
            for s in section_sparsities(section, p):
                out.append(base_spec(p, m, s, seed))
    if section == "augmentation":
        out += [s.replace(mixup=p["mixup"]) for s in list(out)]
    return out


def _model_costs(p: Mapping[str, Any]) -> tuple[float, float]:
    """(train seconds per image-epoch, inference seconds per image), uncontended, before SHARED_FACTOR."""
    if p["model"] in TRAIN_S_PER_IMAGE and not p["widths"]:
        t = TRAIN_S_PER_IMAGE[p["model"]]
        return t, t / 3
    from dstlib import data, flops, models
    info = data.info(p["dataset"])
    with torch.random.fork_rng(devices=[]):
        net = models.create(p["model"], info, widths=tuple(p["widths"]))
    rows = flops.layer_costs(net, (info.channels, info.image_size, info.image_size))
    grouped = {f"{n}.weight" for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    g = sum(2 * r["numel"] * r["positions"] for r in rows if r["param"] in grouped)
    f = sum(2 * r["numel"] * r["positions"] for r in rows) - g
    return (3 * (f / FALLBACK_FLOPS_PER_S + g / GROUPED_FLOPS_PER_S),
            f / FALLBACK_INFER_FLOPS_PER_S + g / GROUPED_INFER_FLOPS_PER_S)


def _eval_images(section: str, p: Mapping[str, Any], n_test: int, n_models: int) -> float:
    """Inference passes (images) the section's analysis makes, summed over models."""
    n_corr = len(p["corruptions"]) or 18
    per_model = {
        "overall": n_test * (1 + n_corr * len(p["severities"])),
        "corruptions": n_test * (1 + n_corr * len(p["severities"])),
        "cost": n_test * (1 + n_corr * len(p["severities"])),
        "spatial": 0,
        "spectral": n_test * 2 * len(p.get("radii", [])) * p["epochs"],
        "gradcam": p.get("n_images", 0) * 4 * (1 + len(p["severities"])),
        "ood": n_test * (1 + len(p.get("renditions", []))),
        "augmentation": n_test * (1 + n_corr * len(p["severities"])),
    }[section]
    return per_model * n_models


def estimate(section: str, p: Mapping[str, Any], store=None) -> dict[str, float]:
    """Seconds to train the runs `store` lacks (all if None) and to evaluate, on the reference CPU x SHARED_FACTOR."""
    from dstlib import data
    train_s, infer_s = _model_costs(p)
    todo = [s for s in specs(section, p) if store is None or not store.is_finished(s)]
    n_train = p["train_subset"] or len(data.load(p["dataset"], "train")) if todo else 0
    # dstlib.train evaluates the first n_test test images after every epoch (history's test_acc)
    n_monitor = (p["n_test"] or len(data.load(p["dataset"], "test"))) if todo else 0
    train = sum((n_train * train_s + n_monitor * infer_s) * s.epochs for s in todo) * SHARED_FACTOR
    n_test = p["n_test"] or 10_000
    evaluate = _eval_images(section, p, n_test, len(specs(section, p))) * infer_s * SHARED_FACTOR
    return {"train_s": train, "eval_s": evaluate, "total_s": train + evaluate, "runs_to_train": len(todo),
            "runs": len(specs(section, p))}


def plan(section: str, p: Mapping[str, Any], *, verbose: bool = True) -> Plan:
    """The section's runs; train_subset and n_test scaled down by one factor when the estimate exceeds the budget.

    The scaling uses the cost of the whole section (not what the store
    already holds), so the run specs are the same on every call.
    """
    p = dict(p)
    p["_snapshots"] = _snapshot_rule(section, p)
    notes = []
    full = estimate(section, p)
    scale = 1.0
    full_epochs = p["epochs"]
    budget = p["budget_minutes"] * 60
    if budget and full["total_s"] > budget:
        scale = budget / full["total_s"]
        from dstlib import data
        n_train = p["train_subset"] or len(data.load(p["dataset"], "train"))
        n_test = p["n_test"] or len(data.load(p["dataset"], "test"))
        p["train_subset"] = max(MIN_TRAIN_SUBSET, int(n_train * scale))
        p["n_test"] = max(MIN_N_TEST, int(n_test * scale))
        notes.append(f"The full setting would take about {full['total_s'] / 60:.0f} min here, over the budget of "
                     f"{p['budget_minutes']:g} min: train_subset {n_train} -> {p['train_subset']}, "
                     f"n_test {n_test} -> {p['n_test']}.")
        while p["epochs"] > 1 and estimate(section, p)["total_s"] > budget:
            p["epochs"] -= 1
        if p["epochs"] != full_epochs:
            notes.append(f"Still over the budget at the smallest subsets: epochs {full_epochs} -> {p['epochs']}.")
        for name, smaller in (("severities", lambda v: [v[len(v) // 2]]), ("methods", lambda v: v[:1]),
                              ("sparsities", lambda v: [v[len(v) // 2]]), ("seeds", lambda v: v[:2])):
            if name in p and len(p[name]) > 1 and estimate(section, p)["total_s"] > budget:
                notes.append(f"Still over the budget: {name} {p[name]} -> {smaller(p[name])}.")
                p[name] = smaller(p[name])
        left = estimate(section, p)["total_s"]
        if left > budget:
            notes.append(f"Even so the estimate is {left / 60:.0f} min: this model is too costly for the budget here.")
    out = Plan(section, p, specs(section, p), 0.0, scale, notes)
    est = estimate(section, p, out.store)
    out.estimate_s = est["total_s"]
    if verbose:
        for n in notes:
            print(n)
        print(f"{section}: {est['runs']} runs ({est['runs_to_train']} to train), model {p['model']}, "
              f"{p['train_subset'] or 'all'} training images x {p['epochs']} epochs, n_test {p['n_test'] or 'all'}. "
              f"Estimate on a 2-core CPU shared with one other job: training {est['train_s'] / 60:.1f} min, "
              f"evaluation at most {est['eval_s'] / 60:.1f} min (less where evaluations are stored).")
    return out


# --- runs ------------------------------------------------------------------------------------
def train(plan: Plan, *, progress: bool = True) -> dict[str, Any]:
    """{spec short id: Run}: load or train every run of the plan through the store."""
    runs = {}
    store = plan.store
    todo = [s for s in plan.specs if not store.is_finished(s)]
    if todo and not plan.params["train"]:
        s = todo[0]
        raise LookupError(f"train=False and run {s.short_id()} ({s.method}, sparsity {s.sparsity}, seed {s.seed}) "
                          f"is not in {store.root}; allowed: train=True, or a store holding it")
    for i, spec in enumerate(plan.specs):
        if progress and not store.is_finished(spec):
            print(f"training run {spec.short_id()}: {spec.method} sparsity {spec.sparsity:g} seed {spec.seed}", flush=True)
        runs[spec.short_id()] = store.run(spec, train=True, device=plan.params["device"], progress=progress)
    return runs


def run_of(plan: Plan, runs: Mapping[str, Any], method: str, sparsity: float, seed: int, **changes):
    return runs[plan.spec(method, sparsity, seed, **changes).short_id()]


def test_set(plan: Plan):
    """(the test ImageSet, n) for the plan's n_test."""
    from dstlib import data
    ds = data.load(plan.params["dataset"], "test")
    n = min(plan.params["n_test"] or len(ds), len(ds))
    return ds, n


def corruptions_of(plan: Plan, info) -> list[str]:
    """The plan's corruptions; empty means the dataset's benchmark set (without saturate on gray images)."""
    import dstlib.corruptions as dc
    from dstlib import evaluate
    if plan.params["corruptions"]:
        return list(plan.params["corruptions"])
    names = list(evaluate.default_corruptions(info))
    return [c for c in names if c in dc.GRAY_NAMES] if info.channels == 1 else names


class CorruptedImages:
    """Corrupted copies of the first n test images, generated once and shared by every model.

    A pure function of (dataset, corruption, severity, image index, seed):
    `dstlib.corruptions.corrupt_as_saved` with the dataset's table and index =
    image positions, so the images are the very ones `evaluate.robustness`
    would generate (JPEG-85 round trip for the tiny and imagenet tables). Kept in memory
    and in `<store>/_corrupted/<key>.safetensors` (written atomically).
    """

    def __init__(self, ds, n: int, corruptions: Sequence[str], severities: Sequence[int], seed: int, root: Path):
        self.ds, self.n, self.seed, self.table = ds, n, seed, ds.info.corruption_table
        self.corruptions, self.severities = list(corruptions), list(severities)
        import dstlib.corruptions as dc
        ident = hashlib.sha256(ds.images[:n].numpy().tobytes()).hexdigest()[:16]
        # a fingerprint of the corruption code's output on a few images: cached copies and the evaluations
        # keyed by `name` are not reused after a change to dstlib.corruptions
        h, probe = hashlib.sha256(), ds.images[:min(4, n)]
        for c in self.corruptions:
            for s in self.severities:
                h.update(dc.corrupt_as_saved(probe, c, s, seed=seed, table=self.table,
                                             index=torch.arange(len(probe))).numpy().tobytes())
        self.name = f"dstlib.corruptions seed={seed} data={ident} code={h.hexdigest()[:12]}"
        self.folder = Path(root) / "_corrupted"
        self._cache: dict = {}

    def _path(self, c: str, s: int) -> Path:
        key = hashlib.sha256(f"{self.name}|{c}|{s}|{self.n}".encode()).hexdigest()[:16]
        return self.folder / f"{key}.safetensors"

    def __call__(self, corruption: str, severity: int) -> torch.Tensor:
        import dstlib.corruptions as dc
        from safetensors.torch import load_file, save
        from dstlib import io
        if (corruption, severity) in self._cache:
            return self._cache[corruption, severity]
        path = self._path(corruption, severity)
        if path.is_file():
            x = load_file(path)["images"]
        else:
            parts = []
            for st in range(0, self.n, 512):
                x0 = self.ds.images[st:min(self.n, st + 512)]
                parts.append(dc.corrupt_as_saved(x0, corruption, severity, seed=self.seed, table=self.table,
                                                 index=torch.arange(st, st + len(x0))))
            x = torch.cat(parts)
            self.folder.mkdir(parents=True, exist_ok=True)
            io.atomic_save_bytes(path, save({"images": x.contiguous()}))
        self._cache[corruption, severity] = x
        return x


def robustness(plan: Plan, runs: Mapping[str, Any], keys: Sequence[tuple], *, progress: bool = True) -> xr.Dataset:
    """Robustness of the runs named by `keys` [(method, sparsity, seed, changes dict), ...], stacked on dim `run`.

    Evaluations are cached in each run's folder (dstlib.evaluate). Variables:
    accuracy (run, corruption, severity), clean_accuracy (run), robustness_accuracy (run).
    """
    from dstlib import evaluate
    from tqdm.auto import tqdm
    ds, n = test_set(plan)
    corr = corruptions_of(plan, ds.info)
    images = CorruptedImages(ds, n, corr, plan.params["severities"], 0, plan.store.root)
    parts = []
    for key in tqdm(keys, desc="evaluating", disable=not progress):
        method, sparsity, seed, changes = key
        run = run_of(plan, runs, method, sparsity, seed, **changes)
        r = evaluate.robustness(run, ds, corr, plan.params["severities"], seed=0, n_test=n, benchmark=images,
                                benchmark_name=images.name, progress=False, device=plan.params["device"])
        parts.append(r[["accuracy", "clean_accuracy", "robustness_accuracy"]])
    return xr.concat(parts, dim="run")


def grid(plan: Plan, runs: Mapping[str, Any], sparsities: Sequence[float] | None = None, **changes) -> xr.Dataset:
    """Robustness over (method, sparsity, seed) for the sparse runs and (seed) for dense, as one Dataset.

    Sparse variables: accuracy (method, sparsity, seed, corruption, severity), clean_accuracy and
    robustness_accuracy (method, sparsity, seed); dense ones are prefixed `dense_` with dims (seed, ...).
    """
    p = plan.params
    sps = list(sparsities if sparsities is not None else section_sparsities(plan.section, p))
    keys = [("dense", 0.0, s, changes) for s in p["seeds"]]
    keys += [(m, sp, s, changes) for m in p["methods"] for sp in sps for s in p["seeds"]]
    r = robustness(plan, runs, keys)
    nd = len(p["seeds"])
    seed_dim = xr.DataArray(list(p["seeds"]), dims="seed", name="seed")
    dense = r.isel(run=slice(0, nd)).drop_vars("run", errors="ignore").rename(run="seed").assign_coords(seed=list(p["seeds"]))
    i = nd
    per_method = []
    for m in p["methods"]:
        per_sp = []
        for sp in sps:
            per_sp.append(r.isel(run=slice(i, i + nd)).drop_vars("run", errors="ignore").rename(run="seed")
                          .assign_coords(seed=list(p["seeds"])))
            i += nd
        per_method.append(xr.concat(per_sp, dim=xr.DataArray(sps, dims="sparsity", name="sparsity")))
    sparse = xr.concat(per_method, dim=xr.DataArray(list(p["methods"]), dims="method", name="method"))
    out = sparse.copy()
    for v in ("accuracy", "clean_accuracy", "robustness_accuracy"):
        out[f"dense_{v}"] = dense[v]
    return out.transpose("method", "sparsity", "seed", ...)


def verdicts(sparse: xr.DataArray, dense: xr.DataArray, confidence: float) -> xr.Dataset:
    """dstlib.stats.compare of sparse (method, sparsity, seed, ...) against dense (seed, ...), paired by seed."""
    from dstlib import stats
    return stats.compare(sparse, dense, dim="seed", paired=True, confidence=confidence)


def win_tie_loss(v: xr.Dataset) -> "Any":
    """Per method: verdicts counted over the other dims, mean difference, smallest and largest MDD (pandas)."""
    import pandas as pd
    rows = []
    for m in v["method"].values:
        vm = v.loc[dict(method=m)]
        verdict = np.asarray(vm["verdict"].values).ravel()
        rows.append({"method": str(m), "wins": int((verdict == "better").sum()),
                     "ties": int((verdict == "no detectable difference").sum()),
                     "losses": int((verdict == "worse").sum()),
                     "mean difference (pp)": round(100 * float(vm["diff"].mean()), 2),
                     "MDD range (pp)": f"{100 * float(vm['mdd'].min()):.2f}-{100 * float(vm['mdd'].max()):.2f}"})
    return pd.DataFrame(rows).set_index("method")


def verdict_sentence(v: xr.Dataset, what: str) -> str:
    """One sentence per (method, sparsity...) cell is too many; summarise the verdict counts and MDDs in Markdown."""
    verdict = np.asarray(v["verdict"].values).ravel()
    n = verdict.size
    better, worse = int((verdict == "better").sum()), int((verdict == "worse").sum())
    tie = n - better - worse
    conf = v.attrs.get("confidence", 0.95)
    mdd = 100 * np.asarray(v["mdd"].values).ravel()
    mdd = mdd[np.isfinite(mdd)]
    mdd_txt = (f"{mdd.min():.2f} to {mdd.max():.2f} percentage points" if mdd.size else "not computable")
    return (f"Of {n} comparisons of {what} against dense training ({int(v['n_a'])} paired seeds, "
            f"{conf:.0%} intervals), sparse training was **better in {better}**, **worse in {worse}**, and showed "
            f"**no detectable difference in {tie}**. With this many seeds a true difference had to be about "
            f"{mdd_txt} to be detected with 80% power, so a tie means only that any difference is smaller than "
            f"that, not that there is none.")


# --- analyses of the other sections ---------------------------------------------------------------
def energy(plan: Plan) -> xr.DataArray:
    """High-frequency energy each corruption adds (dstlib.spectral), on the plan's test images (at most 500)."""
    from dstlib import spectral
    ds, n = test_set(plan)
    return spectral.high_frequency_energy(ds.images[:min(n, 500)], corruptions_of(plan, ds.info),
                                          plan.params["severities"])


def spectral_curves(plan: Plan, runs: Mapping[str, Any], *, progress: bool = True) -> xr.Dataset:
    """Radius-accuracy (model, seed, epoch, band, radius) for dense and each method at P['sparsity'], every snapshot."""
    from dstlib import spectral
    from tqdm.auto import tqdm
    p = plan.params
    ds, n = test_set(plan)
    models = ["dense"] + list(p["methods"])
    rows = []
    for m in tqdm(models, desc="radius-accuracy", disable=not progress):
        per_seed = []
        for seed in p["seeds"]:
            run = run_of(plan, runs, m, p["sparsity"], seed)
            per_seed.append(_cached_curves(run, ds, p["radii"], n, p["device"]))
        rows.append(xr.concat(per_seed, dim=xr.DataArray(list(p["seeds"]), dims="seed", name="seed")))
    acc = xr.concat(rows, dim=xr.DataArray(models, dims="model", name="model"))
    return xr.Dataset({"accuracy": acc}, attrs={"max_radius": spectral.max_radius(*ds.images.shape[-2:]), "n_test": n})


def _cached_curves(run, ds, radii, n: int, device: str) -> xr.DataArray:
    """Radius-accuracy of every snapshot of `run`, cached as <run>/eval/spectral_<key>.nc (key: run, radii, images)."""
    from dstlib import io, spectral
    key = hashlib.sha256(json.dumps({"run": run.id, "radii": [float(r) for r in radii], "n": n,
                                     "data": hashlib.sha256(ds.images[:n].numpy().tobytes()).hexdigest(),
                                     "labels": ds.labels[:n].tolist(), "version": 1}).encode()).hexdigest()[:16]
    path = Path(run.path) / "eval" / f"spectral_{key}.nc"
    if path.is_file():
        return load(path)["accuracy"]
    r = spectral.radius_accuracy_during_training(run, ds, radii, n_test=n, progress=False, device=device)
    acc = r["accuracy"].astype(float)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_save_bytes(path, bytes(acc.to_dataset(name="accuracy").to_netcdf(engine="scipy")))
    return acc


def attenuated_examples(plan: Plan, radii: Sequence[float], index: int = 0) -> xr.DataArray:
    """One test image attenuated at each radius and band (the paper's Figure 6 illustration), pixels in [0, 1]."""
    from dstlib import spectral
    ds, _ = test_set(plan)
    x = ds.images[index:index + 1].float() / 255
    out = np.stack([np.stack([spectral.attenuate(x, float(r), b)[0, 0].numpy() for r in radii])
                    for b in spectral.BANDS])
    return xr.DataArray(out, dims=("band", "radius", "y", "x"), coords={"band": list(spectral.BANDS),
                                                                        "radius": [float(r) for r in radii]})


def spatial_stats(plan: Plan, runs: Mapping[str, Any]) -> tuple[xr.Dataset, dict]:
    """(summary (model, seed, layer), {model: kernels Dataset of seed 0's last conv layer})."""
    from dstlib import spatial
    p = plan.params
    models = ["dense"] + list(p["methods"])
    rows, heat = [], {}
    for m in models:
        per_seed = []
        for seed in p["seeds"]:
            run = run_of(plan, runs, m, p["sparsity"], seed)
            net, masks = run.model(), run.masks
            layers = spatial.conv_layers(net)
            if not layers:
                raise ValueError(f"model={p['model']!r} has no convolution layer; allowed: a convolutional model "
                                 "(cnn, vgg16, resnet34, a timm CNN)")
            per_seed.append(spatial.summary(net, masks=masks))
            if seed == p["seeds"][0]:
                heat[m] = spatial.kernels(net, layers[-1], masks.get(f"{layers[-1]}.weight"))
        rows.append(xr.concat(per_seed, dim=xr.DataArray(list(p["seeds"]), dims="seed", name="seed")))
    return xr.concat(rows, dim=xr.DataArray(models, dims="model", name="model")), heat


def gradcam_maps(plan: Plan, runs: Mapping[str, Any], corruption: str) -> xr.Dataset:
    """Grad-CAM maps (model, seed, severity, image, y, x) on clean (severity 0) and corrupted test images; attention area."""
    from dstlib import gradcam
    p = plan.params
    ds, _ = test_set(plan)
    k = p["n_images"]
    clean = ds.images[:k]
    images = {0: clean}
    import dstlib.corruptions as dc
    for s in p["severities"]:
        images[s] = dc.corrupt(clean, corruption, s, seed=0, index=torch.arange(k))
    models = ["dense"] + list(p["methods"])
    per_model = []
    for m in models:
        per_seed = []
        for seed in p["seeds"]:
            net = run_of(plan, runs, m, p["sparsity"], seed).model()
            per_sev = [gradcam.cams(net, images[s], ds.info).drop_vars("prediction") for s in images]
            per_seed.append(xr.concat(per_sev, dim=xr.DataArray(list(images), dims="severity", name="severity")))
        per_model.append(xr.concat(per_seed, dim=xr.DataArray(list(p["seeds"]), dims="seed", name="seed")))
    maps = xr.concat(per_model, dim=xr.DataArray(models, dims="model", name="model"))
    pix = xr.DataArray(torch.stack([images[s] for s in images]).numpy()[:, :, 0],
                       dims=("severity", "image", "y", "x"), coords={"severity": list(images)})
    return xr.Dataset({"gradcam": maps, "attention_area": gradcam.attention_area(maps), "pixels": pix},
                      attrs={"corruption": corruption})


def ood_accuracy(plan: Plan, runs: Mapping[str, Any]) -> xr.Dataset:
    """Accuracy (method, sparsity, seed, shift) and dense (seed, shift) on the clean test set and each rendition."""
    from dstlib import evaluate
    from dstlib.data import ood
    p = plan.params
    ds, n = test_set(plan)
    base = ds.subset(torch.arange(n))
    sets = {"clean": base, **ood.renditions(base, p["renditions"])}

    def acc(run):
        net = run.model()
        return xr.DataArray([float(evaluate.accuracy(net, s, progress=False)["accuracy"]) for s in sets.values()],
                            dims="shift", coords={"shift": list(sets)})
    dense = xr.concat([acc(run_of(plan, runs, "dense", 0.0, s)) for s in p["seeds"]],
                      dim=xr.DataArray(list(p["seeds"]), dims="seed", name="seed"))
    sparse = xr.concat([xr.concat([xr.concat([acc(run_of(plan, runs, m, sp, s)) for s in p["seeds"]],
                                             dim=xr.DataArray(list(p["seeds"]), dims="seed", name="seed"))
                                   for sp in p["sparsities"]], dim=xr.DataArray(list(p["sparsities"]), dims="sparsity", name="sparsity"))
                        for m in p["methods"]], dim=xr.DataArray(list(p["methods"]), dims="method", name="method"))
    return xr.Dataset({"accuracy": sparse, "dense_accuracy": dense})


def costs(plan: Plan, runs: Mapping[str, Any]) -> xr.Dataset:
    """Parameters, inference FLOPs (under the final masks) and training FLOPs (ours and the paper's rule) per run."""
    from dstlib import data, flops
    p = plan.params
    info = data.info(p["dataset"])
    size = (info.channels, info.image_size, info.image_size)
    n_train = p["train_subset"] or len(data.load(p["dataset"], "train"))
    models = [("dense", 0.0)] + [(m, s) for m in p["methods"] for s in p["sparsities"]]
    rows = {k: [] for k in ("params", "inference_flops", "training_flops", "paper_training_flops")}
    for m, sp in models:
        per = {k: [] for k in rows}
        for seed in p["seeds"]:
            run = run_of(plan, runs, m, sp, seed)
            net = run.model()
            c = flops.count(net, size, run.masks)
            tr = flops.training(net, size, run.history, samples_per_epoch=n_train, batch_size=p["batch_size"])
            density = 1.0 if m == "dense" else 1 - sp
            per["params"].append(c["params"])
            per["inference_flops"].append(c["flops"])
            per["training_flops"].append(tr["flops"])
            per["paper_training_flops"].append(flops.paper_training(m, c["dense_flops"], n_train, p["epochs"], density))
        for k in rows:
            rows[k].append(per[k])
    coords = {"model": [f"{m} {sp:g}" if m != "dense" else "dense" for m, sp in models], "seed": list(p["seeds"])}
    ds = xr.Dataset({k: (("model", "seed"), np.asarray(v, dtype=float)) for k, v in rows.items()}, coords=coords)
    ds = ds.assign_coords(method=("model", [m for m, _ in models]), sparsity=("model", [sp for _, sp in models]))
    return ds


# --- saving -------------------------------------------------------------------------------------
def save(ds: xr.Dataset | xr.DataArray, plan: Plan, name: str) -> Path:
    """Write `ds` as netCDF (scipy engine, no HDF5 needed) to results/<profile>/<section>_<name>.nc, atomically."""
    from dstlib import io
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or name)
    ds = ds.copy()
    for k, v in list(ds.coords.items()):
        if v.dtype == object:
            ds = ds.assign_coords({k: v.astype(str)})
    for k, v in list(ds.data_vars.items()):
        if v.dtype == object or v.dtype.kind == "U":
            ds[k] = v.astype("S")
        if v.dtype == bool:
            ds[k] = v.astype("i1")
        elif v.dtype.kind == "u":  # netCDF3 has no unsigned types
            ds[k] = v.astype("i2" if v.dtype.itemsize == 1 else "i8")
    ds.attrs = {k: (json.dumps(v) if not isinstance(v, (str, int, float)) else v) for k, v in ds.attrs.items()}
    ds.attrs["params"] = json.dumps({k: v for k, v in plan.params.items() if not k.startswith("_")})
    path = plan.results_dir / f"{plan.section}_{name}.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_save_bytes(path, bytes(ds.to_netcdf(engine="scipy")))
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    return xr.load_dataset(_io.BytesIO(Path(path).read_bytes()), engine="scipy")


def save_figure(fig, plan: Plan, name: str) -> Path:
    """Save a matplotlib figure as results/<profile>/<section>_<name>.png, atomically."""
    from dstlib import io
    path = plan.results_dir / f"{plan.section}_{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    io.atomic_save_bytes(path, buf.getvalue())
    return path


def save_verdict(plan: Plan, claim: str, verdict: str, detail: str) -> Path:
    """Record the section's one-line verdict (read by `summary`) as results/<profile>/<section>_verdict.json."""
    from dstlib import io
    path = plan.results_dir / f"{plan.section}_verdict.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_save_text(path, json.dumps({"section": plan.section, "claim": claim, "verdict": verdict,
                                          "detail": detail}, indent=1))
    return path


def summary(results_dir: str | os.PathLike, link_prefix: str = "sections/") -> str:
    """Markdown table of the sections' verdicts found in `results_dir` (in the book's section order)."""
    rows = ["| section | the paper's claim | at this scale | detail |", "|---|---|---|---|"]
    found = 0
    for s in config.SECTIONS:
        path = Path(results_dir) / f"{s}_verdict.json"
        if not path.is_file():
            rows.append(f"| [{s}]({link_prefix}{s}.ipynb) | | not run | |")
            continue
        v = json.loads(path.read_text())
        found += 1
        rows.append(f"| [{s}]({link_prefix}{s}.ipynb) | {v['claim']} | {v['verdict']} | {v['detail']} |")
    return "\n".join(rows) + "\n"


# --- provenance ------------------------------------------------------------------------------
def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, cwd=Path(__file__).resolve().parent)
        if out.returncode == 0:
            return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown (not a git checkout)"


def provenance(plan: Plan, runs: Mapping[str, Any]) -> str:
    """Markdown: package versions, git commit, machine, parameters and the hash of every run used."""
    versions = []
    for pkg in PACKAGES:
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    lines = ["**Provenance.**", "",
             f"- git commit: `{_git_commit()}`",
             f"- packages: {', '.join(versions)}; python {platform.python_version()}",
             f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, device `{plan.params['device']}`, "
             f"torch threads {torch.get_num_threads()}",
             f"- parameters: `{json.dumps({k: v for k, v in plan.params.items() if not k.startswith('_')})}`",
             f"- results: `{plan.results_dir}`",
             *(f"- scaled to the budget: {n}" for n in plan.notes),
             "", "| run | method | sparsity | seed | mixup | spec hash (sha256) |", "|---|---|---|---|---|---|"]
    for run in runs.values():
        s = run.spec
        lines.append(f"| `{run.id}` | {s.method} | {s.sparsity if s.method != 'dense' else 0:g} | {s.seed} | "
                     f"{s.mixup:g} | `{s.hash()}` |")
    return "\n".join(lines)


def markdown(text: str):
    """Display `text` as Markdown in the notebook (and in the built book)."""
    from IPython.display import Markdown
    return Markdown(text)


def pp(x: float) -> str:
    """A fraction as percentage points with two decimals."""
    return f"{100 * float(x):.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dstlib.book summary RESULTS_DIR OUT.md`: write the verdict table the introduction includes."""
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "summary":
        print("usage: python -m dstlib.book summary RESULTS_DIR OUT.md", file=sys.stderr)
        return 2
    from dstlib import io
    Path(args[2]).parent.mkdir(parents=True, exist_ok=True)
    io.atomic_save_text(Path(args[2]), summary(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def status(v: xr.Dataset, claim: str = "better") -> str:
    """A short verdict over all comparisons in `v`: reproduced / contradicted / not reproduced at this scale.

    `claim`: the paper's direction, "better" (sparse - dense > 0) or "worse" (e.g. a smaller Grad-CAM area).
    Reproduced: the claimed direction in more than half of the comparisons and the opposite in none.
    """
    config.check_choice("claim", claim, ("better", "worse"))
    verdict = np.asarray(v["verdict"].values).ravel()
    n, better, worse = verdict.size, int((verdict == "better").sum()), int((verdict == "worse").sum())
    if claim == "worse":
        better, worse = worse, better
    mdd = 100 * np.asarray(v["mdd"].values, dtype=float).ravel()
    mdd = mdd[np.isfinite(mdd)]
    counts = (f"as claimed {better}/{n}, opposite {worse}/{n}" if claim == "worse"
              else f"better {better}/{n}, worse {worse}/{n}")
    power = f"; detectable difference {mdd.min():.2f}-{mdd.max():.2f} pp" if mdd.size else ""
    if better > n / 2 and worse == 0:
        return f"reproduced ({counts}{power})"
    if worse > n / 2 and better == 0:
        return f"contradicted ({counts}{power})"
    return f"not reproduced at this scale ({counts}{power})"


def _snapshot_rule(section: str, p: Mapping[str, Any]) -> bool:
    """Keep a snapshot after every epoch for spectral runs and for any model under 1 M parameters (<= 4 MB each)."""
    if section == "spectral":
        return True
    from dstlib import models
    with torch.random.fork_rng(devices=[]):
        net = models.create(p["model"], p["dataset"], widths=tuple(p["widths"]))
    return sum(t.numel() for t in net.parameters()) < 1_000_000


def rank_corruptions(energy: xr.DataArray) -> list[str]:
    from dstlib import spectral
    return spectral.rank_corruptions(energy)


def gain_energy_correlation(gain: xr.DataArray, energy: xr.DataArray) -> float:
    """Spearman rank correlation over corruptions between added high-frequency energy and mean relative gain."""
    from scipy.stats import spearmanr
    g = gain.mean([d for d in gain.dims if d != "corruption"])
    e = energy.mean([d for d in energy.dims if d != "corruption"]).loc[dict(corruption=g["corruption"])]
    if g.sizes["corruption"] < 3:
        return float("nan")
    return float(spearmanr(e.values, g.values).statistic)


def extreme(gain: xr.DataArray, largest: bool) -> str:
    """'corruption (method, +x.xx%)' with the largest (or smallest) seed- and severity-mean relative gain."""
    g = gain.mean([d for d in gain.dims if d not in ("corruption", "method")])
    flat = g.stack(k=("method", "corruption"))
    i = int(flat.argmax() if largest else flat.argmin())
    m, c = flat["k"].values[i]
    return f"{c} ({m}, {100 * float(flat[i]):+.2f}%)"


def concentration_sentence(summary: xr.Dataset, methods: Sequence[str]) -> str:
    """The measured empty-kernel fractions and Gini coefficients, dense against each method, as one sentence."""
    s = summary.mean(("seed", "layer"))
    parts = []
    for m in ["dense", *methods]:
        parts.append(f"{m}: {100 * float(s['empty_fraction'].loc[dict(model=m)]):.1f}% empty kernels "
                     f"(random placement: {100 * float(s['empty_fraction_random'].loc[dict(model=m)]):.1f}%), "
                     f"Gini over output channels {float(s['gini_out'].loc[dict(model=m)]):.2f}")
    return "Mean over seeds and layers, " + "; ".join(parts) + "."


def power_note(sparse: xr.DataArray, dense: xr.DataArray, difference: float = 0.005, confidence: float = 0.95) -> str:
    """How many paired seeds would detect `difference` (default 0.5 pp, a typical gain in the paper's Table 3).

    Uses the median over comparisons of the seed-to-seed standard deviation of sparse - dense and
    `dstlib.stats.seeds_needed` (80% power).
    """
    from dstlib import stats
    d = sparse - dense
    n = d.sizes["seed"]
    sd = float(np.nanmedian(np.asarray(d.std("seed", ddof=1).values, dtype=float)))
    if not np.isfinite(sd):
        return ""
    try:
        need = stats.seeds_needed(difference, sd, confidence=confidence)
        need_txt = f"about {need} paired seeds"
    except ValueError:
        need_txt = "more than 10,000 paired seeds"
    return (f"The seed-to-seed standard deviation of the paired difference was {100 * sd:.2f} pp (median over "
            f"comparisons); detecting a {100 * difference:.1f} pp difference with 80% power at {confidence:.0%} "
            f"confidence would take {need_txt} (`dstlib.stats.seeds_needed`); this page used {n}.")
