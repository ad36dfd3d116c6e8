"""Parameter counts, inference FLOPs under masks, and training FLOPs of a run.

What is counted (`count`): the multiply-adds of every convolution (1-d, 2-d,
3-d, any groups) and every `nn.Linear`, each multiply-add counted as 2 FLOPs
(a bias add is folded into its multiply-add, as in the usual "2 x MACs"
convention). Normalisation, activations, pooling, residual additions, softmax
and matrix products that are not `nn.Linear` (attention scores) are not
counted; the input projections of an `nn.MultiheadAttention` are (its
`out_proj` is an `nn.Linear`). A weight that a mask switches off costs
nothing: a layer's FLOPs are 2 x (active weights) x (output positions), where
output positions are the spatial (or temporal) positions of a convolution's
output and the token positions of a linear layer's (or projection's) input.
One image, one forward pass. A model wrapped by DDP, DataParallel or
`torch.compile` is measured through the wrapper (its parameter names keep
the wrapper's prefix).

Two rules for training FLOPs, both stated so they can be told apart:

* `training` (ours, from a run's history): every sample costs 3 x the
  inference FLOPs at the densities of that step (forward, input gradient,
  weight gradient, each the cost of a forward pass: the rule of RigL, Evci et
  al. 2020, appendix H), with per-layer densities taken from the
  sparsifier's `log()` (`density/<param>` at the end of an epoch, scaled by
  `mean_density / density` for the epoch's mean; dense phases of AC/DC are
  logged at density 1 and cost dense FLOPs automatically); every step whose
  topology update used a dense gradient (`dense_grad_steps`, RigL-style
  growth) costs its batch the dense weight gradient on top: batch x
  (dense - sparse) inference FLOPs.
* `paper_training` (the paper's appendix A.3.2, Tables 5-8): 3 x inference
  FLOPs x training samples x epochs, scaled by a method factor: dense 1,
  static/SET/RigL the target density d (no extra for RigL's dense
  gradients), MEST its mean density d + b_s / (1 + 0.01) with b_s =
  soft_bound x d ("relative") or soft_bound ("absolute"), the sparsifier's
  MEST (the bound decays as (1 - t/L)^0.01 to 0 at the last update L, at
  the end of training; 1.099 d at the CIFAR settings, printed as 1.10 x
  SET; MEST's scripts, ending it at 75%, would give 1.074 d),
  AC/DC f_D + (1 - f_D) d with f_D = warmup + (1 - warmup - final) / 2 the
  fraction of training in dense phases, GraNet the mean density of its cubic
  schedule from the initial density to d over the first `prune_end` of
  training (this last rule is our reading; the paper does not state one).

`paper_tables()` applies the paper's rule to the dense inference FLOPs the
paper itself prints and sets the result beside every training-FLOPs cell of
Tables 5-7 (`PAPER_TABLES`). Where they part (checked in the tests):

* Tables 5-6 (VGG16 / CIFAR-10, ResNet34 / CIFAR-100): dense, SET/RigL,
  MEST and AC/DC agree to the printed two decimals (+-0.02) except Table 5's
  AC/DC at density 0.3 (0.89; the rule and the row's own trend give 0.96).
  The GraNet rows follow no stated rule: they sit at d + k (d_i - d) with
  k = 0.21 for d_i = 0.8 (density 0.4-0.7), and the density-0.3 cells need
  d_i = 1.0 (a dense start); the cubic schedule's mean gives k = 0.125.
* Table 7 (EfficientNet-B0 / Tiny-ImageNet; its InfFLOPs are printed as
  x10^9 but are x10^7, as its training column shows): every sparse row sits
  above density x dense (SET/RigL 0.333-0.717 of dense for d = 0.3-0.7, as
  if ~5% of the FLOPs stayed dense), its inference row is not f + (1 - f) d
  for any single f within rounding, and its parameter column repeats 2.68 M
  at densities 0.5 and 0.6. No accounting of the dense model's FLOPs reproduces it.

`from_run(run)` applies both rules to a stored run (anything with `.spec`
and `.history`, and `.model()` unless `model=` is given). Samples per epoch:
`spec.train_subset` if set, else the dataset's training-set size minus
`spec.val_size`; batch size: `spec.batch_size`; input size and training-set
size come from `INPUT_SIZES` and `TRAIN_IMAGES` (facts about the datasets,
kept here because this module imports no data code; override with
`input_size=` / `train_images=`).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from dstlib.wrappers import unwrap

_COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _mha_rows(mname: str, mod: nn.MultiheadAttention, args: tuple, kwargs: dict) -> list[dict]:
    """Rows of a MultiheadAttention's input projections for one call: q, k and v each over its own tokens
    (`rows`: the slice of a packed `in_proj_weight`)."""
    names = ("query", "key", "value")
    inputs = [args[i] if len(args) > i else kwargs[names[i]] for i in range(3)]
    e = mod.embed_dim
    dims = (e, mod.kdim, mod.vdim)
    tokens = [x.numel() // d for x, d in zip(inputs, dims)]
    base = f"{mname}." if mname else ""
    # out_proj is an nn.Linear, but called through its weight, not as a module: counted here
    out = [{"param": f"{base}out_proj.weight", "numel": e * e, "positions": tokens[0]}]
    if mod.in_proj_weight is not None:
        return out + [{"param": f"{base}in_proj_weight", "numel": e * d, "positions": t, "rows": (j * e, (j + 1) * e)}
                      for j, (d, t) in enumerate(zip(dims, tokens))]
    return out + [{"param": f"{base}{a}_proj_weight", "numel": e * d, "positions": t}
                  for a, d, t in zip("qkv", dims, tokens)]


def _check_input_size(input_size: Any) -> tuple[int, ...]:
    if (not isinstance(input_size, (tuple, list)) or len(input_size) == 0
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_size)):
        raise ValueError(f"input_size={input_size!r} is invalid; allowed: a tuple of positive ints "
                         "for one sample without the batch dim, e.g. (3, 32, 32)")
    return tuple(input_size)


def _check_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    if masks is None:
        return {}
    if not isinstance(masks, Mapping):
        raise ValueError(f"masks={type(masks).__name__} is invalid; allowed: a dict {{param name: bool tensor}} or None")
    params = dict(model.named_parameters())
    out = {}
    for name, m in masks.items():
        if name not in params:
            raise ValueError(f"masks key {name!r} is not a parameter of the model; "
                             f"allowed: names from model.named_parameters(), e.g. {next(iter(params), '')!r}")
        if tuple(m.shape) != tuple(params[name].shape):
            raise ValueError(f"masks[{name!r}] has shape {tuple(m.shape)}; allowed: the parameter's shape "
                             f"{tuple(params[name].shape)}")
        out[name] = m.detach().bool().cpu()
    return out


def layer_costs(model: nn.Module, input_size: tuple[int, ...]) -> list[dict]:
    """One row per counted layer: weight name, weight numel and output positions.

    Runs one forward pass of a zero batch of one sample (model in eval mode,
    restored afterwards). A layer called several times adds its positions.
    A packed MultiheadAttention projection has one row per q / k / v slice.
    """
    input_size = _check_input_size(input_size)
    wrapper = model
    model, prefix = unwrap(model)
    rows: dict[tuple, dict] = {}
    hooks = []
    mha_out = {f"{n}.out_proj" if n else "out_proj" for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    for mname, module in model.named_modules():
        if mname in mha_out:
            continue
        if isinstance(module, nn.MultiheadAttention):
            def mha_hook(mod, args, kwargs, out, mname=mname):
                for r in _mha_rows(prefix + mname, mod, args, kwargs):
                    key = (r["param"], r.get("rows"))
                    row = rows.setdefault(key, {**r, "positions": 0, "kind": "MultiheadAttention"})
                    row["positions"] += r["positions"]
            hooks.append(module.register_forward_hook(mha_hook, with_kwargs=True))
        elif isinstance(module, _COUNTED):
            key = prefix + (f"{mname}.weight" if mname else "weight")

            def hook(mod, inp, out, key=key):
                if isinstance(mod, nn.Linear):
                    positions = out.numel() // out.shape[-1]
                else:
                    positions = math.prod(out.shape[2:]) * out.shape[0]
                row = rows.setdefault((key, None), {"param": key, "numel": mod.weight.numel(), "positions": 0,
                                                    "kind": type(mod).__name__})
                row["positions"] += positions
            hooks.append(module.register_forward_hook(hook))
    p = next(model.parameters(), None)
    x = torch.zeros((1, *input_size), device=p.device if p is not None else "cpu",
                    dtype=p.dtype if p is not None and p.is_floating_point() else torch.float32)
    was_training = wrapper.training
    fast_path = torch.backends.mha.get_fastpath_enabled()
    try:
        model.eval()
        # the fused inference path of nn.TransformerEncoderLayer / MultiheadAttention skips their submodules
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.no_grad():
            model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
        for h in hooks:
            h.remove()
        wrapper.train(was_training)
    return list(rows.values())


def count(model: nn.Module, input_size: tuple[int, ...], masks: Mapping[str, torch.Tensor] | None = None) -> dict:
    """{"flops": inference FLOPs of one sample, "params": parameter count} under `masks`.

    `input_size` is one sample without the batch dim, e.g. (3, 32, 32).
    `masks` maps parameter names to bool tensors (False = pruned): pruned
    weights are neither counted as parameters nor as FLOPs. Also returns
    "dense_flops" and "dense_params" (the same model without masks).
    """
    masks = _check_masks(model, masks)
    rows = layer_costs(model, input_size)
    flops = dense_flops = 0
    for r in rows:
        if r["param"] in masks:
            m = masks[r["param"]]
            active = int((m[r["rows"][0]:r["rows"][1]] if "rows" in r else m).sum())
        else:
            active = r["numel"]
        flops += 2 * active * r["positions"]
        dense_flops += 2 * r["numel"] * r["positions"]
    seen, dense_params = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            dense_params += p.numel()
    params = dense_params - sum(int(m.numel() - m.sum()) for m in masks.values())
    return {"flops": flops, "params": params, "dense_flops": dense_flops, "dense_params": dense_params}


def _epoch_flops(rows: list[dict], entry: Mapping[str, float]) -> float:
    density = float(entry.get("density", 1.0))
    mean = float(entry.get("mean_density", density))
    scale = mean / density if density > 0 else 1.0
    total = 0.0
    for r in rows:
        d = entry.get(f"density/{r['param']}")
        d = 1.0 if d is None else min(1.0, float(d) * scale)
        total += 2 * r["numel"] * r["positions"] * d
    return total


def training(model: nn.Module, input_size: tuple[int, ...], history: Iterable[Mapping[str, float]], *,
             samples_per_epoch: int, batch_size: int) -> dict:
    """Training FLOPs of a run from its per-epoch history (our rule, module docstring).

    `history` is `Run.history`: one dict per epoch with the sparsifier's log
    keys (`density`, `mean_density`, `dense_grad_steps`, `density/<param>`);
    an entry without them (a dense run) counts as dense. Returns {"flops":
    total, "per_epoch": [...], "dense_flops": 3 x dense inference x samples x epochs}.
    """
    for name, v in (("samples_per_epoch", samples_per_epoch), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}={v!r} is invalid; allowed: a positive int")
    history = list(history)
    if not history or not all(isinstance(h, Mapping) for h in history):
        raise ValueError("history is invalid; allowed: a non-empty list of per-epoch dicts (Run.history)")
    rows = layer_costs(model, input_size)
    dense = sum(2 * r["numel"] * r["positions"] for r in rows)
    per_epoch = []
    for h in history:
        f = _epoch_flops(rows, h)
        extra = float(h.get("dense_grad_steps", 0.0)) * batch_size * (dense - f)
        per_epoch.append(3.0 * f * samples_per_epoch + max(extra, 0.0))
    return {"flops": float(sum(per_epoch)), "per_epoch": per_epoch,
            "dense_flops": 3.0 * dense * samples_per_epoch * len(history)}


#: The exponent of MEST's bound decay (dstlib.sparsity.schedules.POLYNOMIAL_POWER); the bound lasts the run.
MEST_BOUND_POWER = 0.01


def paper_factor(method: str, density: float, *, soft_bound: float = 0.1, soft_bound_mode: str = "relative",
                 initial_density: float | None = None, prune_end: float = 0.5, warmup: float = 0.1,
                 final: float = 0.15) -> float:
    """The paper's training-cost factor relative to dense training (module docstring)."""
    from dstlib.config import METHODS, check_choice

    check_choice("method", method, METHODS)
    if not 0 < density <= 1:
        raise ValueError(f"density={density!r} is invalid; allowed: a float in (0, 1]")
    if method == "dense":
        return 1.0
    if method in ("static", "set", "rigl", "chts"):
        return density
    if method in ("mest_r", "mest_g"):
        check_choice("soft_bound_mode", soft_bound_mode, ("relative", "absolute"))
        b_s = soft_bound * density if soft_bound_mode == "relative" else soft_bound
        return min(1.0, density + b_s / (1 + MEST_BOUND_POWER))
    if method == "acdc":
        f_dense = warmup + (1 - warmup - final) / 2
        return f_dense + (1 - f_dense) * density
    # granet: d(t) = d + (d_i - d)(1 - t/(prune_end T))^3 for t < prune_end T; mean of (1-s)^3 over s is 1/4
    d_i = initial_density if initial_density is not None else (0.8 if density < 0.8 else density + (1 - density) / 2)
    return density + (d_i - density) * prune_end / 4


def paper_training(method: str, inference_flops: float, samples_per_epoch: int, epochs: int,
                   density: float, **options: float) -> float:
    """The paper's training FLOPs: 3 x `inference_flops` (dense, one image) x samples x epochs x factor."""
    return 3.0 * inference_flops * samples_per_epoch * epochs * paper_factor(method, density, **options)


# The paper's appendix A.3.2 as printed: training FLOPs (in `unit`) per method at densities 0.3-0.7, the
# dense training and inference FLOPs (inference of one image), training images and epochs of each table.
PAPER_TABLES = {
    "table5": {"model": "vgg16", "dataset": "cifar10", "images": 50_000, "epochs": 160, "unit": 1e16,
               "dense": 1.51, "inference": 6.30e8,
               "rows": {"set": [0.46, 0.61, 0.76, 0.91, 1.06], "mest_r": [0.51, 0.67, 0.84, 1.00, 1.17],
                        "granet_r": [0.68, 0.73, 0.85, 0.97, 1.09], "acdc": [0.89, 1.03, 1.11, 1.19, 1.27]}},
    "table6": {"model": "resnet34", "dataset": "cifar100", "images": 50_000, "epochs": 160, "unit": 1e16,
               "dense": 5.57, "inference": 2.32e9,
               "rows": {"set": [1.68, 2.24, 2.79, 3.35, 3.90], "mest_r": [1.85, 2.46, 3.07, 3.68, 4.29],
                        "granet_r": [2.51, 2.68, 3.13, 3.63, 4.02], "acdc": [3.51, 3.80, 4.10, 4.39, 4.68]}},
    "table7": {"model": "efficientnet_b0", "dataset": "tiny_imagenet", "images": 100_000, "epochs": 100,
               "unit": 1e15, "dense": 1.98, "inference": 6.63e7,
               "rows": {"set": [0.66, 0.85, 1.04, 1.23, 1.42], "mest_r": [0.72, 0.92, 1.13, 1.34, 1.55],
                        "granet_r": [0.89, 1.02, 1.15, 1.32, 1.46], "acdc": [1.19, 1.30, 1.42, 1.53, 1.65]}},
}
PAPER_DENSITIES = (0.3, 0.4, 0.5, 0.6, 0.7)


def paper_tables(tolerance: float = 0.02):
    """The paper's rule against Tables 5-7 (module docstring): an xarray.Dataset with
    dims (table, method, density), variables `paper` and `rule` (training FLOPs in
    each table's unit; method "dense" at density 1.0 only) and `agrees`
    (|paper - rule| <= `tolerance`, in the table's unit; NaN where a cell is absent)."""
    import numpy as np
    import xarray as xr

    tables = list(PAPER_TABLES)
    methods = ["dense", "set", "mest_r", "granet_r", "acdc"]
    dens = [*PAPER_DENSITIES, 1.0]
    paper = np.full((len(tables), len(methods), len(dens)), np.nan)
    rule = paper.copy()
    for a, t in enumerate(tables):
        spec = PAPER_TABLES[t]
        cells = {("dense", 1.0): spec["dense"]}
        cells.update({(m, d): v for m, row in spec["rows"].items() for d, v in zip(PAPER_DENSITIES, row)})
        for (m, d), v in cells.items():
            b, c = methods.index(m), dens.index(d)
            paper[a, b, c] = v
            rule[a, b, c] = paper_training(m, spec["inference"], spec["images"], spec["epochs"], d) / spec["unit"]
    agrees = np.where(np.isnan(paper), np.nan, np.abs(paper - rule) <= tolerance + 1e-9)
    dims = ("table", "method", "density")
    return xr.Dataset({"paper": (dims, paper), "rule": (dims, rule), "agrees": (dims, agrees)},
                      coords={"table": tables, "method": methods, "density": dens},
                      attrs={"tolerance": tolerance, "unit": "each table's: 1e16 (5, 6), 1e15 (7)"})


# One image (C, H, W) and the number of official training images of each dataset `dstlib.data` reads.
INPUT_SIZES = {"fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32),
               "tiny_imagenet": (3, 64, 64), "imagenet": (3, 224, 224),
               "moving_fashion_mnist": (1, 8, 20, 20), "ucf101": (3, 8, 224, 224)}  # clips: (C, T, H, W)
TRAIN_IMAGES = {"fashion_mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000, "tiny_imagenet": 100_000,
                "imagenet": 1_281_167, "moving_fashion_mnist": 12_000, "ucf101": 9_537}  # UCF101: trainlist01


def samples_per_epoch(spec, train_images: int | None = None) -> int:
    """`spec.train_subset`, else the training-set size (`train_images`, default `TRAIN_IMAGES`) minus `spec.val_size`."""
    if spec.train_subset is not None:
        return int(spec.train_subset)
    total = TRAIN_IMAGES.get(spec.dataset) if train_images is None else train_images
    if total is None:
        raise ValueError(f"train_images=None is invalid for dataset {spec.dataset!r}; allowed: its number of "
                         f"training images (known: {', '.join(TRAIN_IMAGES)})")
    if isinstance(total, bool) or not isinstance(total, int) or total <= spec.val_size:
        raise ValueError(f"train_images={total!r} is invalid; allowed: an int > val_size ({spec.val_size})")
    return total - spec.val_size


def from_run(run, *, model: nn.Module | None = None, input_size: tuple[int, ...] | None = None,
             train_images: int | None = None) -> dict:
    """Training FLOPs of a run by both rules (module docstring).

    `run`: duck-typed, needs `.spec` (a RunSpec) and `.history`, and
    `.model()` unless `model` is given (only its layer shapes matter).
    Returns {"ours": our rule's total, "paper": the paper's rule, "dense":
    3 x dense inference x samples x epochs, "per_epoch": ours per epoch,
    "inference_flops": dense FLOPs of one image, "samples_per_epoch",
    "batch_size", "epochs", "density": the target density (1 for dense)}.
    Ours counts the logged epochs; the paper's rule `spec.epochs`.
    """
    spec, history = getattr(run, "spec", None), getattr(run, "history", None)
    if spec is None or history is None:
        raise ValueError(f"run is a {type(run).__name__}; allowed: an object with .spec and .history "
                         "(a dstlib.store.Run)")
    if model is None:
        if not callable(getattr(run, "model", None)):
            raise ValueError("model=None is invalid for a run without .model(); allowed: the run's nn.Module")
        model = run.model()
    if not isinstance(model, nn.Module):
        raise ValueError(f"model is a {type(model).__name__}; allowed: an nn.Module")
    if input_size is None:
        if spec.dataset not in INPUT_SIZES:
            raise ValueError(f"input_size=None is invalid for dataset {spec.dataset!r}; allowed: a tuple (C, H, W)")
        input_size = INPUT_SIZES[spec.dataset]
    samples = samples_per_epoch(spec, train_images)
    ours = training(model, input_size, history, samples_per_epoch=samples, batch_size=spec.batch_size)
    inference = count(model, input_size)["dense_flops"]
    density = 1.0 if spec.method == "dense" else 1.0 - spec.sparsity
    options = {k: getattr(spec, k) for k in ("soft_bound", "soft_bound_mode", "initial_density", "prune_end",
                                             "warmup", "final")}
    paper = paper_training(spec.method, inference, samples, spec.epochs, density, **options)
    return {"ours": ours["flops"], "paper": paper, "dense": ours["dense_flops"], "per_epoch": ours["per_epoch"],
            "inference_flops": inference, "samples_per_epoch": samples, "batch_size": spec.batch_size,
            "epochs": spec.epochs, "density": density}
