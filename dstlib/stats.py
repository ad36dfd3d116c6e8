"""Seed-level statistics: means, intervals, verdicts and the seeds a difference needs.

The training seed is the unit of replication. A model's score on one seed is
first averaged over its images (and corruptions, severities, ...); intervals
come from the spread of these per-seed scores, never from images x
corruptions treated as independent draws. Where two methods share seeds the
comparison is paired by seed (differences per seed); otherwise it is a Welch
two-sample interval. Images enter only as a second level: the optional
hierarchical bootstrap resamples seeds, then images within each seed
(jointly for both methods, since every model sees the very same images).

A verdict is "better" (the whole interval of a - b is above 0), "worse"
(below 0) or "no detectable difference", at the stated confidence. Each
verdict carries its unit, its confidence, the number of seeds and the
minimum detectable difference (MDD): the true difference that this design
would call at the given confidence with the given power (default 80%),
(t_{1-alpha/2, df} + t_{power, df}) x standard error.
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr
from scipy import stats as _st

VERDICTS = ("better", "no detectable difference", "worse")


def _check_conf(confidence: float, power: float = 0.8) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is invalid; allowed: a float in (0, 1), e.g. 0.95")
    if not 0 < power < 1:
        raise ValueError(f"power={power!r} is invalid; allowed: a float in (0, 1), e.g. 0.8")


def _check_da(name: str, x, dim: str) -> xr.DataArray:
    if not isinstance(x, xr.DataArray):
        raise ValueError(f"{name} is a {type(x).__name__}; allowed: an xarray.DataArray with a {dim!r} dim")
    if dim not in x.dims:
        raise ValueError(f"{name} has dims {x.dims}; allowed: a DataArray with the dim {dim!r}")
    return x


def seed_summary(x: xr.DataArray, dim: str = "seed", over: tuple[str, ...] | None = None) -> xr.Dataset:
    """Mean, standard deviation (ddof=1) and n over seeds.

    `over`: dims first averaged within each seed (default: every dim but
    `dim` that is named "image", "corruption" or "severity" and present).
    """
    x = _check_da("x", x, dim)
    x = _reduce_within(x, dim, over)
    n = x.sizes[dim]
    return xr.Dataset({"mean": x.mean(dim), "std": x.std(dim, ddof=1) if n > 1 else x.mean(dim) * np.nan,
                       "n": n}, attrs={"unit": dim})


def _reduce_within(x: xr.DataArray, dim: str, over) -> xr.DataArray:
    if over is None:
        over = tuple(d for d in ("image", "corruption", "severity") if d in x.dims)
    for d in over:
        if d == dim or d not in x.dims:
            raise ValueError(f"over={over!r} is invalid; allowed: dims of x other than {dim!r}: {x.dims}")
    return x.astype(float).mean(over) if over else x.astype(float)


def _t_mdd(se, df, confidence, power):
    return (_st.t.ppf(1 - (1 - confidence) / 2, df) + _st.t.ppf(power, df)) * se


def compare(a: xr.DataArray, b: xr.DataArray, *, dim: str = "seed", over: tuple[str, ...] | None = None,
            paired: bool | None = None, confidence: float = 0.95, power: float = 0.8,
            method: str = "t", n_boot: int = 2000, rng_seed: int = 0) -> xr.Dataset:
    """Interval for mean(a) - mean(b) over seeds and a verdict per remaining coordinate.

    `a`, `b`: scores with a `dim` (seed) dim, e.g. per-image correctness
    (seed, corruption, severity, image) or accuracies (seed, sparsity).
    Dims in `over` (default image/corruption/severity) are averaged within a
    seed first; other dims (e.g. sparsity) get one verdict each.
    `paired`: None = paired when both have the same seed labels.
    `method`: "t" (seed-level t interval) or "bootstrap" (hierarchical:
    seeds, then images within a seed; needs an "image" dim in `over`).
    Returns diff, lower, upper, verdict, mdd, n_a, n_b; attrs state the unit,
    confidence, pairing and method.
    """
    _check_conf(confidence, power)
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method={method!r} is invalid; allowed: 't', 'bootstrap'")
    a, b = _check_da("a", a, dim), _check_da("b", b, dim)
    same = a.sizes[dim] == b.sizes[dim] and dim in a.coords and dim in b.coords and \
        np.array_equal(np.sort(a[dim].values), np.sort(b[dim].values))
    if paired is None:
        paired = bool(same)
    if paired and not same:
        raise ValueError(f"paired=True needs the same {dim} labels in a and b; got {a[dim].values if dim in a.coords else a.sizes[dim]} "
                         f"and {b[dim].values if dim in b.coords else b.sizes[dim]}")
    for name, x in (("a", a), ("b", b)):
        if x.sizes[dim] < 2:
            raise ValueError(f"{name} has {x.sizes[dim]} {dim}(s); allowed: at least 2, the {dim} is the unit of replication")
    if method == "bootstrap":
        return _bootstrap(a, b, dim, over, paired, confidence, power, n_boot, rng_seed)
    ma, mb = _reduce_within(a, dim, over), _reduce_within(b, dim, over)
    if paired:
        mb = mb.sel({dim: ma[dim]})
        d = ma - mb
        n = d.sizes[dim]
        diff = d.mean(dim)
        se = d.std(dim, ddof=1) / math.sqrt(n)
        df = n - 1
    else:
        na, nb = ma.sizes[dim], mb.sizes[dim]
        va, vb = ma.var(dim, ddof=1) / na, mb.var(dim, ddof=1) / nb
        diff = ma.mean(dim) - mb.mean(dim)
        se = np.sqrt(va + vb)
        # Welch-Satterthwaite degrees of freedom (nan-safe for zero variance)
        with np.errstate(invalid="ignore", divide="ignore"):
            df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
        df = xr.where(np.isfinite(df), df, na + nb - 2)
    tq = xr.apply_ufunc(lambda v: _st.t.ppf(1 - (1 - confidence) / 2, v), df) if isinstance(df, xr.DataArray) \
        else _st.t.ppf(1 - (1 - confidence) / 2, df)
    lower, upper = diff - tq * se, diff + tq * se
    mdd = xr.apply_ufunc(lambda s, v: _t_mdd(s, v, confidence, power), se, df) if isinstance(df, xr.DataArray) \
        else _t_mdd(se, df, confidence, power)
    return _finish(diff, lower, upper, mdd, a.sizes[dim], b.sizes[dim], dim, confidence, paired, "t")


def _finish(diff, lower, upper, mdd, na, nb, dim, confidence, paired, method) -> xr.Dataset:
    verdict = xr.where(lower > 0, "better", xr.where(upper < 0, "worse", "no detectable difference"))
    return xr.Dataset({"diff": diff, "lower": lower, "upper": upper, "verdict": verdict.astype(str),
                       "mdd": mdd, "n_a": na, "n_b": nb},
                      attrs={"unit": dim, "confidence": confidence, "paired": int(paired), "method": method,
                             "verdicts": "better: lower > 0; worse: upper < 0; else no detectable difference"})


def _bootstrap(a, b, dim, over, paired, confidence, power, n_boot, rng_seed) -> xr.Dataset:
    if over is None:
        over = tuple(d for d in ("image", "corruption", "severity") if d in a.dims)
    if "image" not in over or "image" not in a.dims or "image" not in b.dims:
        raise ValueError("method='bootstrap' needs an 'image' dim in a, b and over; allowed: use method='t'")
    rest = [d for d in over if d != "image"]
    # per (seed, image) scores, other analysis dims kept
    pa = a.astype(float).mean(rest) if rest else a.astype(float)
    pb = b.astype(float).mean(rest) if rest else b.astype(float)
    keep = [d for d in pa.dims if d not in (dim, "image")]
    pa = pa.transpose(dim, "image", *keep).values
    pb = pb.transpose(dim, "image", *keep).values
    rng = np.random.default_rng(rng_seed)
    ns_a, ni = pa.shape[0], pa.shape[1]
    ns_b = pb.shape[0]
    stats = []
    for _ in range(n_boot):
        ia = rng.integers(0, ns_a, ns_a)
        ib = ia if paired else rng.integers(0, ns_b, ns_b)
        img = rng.integers(0, ni, (max(ns_a, ns_b), ni))
        va = np.stack([pa[s][img[k]].mean(0) for k, s in enumerate(ia)]).mean(0)
        vb = np.stack([pb[s][img[k]].mean(0) for k, s in enumerate(ib)]).mean(0)
        stats.append(va - vb)
    stats = np.stack(stats)
    alpha = 1 - confidence
    coords = {d: a[d] for d in keep if d in a.coords}
    mk = lambda v: xr.DataArray(v, dims=keep, coords=coords)
    diff = mk(pa.mean((0, 1)) - pb.mean((0, 1)))
    se = mk(stats.std(0, ddof=1))
    df = (ns_a - 1) if paired else (ns_a + ns_b - 2)
    return _finish(diff, mk(np.quantile(stats, alpha / 2, axis=0)), mk(np.quantile(stats, 1 - alpha / 2, axis=0)),
                   _t_mdd(se, df, confidence, power), ns_a, ns_b, dim, confidence, paired, "bootstrap")


def seeds_needed(difference: float, sd: float, *, confidence: float = 0.95, power: float = 0.8,
                 paired: bool = True, max_seeds: int = 10_000) -> int:
    """Smallest number of seeds (per method) whose MDD is <= `difference`.

    `sd`: seed-to-seed standard deviation of the per-seed difference
    (paired) or of each method's per-seed score (unpaired, equal variances).
    """
    _check_conf(confidence, power)
    if not difference > 0:
        raise ValueError(f"difference={difference!r} is invalid; allowed: a float > 0")
    if not sd >= 0:
        raise ValueError(f"sd={sd!r} is invalid; allowed: a float >= 0")
    for n in range(2, max_seeds + 1):
        se = sd * (math.sqrt(1 / n) if paired else math.sqrt(2 / n))
        df = n - 1 if paired else 2 * n - 2
        if _t_mdd(se, df, confidence, power) <= difference:
            return n
    raise ValueError(f"difference={difference!r} needs more than max_seeds={max_seeds} seeds at sd={sd!r}")
