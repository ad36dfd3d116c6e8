"""ImageNet-C-bar and CIFAR-10-C-bar (Mintun et al., NeurIPS 2021), batched in torch.

    corrupt(x, name, severity, seed=0, table=None, index=None, fields=None)

(`dstlib.corruptions.corrupt`) takes these names as it takes the common ones:
uint8 (N, C, H, W) images with C in {1, 3} on any device, severities 1..5.
The reference is facebookresearch/augmentation-corruption (`imagenet_c_bar/
corrupt.py`); its severities are "levels" on a 0..10 scale, and each
benchmark severity 1..5 is the level its CSV file lists (`LEVELS`). Derived
parameters are the reference's `float_parameter(level, maxval) = level *
maxval / 10` (`fp`), computed in that order in float64.

- Tables: "imagenet" (`CBAR_NAMES`, the ten of imagenet_c_bar.csv, im = 224)
  and "cifar" (`CIFAR_CBAR_NAMES`, cifar10_c_bar.csv, im = 32); None picks by
  image size: "cifar" up to 84 px (the geometric mean of 32 and 224), so
  28-px Fashion-MNIST uses the CIFAR-10-C-bar set. A name outside the table's
  set is an error. The reference's `im_size` is the image side: images must
  be square (ImageNet's 224 px centre crops, CIFAR, Fashion-MNIST are), and
  sizes other than 32 and 224 scale every size-dependent parameter as the
  reference's formulas do (e.g. 28-px sparkles get radius fp(level, 0.1) * 28).
  circular_motion_blur, one dense matrix per severity, takes images up to 48 px.
- Randomness, in the reference's structure: `sample_parameters` draws a few
  numbers per image (frequencies, phases, centres, angles, and integer
  `seed`s in [0, 2^32)); the bulk noise (blue/brown noise phases, Perlin
  tables, sparkle rays, checkerboard cells, line positions) then comes from
  numpy's `RandomState(seed)`, exactly as the reference's `transform` draws
  it. We draw the first level from the counter-based per-image generator
  (`_rng`, keyed by (seed, name, severity, index) as the common corruptions):
  uniforms with 32 random bits instead of numpy's 53, integers by
  multiply-shift, seeds as 32 random bits; same distributions, and each
  image's draws independent of the batch and the device. The fields
  (`random_fields`) are those numbers under the reference's parameter names,
  so `corrupt(..., fields=...)` given a reference's drawn parameters
  reproduces its transform (tests/_cbar_refs.py holds the per-pixel oracle).
  RandomState runs on the CPU, one reseeded generator per thread. The
  reference's own images cannot be reproduced (its generator draws from
  numpy's global state in unseeded worker processes); ours are a pure function
  of (image, dataset index, name, severity, seed).
- Exactness: the output is the reference's final `clip(...).astype(uint8)`,
  a truncation. Per-pixel maths runs in float32 where the reference's float64
  changes no level (noise maps, sparkles, plasma, Perlin, caustics with the
  arguments of their sines reduced by whole turns first), in float64 where a
  floor or a modulo decides a pixel (checkerboard cells, ring boundaries) and
  where the reference's bilinear reads are reproduced operation by operation
  (ripple, pinch_and_twirl). The linear maps with fixed weights (circular
  motion blur, the chromatic aberration's zoom) are float64 matrix products
  with weights rounded to multiples of 2^-30 (2^-21 for two-sided products):
  every sum of them with integer pixels is exact, so the result is the same
  whatever the summation order, batch or device. Elementwise maths makes every
  other image alone: bit-identical in any batch on one device (CPU and CUDA may
  differ by floating point). Agreement with the oracles, per corruption: see
  tests/test_cbar_fidelity.py (the common case is every pixel equal).
- Speed (benchmarks/bench_cbar.py): on the CPU the per-pixel maths runs on
  parts of PART_PIXELS pixels, whose intermediates stay in cache; separable
  pieces (a row term plus a column term) are computed on the axes and summed
  once per pixel, Perlin gradients once per lattice point.
- Quirks kept: axis order (the reference's kernels mix (x=col, y=row) and
  point = [row, col]: each function says which), Python floor-modulo and
  int() truncation, numpy's negative-index wrap-around (checkerboard), the
  uint8 truncation before a clip that is then a no-op (caustic_refraction),
  a zero Perlin gradient's NaN giving black pixels (as numpy's NaN -> uint8
  cast on x86), pinch_and_twirl's cells (which read only pixels not yet
  warped, so one warp of the original image is the same thing).
- Grayscale (1 channel): channel-wise corruptions act on the one channel
  (the same noise for every channel: the one; brownish_noise's independent
  channel noises: the first, red, one); the two whose channels differ by
  construction (plasma_noise, transverse_chromatic_abberation) give the ITU-R
  601 luma of the three channels' results for the gray image in R, G and B,
  taken before the final truncation.
"""
from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import torch

from dstlib.corruptions import _rng

CBAR_VERSION = 1
"""Bumped whenever the pixels of a C-bar corruption change (cached evaluations keyed on it)."""

# imagenet_c_bar/imagenet_c_bar.csv and cifar10_c_bar.csv: the reference's level per severity 1..5
IMAGENET_LEVELS = {
    "blue_noise_sample": (0.8, 1.6, 2.4, 4.0, 5.6),
    "brownish_noise": (1.0, 2.0, 3.0, 4.0, 5.0),
    "caustic_refraction": (2.35, 3.2, 4.9, 6.6, 9.15),
    "checkerboard_cutout": (2.0, 3.0, 4.0, 5.0, 6.0),
    "cocentric_sine_waves": (3.0, 5.0, 8.0, 9.0, 10.0),
    "inverse_sparkles": (1.0, 2.0, 4.0, 9.0, 10.0),
    "perlin_noise": (4.6, 5.2, 5.8, 7.6, 8.8),
    "plasma_noise": (4.75, 7.0, 8.5, 9.25, 10.0),
    "single_frequency_greyscale": (1.0, 1.5, 2.0, 4.5, 5.0),
    "sparkles": (1.0, 2.0, 3.0, 5.0, 6.0),
}
CIFAR_LEVELS = {
    "blue_noise_sample": (0.7, 1.4, 2.1, 3.5, 4.2),
    "brownish_noise": (2.5, 4.0, 5.5, 6.5, 7.0),
    "checkerboard_cutout": (1.0, 2.0, 3.0, 4.0, 5.0),
    "circular_motion_blur": (2.8, 3.6, 4.4, 5.2, 6.0),
    "inverse_sparkles": (1.0, 1.5, 2.5, 4.5, 5.0),
    "lines": (0.5, 1.0, 1.5, 2.0, 2.5),
    "pinch_and_twirl": (5.5, 6.0, 6.5, 8.5, 10.0),
    "ripple": (5.5, 6.0, 6.5, 7.5, 8.0),
    "sparkles": (0.7, 3.5, 5.6, 6.3, 7.0),
    "transverse_chromatic_abberation": (1.0, 2.0, 5.0, 9.0, 10.0),
}
LEVELS = {"cifar": CIFAR_LEVELS, "imagenet": IMAGENET_LEVELS}
CBAR_NAMES = tuple(IMAGENET_LEVELS)
CIFAR_CBAR_NAMES = tuple(CIFAR_LEVELS)
ALL_NAMES = tuple(sorted(set(CBAR_NAMES) | set(CIFAR_CBAR_NAMES)))
TABLE_NAMES = ("cifar", "imagenet")
MAX_CIFAR_SIDE = 84  # up to this side "cifar" (32 px), above "imagenet" (224 px): the geometric mean


def fp(level: float, maxval: float) -> float:
    """The reference's float_parameter: float(level) * maxval / 10."""
    return float(level) * maxval / 10.


def default_table(height: int, width: int) -> str:
    return "cifar" if max(height, width) <= MAX_CIFAR_SIDE else "imagenet"


def level(table: str, name: str, severity: int) -> float:
    return LEVELS[table][name][severity - 1]


def check(x: torch.Tensor, name: str, table: str | None) -> str:
    """The table to use for x (after the common checks of x): ValueError for a
    non-square batch, an unknown table or a name outside the table's set."""
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"x.shape={tuple(x.shape)} is invalid for {name}; allowed: square images "
                         "(the C-bar corruptions are defined on im x im images)")
    if table is not None and table not in TABLE_NAMES:
        raise ValueError(f"table={table!r} is invalid for {name}; allowed: None, {', '.join(TABLE_NAMES)}")
    t = table or default_table(x.shape[2], x.shape[3])
    if name not in LEVELS[t]:
        raise ValueError(f"name={name!r} is not in the {t} C-bar set; allowed: {', '.join(LEVELS[t])}")
    return t


# ---------------------------------------------------------------- draws
def _uniform(u: torch.Tensor, low, high) -> torch.Tensor:
    """numpy's uniform: low + (high - low) * u (float64)."""
    return low + (high - low) * u


def _seeds32(seeds, stream: int, k: int) -> torch.Tensor:
    """(N, k) int64 in [0, 2^32): the reference's randint(0, 2**32)."""
    return _rng.bits(seeds, stream, (k,)).to(torch.int64) & _rng.M32


def _u(seeds, k: int) -> torch.Tensor:
    return _rng.uniform(seeds, 0, (k,), "cpu", torch.float64)


def draw(seeds, name: str, im: int) -> dict[str, torch.Tensor]:
    """The random parameters of `name` for images with per-image `seeds` (image side `im`):
    CPU tensors, batch first, under the reference's sample_parameters names. Stream 0 of
    the image's generator gives its uniforms (float64, in the reference's order), stream 1
    its 32-bit RandomState seeds, stream 2 its bounded integers."""
    pi = math.pi
    if name == "single_frequency_greyscale":
        u = _u(seeds, 4)
        mag = _uniform(u[:, 0], -pi, pi)
        other = _uniform(u[:, 1], -mag.abs(), mag.abs())
        swap = u[:, 2] < 0.5  # permutation(2): either order, probability 1/2
        freq = torch.where(swap[:, None], torch.stack([other, mag], 1), torch.stack([mag, other], 1))
        return {"freq": freq, "phase": _uniform(u[:, 3], 0, 2 * pi)}
    if name == "cocentric_sine_waves":
        u = _u(seeds, 5)
        return {"offset": _uniform(u[:, 0:2], 0, im), "freq": _uniform(u[:, 2], 0, 10),
                "amplitude": _uniform(u[:, 3], 0, im / 10), "ring_width": _uniform(u[:, 4], 0, im / 10)}
    if name == "plasma_noise":
        u = _u(seeds, 3)
        return {"time": _uniform(u[:, 0], 0.0, 6 * pi),
                "iterations": 4 + _rng.integers(seeds, 2, (), 3).to(torch.int64),
                "sharpness": _uniform(u[:, 1], 0.5, 1.0), "scale": _uniform(u[:, 2], 0.075, 0.2) * im}
    if name == "sparkles":
        return {"centers": _uniform(_u(seeds, 10), 0, im).view(-1, 5, 2), "seed": _seeds32(seeds, 1, 1)[:, 0],
                "nrays": 50 + _rng.integers(seeds, 2, (5,), 150).to(torch.int64)}
    if name == "inverse_sparkles":
        return {"center": _uniform(_u(seeds, 2), 0.25, 0.75) * im, "seed": _seeds32(seeds, 1, 1)[:, 0],
                "rays": 50 + _rng.integers(seeds, 2, (), 150).to(torch.int64)}
    if name in ("perlin_noise", "blue_noise_sample", "brownish_noise"):
        return {"seed": _seeds32(seeds, 1, 1)[:, 0]}
    if name == "checkerboard_cutout":
        u = _u(seeds, 2)
        return {"angle": _uniform(u[:, 0], 0, 2 * pi),
                "scale": torch.clamp(_uniform(u[:, 1], 0.1, 0.25) * im, min=1),
                "seed": _seeds32(seeds, 1, 1)[:, 0]}
    if name == "caustic_refraction":
        u = _u(seeds, 2)
        return {"time": _uniform(u[:, 0], 0.5, 2.0), "size": _uniform(u[:, 1], 0.75, 1.25) * im}
    if name == "pinch_and_twirl":
        k = pinch_cells(im)
        return {"signs": 1 - 2 * _rng.integers(seeds, 2, (k, k), 2).to(torch.int64)}  # choice([1, -1])
    if name == "ripple":
        u = _u(seeds, 4)
        return {"wavelengths": _uniform(u[:, 0:2], 0.1, 0.3) * im, "phases": _uniform(u[:, 2:4], 0, 2 * pi)}
    if name == "lines":
        u = _u(seeds, 2)
        return {"angle": _uniform(u[:, 0], 0.0, 2 * pi), "angle_variation": _uniform(u[:, 1], 0.1, 1.0),
                "seed": _seeds32(seeds, 1, 1)[:, 0]}
    if name == "transverse_chromatic_abberation":
        i = _rng.integers(seeds, 2, (), 6).long()
        return {"permutation": PERMUTATIONS_3[i]}
    if name == "circular_motion_blur":
        return {}
    raise ValueError(f"name={name!r} is invalid; allowed: {', '.join(ALL_NAMES)}")


PERMUTATIONS_3 = torch.tensor(list(itertools.permutations(range(3))), dtype=torch.int64)
"""The six orders of (0, 1, 2); numpy's permutation(3) gives each with probability 1/6."""

FIELDS = {
    "single_frequency_greyscale": ("freq", "phase"),
    "cocentric_sine_waves": ("offset", "freq", "amplitude", "ring_width"),
    "plasma_noise": ("time", "iterations", "sharpness", "scale"),
    "sparkles": ("centers", "seed", "nrays"),
    "inverse_sparkles": ("center", "seed", "rays"),
    "perlin_noise": ("seed",), "blue_noise_sample": ("seed",), "brownish_noise": ("seed",),
    "checkerboard_cutout": ("angle", "scale", "seed"),
    "caustic_refraction": ("time", "size"),
    "pinch_and_twirl": ("signs",),
    "ripple": ("wavelengths", "phases"),
    "lines": ("angle", "angle_variation", "seed"),
    "transverse_chromatic_abberation": ("permutation",),
    "circular_motion_blur": (),
}
assert set(FIELDS) == set(ALL_NAMES)


def pinch_cells(im: int) -> int:
    """pinch_and_twirl's cells per axis: 5 at 224 px, else 3 (the reference's rule)."""
    return 5 if im == 224 else 3


def check_fields(name: str, fields: dict, n: int) -> None:
    need = FIELDS[name]
    missing = [k for k in need if k not in fields]
    if missing:
        raise ValueError(f"fields={sorted(fields)} is invalid for {name}; allowed: a dict with {', '.join(need)}")
    for k in need:
        if fields[k].shape[:1] != (n,):
            raise ValueError(f"fields[{k!r}].shape={tuple(fields[k].shape)} is invalid; "
                             f"allowed: batch-first, {n} images")


# ---------------------------------------------------------------- numpy RandomState per image
_LOCAL = threading.local()


def random_state(seed: int) -> np.random.RandomState:
    """This thread's numpy RandomState reseeded to `seed` (legacy MT19937 seeding, as
    RandomState(seed) gives; a reseed costs ~1 us, a new generator ~80 us)."""
    rs = getattr(_LOCAL, "rs", None)
    if rs is None:
        rs = _LOCAL.rs = np.random.RandomState(0)
    rs.seed(int(seed))
    return rs


# ---------------------------------------------------------------- dispatch
PART_PIXELS = 1 << 17
"""On the CPU the per-pixel maths runs on parts of about this many pixels (two 224-px
images, 128 at 32 px): the intermediates then stay in the core's L2 cache (measured ~4x
faster per element than on a chunk of 8 images at 224 px). Every image is computed alone."""


def parts(n: int, pixels: int, device) -> list[slice]:
    """Slices of a batch of n images of `pixels` pixels: parts of PART_PIXELS on the CPU,
    the whole batch elsewhere."""
    if torch.device(device).type != "cpu":
        return [slice(0, n)]
    step = max(1, PART_PIXELS // pixels)
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def apply(x: torch.Tensor, name: str, severity: int, table: str, fields: dict) -> torch.Tensor:
    """Corrupt a uint8 batch (N, C, im, im) with the given fields (CPU tensors); uint8 NCHW."""
    from dstlib.corruptions import cbar_distortion, cbar_noise, cbar_obscure

    fn = {**cbar_noise.CORRUPTIONS, **cbar_obscure.CORRUPTIONS, **cbar_distortion.CORRUPTIONS}[name]
    return fn(x, level(table, name, severity), fields)
