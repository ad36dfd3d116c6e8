"""Schedules as pure functions of the step count.

Steps are optimiser steps. ``step`` counts the steps already taken (the
sparsifier's ``step()`` after the t-th optimiser step sees ``step == t``).
"""
from __future__ import annotations

import math

PRUNE_RATE_DECAYS = ("cosine", "polynomial", "constant", "cosine_floor")
SOFT_BOUND_MODES = ("relative", "absolute")

#: Exponent of the paper's polynomial decay (Table 4, note 3).
POLYNOMIAL_POWER = 0.01
#: Floor of GraNet's cosine decay (``CosineDecay(..., eta_min=0.005)``, GraNet ``core.py`` / ``main.py``).
COSINE_FLOOR = 0.005


def last_update_step(total_steps: int, update_interval: int, end: float) -> int:
    """The last multiple of ``update_interval`` not after ``end * total_steps`` and
    before ``total_steps`` (0 = no update).

    Never the last step itself: weights grown after the last optimiser step
    would end training at zero while the masks count them as active.
    """
    end_step = min(math.floor(end * total_steps + 1e-9), total_steps - 1)
    return (end_step // update_interval) * update_interval


def is_update_step(step: int, update_interval: int, last_step: int) -> bool:
    """Topology updates happen after steps dT, 2 dT, ... up to ``last_step`` inclusive."""
    return step > 0 and step <= last_step and step % update_interval == 0


def prune_rate(step: int, initial: float, decay: str, total_steps: int, end_step: int) -> float:
    """Fraction of the active weights dropped and regrown at an update at ``step``.

    - ``polynomial``: ``p (1 - step / total_steps) ** 0.01``, the paper's
      Table 4 note 3 (over the whole run, as written there);
    - ``cosine``: ``p / 2 (1 + cos(pi step / end_step))``, RigL's
      ``drop_fraction_anneal='cosine'`` over the update window (``end_step``
      is the step of the last update), reaching 0 there;
    - ``cosine_floor``: ``f + (p - f) / 2 (1 + cos(pi step / total_steps))``
      with ``f = 0.005``, GraNet's ``CosineDecay`` (a cosine annealing from
      the initial rate to 0.005 over the whole run);
    - ``constant``: ``p``.
    """
    if decay == "constant":
        return initial
    if decay == "cosine_floor":
        frac = min(max(step / total_steps, 0.0), 1.0)
        floor = min(COSINE_FLOOR, initial)
        return floor + 0.5 * (initial - floor) * (1.0 + math.cos(math.pi * frac))
    if decay == "polynomial":
        frac = min(max(step / total_steps, 0.0), 1.0)
        return initial * (1.0 - frac) ** POLYNOMIAL_POWER
    if decay == "cosine":
        if end_step <= 0:
            return initial
        frac = min(max(step / end_step, 0.0), 1.0)
        return 0.5 * initial * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"prune_rate_decay: {decay!r} is not one of {', '.join(PRUNE_RATE_DECAYS)}")


def soft_bound_density(target: float, soft_bound: float, mode: str = "relative") -> float:
    """MEST's extra density ``b_s``: ``soft_bound * b`` ("relative"; paper A.3.2 for CIFAR
    and Tiny-ImageNet: 10% of the target density, 0.3 starts at 0.33) or ``soft_bound``
    itself ("absolute"; the paper's ImageNet run, 0.92 -> 0.90 at b = 0.9, b_s = 0.02)."""
    if mode == "relative":
        return soft_bound * target
    if mode == "absolute":
        return soft_bound
    raise ValueError(f"soft_bound_mode: {mode!r} is not one of {', '.join(SOFT_BOUND_MODES)}")


def mest_density(step: int, target: float, soft_bound: float, last_step: int, power: float = POLYNOMIAL_POWER,
                 mode: str = "relative") -> float:
    """MEST's density with a soft memory bound: ``b + b_s (1 - step / last_step) ** power``.

    ``b_s`` from :func:`soft_bound_density` decays polynomially to 0 at the
    last topology update ``last_step``. The paper says only "polynomial"; we
    use its Table 4 exponent 0.01, which matches Tables 5-6 (MEST's training
    FLOPs are 1.10x SET's at every density, i.e. the bound is held almost to
    the end). With no update (``last_step == 0``) the run is at ``b`` throughout.
    """
    if last_step <= 0:
        return target
    frac = min(max(step / last_step, 0.0), 1.0)
    return min(1.0, target + soft_bound_density(target, soft_bound, mode) * (1.0 - frac) ** power)


def granet_initial_density(target: float) -> float:
    """GraNet's default initial density: 0.8 (paper, CIFAR/Tiny-ImageNet) if the
    target is below 0.8, else ``target + (1 - target) / 2`` (0.95 for 0.9, ImageNet)."""
    return 0.8 if target < 0.8 else target + (1.0 - target) / 2.0


def granet_density(step: int, initial: float, target: float, prune_end_step: int, start_step: int = 0) -> float:
    """Gradual magnitude pruning's density (Zhu & Gupta cubic, GraNet ``core.py``).

    ``d_t + (d_i - d_t) (1 - (step - t0) / (n dT)) ** 3`` for ``t0 <= step <=
    t0 + n dT``, ``d_i`` before and ``d_t`` after; ``n dT = prune_end_step - t0``.
    The paper (A.3.2) prints ``d_i - (d_i - d_t)(1 - ...)^3``, which read
    literally starts at ``d_t`` and ends at ``d_i``; the text around it (start
    at 0.8, reach the target) and GraNet's code say this form.
    """
    if prune_end_step <= start_step:
        return target
    frac = min(max((step - start_step) / (prune_end_step - start_step), 0.0), 1.0)
    return target + (initial - target) * (1.0 - frac) ** 3


def acdc_compressed(step: int, total_steps: int, warmup: float, phase: float, final: float) -> bool:
    """Whether step ``step`` (0-based, the step about to be taken) is in a compressed AC/DC phase.

    Shape of AC/DC's own ImageNet schedule (``configs/neurips``, RN50 100
    epochs): dense warm-up ``[0, warmup)``, then phases of length ``phase``
    alternating compressed / decompressed starting compressed, the phase just
    before the final one always decompressed (ImageNet: 75-85), and a final
    compressed phase ``[1 - final, 1)``. All three are fractions of the run.
    """
    warm = round(warmup * total_steps)
    final_start = total_steps - round(final * total_steps)
    if step < warm:
        return False
    if step >= final_start:
        return True
    length = max(1, round(phase * total_steps))
    n_phases = -(-(final_start - warm) // length)
    k = (step - warm) // length
    return k % 2 == 0 and k < n_phases - 1
