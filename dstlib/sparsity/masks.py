"""Which weights are sparse, random masks, and exact top-k selection.

Parameter names are those of ``model.named_parameters()`` for the model given.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

_CONV = nn.modules.conv._ConvNd


def _weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv and linear modules with a trainable ``weight``, in module order (``named_modules``)."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, _CONV)) and isinstance(getattr(mod, "weight", None), nn.Parameter):
            out.append((name, mod))
    return out


def _param_name(module_name: str) -> str:
    return f"{module_name}.weight" if module_name else "weight"


def find_classifier(model: nn.Module) -> list[str]:
    """Parameter names of the final classifier's conv/linear weights (empty if none).

    The classifier is the model's head module where the model names one:
    timm's ``get_classifier()``, else an attribute ``classifier`` (dstlib's
    models; the CIFAR VGG16's whole 512-512-classes head, which the paper's
    parameter counts show dense, as the sparse-training CIFAR code it builds on
    leaves every layer named ``classifier`` dense). Otherwise it is the last
    ``nn.Linear`` in module order, or, with no Linear, a last 1x1 conv (a conv
    head). Name layers explicitly (``dense_layers``) where this guess is wrong.
    """
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "classifier", None)
    if isinstance(head, nn.Module):
        prefix = next((n for n, m in model.named_modules() if m is head), None)
        if prefix is not None:
            found = [_param_name(f"{prefix}.{n}" if n else prefix) for n, _ in _weighted_layers(head)]
            if found:
                return found
    layers = _weighted_layers(model)
    linears = [name for name, mod in layers if isinstance(mod, nn.Linear)]
    if linears:
        return [_param_name(linears[-1])]
    if layers and all(k == 1 for k in layers[-1][1].kernel_size):
        return [_param_name(layers[-1][0])]
    return []


def sparse_weights(
    model: nn.Module,
    dense_layers: Iterable[str] = (),
    dense_first_layer: bool = False,
    sparse_classifier: bool = False,
) -> list[tuple[str, nn.Parameter]]:
    """The (name, parameter) pairs to sparsify, in module order.

    Default: every conv and linear weight except the final classifier
    (:func:`find_classifier`). Biases and normalisation parameters are never
    sparse. ``dense_first_layer`` keeps the first conv/linear dense,
    ``dense_layers`` names more weights to keep dense, ``sparse_classifier``
    makes the classifier sparse too. A parameter shared by several modules is
    counted once.
    """
    layers = _weighted_layers(model)
    names = [_param_name(n) for n, _ in layers]
    all_params = dict(model.named_parameters())
    dense = set()
    for name in dense_layers:
        if name not in names:
            raise ValueError(
                f"dense_layers: {name!r} is not a conv/linear weight of the model; valid: {', '.join(names)}"
            )
        dense.add(name)
    if dense_first_layer and names:
        dense.add(names[0])
    if not sparse_classifier:
        dense.update(find_classifier(model))
    out: list[tuple[str, nn.Parameter]] = []
    seen: set[int] = set()
    for name in names:
        if name in dense or name not in all_params:
            continue
        p = all_params[name]
        if id(p) in seen:
            continue
        seen.add(id(p))
        out.append((name, p))
    return out


def top_k_mask(scores: torch.Tensor, k: int, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of ``scores`` (any shape).

    Exact count; ties at the threshold go to the lower flat index, so the
    result is deterministic. The threshold comes from ``numpy.partition`` on
    the CPU (O(n); in place in ``scratch``, a float32 CPU tensor of the same
    size, when given) and from ``topk`` on the smaller side elsewhere.
    """
    flat = scores.reshape(-1)
    n = flat.numel()
    if k <= 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    if k >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    if flat.device.type == "cpu":  # numpy's introselect is ~10x faster than torch.topk/kthvalue on the CPU
        values = flat.detach().float().numpy()
        if scratch is not None and scratch.device.type == "cpu" and scratch.numel() == n:
            work = scratch.reshape(-1).float().numpy()
            np.copyto(work, values)
            work.partition(n - k)
            thr = float(work[n - k])
        else:
            thr = float(np.partition(values, n - k)[n - k])
    elif k <= n - k:
        thr = flat.topk(k, sorted=False).values.min()
    else:
        thr = flat.topk(n - k + 1, largest=False, sorted=False).values.max()
    out = flat >= thr
    extra = int(torch.count_nonzero(out)) - k
    if extra > 0:  # ties at the threshold: keep the lowest flat indices among them
        ties = (flat == thr).nonzero().reshape(-1)
        out[ties[len(ties) - extra:]] = False
    return out.reshape(scores.shape)


def random_mask(shape: torch.Size, k: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean mask with exactly ``k`` True entries, uniform over positions (from ``generator``)."""
    scores = torch.rand(shape, generator=generator, device="cpu")
    return top_k_mask(scores, k).to(device)
