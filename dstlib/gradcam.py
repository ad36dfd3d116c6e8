"""Grad-CAM maps (captum's LayerGradCam) and the attention area they cover.

`cams` computes Grad-CAM on a conv layer (default: the model's last
nn.Conv2d in definition order) with ReLU on the weighted map
(`relu_attributions=True`, Selvaraju et al. 2017), for the predicted class
unless `targets` are given, upsampled bilinearly to the image size.

`attention_area` makes "sparse models look at smaller regions" a number:
the fraction of pixels whose Grad-CAM value is at least `threshold` (default
one half) times that image's maximum. An image whose map is all zero has
area NaN (no attention to measure). Compare two methods with
`dstlib.stats.compare` on areas stacked over (seed, image): the seed is the
unit, images a second level.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn


def last_conv(model: nn.Module) -> str:
    """Name of the last nn.Conv2d module in definition order."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ValueError("model has no nn.Conv2d layer; allowed: a model with a conv layer, or pass layer=")
    return names[-1]


def _normalize(x: torch.Tensor, info) -> torch.Tensor:
    x = x.float() / 255
    if info is None:
        return x
    mean = torch.tensor(info.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def cams(model: nn.Module, images: torch.Tensor, info=None, *, targets: torch.Tensor | None = None,
         layer: str | None = None, batch_size: int = 64, device=None) -> xr.DataArray:
    """Grad-CAM maps, dims (image, y, x), float, >= 0.

    `images`: uint8 (N, C, H, W); `info`: a DatasetInfo whose mean/std
    normalise them (None: pixels / 255 only). `targets`: class per image
    (default: the model's prediction); the prediction is kept as the
    `prediction` coordinate.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images is invalid ({getattr(images, 'dtype', type(images).__name__)}); "
                         "allowed: a uint8 tensor (N, C, H, W)")
    if targets is not None and (not isinstance(targets, torch.Tensor) or targets.shape != (images.shape[0],)):
        raise ValueError(f"targets is invalid; allowed: None or an int tensor of shape ({images.shape[0]},)")
    mods = dict(model.named_modules())
    layer = last_conv(model) if layer is None else layer
    if layer not in mods:
        raise ValueError(f"layer={layer!r} is not a module of the model; allowed: e.g. {last_conv(model)!r}")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; allowed: a positive int")
    was_training = model.training
    model.eval()
    gc = LayerGradCam(model, mods[layer])
    h, w = images.shape[-2:]
    out, preds = [], []
    try:
        for s in range(0, images.shape[0], batch_size):
            x = _normalize(images[s:s + batch_size].to(device), info)
            with torch.no_grad():
                pred = model(x).argmax(1)
            t = pred if targets is None else targets[s:s + batch_size].to(device)
            a = gc.attribute(x, target=t, relu_attributions=True)
            a = LayerAttribution.interpolate(a, (h, w), "bilinear")
            out.append(a[:, 0].detach().clamp_min(0).cpu())
            preds.append(pred.cpu())
    finally:
        model.train(was_training)
    maps = torch.cat(out).numpy()
    return xr.DataArray(maps, dims=("image", "y", "x"),
                        coords={"image": np.arange(maps.shape[0]), "prediction": ("image", torch.cat(preds).numpy())},
                        name="gradcam", attrs={"layer": layer})


def side_by_side(models: Mapping[str, nn.Module], images: torch.Tensor, info=None, **kwargs) -> xr.DataArray:
    """`cams` for several models on the same images, dims (model, image, y, x)."""
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models is invalid; allowed: a non-empty dict {name: nn.Module}")
    parts = [cams(m, images, info, **kwargs).drop_vars("prediction") for m in models.values()]
    return xr.concat(parts, dim=xr.DataArray(list(models), dims="model", name="model"))


def attention_area(maps: xr.DataArray, threshold: float = 0.5) -> xr.DataArray:
    """Fraction of pixels with value >= threshold x the image's maximum; dims of `maps` less (y, x)."""
    if not isinstance(maps, xr.DataArray) or "y" not in maps.dims or "x" not in maps.dims:
        raise ValueError("maps is invalid; allowed: a DataArray with dims y and x (from cams)")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold={threshold!r} is invalid; allowed: a float in (0, 1]")
    peak = maps.max(("y", "x"))
    area = (maps >= threshold * peak).mean(("y", "x"))
    return area.where(peak > 0).rename("attention_area").assign_attrs(threshold=threshold)
