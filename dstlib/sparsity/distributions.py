"""Layer densities: pure functions from weight shapes and a target density.

Every function takes the shapes of the *sparse* weights (layers kept dense are
not passed) and the target density ``d`` of those weights, and returns one
density per shape, such that ``sum(d_l * n_l) == d * sum(n_l)`` (up to the
rounding of counts, see :func:`active_counts`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

DISTRIBUTIONS = ("uniform", "erk")


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def uniform(shapes: Sequence[Sequence[int]], density: float) -> list[float]:
    """Every sparse layer gets the target density (paper Table 4, note 2)."""
    return [float(density)] * len(shapes)


def erk(shapes: Sequence[Sequence[int]], density: float, power_scale: float = 1.0) -> list[float]:
    """Erdos-Renyi-Kernel densities, as in RigL (``rigl/sparse_utils.py``).

    A layer's density is ``eps * (sum(shape) / prod(shape)) ** power_scale``
    (paper Table 4 note 2: ``(n_in + n_out + w + h) / (n_in n_out w h)``), with
    ``eps`` chosen so the layers together hold ``density`` of their weights.
    A layer whose density would exceed 1 is made dense (all layers sharing the
    largest raw score at once, as RigL does) and its surplus is taken from the
    others' budget; this repeats until every density is at most 1. Unlike RigL
    the budget uses exact (not floored) zero counts.
    """
    if not shapes:
        return []
    n = [_numel(s) for s in shapes]
    raw = [(sum(int(v) for v in s) / _numel(s)) ** power_scale for s in shapes]
    dense: set[int] = set()
    while True:
        rhs = 0.0
        divisor = 0.0
        for i, n_i in enumerate(n):
            if i in dense:
                rhs -= (1.0 - density) * n_i
            else:
                rhs += density * n_i
                divisor += raw[i] * n_i
        if divisor == 0.0:  # every layer dense
            return [1.0] * len(shapes)
        eps = rhs / divisor
        free = [i for i in range(len(n)) if i not in dense]
        top = max(raw[i] for i in free)
        if eps * top > 1.0 + 1e-12:
            dense.update(i for i in free if raw[i] == top)
            continue
        return [1.0 if i in dense else eps * raw[i] for i in range(len(n))]


def layer_densities(
    shapes: Sequence[Sequence[int]], density: float, distribution: str = "uniform", power_scale: float = 1.0
) -> list[float]:
    """Dispatch on ``distribution`` ("uniform" or "erk")."""
    if distribution == "uniform":
        return uniform(shapes, density)
    if distribution == "erk":
        return erk(shapes, density, power_scale)
    raise ValueError(f"distribution: {distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")


def active_counts(shapes: Sequence[Sequence[int]], densities: Sequence[float]) -> list[int]:
    """Number of active weights per layer: ``d_l * n_l`` rounded half up, within [0, n_l]."""
    out = []
    for s, d in zip(shapes, densities):
        n_l = _numel(s)
        out.append(min(n_l, max(0, math.floor(d * n_l + 0.5))))
    return out
