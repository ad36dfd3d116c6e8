"""Which weights are sparse, random masks, and exact top-k selection.

Parameter names are those of ``model.named_parameters()`` for the model given:
a model wrapped by ``DistributedDataParallel`` / ``DataParallel`` (``.module``)
or ``torch.compile`` (``._orig_mod``) keeps its wrapper's prefix in the names,
but is *inspected* (classifier, first layer, layer types) through the wrapped
model, so a wrapper never changes which weights are sparse.

Selections are exact counts. Ties at the threshold are broken by a random
order from a seeded ``numpy.random.Generator`` when one is given (frequent
with bf16 gradients; the lowest flat index would bias growth towards low
channel indices), else by the lowest flat index.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from dstlib.wrappers import unwrap

_CONV = nn.modules.conv._ConvNd

#: Layer kinds ``dense_types`` accepts besides module class names.
KINDS = ("depthwise", "squeeze_excite")
#: Squeeze-excite modules (timm, torchvision): every conv/linear inside one is of kind "squeeze_excite".
SQUEEZE_EXCITE_CLASSES = (
    "SqueezeExcite", "SqueezeExciteCl", "SEModule", "EffectiveSEModule",
    "SqueezeExcitation", "QuantizableSqueezeExcitation",
)


def _param_name(module_name: str, attr: str = "weight") -> str:
    return f"{module_name}.{attr}" if module_name else attr


def _mha_weights(mod: nn.MultiheadAttention) -> list[str]:
    """The input-projection weights of a MultiheadAttention (its ``out_proj`` is a Linear)."""
    if getattr(mod, "in_proj_weight", None) is not None:
        return ["in_proj_weight"]
    return [a for a in ("q_proj_weight", "k_proj_weight", "v_proj_weight") if getattr(mod, a, None) is not None]


def _weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(module name, module, weight attribute) of every conv/linear weight and every
    MultiheadAttention input projection, in module order (``named_modules``)."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, _CONV)) and isinstance(getattr(mod, "weight", None), nn.Parameter):
            out.append((name, mod, "weight"))
        elif isinstance(mod, nn.MultiheadAttention):
            out += [(name, mod, attr) for attr in _mha_weights(mod) if isinstance(getattr(mod, attr), nn.Parameter)]
    return out


def find_classifier(model: nn.Module) -> list[str]:
    """Parameter names of the final classifier's conv/linear weights (empty if none).

    The classifier is the model's head module where the model names one:
    timm's ``get_classifier()``, else an attribute ``classifier`` (dstlib's
    models; the CIFAR VGG16's whole 512-512-classes head, which the paper's
    parameter counts show dense, as the sparse-training CIFAR code it builds on
    leaves every layer named ``classifier`` dense). Otherwise it is the last
    ``nn.Linear`` in module order, or, with no Linear, a last 1x1 conv (a conv
    head). Wrappers are looked through (:func:`unwrap`). Name layers explicitly
    (``dense_layers``) where this guess is wrong.
    """
    inner, prefix = unwrap(model)
    head = inner.get_classifier() if hasattr(inner, "get_classifier") else getattr(inner, "classifier", None)
    if isinstance(head, nn.Module):
        where = next((n for n, m in inner.named_modules() if m is head), None)
        if where is not None:
            found = [prefix + _param_name(f"{where}.{n}" if n else where, a) for n, _, a in _weighted_layers(head)]
            if found:
                return found
    layers = [(n, m) for n, m, a in _weighted_layers(inner) if a == "weight"]
    linears = [name for name, mod in layers if isinstance(mod, nn.Linear)]
    if linears:
        return [prefix + _param_name(linears[-1])]
    if layers and all(k == 1 for k in layers[-1][1].kernel_size):
        return [prefix + _param_name(layers[-1][0])]
    return []


def _kinds(inner: nn.Module) -> dict[str, set[str]]:
    """{weight name (unprefixed): the kinds and class names it matches in ``dense_types``}."""
    out: dict[str, set[str]] = {}
    owners = [(name, type(mod).__name__) for name, mod in inner.named_modules()]
    for name, mod, attr in _weighted_layers(inner):
        tags = {type(mod).__name__}
        # the class names of every enclosing module (the layer's own name is a prefix of its children's)
        tags.update(cls for owner, cls in owners if owner and (name == owner or name.startswith(owner + ".")))
        if isinstance(mod, _CONV) and mod.groups > 1 and mod.groups == mod.in_channels:
            tags.add("depthwise")
        if tags & set(SQUEEZE_EXCITE_CLASSES):
            tags.add("squeeze_excite")
        out[_param_name(name, attr)] = tags
    return out


def sparse_weights(
    model: nn.Module,
    dense_layers: Iterable[str] = (),
    dense_first_layer: bool = False,
    sparse_classifier: bool = False,
    dense_patterns: Iterable[str] = (),
    dense_types: Iterable[str] = (),
) -> list[tuple[str, nn.Parameter]]:
    """The (name, parameter) pairs to sparsify, in module order.

    Default: every conv and linear weight and every ``nn.MultiheadAttention``
    input projection (``in_proj_weight``, or ``q/k/v_proj_weight``: sparse
    like the ``out_proj`` Linear beside it) except the final classifier
    (:func:`find_classifier`). Biases and normalisation parameters are never
    sparse. Kept dense as well:

    - ``dense_layers``: parameter names (with or without a wrapper's prefix);
    - ``dense_patterns``: ``fnmatch`` patterns over the parameter names
      (e.g. ``"*.se.*"``); each must match at least one weight;
    - ``dense_types``: layer kinds (``"depthwise"``: convs with ``groups ==
      in_channels > 1``; ``"squeeze_excite"``: every layer inside a
      squeeze-excite module, ``SQUEEZE_EXCITE_CLASSES``) or module class names,
      matched against the layer's class and every enclosing module's class
      (``"Conv1d"``, ``"SqueezeExcite"``); a class name must occur in the model;
    - ``dense_first_layer``: the first such weight.

    ``sparse_classifier`` makes the classifier sparse too. A parameter shared
    by several modules is counted once.
    """
    inner, prefix = unwrap(model)
    layers = _weighted_layers(inner)
    names = [_param_name(n, a) for n, _, a in layers]
    all_params = dict(inner.named_parameters())
    dense: set[str] = set()
    for name in dense_layers:
        bare = name[len(prefix):] if prefix and name.startswith(prefix) else name
        if bare not in names:
            raise ValueError(
                f"dense_layers: {name!r} is not a conv/linear weight of the model; valid: {', '.join(names)}"
            )
        dense.add(bare)
    for pattern in dense_patterns:
        hit = [n for n in names if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(prefix + n, pattern)]
        if not hit:
            raise ValueError(f"dense_patterns: {pattern!r} matches no conv/linear weight; valid names: {', '.join(names)}")
        dense.update(hit)
    types = tuple(dense_types)
    if types:
        tags = _kinds(inner)
        classes = {type(m).__name__ for m in inner.modules()}
        for t in types:
            if t not in KINDS and t not in classes:
                raise ValueError(
                    f"dense_types: {t!r} is neither a layer kind ({', '.join(KINDS)}) nor a module class of the model"
                )
        dense.update(n for n, tag in tags.items() if tag & set(types))
    if dense_first_layer and names:
        dense.add(names[0])
    if not sparse_classifier:
        dense.update(n[len(prefix):] for n in find_classifier(model))
    out: list[tuple[str, nn.Parameter]] = []
    seen: set[int] = set()
    for name in names:
        if name in dense or name not in all_params:
            continue
        p = all_params[name]
        if id(p) in seen:
            continue
        seen.add(id(p))
        out.append((prefix + name, p))
    return out


def select(scores: np.ndarray, k: int, *, largest: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
    """Positions of the ``k`` largest (or smallest) entries of a 1-D array: exact count.

    The threshold comes from ``numpy.partition`` (O(n)); entries strictly past
    it are taken, then as many entries equal to it as needed, in a random
    order from ``rng`` (the lowest positions without one). NaN must not occur.
    """
    n = scores.size
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    kth = n - k if largest else k - 1
    thr = np.partition(scores, kth)[kth]
    taken = np.flatnonzero(scores >= thr if largest else scores <= thr)
    if taken.size == k:  # no surplus tie at the threshold (the usual case): one pass
        return taken
    at = scores[taken] == thr
    past, ties = taken[~at], taken[at]
    need = k - past.size
    if need < ties.size:
        ties = np.sort(rng.choice(ties, need, replace=False)) if rng is not None else ties[:need]
    return np.concatenate([past, ties])


def top_k_mask(scores: torch.Tensor, k: int, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of ``scores`` (any shape and device):
    exact count, ties as in :func:`select`."""
    flat = scores.detach().reshape(-1)
    out = torch.zeros(flat.numel(), dtype=torch.bool)
    idx = select(flat.float().cpu().numpy(), k, rng=rng)
    out[torch.from_numpy(idx)] = True
    return out.reshape(scores.shape).to(scores.device)


def random_mask(shape: torch.Size, k: int, rng: np.random.Generator | torch.Generator,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean mask with exactly ``k`` True entries, uniform over positions: the ``k`` largest
    of uniform keys from ``rng`` (a numpy Generator, or a torch.Generator: ``torch.rand``'s stream)."""
    n = int(np.prod(shape, dtype=np.int64))
    out = torch.zeros(n, dtype=torch.bool)
    if isinstance(rng, torch.Generator):
        keys = torch.rand(n, generator=rng).numpy()
    else:  # ~3x faster than rng.choice(n, k, replace=False) for k ~ n / 2
        keys = rng.random(n, dtype=np.float32)
    out[torch.from_numpy(select(keys, k))] = True
    return out.reshape(shape).to(device)
