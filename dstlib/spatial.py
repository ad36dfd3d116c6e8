"""Per-kernel statistics of convolution weights (the paper's Figures 5, 16, 17), as numbers.

For a conv layer with weight (out, in/groups, *kernel), each kernel is the
slice weight[o, i]. `kernels` gives, per kernel, the number of non-zero
weights and the sum of absolute weights, as (out_channel, in_channel)
arrays: the paper's heatmaps. `summary` turns the visual claim ("zeros
concentrate on whole input and output channels") into numbers:

* empty_fraction: the fraction of kernels with no non-zero weight;
* empty_fraction_random: what that fraction would be if the same number of
  non-zeros were placed independently at random (binomial: (1 - d)^k per
  kernel of k weights at layer density d), so empty_fraction well above it
  means zeros are concentrated on whole kernels;
* gini_out / gini_in: Gini coefficients of the per-output-channel and
  per-input-channel sums of absolute weights (0 = spread evenly over
  channels, towards 1 = concentrated on few channels);
* empty_out / empty_in: fractions of output (input) channels whose kernels
  are all empty.

A weight counts as non-zero when it is != 0 after applying `mask` (if given).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def gini(values) -> float:
    """Gini coefficient of non-negative values: sum_ij |x_i - x_j| / (2 n^2 mean); 0 for all equal or all zero."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    if x.size == 0 or np.any(x < 0) or not np.all(np.isfinite(x)):
        raise ValueError("values is invalid; allowed: a non-empty array of finite numbers >= 0")
    total = x.sum()
    if total == 0:
        return 0.0
    n = x.size
    ranks = np.arange(1, n + 1)
    return float((2 * ranks - n - 1) @ x / (n * total))


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's convolution modules, in definition order."""
    return [n for n, m in model.named_modules() if isinstance(m, _CONV)]


def _weight(model_or_layer, layer: str | None, mask) -> torch.Tensor:
    if isinstance(model_or_layer, _CONV) and layer is None:
        w = model_or_layer.weight
    elif isinstance(model_or_layer, nn.Module):
        mods = dict(model_or_layer.named_modules())
        convs = conv_layers(model_or_layer)
        if layer not in mods or not isinstance(mods[layer], _CONV):
            raise ValueError(f"layer={layer!r} is not a conv layer of the model; allowed: {', '.join(convs[:8])}"
                             + (", ..." if len(convs) > 8 else ""))
        w = mods[layer].weight
    elif isinstance(model_or_layer, torch.Tensor) and model_or_layer.ndim >= 3:
        w = model_or_layer
    else:
        raise ValueError(f"model_or_layer is a {type(model_or_layer).__name__}; allowed: a model (with layer=), "
                         "a conv module, or a conv weight tensor (out, in, *kernel)")
    w = w.detach().float().cpu()
    if mask is not None:
        if tuple(mask.shape) != tuple(w.shape):
            raise ValueError(f"mask has shape {tuple(mask.shape)}; allowed: the weight's shape {tuple(w.shape)}")
        w = w * mask.detach().cpu().bool()
    return w


def kernels(model_or_layer, layer: str | None = None, mask: torch.Tensor | None = None) -> xr.Dataset:
    """Per-kernel `nonzero` count and `abs_sum`, dims (out_channel, in_channel)."""
    w = _weight(model_or_layer, layer, mask)
    flat = w.flatten(2)
    ds = xr.Dataset({"nonzero": (("out_channel", "in_channel"), (flat != 0).sum(-1).numpy()),
                     "abs_sum": (("out_channel", "in_channel"), flat.abs().sum(-1).numpy())},
                    coords={"out_channel": np.arange(w.shape[0]), "in_channel": np.arange(w.shape[1])},
                    attrs={"kernel_size": int(flat.shape[-1]), "layer": layer or ""})
    return ds


def _stats(k: xr.Dataset) -> dict[str, float]:
    nz, mag = k["nonzero"].values, k["abs_sum"].values
    ksize = k.attrs["kernel_size"]
    density = nz.sum() / (nz.size * ksize)
    return {"density": float(density),
            "empty_fraction": float((nz == 0).mean()),
            "empty_fraction_random": float((1 - density) ** ksize),
            "empty_out": float((nz.sum(1) == 0).mean()),
            "empty_in": float((nz.sum(0) == 0).mean()),
            "gini_out": gini(mag.sum(1)),
            "gini_in": gini(mag.sum(0)),
            "gini_kernel": gini(mag)}


def summary(model: nn.Module, layers: Sequence[str] | None = None,
            masks: Mapping[str, torch.Tensor] | None = None) -> xr.Dataset:
    """Concentration statistics (module docstring) per conv layer, dim `layer`.

    `layers`: conv module names (default all); `masks`: {param name: bool}.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model is a {type(model).__name__}; allowed: an nn.Module")
    layers = conv_layers(model) if layers is None else list(layers)
    if not layers:
        raise ValueError("layers is empty; allowed: conv layer names of the model (it has none)" )
    masks = masks or {}
    rows = [_stats(kernels(model, name, masks.get(f"{name}.weight"))) for name in layers]
    return xr.Dataset({key: ("layer", [r[key] for r in rows]) for key in rows[0]}, coords={"layer": layers})
