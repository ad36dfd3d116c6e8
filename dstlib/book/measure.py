"""The sections' measurements over a plan's runs, as xarray Datasets with named dims.

Every model of a section is evaluated on the very same images: the first
`n_test` test images, clean and under each corruption, generated once
(`CorruptedImages`) and shared, so comparisons are paired per image as well
as per seed. Per-run results are cached in the run's folder (dstlib.evaluate,
dstlib.spectral), so `prepare` can compute them in the worker process that
trained the run and the notebook only reads them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from dstlib.book.plan import Plan, section_sparsities


def run_of(plan: Plan, runs: Mapping[str, Any], method: str, sparsity: float, seed: int, **changes):
    return runs[plan.spec(method, sparsity, seed, **changes).short_id()]


def test_set(params: Mapping[str, Any]):
    """(the test set, n) for the parameters' n_test: an ImageSet, or a set decoded on access (ImageNet)."""
    from dstlib import data
    ds = data.load(params["dataset"], "test")
    return ds, min(params["n_test"] or len(ds), len(ds))


def images_of(ds, start: int, stop: int) -> torch.Tensor:
    """uint8 test images start:stop of an in-memory set or of one decoded on access."""
    from dstlib import evaluate
    return evaluate._batch(ds, start, stop)


def corruptions_of(params: Mapping[str, Any], info) -> list[str]:
    """The chosen corruptions; empty means the dataset's benchmark set (without saturate on gray images; the 16
    video corruptions for clips)."""
    import dstlib.corruptions as dc
    from dstlib import evaluate
    if params["corruptions"]:
        return list(params["corruptions"])
    names = list(evaluate.default_corruptions(info))
    if evaluate.is_video(info):
        return names
    return [c for c in names if c in dc.GRAY_NAMES] if info.channels == 1 else names


def evaluate_suite_names(info, suite: str) -> tuple[str, ...]:
    """The corruption names of a suite for a dataset (`dstlib.evaluate.default_corruptions`)."""
    from dstlib import evaluate
    return evaluate.default_corruptions(info, suite)


def _stack(parts: Sequence, name: str, values: Sequence):
    return xr.concat(list(parts), dim=xr.DataArray(list(values), dims=name, name=name))


class CorruptedImages:
    """Corrupted copies of the first n test images, generated once and shared by every model.

    A pure function of (dataset, corruption, severity, image index, seed):
    `dstlib.corruptions.corrupt_as_saved` with the dataset's table and index =
    image positions, so the images are the very ones `evaluate.robustness`
    would generate (JPEG-85 round trip for the tiny and imagenet tables). Kept in memory
    and in `<store>/_corrupted/<key>.safetensors` (written atomically), generated on `device`.

    Where the published set is under $DSTLIB_DATA (`dstlib.data.official`), its
    images are used for the corruptions it has (`official`), in test-set order.
    A test set decoded on access (ImageNet) is not copied: the corruptions the
    published set lacks are generated batch by batch during each evaluation, on
    the model's device (`on_the_fly`), the same images again.
    """

    def __init__(self, ds, n: int, corruptions: Sequence[str], severities: Sequence[int], seed: int, root: Path,
                 suite: str = "common", device: str = "cpu"):
        import dstlib.corruptions as dc
        from dstlib import evaluate
        from dstlib.data import official
        self.ds, self.n, self.seed, self.suite, self.device = ds, n, seed, suite, device
        # C-bar has its own two tables, chosen by image size (CIFAR-10-C-bar's up to 84 px)
        self.table = (ds.info.corruption_table if suite == "common"
                      else dc.cbar.default_table(ds.info.image_size, ds.info.image_size))
        self.corruptions, self.severities = list(corruptions), list(severities)
        self.in_memory = hasattr(ds, "images")
        ident = (hashlib.sha256(ds.images[:n].numpy().tobytes()).hexdigest()[:16] if self.in_memory
                 else evaluate._identity(ds, n))
        # a fingerprint of the corruption code's output on a few images: cached copies and the evaluations
        # keyed by `name` are not reused after a change to dstlib.corruptions
        h = hashlib.sha256()
        for c in self.corruptions:
            for s in self.severities:
                h.update(self._make(c, s, 0, min(4, n)).numpy().tobytes())
        self.name = f"dstlib.corruptions suite={suite} seed={seed} data={ident} code={h.hexdigest()[:12]}"
        self.official_root = official.find(ds.info.name, suite)
        self.official = [c for c in self.corruptions if c in official.available(self.official_root)]
        if self.official:  # the evaluations' key: the published files are other images
            self.name += f" published={official.ARCHIVE_NAMES.get((ds.info.name, suite), 'set')}:" + ",".join(self.official)
        self.on_the_fly = [] if self.in_memory else [c for c in self.corruptions if c not in self.official]
        self.folder = Path(root) / "_corrupted"
        self._cache: dict = {}

    def to_generate(self) -> list[tuple[str, int]]:
        """The (corruption, severity) copies generated and kept in the store (in-memory test sets, no published copy)."""
        return [(c, s) for c in self.corruptions if c not in self.official and c not in self.on_the_fly
                for s in self.severities]

    @classmethod
    def of(cls, params: Mapping[str, Any], root: Path, suite: str = "common") -> "CorruptedImages | None":
        """The corrupted test images (or clips) a section's parameters call for (`suite` "cbar": the C-bar
        table's ten); None for clips too many to keep (each evaluation then makes the same clips itself,
        `run_robustness`)."""
        import dstlib.corruptions as dc
        from dstlib import evaluate
        ds, n = test_set(params)
        if evaluate.is_video(ds.info):
            return CorruptedClips.of(params, root)
        if suite == "cbar":
            table = dc.cbar.default_table(ds.info.image_size, ds.info.image_size)
            names = list(dc.cbar.LEVELS[table])
        else:
            names = corruptions_of(params, ds.info)
        return cls(ds, n, names, params["severities"], 0, root, suite, params.get("device", "cpu"))

    def _path(self, c: str, s: int) -> Path:
        key = hashlib.sha256(f"{self.name}|{c}|{s}|{self.n}".encode()).hexdigest()[:16]
        return self.folder / f"{key}.safetensors"

    chunk = 512  # images corrupted per call

    def _make(self, corruption: str, severity: int, start: int, stop: int, device: str = "cpu") -> torch.Tensor:
        """Images start..stop-1 corrupted on `device`, returned on the CPU."""
        import dstlib.corruptions as dc
        return dc.corrupt_as_saved(images_of(self.ds, start, stop).to(device), corruption, severity, seed=self.seed,
                                   table=self.table, index=torch.arange(start, stop)).cpu()

    def __call__(self, corruption: str, severity: int) -> torch.Tensor:
        from safetensors.torch import load_file, save
        from dstlib import io
        if (corruption, severity) in self._cache:
            return self._cache[corruption, severity]
        if corruption in self.official:
            from dstlib.data import official
            x = official.images(self.official_root, self.ds, corruption, severity, self.n)
            self._cache[corruption, severity] = x
            return x
        if corruption in self.on_the_fly:
            raise ValueError(f"corruption={corruption!r} of a test set decoded on access is generated during each "
                             f"evaluation; allowed here: {', '.join(c for c in self.corruptions if c not in self.on_the_fly)}")
        path = self._path(corruption, severity)
        if path.is_file():
            x = load_file(path)["images"]
        else:
            x = torch.cat([self._make(corruption, severity, st, min(self.n, st + self.chunk), self.device)
                           for st in range(0, self.n, self.chunk)])
            self.folder.mkdir(parents=True, exist_ok=True)
            io.atomic_save_bytes(path, save({"images": x.contiguous()}))
        self._cache[corruption, severity] = x
        return x


class CorruptedClips(CorruptedImages):
    """Corrupted copies of the first n test clips (`dstlib.corruptions.corrupt_video`, index = clip positions,
    temporal corruptions on the whole videos when `temporal` is "video"), generated once and shared by every
    model, as `CorruptedImages`: the very clips `evaluate.robustness` would make."""

    chunk = 256
    #: clips are kept only up to this many bytes in all (UCF101's would take hundreds of GB)
    MAX_BYTES = 2 << 30

    def __init__(self, ds, n: int, corruptions: Sequence[str], severities: Sequence[int], seed: int, root: Path,
                 temporal: str):
        import dstlib.corruptions as dc
        self.ds, self.n, self.seed, self.table, self.temporal = ds, n, seed, ds.info.corruption_table, temporal
        self.suite = "common"
        self.corruptions, self.severities = list(corruptions), list(severities)
        ident = hashlib.sha256(ds.images[:n].numpy().tobytes()).hexdigest()[:16]
        h, k = hashlib.sha256(), min(2, n)
        for c in self.corruptions:  # a fingerprint of the corruption code's output (see CorruptedImages)
            for s in self.severities:
                h.update(self._make(c, s, 0, k).numpy().tobytes())
        self.name = f"dstlib.corruptions.video seed={seed} temporal={temporal} data={ident} code={h.hexdigest()[:12]}"
        self.official, self.on_the_fly, self.device = [], [], "cpu"  # no published copy; every clip kept
        self.folder = Path(root) / "_corrupted"
        self._cache: dict = {}

    _made: dict = {}  # per process: the fingerprint costs a few hundred corruptions, and every job asks

    @classmethod
    def of(cls, params: Mapping[str, Any], root: Path, suite: str = "common") -> "CorruptedClips | None":
        ds, n = test_set(params)
        names = corruptions_of(params, ds.info)
        if ds.images[:1].numel() * n * len(names) * len(params["severities"]) > cls.MAX_BYTES:
            return None
        key = json.dumps([params["dataset"], n, names, list(params["severities"]), params["temporal"], str(root)])
        if key not in cls._made:
            cls._made[key] = cls(ds, n, names, params["severities"], 0, root, params["temporal"])
        return cls._made[key]

    def _make(self, corruption: str, severity: int, start: int, stop: int, device: str = "cpu") -> torch.Tensor:
        """Clips start..stop-1 corrupted, on the CPU whatever `device` (the whole-video corruptions decode there)."""
        from dstlib import evaluate
        held: list = []

        def videos():
            if not held:
                held.append(self.ds.videos(torch.arange(start, stop)))
            return held[0]
        return evaluate.corrupt_clips(self.ds.images[start:stop], torch.arange(start, stop), corruption, severity,
                                      self.seed, self.table, self.temporal, videos)


def clip_examples(plan: Plan, severity: int, index: int = 0) -> xr.DataArray:
    """One test clip, clean and under every corruption at `severity` (the shared clips where kept), as
    (corruption, frame, y, x, channel) pixels in [0, 1]; corruption "clean" first."""
    from dstlib import evaluate
    ds, n = test_set(plan.params)
    names = corruptions_of(plan.params, ds.info)
    shared = CorruptedImages.of(plan.params, plan.store.root)
    if shared is not None and severity in shared.severities:
        clips = [shared(c, severity)[index] for c in names]
    else:
        clips = [evaluate.corrupt_clips(ds.images[index:index + 1], torch.tensor([index]), c, severity, 0,
                                        ds.info.corruption_table, plan.params["temporal"],
                                        lambda: ds.videos([index]))[0] for c in names]
    x = torch.stack([ds.images[index]] + clips).permute(0, 1, 3, 4, 2).float().numpy() / 255
    return xr.DataArray(x, dims=("corruption", "frame", "y", "x", "channel"), coords={"corruption": ["clean", *names]},
                        attrs={"severity": severity, "label": int(ds.labels[index])})


# --- robustness -----------------------------------------------------------------------------------
ROBUSTNESS_SECTIONS = ("overall", "corruptions", "cost", "augmentation", "topology", "video")


def run_robustness(run, params: Mapping[str, Any], images: CorruptedImages | None) -> xr.Dataset:
    """dstlib.evaluate.robustness of one run on the section's shared images (cached in the run's folder); the
    corruptions generated during the evaluation (`CorruptedImages.on_the_fly`) in a second call, merged. With
    `images` None (clips too many to keep) the evaluation makes the same corrupted clips itself."""
    from dstlib import evaluate
    if images is None:
        ds, n = test_set(params)
        return evaluate.robustness(run, ds, corruptions_of(params, ds.info), params["severities"], seed=0, n_test=n,
                                   temporal=params["temporal"], batch_size=16, progress=False, device=params["device"])
    stored = [c for c in images.corruptions if c not in images.on_the_fly]
    parts = []
    if stored:
        parts.append(evaluate.robustness(run, images.ds, stored, images.severities, seed=0, n_test=images.n,
                                         benchmark=images, benchmark_name=images.name, progress=False,
                                         device=params["device"], suite=images.suite))
    if images.on_the_fly:
        parts.append(evaluate.robustness(run, images.ds, images.on_the_fly, images.severities, seed=images.seed,
                                         n_test=images.n, table=images.table, progress=False,
                                         device=params["device"], suite=images.suite))
    if len(parts) == 1:
        return parts[0]
    out = xr.concat([p[["correct", "accuracy"]] for p in parts], dim="corruption").sel(corruption=images.corruptions)
    for v in ("clean_correct", "clean_accuracy", "label"):
        out[v] = parts[0][v]
    out["robustness_accuracy"] = out["accuracy"].mean(("corruption", "severity"))
    return out


def over_runs(plan: Plan, runs: Mapping[str, Any], measure, sparsities: Sequence[float] | None = None,
              **changes) -> xr.Dataset:
    """`measure(run) -> Dataset` for every run of the plan, stacked: the sparse runs on (method, sparsity, seed),
    the dense ones on (seed) with every variable prefixed `dense_`."""
    p = plan.params
    sps = list(sparsities if sparsities is not None else section_sparsities(p))
    seeds = list(p["seeds"])
    dense = _stack([measure(run_of(plan, runs, "dense", 0.0, s, **changes)) for s in seeds], "seed", seeds)
    sparse = _stack([_stack([_stack([measure(run_of(plan, runs, m, sp, s, **changes)) for s in seeds], "seed", seeds)
                             for sp in sps], "sparsity", sps) for m in p["methods"]], "method", p["methods"])
    out = sparse.copy()
    for v in dense.data_vars:
        out[f"dense_{v}"] = dense[v]
    return out.transpose("method", "sparsity", "seed", ...)


ROBUSTNESS_VARS = ["correct", "clean_correct", "accuracy", "clean_accuracy", "robustness_accuracy"]


def grid(plan: Plan, runs: Mapping[str, Any], sparsities: Sequence[float] | None = None, suite: str = "common",
         **changes) -> xr.Dataset:
    """Robustness over (method, sparsity, seed) for the sparse runs and (seed) for dense, as one Dataset.

    Sparse variables: accuracy (method, sparsity, seed, corruption, severity), correct (..., image),
    clean_accuracy and robustness_accuracy (method, sparsity, seed); the dense ones are prefixed `dense_` with
    dims (seed, ...). `suite` "cbar": ImageNet-C-bar / CIFAR-10-C-bar instead of the common corruptions.
    """
    images = CorruptedImages.of(plan.params, plan.store.root, suite)
    return over_runs(plan, runs, lambda run: run_robustness(run, plan.params, images)[ROBUSTNESS_VARS],
                     sparsities, **changes)


def mnist_c_grid(plan: Plan, runs: Mapping[str, Any], sparsities: Sequence[float] | None = None) -> xr.Dataset:
    """Accuracy on Fashion-MNIST-C (Weiss and Tonella, the paper's Table 2 test set: one of 15 corruptions per
    image, all 10,000 test images) over the plan's runs, as `over_runs`: accuracy, accuracy_per_corruption,
    clean_accuracy and per-image correct."""
    return over_runs(plan, runs, lambda run: run_mnist_c(run, plan.params), sparsities)


def run_mnist_c(run, params: Mapping[str, Any]) -> xr.Dataset:
    """dstlib.evaluate.mnist_c_accuracy of one run (cached in the run's folder)."""
    from dstlib import evaluate
    r = evaluate.mnist_c_accuracy(run, "fashion_mnist", seed=0, progress=False, device=params["device"])
    return r[["accuracy", "accuracy_per_corruption", "clean_accuracy", "correct"]]


def energy(plan: Plan) -> xr.DataArray:
    """High-frequency energy each corruption adds (dstlib.spectral), on the plan's test images (at most 500)."""
    from dstlib import spectral
    ds, n = test_set(plan.params)
    return spectral.high_frequency_energy(images_of(ds, 0, min(n, 500)), corruptions_of(plan.params, ds.info),
                                          plan.params["severities"])


# --- spectral --------------------------------------------------------------------------------------
def run_curves(run, params: Mapping[str, Any]) -> xr.DataArray:
    """Radius-accuracy of every snapshot of `run`, cached as <run>/eval/spectral_<key>.nc."""
    from dstlib import io, spectral
    from dstlib.book.report import load
    ds, n = test_set(params)
    radii = params["radii"]
    key = hashlib.sha256(json.dumps({"run": run.id, "radii": [float(r) for r in radii], "n": n,
                                     "data": hashlib.sha256(ds.images[:n].numpy().tobytes()).hexdigest(),
                                     "labels": ds.labels[:n].tolist(), "version": 1}).encode()).hexdigest()[:16]
    path = Path(run.path) / "eval" / f"spectral_{key}.nc"
    if path.is_file():
        return load(path)["accuracy"]
    r = spectral.radius_accuracy_during_training(run, ds, radii, n_test=n, progress=False, device=params["device"])
    acc = r["accuracy"].astype(float)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_save_bytes(path, bytes(acc.to_dataset(name="accuracy").to_netcdf(engine="scipy")))
    return acc


def spectral_curves(plan: Plan, runs: Mapping[str, Any]) -> xr.Dataset:
    """Radius-accuracy (model, seed, epoch, band, radius) for dense and each method at P['sparsity'], every snapshot."""
    from dstlib import spectral
    p = plan.params
    ds, n = test_set(p)
    models = ["dense"] + list(p["methods"])
    acc = _stack([_stack([run_curves(run_of(plan, runs, m, p["sparsity"], seed), p) for seed in p["seeds"]],
                         "seed", p["seeds"]) for m in models], "model", models)
    return xr.Dataset({"accuracy": acc}, attrs={"max_radius": spectral.max_radius(*ds.images.shape[-2:]), "n_test": n})


def attenuated_examples(plan: Plan, radii: Sequence[float], index: int = 0) -> xr.DataArray:
    """One test image attenuated at each radius and band (the paper's Figure 6 illustration), pixels in [0, 1]."""
    from dstlib import spectral
    ds, _ = test_set(plan.params)
    x = images_of(ds, index, index + 1).float() / 255
    out = np.stack([np.stack([spectral.attenuate(x, float(r), b)[0, 0].numpy() for r in radii])
                    for b in spectral.BANDS])
    return xr.DataArray(out, dims=("band", "radius", "y", "x"), coords={"band": list(spectral.BANDS),
                                                                        "radius": [float(r) for r in radii]})


# --- spatial ---------------------------------------------------------------------------------------
SPATIAL_BASELINES = ("pruned", "random")


def baseline_masks(dense_net: torch.nn.Module, masks: Mapping[str, torch.Tensor], kind: str,
                   seed: int) -> dict[str, torch.Tensor]:
    """Masks with the same per-layer counts as `masks`, placed on the dense model's weights:
    "pruned" keeps the largest |w| of each layer (one-shot magnitude pruning), "random" places them at random."""
    from dstlib.config import derive_seed
    from dstlib.sparsity import masks as masklib
    weights = dict(dense_net.named_parameters())
    gen = torch.Generator().manual_seed(derive_seed(seed, "book.spatial.random"))
    out = {}
    for name, m in masks.items():
        w, k = weights[name].detach(), int(m.sum())
        out[name] = (masklib.top_k_mask(w.abs().float(), k) if kind == "pruned"
                     else masklib.random_mask(w.shape, k, gen)).bool()
    return out


def spatial_stats(plan: Plan, runs: Mapping[str, Any]) -> tuple[xr.Dataset, dict]:
    """(summary (model, seed, layer), {model: kernels Dataset of seed 0's last conv layer}).

    Models: dense, each method, and per method two baselines at the same per-layer counts built from the dense
    run of the same seed: `<method> pruned` (dense, one-shot magnitude-pruned) and `<method> random` (dense
    weights under a random mask). A dense network has no zeros, so DST is compared against these.
    """
    from dstlib import spatial
    p = plan.params
    names = ["dense"] + [f"{m}{suffix}" for m in p["methods"] for suffix in ("", " pruned", " random")]
    rows: dict[str, list] = {n: [] for n in names}
    heat = {}
    for seed in p["seeds"]:
        dense = run_of(plan, runs, "dense", 0.0, seed).model()
        layers = spatial.conv_layers(dense)
        rows["dense"].append(spatial.summary(dense))
        if seed == p["seeds"][0]:
            heat["dense"] = spatial.kernels(dense, layers[-1])
        for m in p["methods"]:
            run = run_of(plan, runs, m, p["sparsity"], seed)
            net, masks = run.model(), run.masks
            rows[m].append(spatial.summary(net, masks=masks))
            for kind in SPATIAL_BASELINES:
                bm = baseline_masks(dense, masks, kind, seed)
                rows[f"{m} {kind}"].append(spatial.summary(dense, masks=bm))
            if seed == p["seeds"][0]:
                heat[m] = spatial.kernels(net, layers[-1], masks.get(f"{layers[-1]}.weight"))
                bm = baseline_masks(dense, masks, "pruned", seed)
                heat[f"{m} pruned"] = spatial.kernels(dense, layers[-1], bm.get(f"{layers[-1]}.weight"))
    summary = _stack([_stack(rows[n], "seed", p["seeds"]) for n in names], "model", names)
    return summary, heat


# --- Grad-CAM, OOD, cost ---------------------------------------------------------------------------
def gradcam_maps(plan: Plan, runs: Mapping[str, Any], corruption: str) -> xr.Dataset:
    """Grad-CAM maps (model, seed, severity, image, y, x) on clean (severity 0) and corrupted test images; attention area."""
    import dstlib.corruptions as dc
    from dstlib import gradcam
    p = plan.params
    ds, _ = test_set(p)
    k = p["n_images"]
    clean = images_of(ds, 0, k)
    images = {0: clean}
    for s in p["severities"]:
        images[s] = dc.corrupt(clean, corruption, s, seed=0, index=torch.arange(k))
    models = ["dense"] + list(p["methods"])
    per_model = []
    for m in models:
        per_seed = []
        for seed in p["seeds"]:
            net = run_of(plan, runs, m, p["sparsity"], seed).model()
            per_sev = [gradcam.cams(net, images[s], ds.info).drop_vars("prediction") for s in images]
            per_seed.append(_stack(per_sev, "severity", list(images)))
        per_model.append(_stack(per_seed, "seed", p["seeds"]))
    maps = _stack(per_model, "model", models)
    pix = xr.DataArray(torch.stack([images[s] for s in images]).numpy()[:, :, 0],
                       dims=("severity", "image", "y", "x"), coords={"severity": list(images)})
    return xr.Dataset({"gradcam": maps, "attention_area": gradcam.attention_area(maps), "pixels": pix},
                      attrs={"corruption": corruption})


def ood_accuracy(plan: Plan, runs: Mapping[str, Any]) -> xr.Dataset:
    """Accuracy (method, sparsity, seed, shift) and dense (seed, shift) on the clean test set and each rendition."""
    from dstlib import evaluate
    from dstlib.data import ood
    p = plan.params
    ds, n = test_set(p)
    base = ds.subset(torch.arange(n))
    sets = {"clean": base, **ood.renditions(base, p["renditions"])}

    def acc(run):
        net = run.model()
        return xr.DataArray([float(evaluate.accuracy(net, s, progress=False)["accuracy"]) for s in sets.values()],
                            dims="shift", coords={"shift": list(sets)})
    seeds = p["seeds"]
    dense = _stack([acc(run_of(plan, runs, "dense", 0.0, s)) for s in seeds], "seed", seeds)
    sparse = _stack([_stack([_stack([acc(run_of(plan, runs, m, sp, s)) for s in seeds], "seed", seeds)
                             for sp in p["sparsities"]], "sparsity", p["sparsities"]) for m in p["methods"]],
                    "method", p["methods"])
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
    return ds.assign_coords(method=("model", [m for m, _ in models]), sparsity=("model", [sp for _, sp in models]))


# --- what a worker computes right after training a run --------------------------------------------
def suites(section: str, params: Mapping[str, Any]) -> list[str]:
    """The corruption suites a robustness section measures: the common ones, and C-bar where asked."""
    return ["common"] + (["cbar"] if params.get("cbar") else []) if section in ROBUSTNESS_SECTIONS else []


def prepare(section: str, params: Mapping[str, Any], run, store_root: Path) -> None:
    """Compute and cache the run's per-run results for `section`, so the notebook only reads them."""
    for suite in suites(section, params):
        run_robustness(run, params, CorruptedImages.of(params, store_root, suite))
    if section in ("overall", "corruptions", "topology") and params["dataset"] == "fashion_mnist":
        run_mnist_c(run, params)
    if section == "spectral":
        run_curves(run, params)
