"""Batched, seeded torch corruptions of the ImageNet-C family (CIFAR-10-C order).

    corrupt(x, name, severity, seed=0, table=None, index=None, fields=None)

x is a uint8 tensor (N, C, H, W), C in {1, 3}, on any device, in any memory
layout; the result is uint8, same shape and device, contiguous NCHW (a
jpeg_compression batch of one chunk keeps the codec's channels_last memory).
Conventions:

- Tables: "cifar" (32 px), "tiny" (64 px), "imagenet" (224 px; the
  `imagecorruptions` package's constants). None picks by image size
  (`tables.default_table`: 28-px Fashion-MNIST uses "cifar").
- Randomness: image i's random fields (noise maps, angles, crops, plasma
  maps, ...) come from a counter-based generator (`_rng`): element j of field
  stream t is a 32-bit hash (lowbias32) of the image's keys, themselves the
  63-bit BLAKE2b seed of (seed, name, severity, index[i]) (`image_seeds`), and
  of j. The draws of a whole batch are computed at once in int32 torch ops on
  the batch's device, and are the same integers on every device and in every
  batch: an image gets the same corruption in any batch (bit-identical on one
  device type; CPU and CUDA can differ by floating point, <= 1 level).
  Uniforms take 24 (float32) or 32 (float64) bits, normals are Box-Muller
  (16-bit angle tables, 3 draws per 4 normals), bounded integers
  multiply-shift, Poisson counts (shot_noise) Walker's alias method on the
  pmf quantised to 2^-32 (one table per rate). The reference draws the
  same distributions from numpy's generator, so single draws differ.
  `fields` (see `random_fields`) overrides the draws, e.g. with a reference's.
- Speed (benchmarks/bench_corruptions.py): everything is batched; on the CPU
  a batch runs in chunks of CPU_CHUNK_PIXELS (8 images at 224 px), and big
  intermediates live in per-thread scratch buffers. Big 2-D kernels (defocus,
  very long Gaussians) go through real FFTs, long separable ones on many big
  planes through depthwise convolutions, the rest through sums of shifted
  views; motion blur copies rows per tap (up to 64x64) or adds shifted views
  per image; brightness and saturate use the closed form of the
  HSV round trip (channels scale with v, move affinely with s); pixelate runs
  Pillow on big CPU images and an exact int32 port of its box filter else;
  jpeg_compression runs libjpeg-turbo through torchvision, bit-identical to
  PIL (both tested).
- Output is the reference's `np.uint8(np.clip(y, 0, 1) * 255)`: a truncation.
  The saved Tiny-ImageNet-C / ImageNet-C images additionally went through a
  JPEG at quality 85: `corrupt_as_saved` adds that step (default for the
  `tiny` and `imagenet` tables).
- Grayscale: channel-wise corruptions act on the one channel; colour steps
  use luma (ITU-R 601). `saturate` leaves gray images unchanged at severities
  1-3 (a gray pixel has zero saturation) and only darkens them at 4-5, so it
  is left out of `GRAY_NAMES`, the set to evaluate 1-channel data on.
- Video: `corrupt_video(x, name, severity, seed, index)` corrupts uint8 clips
  (N, T, C, H, W) with the 16 corruptions of corrupted UCF101 (`VIDEO_NAMES`;
  `dstlib.corruptions.video`), per-frame ones through the image corruptions above.
- C-bar: the names of `CBAR_NAMES` (ImageNet-C-bar, 224 px) and `CIFAR_CBAR_NAMES`
  (CIFAR-10-C-bar, 32 px) go through the same `corrupt` and `random_fields`, with
  their own tables ("imagenet", "cifar") and code version `CBAR_VERSION`; see
  `dstlib.corruptions.cbar`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from dstlib.corruptions import _rng, blur, cbar, digital, noise, weather
from dstlib.corruptions.cbar import CBAR_NAMES, CBAR_VERSION, CIFAR_CBAR_NAMES
from dstlib.corruptions.tables import (COMMON, EXTRA, NAMES, SAVED_AS_JPEG, SAVED_JPEG_QUALITY, STYLE,
                                       TABLE_NAMES, TABLES, default_table, params)

__all__ = ["VERSION", "NAMES", "COMMON", "EXTRA", "GRAY_NAMES", "TABLE_NAMES", "TABLES", "STOCHASTIC",
           "corrupt", "corrupt_as_saved", "random_fields", "image_seeds", "default_table",
           "jpeg_roundtrip", "SAVED_JPEG_QUALITY", "CBAR_NAMES", "CIFAR_CBAR_NAMES", "CBAR_VERSION",
           "FMNIST_C_NAMES", "corrupt_mnist_c", "fashion_mnist_c", "fashion_mnist_c_choice", "mnist_c_fields",
           "VIDEO_NAMES", "VIDEO_TABLE_NAMES", "VIDEO_VERSION", "TEMPORAL", "corrupt_video", "frame_map"]

VERSION = 4
"""Bumped whenever the pixels `corrupt` returns change (2: counter-based draws;
3: float32 elastic sampling, FFT defocus, batched zoom, matmul Gaussians move a
few pixels by one level; normals with a 16-bit angle, Poisson by alias tables and
impulse noise from 16-bit draws give new draws of the same distributions;
brightness and saturate in closed form without masks move ties by one level;
4: glass-blur offsets packed several to a draw, normals' radius by numpy's log and
sqrt on the CPU (an ulp apart)); cached evaluations keyed on it are then recomputed."""

_REGISTRY: dict = {}
for _m in (noise, blur, weather, digital):
    _REGISTRY.update(_m.CORRUPTIONS)
assert set(_REGISTRY) == set(NAMES)

STOCHASTIC = tuple(n for n in NAMES if _REGISTRY[n][1] is not None)
DETERMINISTIC = tuple(n for n in NAMES if _REGISTRY[n][1] is None)
GRAY_NAMES = tuple(n for n in NAMES if n != "saturate")
_UINT8_ONLY = ("impulse_noise", "shot_noise", "gaussian_blur", "zoom_blur", "pixelate", "jpeg_compression", "elastic_transform")  # computed from the uint8 batch alone
jpeg_roundtrip = digital.jpeg_roundtrip


@dataclass
class _Ctx:
    table: str
    style: dict
    shape: tuple  # one image: (C, H, W)
    device: torch.device | str = "cpu"  # where the draws are computed
    uint8: torch.Tensor | None = field(default=None, repr=False)  # the batch, uint8


def _check(x, name, severity, table):
    """Validate the arguments; returns the table to use (by image size where table is None)."""
    if name not in _REGISTRY and name not in cbar.ALL_NAMES:
        raise ValueError(f"name={name!r} is invalid; allowed: {', '.join(NAMES + cbar.ALL_NAMES)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity={severity!r} is invalid; allowed: 1, 2, 3, 4, 5")
    if table is not None and table not in TABLES and name in _REGISTRY:
        raise ValueError(f"table={table!r} is invalid; allowed: None, {', '.join(TABLE_NAMES)}")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x={type(x).__name__} is invalid; allowed: a uint8 torch.Tensor (N, C, H, W)")
    if x.dtype != torch.uint8:
        raise ValueError(f"x.dtype={x.dtype} is invalid; allowed: torch.uint8 (images in 0..255)")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"x.shape={tuple(x.shape)} is invalid; allowed: (N, C, H, W) with C in {{1, 3}}")
    if x.shape[2] < 8 or x.shape[3] < 8:
        raise ValueError(f"x.shape={tuple(x.shape)} is invalid; allowed: H and W of at least 8 pixels")
    if name in cbar.ALL_NAMES:
        return cbar.check(x, name, table)
    return table or default_table(x.shape[2], x.shape[3])


def image_seeds(seed: int, name: str, severity: int, index) -> list[int]:
    """The per-image generator seeds: 63 bits of BLAKE2b('dstlib.corruptions|seed|name|severity|i')."""
    out = []
    for i in index:
        h = hashlib.blake2b(f"dstlib.corruptions|{int(seed)}|{name}|{int(severity)}|{int(i)}".encode(),
                            digest_size=8).digest()
        out.append(int.from_bytes(h, "little") & ((1 << 63) - 1))
    return out


def random_fields(x: torch.Tensor, name: str, severity: int, seed: int = 0, table: str | None = None,
                  index=None) -> dict[str, torch.Tensor]:
    """The random fields `corrupt` would draw for x (CPU tensors, batch first); {} for
    deterministic corruptions. Field names per corruption: gaussian/speckle_noise
    `normal`; shot_noise `counts`; impulse_noise `flipped`, `salted`; glass_blur
    `offsets` (N, iterations, H, W, 2) as (dy, dx); motion_blur `angle` (degrees);
    snow `normal` (N, 1, H, W), `angle`; frost `frost_index`, `crop` (top, left);
    fog `plasma_u` (or a ready `plasma` map); spatter `normal`; elastic_transform
    `affine`, `displacement`; C-bar: the reference's parameter names (`cbar.FIELDS`)."""
    table = _check(x, name, severity, table)
    return {k: v.cpu() for k, v in _draw(x, name, severity, seed, table, _rng.positions(index, x.shape[0])).items()}


def _draw(x, name, severity, seed, table, index):
    if name in cbar.ALL_NAMES:
        return cbar.draw(image_seeds(seed, name, severity, index), name, x.shape[2])
    drawer = _REGISTRY[name][1]
    if drawer is None:
        return {}
    p = params(table, name, severity)
    ctx = _Ctx(table, STYLE[table], tuple(x.shape[1:]), device=x.device, uint8=x)
    return drawer(image_seeds(seed, name, severity, index), p, ctx)


CPU_CHUNK_PIXELS = 8 * 224 * 224
"""On the CPU, `corrupt` runs a batch in chunks of about this many pixels (8 images at 224
px, 392 at 32 px): measured fastest per image (batch 8 at 224 px ~25% faster per image
than 16 or 32, whose temporaries outgrow the caches and the reused heap). Every image
is computed alone, so chunks change no value."""


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0, table: str | None = None,
            index=None, fields: dict | None = None) -> torch.Tensor:
    """Corrupt a batch of uint8 images (N, C, H, W); see the module docstring."""
    table = _check(x, name, severity, table)
    x = x.contiguous()  # every path works on contiguous NCHW memory and returns NCHW (JPEG: maybe channels_last)
    idx = _rng.positions(index, x.shape[0])
    if fields is not None:  # a deterministic corruption has no fields: any given are ignored
        fields = {k: torch.as_tensor(v) for k, v in fields.items()} if _stochastic(name) else {}
        if name in cbar.ALL_NAMES:
            cbar.check_fields(name, fields, x.shape[0])
    n, step = x.shape[0], max(1, CPU_CHUNK_PIXELS // (x.shape[2] * x.shape[3]))
    if x.device.type != "cpu" or n <= step:
        return _corrupt_chunk(x, name, severity, seed, table, idx, fields)
    out = torch.empty_like(x)
    for i in range(0, n, step):
        part = None if fields is None else {k: v[i:i + step] for k, v in fields.items()}
        out[i:i + step] = _corrupt_chunk(x[i:i + step], name, severity, seed, table, idx[i:i + step], part)
    return out


def _stochastic(name: str) -> bool:
    return bool(cbar.FIELDS[name]) if name in cbar.ALL_NAMES else _REGISTRY[name][1] is not None


def _corrupt_chunk(x, name, severity, seed, table, idx, fields):
    if fields is None:
        fields = _draw(x, name, severity, seed, table, idx)
    if x.shape[0] == 0:
        return x.clone()
    if name in cbar.ALL_NAMES:
        return cbar.apply(x, name, severity, table, {k: v.cpu() for k, v in fields.items()})
    apply = _REGISTRY[name][0]
    ctx = _Ctx(table, STYLE[table], tuple(x.shape[1:]), device=x.device, uint8=x)
    fdev = {k: (v.to(x.device) if k not in ("angle", "affine", "frost_index", "crop") else v.cpu())
            for k, v in fields.items()}
    xf = None if name in _UINT8_ONLY else x.float().div_(255.0)
    y = apply(xf, params(table, name, severity), ctx, fdev)
    if y.dtype == torch.uint8:  # the corruption computed the truncated uint8 result itself
        return y
    # values in 0..255: the cast truncates, as np.uint8; through int16, ~3x as fast as float -> uint8 on the CPU
    return y.clamp_(0, 255).to(torch.int16).to(torch.uint8)


def corrupt_as_saved(x: torch.Tensor, name: str, severity: int, seed: int = 0, table: str | None = None,
                     index=None, jpeg: bool | None = None, quality: int = SAVED_JPEG_QUALITY) -> torch.Tensor:
    """`corrupt`, then the JPEG round trip (quality 85) the saved Tiny-ImageNet-C and
    ImageNet-C files went through; `jpeg=None` applies it for those two tables only."""
    y = corrupt(x, name, severity, seed=seed, table=table, index=index)
    t = _check(x, name, severity, table)
    if jpeg is None:
        jpeg = SAVED_AS_JPEG[t]
    return jpeg_roundtrip(y, quality) if jpeg else y


# Fashion-MNIST-C (Weiss and Tonella): its own 15 corruptions at fixed severities (mnist_c.py)
from dstlib.corruptions.mnist_c import (FMNIST_C_NAMES, corrupt_mnist_c, fashion_mnist_c,  # noqa: E402
                                        fashion_mnist_c_choice, mnist_c_fields)

# corrupted UCF101 (Schiappa et al.): 16 corruptions of uint8 clips (N, T, C, H, W) (video.py)
from dstlib.corruptions.video import (TEMPORAL, VIDEO_NAMES, VIDEO_TABLE_NAMES, VIDEO_VERSION,  # noqa: E402
                                      corrupt_video, frame_map)
