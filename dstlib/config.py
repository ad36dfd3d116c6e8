"""The run spec: every setting that changes a trained model, validated in one place.

A `RunSpec` is a frozen dataclass. Building one validates every field and
raises `ValueError` with one line naming the field, the bad value and what is
allowed, before any compute. The CLI, the notebooks and the Python API all go
through it (papermill does not check types, so this module does).

A run is identified by `spec.hash()`: the SHA-256 of the canonical spec, the
sorted JSON of the fields that change the result. Left out of the hash: the
device, the store path, the snapshot epochs and the per-epoch monitor size
(they only keep copies of weights or accuracies along the way), `sparse_kernels`
(like the device, it changes how products are computed, and results only to
float rounding), and the sparsity options a method does not use (so a dense run
is the same run whatever `prune_rate` a notebook passes).

This module imports no other module of dstlib.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Mapping

SPEC_VERSION = 2  # bump when the meaning of a stored run changes (2: sparsity schedules per method, numpy RNG)

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "tiny_imagenet", "imagenet", "moving_fashion_mnist", "ucf101")
VIDEO_DATASETS = ("moving_fashion_mnist", "ucf101")  # clips (N, T, C, H, W); the others are images
METHODS = ("dense", "static", "set", "rigl", "mest_r", "mest_g", "granet_r", "granet_g", "acdc", "chts")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
AUGMENTATIONS = ("none", "crop_flip", "rrc_flip", "deit")
#: The augmentations of clips (held in memory): deit is applied while decoding image folders (dstlib.data.stream).
CLIP_AUGMENTATIONS = tuple(a for a in AUGMENTATIONS if a != "deit")
DISTRIBUTIONS = ("uniform", "erk")
PRUNE_RATE_DECAYS = ("cosine", "polynomial", "constant", "cosine_floor")
SOFT_BOUND_MODES = ("relative", "absolute")
DROP_CRITERIA = ("magnitude", "magnitude_gradient")
STEMS = ("auto", "small", "standard")
TOPOLOGY_INITS = ("random", "csti", "bsw")
CHT_SCORES = ("ch3_l3p", "ch3_l3n")
CHT_REMOVALS = ("magnitude", "magnitude_soft")

_MASK = ("sparsity", "distribution", "erk_power_scale", "dense_layers", "dense_first_layer",
         "sparse_classifier", "dense_patterns", "dense_types")
_UPDATE = ("update_interval", "prune_rate", "prune_rate_decay", "update_end", "drop_criterion",
           "drop_lambda")
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "dense": (),
    "static": _MASK,
    "set": _MASK + _UPDATE,
    "rigl": _MASK + _UPDATE,
    "mest_r": _MASK + _UPDATE + ("soft_bound", "soft_bound_mode"),
    "mest_g": _MASK + _UPDATE + ("soft_bound", "soft_bound_mode"),
    "granet_r": _MASK + _UPDATE + ("initial_density", "prune_end", "prune_interval"),
    "granet_g": _MASK + _UPDATE + ("initial_density", "prune_end", "prune_interval"),
    "acdc": _MASK + ("warmup", "phase", "final"),
    "chts": _MASK + ("update_interval", "prune_rate", "prune_rate_decay", "update_end", "topology_init",
                     "bsw_beta", "cht_score", "cht_removal", "chain_removal", "sparse_kernels"),
}
"""The sparsity options (fields of RunSpec) each method reads."""

SPARSITY_FIELDS = tuple(dict.fromkeys(f for opts in METHOD_OPTIONS.values() for f in opts))
NOT_HASHED = ("snapshots", "monitor_size", "sparse_kernels")
#: Fields added after runs were stored: left out of the canonical spec at their default, so every
#: run stored before them keeps its hash.
HASHED_UNLESS_DEFAULT = ("cutmix", "random_erasing", "drop_path", "width_multiplier")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that changes the result of one training run.

    Units: `lr` is the peak learning rate; epochs count passes over the
    (possibly subset) training set; `update_interval` counts optimiser steps;
    `update_end`, `prune_end`, `warmup`, `phase`, `final` are fractions of all
    training steps; `sparsity` is the fraction of zeros in the sparse layers.
    """

    # what is trained, on what
    model: str = "mlp"
    dataset: str = "fashion_mnist"
    widths: tuple[int, ...] = ()          # mlp hidden widths / cnn channels; () = the model's default
    stem: str = "auto"                    # auto: small-input stem for images of 32 px or less
    train_subset: int | None = None       # train on this many training images (a seeded, fixed subset)
    val_size: int = 0                     # hold out this many training images as validation
    split_seed: int = 0                   # seed of the subset and validation split (not the training seed)
    # how it is trained
    seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    schedule: str = "cosine"
    lr_step_epochs: int = 30              # step schedule: multiply by lr_gamma every this many epochs
    lr_gamma: float = 0.1
    warmup_epochs: float = 0.0            # linear warm-up from 0, in epochs
    weight_decay: float = 5e-4
    momentum: float = 0.9                 # SGD momentum; AdamW beta1
    nesterov: bool = False
    label_smoothing: float = 0.0
    augmentation: str = "none"
    mixup: float = 0.0                    # mixup Beta(alpha, alpha); 0 turns it off
    cutmix: float = 0.0                   # CutMix Beta(alpha, alpha); with mixup too, one of the two per batch
    random_erasing: float = 0.0           # probability of erasing one random box per image (noise fill)
    drop_path: float = 0.0                # stochastic depth rate (timm models that take drop_path_rate)
    width_multiplier: float = 1.0         # channel / embedding width of the paper's models times this
    # sparse training (see dstlib.sparsity.create for each option's meaning and source)
    method: str = "dense"
    sparsity: float = 0.5
    distribution: str = "uniform"
    erk_power_scale: float = 1.0
    dense_layers: tuple[str, ...] = ()
    dense_first_layer: bool = False
    sparse_classifier: bool = False
    dense_patterns: tuple[str, ...] = ()  # fnmatch patterns over parameter names kept dense
    dense_types: tuple[str, ...] = ()     # layer kinds (depthwise, squeeze_excite) or module class names kept dense
    update_interval: int = 100
    prune_rate: float = 0.1
    prune_rate_decay: str | None = None   # None: the method's own (dstlib.sparsity)
    update_end: float | None = None
    drop_criterion: str = "magnitude"
    drop_lambda: float = 1.0
    soft_bound: float = 0.1
    soft_bound_mode: str = "relative"     # MEST: soft_bound x target density, or an absolute density
    initial_density: float | None = None
    prune_end: float = 0.5
    prune_interval: int | None = None     # GraNet: prune every this many steps; None = update_interval
    warmup: float = 0.1
    phase: float = 0.05
    final: float = 0.15
    topology_init: str = "random"
    bsw_beta: float = 0.25
    cht_score: str = "ch3_l3p"
    cht_removal: str = "magnitude"
    chain_removal: bool = True
    sparse_kernels: bool = False          # CSR products for masked Linear layers (not part of the run's identity)
    # kept along the way; not part of the run's identity (the weights do not depend on them)
    snapshots: tuple[int, ...] = ()
    monitor_size: int | None = None       # history's per-epoch test_acc on the first this many test images
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name), _FIELD_TYPES[f.name])
            object.__setattr__(self, f.name, value)
        used = METHOD_OPTIONS[self.method] if self.method in METHOD_OPTIONS else SPARSITY_FIELDS
        for name, check, allowed in _CHECKS:
            if name in SPARSITY_FIELDS and name not in used:
                continue  # an option this method ignores
            if not check(getattr(self, name), self):
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid; allowed: {allowed}")

    # --- identity -----------------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """The fields that define the run, as plain JSON types."""
        used = set(METHOD_OPTIONS[self.method])
        if self.topology_init != "bsw":
            used.discard("bsw_beta")  # read only by the BSW initialisation
        out: dict[str, Any] = {"spec_version": SPEC_VERSION}
        for f in dataclasses.fields(self):
            if f.name in NOT_HASHED or (f.name in SPARSITY_FIELDS and f.name not in used):
                continue
            if f.name in HASHED_UNLESS_DEFAULT and getattr(self, f.name) == f.default:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def hash(self) -> str:
        """Hex SHA-256 of the canonical spec (sorted JSON)."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def short_id(self) -> str:
        return self.hash()[:16]

    def sparsity_options(self) -> dict[str, Any]:
        """Keyword arguments for `dstlib.sparsity.create`: the method's options and the seed."""
        opts = {name: getattr(self, name) for name in METHOD_OPTIONS[self.method]}
        opts["seed"] = self.seed
        return opts

    def to_dict(self) -> dict[str, Any]:
        """All fields (snapshots included), as plain JSON types."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        """Build from a mapping; unknown keys are an error naming the valid ones."""
        data = dict(data)
        data.pop("spec_version", None)
        unknown = sorted(set(data) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"unknown spec field {unknown[0]!r}; valid fields: {', '.join(FIELD_NAMES)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "RunSpec":
        return self.from_dict({**self.to_dict(), **changes})


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(RunSpec))

# --- type coercion: papermill and YAML hand us ints for floats, lists for tuples --------
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(RunSpec)}


def _coerce(name: str, value: Any, typ: str) -> Any:
    optional = typ.endswith("| None")
    base = typ.replace(" | None", "")
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name}=None is invalid; expected {base}")
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name}={value!r} is invalid; expected true or false")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{name}={value!r} is invalid; expected an integer")
        return value
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}={value!r} is invalid; expected a number")
        if not math.isfinite(value):
            raise ValueError(f"{name}={value!r} is invalid; expected a finite number")
        return float(value)
    if base == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name}={value!r} is invalid; expected a string")
        return value
    if base.startswith("tuple["):
        item = base[len("tuple["):].split(",")[0]
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"{name}={value!r} is invalid; expected a list of {item}")
        return tuple(_coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    raise TypeError(f"no coercion for {name}: {typ}")  # a programming error, not user input


def _choice(options: tuple[str, ...]):
    return (lambda v, s: v in options), ", ".join(options)


def _range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False, none_ok: bool = False):
    def check(v, s):
        if v is None:
            return none_ok
        return (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)
    text = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}" + (" or None" if none_ok else "")
    return check, text


_CHECKS: list[tuple[str, Any, str]] = [
    ("model", lambda v, s: bool(v.strip()), "a model name (see dstlib.models.names())"),
    ("dataset", *_choice(DATASETS)),
    ("widths", lambda v, s: all(w >= 1 for w in v), "positive integers"),
    ("stem", *_choice(STEMS)),
    ("train_subset", lambda v, s: v is None or v >= 1, "a positive integer or None"),
    ("val_size", lambda v, s: v >= 0, "an integer >= 0"),
    ("epochs", lambda v, s: v >= 1, "an integer >= 1"),
    ("batch_size", lambda v, s: v >= 1, "an integer >= 1"),
    ("optimizer", *_choice(OPTIMIZERS)),
    ("lr", lambda v, s: v > 0, "a number > 0"),
    ("schedule", *_choice(SCHEDULES)),
    ("lr_step_epochs", lambda v, s: v >= 1, "an integer >= 1"),
    ("lr_gamma", *_range(0, 1, lo_open=True)),
    ("warmup_epochs", lambda v, s: 0 <= v < s.epochs, "a number in [0, epochs)"),
    ("weight_decay", lambda v, s: v >= 0, "a number >= 0"),
    ("momentum", *_range(0, 1, hi_open=True)),
    ("nesterov", lambda v, s: not v or (s.optimizer == "sgd" and s.momentum > 0),
     "true only with optimizer sgd and momentum > 0"),
    ("label_smoothing", *_range(0, 1, hi_open=True)),
    ("augmentation", *_choice(AUGMENTATIONS)),
    ("mixup", lambda v, s: v >= 0, "a number >= 0 (0 turns mixup off)"),
    ("cutmix", lambda v, s: v >= 0, "a number >= 0 (0 turns CutMix off)"),
    ("random_erasing", *_range(0, 1)),
    ("drop_path", *_range(0, 1, hi_open=True)),
    ("width_multiplier", lambda v, s: v > 0, "a number > 0 (1: the model's own widths)"),
    ("method", *_choice(METHODS)),
    ("sparsity", *_range(0, 1, hi_open=True)),
    ("distribution", *_choice(DISTRIBUTIONS)),
    ("erk_power_scale", lambda v, s: v > 0, "a number > 0"),
    ("update_interval", lambda v, s: v >= 1, "an integer >= 1"),
    ("prune_rate", *_range(0, 1, lo_open=True, hi_open=True)),
    ("dense_patterns", lambda v, s: all(p.strip() for p in v), "non-empty name patterns"),
    ("dense_types", lambda v, s: all(t.strip() for t in v),
     "layer kinds (depthwise, squeeze_excite) or module class names"),
    ("prune_rate_decay", lambda v, s: v is None or v in PRUNE_RATE_DECAYS,
     f"None (the method's own) or one of {', '.join(PRUNE_RATE_DECAYS)}"),
    ("update_end", *_range(0, 1, lo_open=True, none_ok=True)),
    ("drop_criterion", *_choice(DROP_CRITERIA)),
    ("drop_lambda", lambda v, s: v >= 0, "a number >= 0"),
    ("soft_bound_mode", *_choice(SOFT_BOUND_MODES)),
    ("soft_bound", lambda v, s: v >= 0 and (1 - s.sparsity) + (v if s.soft_bound_mode == "absolute"
                                                               else (1 - s.sparsity) * v) <= 1 + 1e-12,
     "a number >= 0 with target density + soft bound <= 1"),
    ("initial_density", lambda v, s: v is None or (1 - s.sparsity) <= v <= 1,
     "None or a number in [target density, 1]"),
    ("prune_end", *_range(0, 1, lo_open=True)),
    ("prune_interval", lambda v, s: v is None or v >= 1, "a positive integer or None (update_interval)"),
    ("warmup", *_range(0, 1, hi_open=True)),
    ("phase", *_range(0, 1, lo_open=True, hi_open=True)),
    ("final", *_range(0, 1, lo_open=True, hi_open=True)),
    ("topology_init", *_choice(TOPOLOGY_INITS)),
    ("bsw_beta", *_range(0, 1)),
    ("cht_score", *_choice(CHT_SCORES)),
    ("cht_removal", *_choice(CHT_REMOVALS)),
    ("snapshots", lambda v, s: all(1 <= e <= s.epochs for e in v), "epochs in [1, epochs]"),
    ("monitor_size", lambda v, s: v is None or v >= 1, "a positive integer or None (all test images)"),
]


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one purpose, from a user's seed.

    Random streams seeded with the same integer are identical: a mask drawn
    with `torch.Generator().manual_seed(0)` after a model was initialised
    under `torch.manual_seed(0)` reuses the very uniforms of the weight
    init (keeping, for example, only the negative weights of a
    kaiming-uniform layer). Every consumer therefore seeds its generator
    with `derive_seed(seed, "<purpose>")`.
    """
    digest = hashlib.sha256(f"dstlib|{purpose}|{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> None:
    """Raise the standard one-line error unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {', '.join(map(str, choices))}")


HELP: dict[str, str] = {
    "model": "model name: mlp, cnn, vgg16, resnet34 or any timm model",
    "dataset": f"dataset: {', '.join(DATASETS)}",
    "widths": "hidden widths of mlp / channel widths of cnn (empty: the model's default)",
    "stem": "auto: small-input stem for images of 32 px or less; small / standard force it",
    "train_subset": "train on this many training images (a fixed seeded subset); none: all",
    "val_size": "hold this many training images out as a validation split",
    "split_seed": "seed of the subset and validation split (not the training seed)",
    "seed": "training seed: initialisation, shuffling, augmentation, masks",
    "epochs": "passes over the training set",
    "batch_size": "images per optimiser step",
    "optimizer": f"optimiser: {', '.join(OPTIMIZERS)}",
    "lr": "peak learning rate",
    "schedule": f"learning-rate schedule after warm-up: {', '.join(SCHEDULES)}",
    "lr_step_epochs": "step schedule: decay every this many epochs",
    "lr_gamma": "step schedule: multiply the learning rate by this",
    "warmup_epochs": "linear learning-rate warm-up, in epochs",
    "weight_decay": "weight decay (L2 for SGD, decoupled for AdamW)",
    "momentum": "SGD momentum, or AdamW beta1",
    "nesterov": "Nesterov momentum (SGD)",
    "label_smoothing": "label smoothing of the cross-entropy",
    "augmentation": f"training augmentation: {', '.join(AUGMENTATIONS)} (deit: random-resized crop, flip and "
                    "RandAugment rand-m9-mstd0.5-inc1)",
    "mixup": "mixup Beta(alpha, alpha) parameter; 0 turns mixup off",
    "cutmix": "CutMix Beta(alpha, alpha) parameter; 0 turns it off; with mixup as well, each batch takes one of "
              "the two with probability 1/2 (DeiT's recipe)",
    "random_erasing": "probability of replacing one random box of each training image by Gaussian noise "
                      "(DeiT's recipe: 0.25)",
    "drop_path": "stochastic depth rate of timm models (DeiT-base: 0.1)",
    "width_multiplier": "channel (embedding) widths of vgg16, resnet34 and the timm resnet, efficientnet_b0 and "
                        "ViT / DeiT models times this (1: the paper's models; smaller for tests)",
    "method": f"training method: {', '.join(METHODS)}",
    "sparsity": "target fraction of zeros in the sparse layers",
    "distribution": f"layer densities: {', '.join(DISTRIBUTIONS)}",
    "erk_power_scale": "ERK power scale (1: RigL's ERK)",
    "dense_layers": "parameter names kept dense",
    "dense_first_layer": "keep the first conv/linear layer dense",
    "sparse_classifier": "make the final classifier sparse as well (the paper's ResNet50 on ImageNet, Table 8)",
    "dense_patterns": "fnmatch patterns over parameter names kept dense, e.g. *.se.*",
    "dense_types": "layer kinds (depthwise, squeeze_excite) or module class names kept dense",
    "update_interval": "topology update every this many optimiser steps (dT)",
    "prune_rate": "fraction of active weights dropped and regrown per update",
    "prune_rate_decay": f"decay of the prune rate: {', '.join(PRUNE_RATE_DECAYS)}; none: the method's own "
                        "(polynomial, GraNet cosine_floor)",
    "update_end": "fraction of training after which drop-and-regrow stops (none: the method's: 0.75 for SET, RigL, "
                  "MEST, CHTs; the end for GraNet; MEST's bound then still shrinks by pruning to the end)",
    "drop_criterion": f"drop score: {', '.join(DROP_CRITERIA)} (MEST's |w| + lambda |g|)",
    "drop_lambda": "lambda of the magnitude_gradient drop score",
    "soft_bound": "MEST: extra density at the start (see soft_bound_mode)",
    "soft_bound_mode": f"MEST: {', '.join(SOFT_BOUND_MODES)}: soft_bound is a fraction of the target density "
                       "(paper: CIFAR, Tiny-ImageNet 0.1) or a density (ImageNet 0.02)",
    "initial_density": "GraNet: initial density (none: 0.8, or target + (1 - target) / 2 above 0.8)",
    "prune_end": "GraNet: fraction of training over which density falls to the target",
    "prune_interval": "GraNet: gradual pruning every this many optimiser steps (none: update_interval)",
    "warmup": "AC/DC: dense warm-up, fraction of training",
    "phase": "AC/DC: length of each compressed / decompressed phase, fraction of training",
    "final": "AC/DC: final compressed phase, fraction of training",
    "topology_init": f"CHTs: initial topology: {', '.join(TOPOLOGY_INITS)} (csti: from the training images' pixel correlations)",
    "bsw_beta": "CHTs: rewiring probability of the bipartite small-world initial topology",
    "cht_score": f"CHTs: link-prediction score: {', '.join(CHT_SCORES)} (path-based, or the node-based approximation)",
    "cht_removal": f"CHTs: removal: {', '.join(CHT_REMOVALS)} (|w|, or sampled by |w|^T)",
    "chain_removal": "CHTs: also remove the links of neurons left without input or output",
    "sparse_kernels": "CHTs: compute masked Linear layers with CSR kernels on the CPU (not part of the run's identity)",
    "snapshots": "epochs after which weights and masks are kept (not part of the run's identity)",
    "monitor_size": "per-epoch test accuracy on the first this many test images; none: all (not part of the run's identity)",
}
assert set(HELP) == set(FIELD_NAMES), set(FIELD_NAMES) ^ set(HELP)


# ======================================================================================
# Notebook parameters
# --------------------------------------------------------------------------------------
# The parameters of the book's section notebooks (notebooks/<section>.ipynb), checked
# before any compute with the same one-line errors as RunSpec. papermill does not check
# types, so every value is coerced and range-checked here. Names that need a registry
# (model names, corruption names) are checked by `dstlib.book.validate`, which passes
# the registry in `choices`.
# ======================================================================================
PROFILES = ("quick", "paper", "smoke")
SECTIONS = ("overall", "corruptions", "spatial", "spectral", "gradcam", "ood", "cost", "augmentation", "topology",
            "video")
TEMPORAL_MODES = ("video", "clip")  # where temporal video corruptions act (dstlib.corruptions.video)
DEVICES = ("cpu", "cuda", "cuda:<index>", "mps")

# name: (kind, help). Kinds: str, int, float, bool, list[str], list[int], list[float].
NOTEBOOK_PARAMS: dict[str, tuple[str, str]] = {
    "profile": ("str", f"parameter profile, names the results folder results/<profile>: {', '.join(PROFILES)}"),
    "model": ("str", "model: lenet300_100, lenet5, mlp, cnn, vgg16, resnet34 or any timm model name; "
                     "for clips cnn3d, slow_r50, i3d_r50, r3d50"),
    "dataset": ("str", f"dataset: {', '.join(DATASETS)} (all but fashion_mnist and moving_fashion_mnist need local files)"),
    "widths": ("list[int]", "hidden widths of mlp or channel widths of cnn; empty for the model's default"),
    "methods": ("list[str]", f"sparse training methods compared with dense: {', '.join(METHODS[1:])}, "
                             f"or chts+<init> for CHTs from an initial topology: {', '.join(TOPOLOGY_INITS)}"),
    "sparsities": ("list[float]", "target sparsities in (0, 1), fraction of zeros in the sparse layers"),
    "seeds": ("list[int]", "training seeds, at least 2 distinct: the seed is the unit of replication"),
    "epochs": ("int", "training epochs of every run (scaled down to fit budget_minutes)"),
    "batch_size": ("int", "images per optimiser step"),
    "lr": ("float", "peak learning rate (cosine schedule, SGD momentum 0.9)"),
    "distribution": ("str", f"layer densities of the sparse runs: {', '.join(DISTRIBUTIONS)}"),
    "update_interval": ("int", "topology update every this many optimiser steps (dT)"),
    "train_subset": ("int", "train on this many training images; 0 for all (scaled down to fit budget_minutes)"),
    "n_test": ("int", "evaluate on the first n_test test images; 0 for all (scaled down to fit budget_minutes)"),
    "corruptions": ("list[str]", "corruption names (dstlib.corruptions.NAMES, VIDEO_NAMES for clips); empty for the "
                                 "dataset's benchmark set"),
    "severities": ("list[int]", "corruption severities, a subset of 1 2 3 4 5"),
    "sparsity": ("float", "the one sparsity this section looks at closely, in (0, 1)"),
    "radii": ("list[float]", "attenuation radii in frequency-index steps (dstlib.spectral convention)"),
    "n_images": ("int", "test images measured by Grad-CAM (the first three shown)"),
    "renditions": ("list[str]", "Fashion-MNIST rendition shifts: inverted, edge_sketch, upside_down, silhouette"),
    "mixup": ("float", "mixup Beta(alpha, alpha) parameter of the augmented runs, > 0"),
    "cbar": ("bool", "also measure ImageNet-C-bar / CIFAR-10-C-bar (its table chosen by image size)"),
    "confidence": ("float", "confidence of every interval and verdict, in (0, 1)"),
    "budget_minutes": ("float", "time this notebook may take on the reference CPU; 0 for no scaling"),
    "workers": ("int", "runs trained in parallel processes; 0 for one per CPU core (1 on a GPU)"),
    "device": ("str", "torch device: cpu, cuda, cuda:<index> or mps"),
    "store": ("str", "run store folder; empty for $DSTLIB_STORE or runs/ in the repository"),
    "results": ("str", "results folder; empty for results/<profile>, or results/<profile>+<changes> for other values"),
    "train": ("bool", "train the runs the store lacks (False: stop with the missing run)"),
    "temporal": ("str", "where temporal video corruptions act: video (the whole video, then the clip is sampled, "
                        "as the reference) or clip"),
    "weight_decay": ("float", "weight decay of SGD (L2), 0 or more"),
    "augmentation": ("str", f"training augmentation: {', '.join(CLIP_AUGMENTATIONS)} (clips: one crop and flip per clip)"),
}

SECTION_PARAMS: dict[str, tuple[str, ...]] = {
    s: ("profile", "model", "dataset", "widths", "methods", "seeds", "epochs", "batch_size", "lr",
        "distribution", "update_interval", "train_subset", "n_test", "corruptions", "severities", "confidence",
        "budget_minutes", "workers", "device", "store", "results", "train")
    for s in SECTIONS
}
for _s in ("overall", "ood", "cost", "topology"):
    SECTION_PARAMS[_s] += ("sparsities",)
SECTION_PARAMS["spatial"] += ("sparsity",)
SECTION_PARAMS["spectral"] += ("sparsity", "radii")
SECTION_PARAMS["gradcam"] += ("sparsity", "n_images")
SECTION_PARAMS["ood"] += ("renditions",)
SECTION_PARAMS["corruptions"] += ("sparsity", "cbar")
SECTION_PARAMS["augmentation"] += ("sparsity", "mixup")
SECTION_PARAMS["video"] += ("sparsity", "temporal", "weight_decay", "augmentation")


#: Method labels a notebook may list besides the plain method names: CHTs with a named initial topology.
METHOD_LABELS = {f"chts+{init}": ("chts", {"topology_init": init}) for init in TOPOLOGY_INITS}


def method_of(label: str) -> tuple[str, dict[str, Any]]:
    """(method, RunSpec fields) of a notebook's method label: "rigl" -> ("rigl", {}), "chts+csti" -> ("chts",
    {"topology_init": "csti"})."""
    return METHOD_LABELS.get(label, (label, {}))


def _nb_error(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _nb_coerce(name: str, value: Any, kind: str) -> Any:
    if kind.startswith("list["):
        item = kind[5:-1]
        if isinstance(value, str):  # papermill's `-p seeds '[0, 1]'` passes the text: read it as YAML
            import yaml
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise _nb_error(name, value, f"a list of {item}, e.g. [1, 2]") from None
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _nb_error(name, value, f"a list of {item}")
        out = []
        for v in value:
            try:
                out.append(_nb_coerce(name, v, item))
            except ValueError:
                raise _nb_error(name, value, f"a list of {item}") from None
        return out
    if isinstance(value, str) and kind == "bool" and value.lower() in ("true", "false"):
        value = value.lower() == "true"  # text from the command line (papermill -r, JSON files)
    elif isinstance(value, str) and kind in ("int", "float"):
        import yaml
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            value = parsed
    if kind == "bool":
        if not isinstance(value, bool):
            raise _nb_error(name, value, "True or False")
        return value
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _nb_error(name, value, "an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _nb_error(name, value, "a finite number")
        return float(value)
    if not isinstance(value, str):
        raise _nb_error(name, value, "a string")
    return value


def check_notebook_params(section: str, params: Mapping[str, Any],
                          choices: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """Coerce and check the parameters of `section`; return them as a dict (only the section's names).

    `choices` adds registries this module cannot import, e.g. {"corruptions": dstlib.corruptions.NAMES}.
    Raises ValueError with one line naming the parameter, the bad value and the valid choices.
    """
    check_choice("section", section, SECTIONS)
    choices = dict(choices or {})
    out: dict[str, Any] = {}
    for name in SECTION_PARAMS[section]:
        if name not in params:
            raise ValueError(f"{name} is missing; the {section} notebook needs: {', '.join(SECTION_PARAMS[section])}")
        out[name] = _nb_coerce(name, params[name], NOTEBOOK_PARAMS[name][0])
    p = out
    check_choice("profile", p["profile"], PROFILES)
    check_choice("dataset", p["dataset"], DATASETS)
    if (section == "video") != (p["dataset"] in VIDEO_DATASETS):
        allowed = VIDEO_DATASETS if section == "video" else tuple(d for d in DATASETS if d not in VIDEO_DATASETS)
        raise _nb_error("dataset", p["dataset"], f"for the {section} section {', '.join(allowed)}")
    check_choice("distribution", p["distribution"], DISTRIBUTIONS)
    if not p["model"].strip():
        raise _nb_error("model", p["model"], "a model name (mlp, cnn, vgg16, resnet34 or a timm model)")
    if any(w < 1 for w in p["widths"]):
        raise _nb_error("widths", p["widths"], "positive integers, or an empty list")
    sparse = METHODS[1:] + tuple(METHOD_LABELS)
    if not p["methods"] or any(m not in sparse for m in p["methods"]) or len(set(p["methods"])) != len(p["methods"]):
        raise _nb_error("methods", p["methods"], f"a non-empty list without repeats from {', '.join(sparse)}")
    if "sparsities" in p and (not p["sparsities"] or any(not 0 < s < 1 for s in p["sparsities"])
                              or len(set(p["sparsities"])) != len(p["sparsities"])):
        raise _nb_error("sparsities", p["sparsities"], "a non-empty list of distinct numbers in (0, 1)")
    if len(set(p["seeds"])) < 2 or len(set(p["seeds"])) != len(p["seeds"]) or any(s < 0 for s in p["seeds"]):
        raise _nb_error("seeds", p["seeds"], "at least 2 distinct integers >= 0 (the seed is the unit of replication)")
    for name, lo in (("epochs", 1), ("batch_size", 1), ("update_interval", 1), ("train_subset", 0), ("n_test", 0)):
        if p[name] < lo:
            raise _nb_error(name, p[name], f"an integer >= {lo}")
    if not p["lr"] > 0:
        raise _nb_error("lr", p["lr"], "a number > 0")
    if not 0 < p["confidence"] < 1:
        raise _nb_error("confidence", p["confidence"], "a number in (0, 1), e.g. 0.95")
    if p["budget_minutes"] < 0:
        raise _nb_error("budget_minutes", p["budget_minutes"], "a number >= 0 (0: no scaling)")
    if p["workers"] < 0:
        raise _nb_error("workers", p["workers"], "an integer >= 0 (0: one per CPU core)")
    if not p["severities"] or any(s not in (1, 2, 3, 4, 5) for s in p["severities"]) or \
            len(set(p["severities"])) != len(p["severities"]):
        raise _nb_error("severities", p["severities"], "a non-empty list of distinct values from 1, 2, 3, 4, 5")
    if "corruptions" in choices:
        bad = [c for c in p["corruptions"] if c not in choices["corruptions"]]
        if bad or len(set(p["corruptions"])) != len(p["corruptions"]):
            raise _nb_error("corruptions", p["corruptions"],
                            f"an empty list or distinct names from {', '.join(choices['corruptions'])}")
    dev = p["device"]
    if not (dev in ("cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise _nb_error("device", dev, ", ".join(DEVICES))
    if "sparsity" in p and not 0 < p["sparsity"] < 1:
        raise _nb_error("sparsity", p["sparsity"], "a number in (0, 1)")
    if "radii" in p and (not p["radii"] or any(r < 0 for r in p["radii"])):
        raise _nb_error("radii", p["radii"], "a non-empty list of numbers >= 0")
    if "n_images" in p and p["n_images"] < 1:
        raise _nb_error("n_images", p["n_images"], "an integer >= 1")
    if "renditions" in p and "renditions" in choices:
        if not p["renditions"] or any(r not in choices["renditions"] for r in p["renditions"]):
            raise _nb_error("renditions", p["renditions"], f"a non-empty list from {', '.join(choices['renditions'])}")
    if "mixup" in p and not p["mixup"] > 0:
        raise _nb_error("mixup", p["mixup"], "a number > 0")
    if "temporal" in p:
        check_choice("temporal", p["temporal"], TEMPORAL_MODES)
    if "weight_decay" in p and not p["weight_decay"] >= 0:
        raise _nb_error("weight_decay", p["weight_decay"], "a number >= 0")
    if "augmentation" in p:
        check_choice("augmentation", p["augmentation"], CLIP_AUGMENTATIONS)
    return out


# ======================================================================================
# Recipes: a profile's RunSpec fields per model and dataset
# --------------------------------------------------------------------------------------
# `params/<profile>/recipes.yaml` (optional) gives, for a (model, dataset), the RunSpec
# fields of the paper's recipe that the notebook parameters do not carry (augmentation,
# the classifier's sparsity, MEST's bound, the LR schedule, ...), and the epochs after
# which a run keeps a snapshot for the spectral section. Every run of that profile with
# that model and dataset gets them (`dstlib.book.plan.base_spec`).
# ======================================================================================
#: RunSpec fields the notebook parameters set: a recipe may not set them too.
PLAN_FIELDS = ("model", "dataset", "widths", "seed", "epochs", "batch_size", "lr", "method", "train_subset",
               "monitor_size", "sparsity", "distribution", "update_interval", "snapshots", "topology_init")
RECIPE_KEYS = ("model", "dataset", "spec", "snapshot_epochs", "note")


def check_recipes(data: Any, source: str = "recipes") -> list[dict[str, Any]]:
    """A recipes file's entries, checked: a list of {model, dataset, spec, snapshot_epochs, note}.

    `spec` holds RunSpec fields (not PLAN_FIELDS), each value checked as RunSpec checks it (for every method
    that reads it); `snapshot_epochs` is a list of epochs >= 1 (empty or absent: every epoch); `note` is text
    for the reader. One-line ValueError naming the entry, the key and what is allowed.
    """
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{source}: {type(data).__name__} is invalid; allowed: a list of entries with keys "
                         f"{', '.join(RECIPE_KEYS)}")
    out, seen = [], set()
    for i, entry in enumerate(data):
        where = f"{source}[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}={entry!r} is invalid; allowed: a mapping with keys {', '.join(RECIPE_KEYS)}")
        unknown = sorted(set(entry) - set(RECIPE_KEYS))
        if unknown:
            raise ValueError(f"{where}: key {unknown[0]!r} is invalid; allowed: {', '.join(RECIPE_KEYS)}")
        model, dataset = entry.get("model"), entry.get("dataset")
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"{where}.model={model!r} is invalid; allowed: a model name")
        check_choice(f"{where}.dataset", dataset, DATASETS)
        if (model, dataset) in seen:
            raise ValueError(f"{where}: ({model}, {dataset}) is repeated; allowed: one entry per model and dataset")
        seen.add((model, dataset))
        spec = dict(entry.get("spec") or {})
        for key in spec:
            if key not in FIELD_NAMES:
                raise ValueError(f"{where}.spec: field {key!r} is unknown; valid fields: {', '.join(FIELD_NAMES)}")
            if key in PLAN_FIELDS:
                raise ValueError(f"{where}.spec: field {key!r} is a notebook parameter; allowed: the fields a "
                                 f"notebook does not set (not {', '.join(PLAN_FIELDS)})")
        for method in METHODS:  # each value checked by every method that reads it
            used = {k: v for k, v in spec.items() if k not in SPARSITY_FIELDS or k in METHOD_OPTIONS[method]}
            try:
                RunSpec(model=model, dataset=dataset, method=method, epochs=10_000, **used)
            except ValueError as e:
                raise ValueError(f"{where}.spec: {e}") from None
        epochs = entry.get("snapshot_epochs") or []
        if (not isinstance(epochs, list) or any(isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in epochs)
                or len(set(epochs)) != len(epochs)):
            raise ValueError(f"{where}.snapshot_epochs={epochs!r} is invalid; allowed: distinct integers >= 1 "
                             f"(empty: every epoch)")
        out.append({"model": model, "dataset": dataset, "spec": spec, "snapshot_epochs": sorted(epochs),
                    "note": str(entry.get("note") or "")})
    return out


def recipe_for(recipes: list[dict[str, Any]], model: str, dataset: str) -> dict[str, Any] | None:
    """The entry of (model, dataset) in checked recipes, or None."""
    for r in recipes:
        if r["model"] == model and r["dataset"] == dataset:
            return r
    return None
