"""From numbers to findings: seed-paired verdicts, the page's verdict under the evidence rules, and the prose.

Every comparison is `dstlib.stats.compare` over training seeds, paired (each
seed trains dense and every method on the same data order and initial
weights), at the page's confidence, with its minimum detectable difference
(MDD, 80% power). A page's verdict (`page_verdict`):

- "reproduced": the claimed direction in more than half of the comparisons
  and the opposite in none;
- "contradicted": the opposite direction in more than half and the claimed
  one in none;
- "not reproduced": anything else, with the counts and the MDD range, so
  that a tie is read against the size of effect the design could see;
- "no verdict: ...": the runs or the design fall short of the evidence rules
  (`dstlib.book.evidence`), with the reasons.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from dstlib import config
from dstlib.book import evidence


def verdicts(sparse: xr.DataArray, dense: xr.DataArray, confidence: float) -> xr.Dataset:
    """dstlib.stats.compare of sparse (method, ..., seed) against dense (seed, ...), paired by seed.

    One verdict per coordinate of every other dim: nothing is averaged here (not even a corruption or
    severity dim, which `stats.compare` would average by default), so the caller averages what it means to.
    """
    from dstlib import stats
    return stats.compare(sparse, dense, dim="seed", over=(), paired=True, confidence=confidence)


def _counts(v: xr.Dataset, claim: str) -> tuple[int, int, int]:
    verdict = np.asarray(v["verdict"].values).ravel()
    better, worse = int((verdict == "better").sum()), int((verdict == "worse").sum())
    return (worse, better, verdict.size) if claim == "worse" else (better, worse, verdict.size)


def mdd_range(v: xr.Dataset) -> str:
    mdd = 100 * np.asarray(v["mdd"].values, dtype=float).ravel()
    mdd = mdd[np.isfinite(mdd)]
    if not mdd.size:
        return "not computable"
    low, high = f"{mdd.min():.2f}", f"{mdd.max():.2f}"
    return f"{low} pp" if low == high else f"{low}-{high} pp"


def status(v: xr.Dataset, claim: str = "better") -> str:
    """The verdict over all comparisons in `v`, ignoring the evidence rules (see `page_verdict`).

    `claim`: the paper's direction, "better" (sparse - dense > 0) or "worse" (e.g. a smaller Grad-CAM area).
    """
    config.check_choice("claim", claim, ("better", "worse"))
    agree, oppose, n = _counts(v, claim)
    counts = (f"as claimed {agree}/{n}, opposite {oppose}/{n}" if claim == "worse"
              else f"better {agree}/{n}, worse {oppose}/{n}")
    return _direction(agree, oppose, n, f"{counts}; detectable difference {mdd_range(v)}")


def _direction(agree: int, oppose: int, n: int, text: str) -> str:
    """The rule every verdict shares: reproduced when more than half of the n comparisons agree with the
    paper and none oppose it, contradicted in the mirror case, else not reproduced; `text` in brackets."""
    if agree > n / 2 and oppose == 0:
        return f"reproduced ({text})"
    if oppose > n / 2 and agree == 0:
        return f"contradicted ({text})"
    return f"not reproduced ({text})"


def page_verdict(v: xr.Dataset, shortfalls: Sequence[str], claim: str = "better") -> str:
    """`status(v)`, or "no verdict: ..." when the runs fall short of the evidence rules.

    A tie from a comparison whose MDD exceeds `evidence.MAX_MDD` says nothing (it could not have seen an
    effect of the paper's size): such ties are left out and counted, and when nothing is left the page gives
    no verdict. A detected difference counts whatever the MDD: its interval excludes zero at the page's
    confidence.
    """
    if shortfalls:
        return f"no verdict: smoke run ({'; '.join(shortfalls)})"
    flat = v.stack(_k=[d for d in v["mdd"].dims]) if v["mdd"].dims else v.expand_dims(_k=[0])
    weak_tie = ((np.asarray(flat["mdd"].values, dtype=float) > evidence.MAX_MDD)
                & (np.asarray(flat["verdict"].values) == "no detectable difference"))
    if weak_tie.all():
        return f"no verdict: too few seeds ({evidence.mdd_shortfall(v['mdd'].values)})"
    if not weak_tie.any():
        return status(v, claim)
    text = status(flat.isel(_k=np.flatnonzero(~weak_tie)), claim)
    return (f"{text[:-1]}; {int(weak_tie.sum())} of {weak_tie.size} ties left out: they could detect only "
            f"differences above {100 * evidence.MAX_MDD:.0f} pp)")


def verdict_sentence(v: xr.Dataset, what: str, against: str = "dense training") -> str:
    """The verdict counts and MDDs of `v` as a Markdown sentence ("better": the sparse value is larger)."""
    better, worse, n = _counts(v, "better")
    conf = v.attrs.get("confidence", 0.95)
    return (f"Of {n} comparisons of {what} against {against} ({int(v['n_a'])} paired seeds, "
            f"{conf:.0%} intervals), sparse training was **better in {better}**, **worse in {worse}**, and showed "
            f"**no detectable difference in {n - better - worse}**. With this many seeds a true difference had to "
            f"be about {mdd_range(v).replace('-', ' to ').replace(' pp', ' percentage points')} to be detected "
            f"with 80% power, so a tie means only that any difference is smaller than that, not that there is none.")


def win_tie_loss(v: xr.Dataset) -> "Any":
    """Per method: verdicts counted over the other dims, mean difference, smallest and largest MDD (pandas)."""
    import pandas as pd
    rows = []
    for m in v["method"].values:
        vm = v.loc[dict(method=m)]
        better, worse, n = _counts(vm, "better")
        rows.append({"method": str(m), "wins": better, "ties": n - better - worse, "losses": worse,
                     "mean difference (pp)": round(100 * float(vm["diff"].mean()), 2),
                     "MDD (pp)": mdd_range(vm).replace(" pp", "")})
    return pd.DataFrame(rows).set_index("method")


def verdict_table(v: xr.Dataset, dims: Sequence[str]) -> "Any":
    """One row per comparison: difference, interval and MDD in pp, and the verdict (pandas, indexed by `dims`)."""
    import pandas as pd
    stacked = v.stack(row=list(dims))
    table = pd.DataFrame({
        "sparse - dense (pp)": np.round(100 * stacked["diff"].values, 2),
        "lower (pp)": np.round(100 * stacked["lower"].values, 2),
        "upper (pp)": np.round(100 * stacked["upper"].values, 2),
        "MDD (pp)": np.round(100 * stacked["mdd"].values, 2),
        "verdict": [str(x) for x in stacked["verdict"].values]},
        index=pd.MultiIndex.from_tuples([tuple(map(_plain, k)) for k in stacked["row"].values], names=list(dims)))
    return table


def _plain(x):
    return x.item() if hasattr(x, "item") else x


def power_note(sparse: xr.DataArray, dense: xr.DataArray, difference: float = 0.005, confidence: float = 0.95) -> str:
    """How many paired seeds would detect `difference` (default 0.5 pp, a typical gain in the paper's Table 3).

    Uses the largest seed-to-seed standard deviation (ddof=1) of sparse - dense over the comparisons and
    `dstlib.stats.seeds_needed` (80% power).
    """
    from dstlib import stats
    d = sparse - dense
    n = d.sizes["seed"]
    sds = np.asarray(d.std("seed", ddof=1).values, dtype=float).ravel()
    sds = sds[np.isfinite(sds)]
    if not sds.size:
        return ""
    sd = float(sds.max())
    try:
        need_txt = f"about {stats.seeds_needed(difference, sd, confidence=confidence)} paired seeds"
    except ValueError:
        need_txt = "more than 10,000 paired seeds"
    return (f"The seed-to-seed standard deviation of the paired difference was at most {100 * sd:.2f} pp "
            f"(median {100 * float(np.median(sds)):.2f} pp over the comparisons); detecting a "
            f"{100 * difference:.1f} pp difference in every comparison with 80% power at {confidence:.0%} "
            f"confidence takes {need_txt} (`dstlib.stats.seeds_needed`); this page used {n}.")


def image_noise(correct_sparse: xr.DataArray, correct_dense: xr.DataArray, n_boot: int = 400,
                rng_seed: int = 0) -> float:
    """Standard error (fraction) of the seed-mean paired difference due to the choice of test images.

    Resamples images (the same ones for both models and every seed, as the evaluation pairs them) and
    recomputes the seed-mean of the mean paired difference in correctness; the largest over the other dims.
    `correct_*`: bool (seed, ..., image), the sparse one possibly with more leading dims.
    """
    d = correct_sparse.astype(float) - correct_dense.astype(float)
    other = [x for x in d.dims if x not in ("seed", "image", "corruption", "severity")]
    per_image = d.mean([x for x in ("seed", "corruption", "severity") if x in d.dims]).transpose(*other, "image")
    values = per_image.values.reshape(-1, per_image.sizes["image"])
    rng = np.random.default_rng(rng_seed)
    n = values.shape[1]
    boots = np.stack([values[:, rng.integers(0, n, n)].mean(1) for _ in range(n_boot)])
    return float(boots.std(0, ddof=1).max())


def extreme(gain: xr.DataArray, largest: bool) -> str:
    """'corruption (method, +x.xx%)' with the largest (or smallest) seed- and severity-mean relative gain."""
    g = gain.mean([d for d in gain.dims if d not in ("corruption", "method")])
    flat = g.stack(k=("method", "corruption"))
    i = int(flat.argmax() if largest else flat.argmin())
    m, c = flat["k"].values[i]
    return f"{c} ({m}, {100 * float(flat[i]):+.2f}%)"


def rank_corruptions(energy: xr.DataArray) -> list[str]:
    from dstlib import spectral
    return spectral.rank_corruptions(energy)


HIGHER_GAIN = "higher gain with more high-frequency energy"
LOWER_GAIN = "lower gain with more high-frequency energy"


def gain_energy_association(gain: xr.DataArray, energy: xr.DataArray, confidence: float = 0.95,
                            n_boot: int = 2000, rng_seed: int = 0) -> xr.Dataset:
    """Spearman correlation over corruptions between added high-frequency energy and mean relative gain, per
    method, with a bootstrap interval over seeds (seeds resampled with replacement, the same draw for every
    method). `gain`: (method, seed, corruption, ...), `energy`: (corruption, ...).

    Returns rho, lower, upper (method) and a verdict: "higher gain with more high-frequency energy" (lower > 0),
    "lower gain with more high-frequency energy" (upper < 0) or "no detectable association".
    """
    from scipy.stats import spearmanr
    e = energy.mean([d for d in energy.dims if d != "corruption"]).loc[dict(corruption=gain["corruption"])].values
    g = gain.mean([d for d in gain.dims if d not in ("method", "seed", "corruption")]).transpose("method", "seed", "corruption")
    values = g.values  # (method, seed, corruption)
    rng = np.random.default_rng(rng_seed)
    n_seed = values.shape[1]

    def rho(per_seed):
        return np.array([spearmanr(e, per_seed[m].mean(0)).statistic for m in range(per_seed.shape[0])])
    point = rho(values)
    boots = np.stack([rho(values[:, rng.integers(0, n_seed, n_seed)]) for _ in range(n_boot)])
    alpha = 1 - confidence
    lower, upper = np.nanquantile(boots, alpha / 2, axis=0), np.nanquantile(boots, 1 - alpha / 2, axis=0)
    verdict = np.where(lower > 0, HIGHER_GAIN, np.where(upper < 0, LOWER_GAIN, "no detectable association"))
    coords = {"method": g["method"].values}
    return xr.Dataset({"rho": ("method", point), "lower": ("method", lower), "upper": ("method", upper),
                       "verdict": ("method", verdict.astype(str))}, coords=coords,
                      attrs={"confidence": confidence, "n_boot": n_boot, "n_corruptions": len(e)})


def association_verdict(assoc: xr.Dataset, shortfalls: Sequence[str]) -> str:
    """The page verdict on "the gain grows with high-frequency energy": reproduced when more than half of the
    methods' intervals lie above zero and none below; "no verdict" under the evidence rules."""
    if shortfalls:
        return f"no verdict: smoke run ({'; '.join(shortfalls)})"
    verdict = np.asarray(assoc["verdict"].values)
    up, down, n = int((verdict == HIGHER_GAIN).sum()), int((verdict == LOWER_GAIN).sum()), verdict.size
    return _direction(up, down, n, f"{up}/{n} methods with an interval above zero, {down}/{n} below")


def joint_verdict(parts: Mapping[str, str]) -> str:
    """Several verdicts of one page as one line: the first "no verdict" alone if there is one, else each named."""
    for v in parts.values():
        if v.startswith("no verdict"):
            return v
    return "; ".join(f"{k}: {v}" for k, v in parts.items())


def concentration_sentence(summary: xr.Dataset, methods: Sequence[str]) -> str:
    """Empty-kernel fractions and output-channel Gini of each method beside its magnitude-pruned and random
    baselines, as one sentence (mean over seeds and layers)."""
    s = summary.mean(("seed", "layer"))

    def part(name):
        return (f"{100 * float(s['empty_fraction'].loc[dict(model=name)]):.1f}% empty kernels, "
                f"Gini {float(s['gini_out'].loc[dict(model=name)]):.2f}")
    parts = [f"{m}: {part(m)} (one-shot pruned dense: {part(m + ' pruned')}; random mask: {part(m + ' random')})"
             for m in methods]
    return "Mean over seeds and layers, " + "; ".join(parts) + "."


def best_low_sparsity(res: xr.Dataset, v: xr.Dataset, max_sparsity: float = 0.5) -> dict[str, dict[str, Any]]:
    """Per method, the sparsity (<= max_sparsity) with the highest seed-mean robustness accuracy, with its
    accuracy, verdict, difference and MDD (the paper's Table 3 takes each method's result this way)."""
    out = {}
    ra = res["robustness_accuracy"].mean("seed")
    for m in res["method"].values:
        sps = [s for s in res["sparsity"].values if s <= max_sparsity + 1e-9]
        best = max(sps, key=lambda s: float(ra.loc[dict(method=m, sparsity=s)]))
        cell = v.loc[dict(method=m, sparsity=best)]
        out[str(m)] = {"sparsity": float(best), "accuracy": float(ra.loc[dict(method=m, sparsity=best)]),
                       "verdict": str(cell["verdict"].values), "diff": float(cell["diff"]),
                       "mdd": float(cell["mdd"])}
    return out
