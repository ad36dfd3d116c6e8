"""A section's runs: the specs its parameters give, what they cost, and how they are scaled to a budget.

Runs of a section: dense, and each method at each sparsity, for every seed
(`specs`); the augmentation section adds a mixup twin of each. Sections that
look at one sparsity use `P["sparsity"]`. A profile's `recipes.yaml`
(`params.profile_recipes`) adds the RunSpec fields of its recipe for the
section's model and dataset (augmentation, classifier, MEST's bound, LR
schedule, ...) and the epochs the spectral section keeps snapshots of.

Cost model (`estimate`, seconds on this project's 2-core CPU, one thread per
worker process, measured with nothing else running): training costs
`TRAIN_S_PER_IMAGE[model]` per image and epoch for the quick profile's models;
any other model 3 x its inference FLOPs (dstlib.flops), dense layers at
`FLOPS_PER_S` and grouped (depthwise) convolutions at `GROUPED_FLOPS_PER_S`;
inference a third of training. The runs are spread over `workers` processes.

Scaling: when the estimate exceeds `budget_minutes`, `plan` shrinks the
training and test subsets by one factor, then epochs, severities, methods,
sparsities and seeds, and sets the topology update interval so that every
sparse run still makes `evidence.MIN_UPDATES` updates; where that is
impossible it refuses with a one-line error instead of training static masks.
A scaled plan never supports a verdict (`Plan.shortfalls` says why).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from dstlib import config
from dstlib.book import evidence, params as params_mod
from dstlib.config import RunSpec

#: seconds per training image (or clip) and epoch, one thread, measured here (dense, channels-last for lenet5;
#: cnn3d: 8-frame 20-px clips)
TRAIN_S_PER_IMAGE = {"lenet300_100": 1.8e-5, "lenet5": 7.5e-5, "mlp": 1.2e-4, "cnn": 9e-4, "cnn3d": 2.0e-4}
#: seconds to make one corrupted clip, one thread, averaged over the 16 video corruptions (20-px clips of 8
#: frames; other sizes scale with their pixels)
CORRUPT_S_PER_CLIP = 6e-5
FLOPS_PER_S = 6e10              # dense convolutions and linear layers, training, one thread
GROUPED_FLOPS_PER_S = 3e9       # grouped / depthwise convolutions (and the small ops around them)
SPARSE_OVERHEAD = 1.1           # masks and topology updates, on average over the methods
MIN_TRAIN_SUBSET = 128
MIN_N_TEST = 32


@dataclass
class Plan:
    """A section's parameters (after scaling), its run specs, the estimate and why it cannot support a verdict."""

    section: str
    params: dict[str, Any]
    specs: list[RunSpec]
    estimate_s: float
    scale: float = 1.0
    notes: list[str] = field(default_factory=list)
    shortfalls: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def results_dir(self) -> Path:
        return params_mod.results_dir(self.section, self.params)

    @property
    def store(self):
        from dstlib.store import Store
        return Store(params_mod.store_dir(self.params))

    @property
    def workers(self) -> int:
        return workers(self.params, len(self.specs))

    def spec(self, method: str, sparsity: float, seed: int, **changes: Any) -> RunSpec:
        """The run spec of (method, sparsity, seed) in this plan (sparsity ignored for dense)."""
        return base_spec(self.params, method, sparsity, seed, **changes)


def workers(p: Mapping[str, Any], n_runs: int) -> int:
    """Worker processes: `workers`, else one per CPU core on the CPU and one on a GPU; at most one per run."""
    if p["workers"]:
        n = p["workers"]
    else:
        n = 1 if p["device"] != "cpu" else (os.cpu_count() or 1)
    return max(1, min(n, n_runs))


def base_spec(p: Mapping[str, Any], method: str, sparsity: float, seed: int, **changes: Any) -> RunSpec:
    """The RunSpec a section's parameters give for one (method, sparsity, seed)."""
    fields = dict(model=p["model"], dataset=p["dataset"], widths=tuple(p["widths"]), seed=seed,
                  epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], method=method,
                  train_subset=p["train_subset"] or None, monitor_size=p["n_test"] or None)
    method, options = config.method_of(method)
    fields["method"] = method
    recipe = config.recipe_for(params_mod.profile_recipes(p["profile"]), p["model"], p["dataset"])
    if recipe is not None:
        fields.update(recipe["spec"])
    fields.update({k: p[k] for k in ("weight_decay", "augmentation") if k in p})  # sections that set them win
    if method != "dense":
        fields.update(sparsity=float(sparsity), distribution=p["distribution"], update_interval=p["update_interval"],
                      **options)
    if p.get("_snapshots"):
        fields["snapshots"] = snapshot_epochs(p)
    fields.update(changes)
    return RunSpec(**fields)


def snapshot_epochs(p: Mapping[str, Any]) -> tuple[int, ...]:
    """The epochs after which the spectral section's runs keep weights and masks: the recipe's
    `snapshot_epochs` up to the last epoch, and the last; without a recipe, every epoch."""
    recipe = config.recipe_for(params_mod.profile_recipes(p["profile"]), p["model"], p["dataset"])
    if recipe is None or not recipe["snapshot_epochs"]:
        return tuple(range(1, p["epochs"] + 1))
    return tuple(sorted({e for e in recipe["snapshot_epochs"] if e <= p["epochs"]} | {p["epochs"]}))


def section_sparsities(p: Mapping[str, Any]) -> list[float]:
    return list(p["sparsities"]) if "sparsities" in p else [p["sparsity"]]


def specs(section: str, p: Mapping[str, Any]) -> list[RunSpec]:
    """Every run the section needs: dense and each method x sparsity, for each seed (mixup twins for augmentation).

    Runs that the profile's spectral section will also use keep its snapshots (`snapshot_epochs`) from the
    start, whichever section trains them first: adding them to a finished run costs a replay of it (`dstlib.store`).
    """
    out = []
    for seed in p["seeds"]:
        out.append(base_spec(p, "dense", 0.0, seed))
        for m in p["methods"]:
            for s in section_sparsities(p):
                out.append(base_spec(p, m, s, seed))
    if section == "augmentation":
        out += [s.replace(mixup=p["mixup"]) for s in list(out)]
    if section != "spectral":
        shared = _spectral_snapshots(p["profile"])
        out = [s.replace(snapshots=shared[s.hash()]) if s.hash() in shared else s for s in out]
    return out


def _spectral_snapshots(profile: str) -> dict[str, tuple[int, ...]]:
    """{hash: snapshot epochs} of the runs the profile's spectral section trains."""
    sp = params_mod.profile_params("spectral", profile)
    if sp is None:
        return {}
    return {s.hash(): s.snapshots for s in specs("spectral", dict(sp, _snapshots=True))}


def sharing_sections(section: str, p: Mapping[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """{run hash: [(other section, its parameters), ...]}: the profile's other sections that use a run of this
    one, so that the worker training the run also prepares their per-run results (the spectral section's
    curves of the runs the corruptions section trains). Empty for a custom run (parameters not the profile's):
    it should not pay for sections it may never build. Store, device and workers come from `p`."""
    if params_mod.profile_params(section, p["profile"]) is None or any(
            k not in params_mod.NOT_RESULTS for k in params_mod.changed(section, p)):
        return {}
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for other in config.SECTIONS:
        q = params_mod.profile_params(other, p["profile"]) if other != section else None
        if q is None:
            continue
        q = dict(q, **{k: p[k] for k in ("store", "device", "workers") if k in p})
        for s in specs(other, dict(q, _snapshots=snapshot_rule(other, q))):
            out.setdefault(s.hash(), []).append((other, q))
    return out


def snapshot_rule(section: str, p: Mapping[str, Any]) -> bool:
    """Keep a snapshot after every epoch for the spectral section (its during-training curves)."""
    return section == "spectral"


def _model_costs(p: Mapping[str, Any]) -> tuple[float, float]:
    """(train seconds per image-epoch, inference seconds per image) for one thread."""
    if p["model"] in TRAIN_S_PER_IMAGE and not p["widths"]:
        t = TRAIN_S_PER_IMAGE[p["model"]]
        return t, t / 3
    from dstlib import data, flops, models
    info = data.info(p["dataset"])
    with torch.random.fork_rng(devices=[]):
        net = models.create(p["model"], info, widths=tuple(p["widths"]))
    size = (info.channels, info.image_size, info.image_size)
    rows = flops.layer_costs(net, size if info.frames == 1 else (info.channels, info.frames, *size[1:]))
    grouped = {f"{n}.weight" for n, m in net.named_modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)) and m.groups > 1}
    g = sum(2 * r["numel"] * r["positions"] for r in rows if r["param"] in grouped)
    f = sum(2 * r["numel"] * r["positions"] for r in rows) - g
    infer = f / FLOPS_PER_S + g / GROUPED_FLOPS_PER_S
    return 3 * infer, infer


def _eval_images(section: str, p: Mapping[str, Any], n_test: int) -> float:
    """Inference passes (images, or clips) the section's analysis makes per model."""
    n_corr = len(p["corruptions"]) or (16 if section == "video" else 18)
    per_grid = n_test * (1 + n_corr * len(p["severities"]))
    return {
        "overall": per_grid, "corruptions": per_grid, "cost": per_grid, "augmentation": per_grid,
        "topology": per_grid + 10_000,  # and Fashion-MNIST-C's 10,000 images
        "video": per_grid,
        "spatial": 0,
        "spectral": n_test * 2 * len(p.get("radii", [])) * p["epochs"],
        "gradcam": p.get("n_images", 0) * 4 * (1 + len(p["severities"])),
        "ood": n_test * (1 + len(p.get("renditions", []))),
    }[section]


def estimate(section: str, p: Mapping[str, Any], store=None) -> dict[str, float]:
    """Seconds to train the runs `store` lacks (all if None) and to evaluate every run, spread over the workers."""
    from dstlib import data
    train_s, infer_s = _model_costs(p)
    every = specs(section, p)
    todo = [s for s in every if store is None or not store.is_finished(s)]
    n_train = (p["train_subset"] or len(data.load(p["dataset"], "train"))) if todo else 0
    n_test = p["n_test"] or len(data.load(p["dataset"], "test"))
    per_run = [(n_train * train_s * (1 if s.method == "dense" else SPARSE_OVERHEAD) + n_test * infer_s) * s.epochs
               for s in todo]
    evaluate = _eval_images(section, p, n_test) * infer_s * len(every) + _corrupt_clips_s(section, p, n_test)
    n = workers(p, len(every))
    train = sum(per_run) / n
    return {"train_s": train, "eval_s": evaluate / n, "total_s": train + evaluate / n, "runs_to_train": len(todo),
            "runs": len(every), "workers": n}


def _corrupt_clips_s(section: str, p: Mapping[str, Any], n_test: int) -> float:
    """Seconds to make the video section's corrupted test clips once (the image sections' cost is in the noise)."""
    if section != "video":
        return 0.0
    from dstlib import data
    info = data.info(p["dataset"])
    pixels = info.frames * info.channels * info.image_size ** 2 / (8 * 20 * 20)
    return n_test * (len(p["corruptions"]) or 16) * len(p["severities"]) * CORRUPT_S_PER_CLIP * pixels


def plan(section: str, p: Mapping[str, Any], *, verbose: bool = True) -> Plan:
    """The section's runs; scaled down (never to static masks) when the estimate exceeds the budget.

    The scaling uses the cost of the whole section (not what the store already holds), so the run specs are
    the same on every call.
    """
    from dstlib import data
    p = dict(p)
    p["_snapshots"] = snapshot_rule(section, p)
    notes = []
    full = estimate(section, p)
    scale = 1.0
    budget = p["budget_minutes"] * 60
    if budget and full["total_s"] > budget:
        scale = budget / full["total_s"]
        full_epochs = p["epochs"]
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
        _keep_topology_updates(section, p, notes)
    n_full = len(data.load(p["dataset"], "train"))
    out = Plan(section, p, specs(section, p), 0.0, scale, notes,
               evidence.training_shortfalls(specs(section, p), n_full))
    est = estimate(section, p, out.store)
    out.estimate_s = est["total_s"]
    out.description = describe(out, est)
    if verbose:
        print(out.description)
    return out


def _keep_topology_updates(section: str, p: dict, notes: list[str]) -> None:
    """Shorten the update interval of a scaled plan so every sparse run keeps MIN_UPDATES updates, or refuse."""
    from dstlib import data
    n = p["train_subset"] or len(data.load(p["dataset"], "train"))
    sparse = [s for s in specs(section, p) if s.method not in evidence.NOT_DYNAMIC]
    if not sparse:
        return
    fewest = lambda: min(evidence.planned_updates(s.replace(update_interval=p["update_interval"]), n) for s in sparse)
    before = p["update_interval"]
    while p["update_interval"] > 1 and fewest() < evidence.MIN_UPDATES:
        p["update_interval"] = max(1, p["update_interval"] * 2 // 3)
    if fewest() < evidence.MIN_UPDATES:
        steps = p["epochs"] * evidence.steps_per_epoch(n, p["batch_size"])
        raise ValueError(f"budget_minutes={p['budget_minutes']:g} leaves {steps} optimiser steps per run, too few "
                         f"for {evidence.MIN_UPDATES} topology updates even at update_interval=1; allowed: a larger "
                         f"budget_minutes, budget_minutes=0 (no scaling), or a smaller batch_size")
    if p["update_interval"] != before:
        notes.append(f"To keep at least {evidence.MIN_UPDATES} topology updates per sparse run: "
                     f"update_interval {before} -> {p['update_interval']} steps.")


def describe(plan: Plan, est: Mapping[str, float]) -> str:
    """The plan and its estimate in a few lines (printed before training, shown first on the page)."""
    p = plan.params
    lines = list(plan.notes)
    lines.append(f"{plan.section}: {est['runs']} runs ({est['runs_to_train']} to train, {est['workers']} at a time), "
                 f"model {p['model']}, {p['train_subset'] or 'all'} training images x {p['epochs']} epochs, "
                 f"{p['n_test'] or 'all'} test images. Estimate on this project's 2-core CPU: training "
                 f"{est['train_s'] / 60:.1f} min, evaluation at most {est['eval_s'] / 60:.1f} min "
                 f"(less where evaluations are stored).")
    lines += _published_sets(plan.section, p)
    return "\n".join(lines)


def _published_sets(section: str, p: Mapping[str, Any]) -> list[str]:
    """Which corrupted test images are the published ones found under $DSTLIB_DATA (none: nothing said)."""
    from dstlib import data
    from dstlib.book import measure
    from dstlib.data import official
    if section not in measure.ROBUSTNESS_SECTIONS:
        return []
    info = data.info(p["dataset"])
    out = []
    for suite in measure.suites(section, p):
        names = (measure.corruptions_of(p, info) if suite == "common"
                 else list(measure.evaluate_suite_names(info, suite)))
        note = official.note(p["dataset"], names, suite)
        if note:
            out.append(note)
    return out
