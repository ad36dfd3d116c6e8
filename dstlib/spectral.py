"""Fourier attenuation, radius-accuracy curves, and corruptions ranked by high-frequency power.

Radius convention (the paper's Figure 6 shows the idea but no formula; this
is our choice). Per image and channel, take the 2-d DFT and give each
component its integer frequency (u, v), u in fftfreq(H) x H, v in
fftfreq(W) x W, i.e. its offset from the DC component in the centred
(fftshift-ed) spectrum; its distance is d = sqrt(u^2 + v^2). Let R be the
largest d present (the corner, sqrt((H/2)^2 + (W/2)^2) for even sizes:
22.63 for 32 px, 19.80 for 28 px).

* band="low", radius r: components with d < r are set to 0 (r = 1 removes
  only the mean, r > R removes everything).
* band="high", radius r: components with d > R - r are set to 0 (a small
  r removes only the outermost corner frequencies; r = R keeps only the
  mean, r > R removes everything).

So r = 0 changes nothing and a larger r always removes more, in both bands,
and r counts frequency-index steps removed from the respective end of the
spectrum. Attenuation is applied to pixels on the [0, 1] scale, before the
dataset normalisation, and the result is not clipped. A radius that removes
nothing leaves the pixels exactly as they were (no FFT round trip).

`high_frequency_energy` measures, per corruption, the high-frequency power
beyond a radius r counted from DC (components with d > r, the same d); see
its docstring for the two measures and their normalisation.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
import xarray as xr

BANDS = ("high", "low")


def _distance(h: int, w: int, device) -> torch.Tensor:
    u = torch.fft.fftfreq(h, d=1.0 / h, device=device).view(-1, 1)
    v = torch.fft.fftfreq(w, d=1.0 / w, device=device).view(1, -1)
    return torch.sqrt(u ** 2 + v ** 2)


def max_radius(height: int, width: int) -> float:
    """R: the distance of the farthest frequency component from DC."""
    return float(_distance(height, width, "cpu").max())


def keep_mask(height: int, width: int, radius: float, band: str, device="cpu") -> torch.Tensor:
    """Bool (H, W) mask, in unshifted FFT order, of the components kept by `attenuate`."""
    if band not in BANDS:
        raise ValueError(f"band={band!r} is invalid; allowed: 'high', 'low'")
    if not isinstance(radius, (int, float)) or isinstance(radius, bool) or not radius >= 0:
        raise ValueError(f"radius={radius!r} is invalid; allowed: a number >= 0")
    d = _distance(height, width, device)
    if band == "low":
        return d >= radius
    if radius == 0:
        return torch.ones_like(d, dtype=torch.bool)
    return d <= float(d.max()) - radius


def attenuate(x: torch.Tensor, radius: float, band: str) -> torch.Tensor:
    """Remove the `band` frequencies within `radius` (module docstring); float NCHW -> same shape."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"x is invalid ({getattr(x, 'dtype', type(x).__name__)}, "
                         f"{tuple(getattr(x, 'shape', ()))}); allowed: a float tensor (N, C, H, W)")
    keep = keep_mask(x.shape[-2], x.shape[-1], radius, band, x.device)
    if bool(keep.all()):
        return x.clone()
    f = torch.fft.fft2(x.to(torch.float64) if x.dtype == torch.float64 else x.float())
    return torch.fft.ifft2(f * keep).real.to(x.dtype)


def _images_labels(dataset) -> tuple[torch.Tensor, torch.Tensor, Any]:
    if not (hasattr(dataset, "images") and hasattr(dataset, "labels") and hasattr(dataset, "info")):
        raise ValueError(f"dataset is a {type(dataset).__name__}; allowed: a dstlib.data.ImageSet")
    return dataset.images, dataset.labels, dataset.info


def _normalize(x01: torch.Tensor, info) -> torch.Tensor:
    mean = torch.tensor(info.mean, device=x01.device, dtype=x01.dtype).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=x01.device, dtype=x01.dtype).view(1, -1, 1, 1)
    return (x01 - mean) / std


def _device_of(model: torch.nn.Module, device):
    if device is not None:
        return torch.device(device)
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def radius_accuracy(model, dataset, radii: Sequence[float], *, bands: Sequence[str] = BANDS,
                    n_test: int | None = None, batch_size: int = 256, device=None,
                    progress: bool = True) -> xr.Dataset:
    """Radius-accuracy curves: accuracy after attenuating each band at each radius.

    `model`: an nn.Module or a `dstlib.store.Run`. Returns a Dataset with
    `accuracy` (band, radius) and `correct` (band, radius, image) bool, on
    the first `n_test` images of `dataset` (an ImageSet). The model is used
    in eval mode under no_grad.
    """
    from tqdm.auto import tqdm

    for b in bands:
        if b not in BANDS:
            raise ValueError(f"bands contains {b!r}; allowed: 'high', 'low'")
    radii = [float(r) for r in radii]
    if not radii or any(not r >= 0 for r in radii):
        raise ValueError(f"radii={radii!r} is invalid; allowed: a non-empty list of numbers >= 0")
    images, labels, info = _images_labels(dataset)
    if hasattr(model, "model") and hasattr(model, "spec") and not isinstance(model, torch.nn.Module):
        model = model.model()  # a dstlib.store.Run
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model is a {type(model).__name__}; allowed: an nn.Module or a dstlib.store.Run")
    n = len(labels) if n_test is None else n_test
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(labels):
        raise ValueError(f"n_test={n_test!r} is invalid; allowed: None or an int in [1, {len(labels)}]")
    dev = _device_of(model, device)
    was_training = model.training
    model.eval()
    keeps = {(b, r): keep_mask(images.shape[-2], images.shape[-1], r, b, dev) for b in bands for r in radii}
    correct = np.zeros((len(bands), len(radii), n), dtype=bool)
    with torch.no_grad():
        for s in tqdm(range(0, n, batch_size), disable=not progress, desc="radius-accuracy"):
            x = images[s:min(n, s + batch_size)].to(dev).float() / 255
            y = labels[s:min(n, s + batch_size)].to(dev)
            f = torch.fft.fft2(x)
            for i, b in enumerate(bands):
                for j, r in enumerate(radii):
                    keep = keeps[b, r]
                    xa = x if bool(keep.all()) else torch.fft.ifft2(f * keep).real
                    pred = model(_normalize(xa, info)).argmax(1)
                    correct[i, j, s:s + len(y)] = (pred == y).cpu().numpy()
    model.train(was_training)
    da = xr.DataArray(correct, dims=("band", "radius", "image"),
                      coords={"band": list(bands), "radius": radii, "image": np.arange(n)})
    return xr.Dataset({"accuracy": da.mean("image"), "correct": da},
                      attrs={"max_radius": max_radius(images.shape[-2], images.shape[-1]),
                             "convention": "low: zero d < r; high: zero d > R - r; d = integer frequency distance"})


def radius_accuracy_during_training(run, dataset, radii: Sequence[float], *, epochs: Iterable[int] | None = None,
                                    **kwargs) -> xr.Dataset:
    """The paper's Figure 18: `radius_accuracy` on each snapshot a run kept (dims epoch, band, radius).

    `run` is a `dstlib.store.Run` (uses `run.snapshots` and `run.snapshot(epoch)`).
    """
    if not hasattr(run, "snapshots") or not hasattr(run, "snapshot"):
        raise ValueError(f"run is a {type(run).__name__}; allowed: a dstlib.store.Run")
    kept = list(run.snapshots)
    epochs = kept if epochs is None else list(epochs)
    missing = [e for e in epochs if e not in kept]
    if not epochs or missing:
        raise ValueError(f"epochs={epochs!r} is invalid; allowed: epochs the run kept: {kept}")
    parts = []
    for e in epochs:
        model, _masks = run.snapshot(e)
        parts.append(radius_accuracy(model, dataset, radii, **kwargs))
    return xr.concat(parts, dim=xr.DataArray(epochs, dims="epoch", name="epoch"))


MEASURES = ("change", "difference")


def _high_power(x01: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Per image: sum over channels and components with `high` of |DFT|^2 / (H W), divided by C H W."""
    c, h, w = x01.shape[1:]
    f = torch.fft.fft2(x01)
    return (f.abs() ** 2 * high).sum((1, 2, 3)) / (h * w) / (c * h * w)


def high_frequency_energy(images: torch.Tensor, corruptions: Sequence[str] | None = None,
                          severities: Sequence[int] = (1, 2, 3, 4, 5), *, radius: float | None = None,
                          seed: int = 0, batch_size: int = 64, measure: str = "change",
                          table: str | None = None, jpeg: bool | None = None) -> xr.DataArray:
    """High-frequency power a corruption adds (signed) or the power of what it changes.

    Radius convention: d = sqrt(u^2 + v^2) with (u, v) the integer frequency
    of a DFT component (module docstring); "high" means d > r, strictly.
    Default r = R / 2, R = `max_radius(H, W)` (9.90 at 28 px, 11.31 at 32 px).
    Normalisation: pixels on the [0, 1] scale; for an image x with C
    channels, P(x) = sum_c sum_{d > r} |X_c(u, v)|^2 / (H W) / (C H W), X the
    unnormalised DFT (torch.fft.fft2). By Parseval, P(x) is the mean squared
    value per pixel and channel of the high-pass part of x (units: squared
    [0, 1] intensity).

    * measure="change" (default): mean over images of P(x_c) - P(x), corrupted
      minus clean. Positive: the corruption adds high frequencies (noise);
      negative: it removes them (blur); a change confined to d <= r (a
      brightness shift without clipping) gives 0. It is the change of the
      power, not the power of the change: with delta = x_c - x it equals
      P(delta) plus twice the high-band cross term of x and delta, which is
      ~0 for noise independent of the image and negative for a blur.
    * measure="difference": mean over images of P(x_c - x), the high-pass
      power of the change itself (>= 0 for every corruption; blur and noise
      both score high, so it does not tell adding from removing).

    `images`: uint8 (N, C, H, W) clean images. Corrupted images are
    `dstlib.corruptions.corrupt_as_saved(..., seed=seed, table=table,
    index=0..N-1, jpeg=jpeg)`, the images `evaluate.robustness` sees for the
    first N test images (table None: by image size). Default corruptions:
    `NAMES`, or `GRAY_NAMES` for 1-channel images. Dims (corruption,
    severity); attrs radius, measure.
    """
    import dstlib.corruptions as dc

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or not len(images):
        raise ValueError("images is invalid; allowed: a non-empty uint8 tensor (N, C, H, W)")
    if measure not in MEASURES:
        raise ValueError(f"measure={measure!r} is invalid; allowed: {', '.join(MEASURES)}")
    default = dc.GRAY_NAMES if images.shape[1] == 1 else dc.NAMES
    corruptions = list(default if corruptions is None else corruptions)
    if not corruptions:
        raise ValueError("corruptions is empty; allowed: None or names from dstlib.corruptions.NAMES")
    for c in corruptions:
        if c not in dc.NAMES:
            raise ValueError(f"corruptions contains {c!r}; allowed: {', '.join(dc.NAMES)}")
    severities = list(severities)
    for s in severities:
        if isinstance(s, bool) or s not in (1, 2, 3, 4, 5):
            raise ValueError(f"severities contains {s!r}; allowed: 1, 2, 3, 4, 5")
    if not severities:
        raise ValueError("severities is empty; allowed: a non-empty subset of 1, 2, 3, 4, 5")
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius >= 0):
        raise ValueError(f"radius={radius!r} is invalid; allowed: None (R / 2) or a number >= 0")
    if table is not None and table not in ("cifar", "tiny", "imagenet"):
        raise ValueError(f"table={table!r} is invalid; allowed: None, cifar, tiny, imagenet")
    if jpeg not in (None, True, False):
        raise ValueError(f"jpeg={jpeg!r} is invalid; allowed: None (as saved), True, False")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; allowed: a positive int")
    h, w = images.shape[-2:]
    r = max_radius(h, w) / 2 if radius is None else float(radius)
    high = _distance(h, w, images.device) > r
    n = images.shape[0]
    clean = torch.zeros(n, dtype=torch.float64)
    if measure == "change":
        for st in range(0, n, batch_size):
            clean[st:st + batch_size] = _high_power(images[st:st + batch_size].double() / 255, high).cpu()
    out = np.zeros((len(corruptions), len(severities)))
    for i, c in enumerate(corruptions):
        for j, s in enumerate(severities):
            total = 0.0
            for st in range(0, n, batch_size):
                x = images[st:st + batch_size]
                xc = dc.corrupt_as_saved(x, c, s, seed=seed, table=table, index=torch.arange(st, st + x.shape[0]),
                                         jpeg=jpeg)
                if measure == "change":
                    total += float((_high_power(xc.double() / 255, high).cpu() - clean[st:st + x.shape[0]]).sum())
                else:
                    total += float(_high_power((xc.double() - x.double()) / 255, high).sum())
            out[i, j] = total / n
    return xr.DataArray(out, dims=("corruption", "severity"),
                        coords={"corruption": corruptions, "severity": severities},
                        name="high_frequency_energy", attrs={"radius": r, "measure": measure})


def rank_corruptions(energy: xr.DataArray) -> list[str]:
    """Corruption names ordered by `energy` averaged over severities, lowest first: with the default
    measure="change", from the corruption that removes most high-frequency power to the one that adds most."""
    if not isinstance(energy, xr.DataArray) or "corruption" not in energy.dims:
        raise ValueError("energy is invalid; allowed: the DataArray from high_frequency_energy")
    e = energy.mean([d for d in energy.dims if d != "corruption"]) if energy.ndim > 1 else energy
    order = np.argsort(e.values, kind="stable")
    return [str(energy["corruption"].values[i]) for i in order]
