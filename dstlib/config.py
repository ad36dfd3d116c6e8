"""The run spec: every setting that changes a trained model, validated in one place.

A `RunSpec` is a frozen dataclass. Building one validates every field and
raises `ValueError` with one line naming the field, the bad value and what is
allowed, before any compute. The CLI, the notebooks and the Python API all go
through it (papermill does not check types, so this module does).

A run is identified by `spec.hash()`: the SHA-256 of the canonical spec, the
sorted JSON of the fields that change the result. Left out of the hash: the
device, the store path, the snapshot epochs (they only keep copies of weights
along the way), and the sparsity options a method does not use (so a dense run
is the same run whatever `prune_rate` a notebook passes).

This module imports no other module of dstlib.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Mapping

SPEC_VERSION = 1  # bump when the meaning of a stored run changes

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "tiny_imagenet", "imagenet")
METHODS = ("dense", "static", "set", "rigl", "mest_r", "mest_g", "granet_r", "granet_g", "acdc")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
AUGMENTATIONS = ("none", "crop_flip", "rrc_flip")
DISTRIBUTIONS = ("uniform", "erk")
PRUNE_RATE_DECAYS = ("cosine", "polynomial", "constant")
DROP_CRITERIA = ("magnitude", "magnitude_gradient")
STEMS = ("auto", "small", "standard")

_MASK = ("sparsity", "distribution", "erk_power_scale", "dense_layers", "dense_first_layer",
         "sparse_classifier")
_UPDATE = ("update_interval", "prune_rate", "prune_rate_decay", "update_end", "drop_criterion",
           "drop_lambda")
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "dense": (),
    "static": _MASK,
    "set": _MASK + _UPDATE,
    "rigl": _MASK + _UPDATE,
    "mest_r": _MASK + _UPDATE + ("soft_bound",),
    "mest_g": _MASK + _UPDATE + ("soft_bound",),
    "granet_r": _MASK + _UPDATE + ("initial_density", "prune_end"),
    "granet_g": _MASK + _UPDATE + ("initial_density", "prune_end"),
    "acdc": _MASK + ("warmup", "phase", "final"),
}
"""The sparsity options (fields of RunSpec) each method reads."""

SPARSITY_FIELDS = tuple(dict.fromkeys(f for opts in METHOD_OPTIONS.values() for f in opts))
NOT_HASHED = ("snapshots",)


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
    # sparse training (see dstlib.sparsity.create for each option's meaning and source)
    method: str = "dense"
    sparsity: float = 0.5
    distribution: str = "uniform"
    erk_power_scale: float = 1.0
    dense_layers: tuple[str, ...] = ()
    dense_first_layer: bool = False
    sparse_classifier: bool = False
    update_interval: int = 100
    prune_rate: float = 0.1
    prune_rate_decay: str = "polynomial"
    update_end: float | None = None
    drop_criterion: str = "magnitude"
    drop_lambda: float = 1.0
    soft_bound: float = 0.1
    initial_density: float | None = None
    prune_end: float = 0.5
    warmup: float = 0.1
    phase: float = 0.05
    final: float = 0.15
    # kept along the way; not part of the run's identity
    snapshots: tuple[int, ...] = ()

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
        out: dict[str, Any] = {"spec_version": SPEC_VERSION}
        for f in dataclasses.fields(self):
            if f.name in NOT_HASHED or (f.name in SPARSITY_FIELDS and f.name not in used):
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
    ("method", *_choice(METHODS)),
    ("sparsity", *_range(0, 1, hi_open=True)),
    ("distribution", *_choice(DISTRIBUTIONS)),
    ("erk_power_scale", lambda v, s: v > 0, "a number > 0"),
    ("update_interval", lambda v, s: v >= 1, "an integer >= 1"),
    ("prune_rate", *_range(0, 1, lo_open=True, hi_open=True)),
    ("prune_rate_decay", *_choice(PRUNE_RATE_DECAYS)),
    ("update_end", *_range(0, 1, lo_open=True, none_ok=True)),
    ("drop_criterion", *_choice(DROP_CRITERIA)),
    ("drop_lambda", lambda v, s: v >= 0, "a number >= 0"),
    ("soft_bound", lambda v, s: v >= 0 and (1 - s.sparsity) * (1 + v) <= 1,
     "a number >= 0 with target density x (1 + soft_bound) <= 1"),
    ("initial_density", lambda v, s: v is None or (1 - s.sparsity) <= v <= 1,
     "None or a number in [target density, 1]"),
    ("prune_end", *_range(0, 1, lo_open=True)),
    ("warmup", *_range(0, 1, hi_open=True)),
    ("phase", *_range(0, 1, lo_open=True, hi_open=True)),
    ("final", *_range(0, 1, lo_open=True, hi_open=True)),
    ("snapshots", lambda v, s: all(1 <= e <= s.epochs for e in v), "epochs in [1, epochs]"),
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
    "augmentation": f"training augmentation: {', '.join(AUGMENTATIONS)}",
    "mixup": "mixup Beta(alpha, alpha) parameter; 0 turns mixup off",
    "method": f"training method: {', '.join(METHODS)}",
    "sparsity": "target fraction of zeros in the sparse layers",
    "distribution": f"layer densities: {', '.join(DISTRIBUTIONS)}",
    "erk_power_scale": "ERK power scale (1: RigL's ERK)",
    "dense_layers": "parameter names kept dense",
    "dense_first_layer": "keep the first conv/linear layer dense",
    "sparse_classifier": "make the final classifier sparse as well",
    "update_interval": "topology update every this many optimiser steps (dT)",
    "prune_rate": "fraction of active weights dropped and regrown per update",
    "prune_rate_decay": f"decay of the prune rate: {', '.join(PRUNE_RATE_DECAYS)}",
    "update_end": "fraction of training after which the topology is frozen (none: the method's default)",
    "drop_criterion": f"drop score: {', '.join(DROP_CRITERIA)} (MEST's |w| + lambda |g|)",
    "drop_lambda": "lambda of the magnitude_gradient drop score",
    "soft_bound": "MEST: extra density at the start, as a fraction of the target density",
    "initial_density": "GraNet: initial density (none: 0.8, or target + (1 - target) / 2 above 0.8)",
    "prune_end": "GraNet: fraction of training over which density falls to the target",
    "warmup": "AC/DC: dense warm-up, fraction of training",
    "phase": "AC/DC: length of each compressed / decompressed phase, fraction of training",
    "final": "AC/DC: final compressed phase, fraction of training",
    "snapshots": "epochs after which weights and masks are kept (not part of the run's identity)",
}
assert set(HELP) == set(FIELD_NAMES), set(FIELD_NAMES) ^ set(HELP)

