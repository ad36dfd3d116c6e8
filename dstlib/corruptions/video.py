"""The 16 video corruptions of corrupted UCF101 (Schiappa et al., CVPR 2023), batched and seeded.

    corrupt_video(x, name, severity, seed=0, index=None, *, frames=None, table=None)

x is a uint8 tensor (N, T, C, H, W), C in {1, 3}, on any device; the result
is uint8 (N, T, C, H, W) on the same device. `index` gives the clips'
positions in their dataset (default 0..N-1), as for images: a clip's
corruption is a pure function of (clip, name, severity, seed, index),
whatever the batch and (up to floating point) the device.

The reference is the official code of the benchmark
(Maddy12/ActionRecognitionRobustnessEval, `core/video_perturb.py`), with its
per-severity parameters (`VIDEO_TABLES["ucf101"]`); where it is defective we
follow its evident intent, as each corruption's note says:

- Per-frame appearance corruptions (`PER_FRAME`): every frame goes through the
  image corruption of `dstlib.corruptions` of the same kind with the
  reference's parameters, which are the ImageNet-C constants of the
  `imagenet` image table (motion and defocus blur, JPEG qualities, gaussian
  and impulse noise, zoom factors) and the `tiny` table's (shot and speckle
  noise). compression is per-frame JPEG (PIL-identical libjpeg-turbo), not
  a video codec, as in the reference. motion_blur rounds to 8 bits (the
  reference reads ImageMagick's PNG back) and zoom_blur trims its zooms at
  the centre (the reference's clipped_zoom, which also crops a square of the
  frame's height and so fails on non-square frames: here each axis is zoomed
  on its own, as ImageNet-C does). Each frame draws its own noise, blur angle
  and so on (keys `frame_seeds`), as the reference's per-frame loop does.
- rotate: every frame turns by its own integer angle uniform in
  [-(6s + 1), 6s + 1] degrees; static_rotate: every frame by 7.5, 15, 30,
  45, 90 degrees. Both are PIL's `Image.rotate(angle)` (nearest neighbour,
  about the centre, no expansion, black outside), reproduced exactly
  (`rotation_source`).
- translate: the whole clip shifts by (dy, dx), each uniform in
  [0, bound) pixels, bound 8s at UCF101 size: the reference crops a 224 x 224
  window at that offset from the top-left corner of the 320 x 240 frame
  (zeros where it runs out), which changes the framing as well as shifting;
  here the clip keeps its size and framing and moves by the offset, zeros
  filling in.
- Temporal corruptions (`TEMPORAL`) reorder or repeat frames (`frame_map`):
  sampling keeps every r-th frame and holds it r frames (r = 2, 4, 8, 16, 32);
  the reference (A) drops the held frames and so shortens the video, which
  its earlier version (B) restores with repeat_interleave: here frame t shows
  frame (t // r) r, so the clip keeps its length. reverse_sampling is
  sampling played backwards (frame t shows the sampled frame L - 1 - t).
  jumble shuffles the frames within consecutive chunks of 32, 16, 8, 4, 2
  frames; box_jumble shuffles the order of consecutive chunks of 4, 9, 16,
  25, 36 frames (a short last chunk moves with the others, as in the
  reference). freeze picks k frames at random (k = int(0.4 L), int(0.2 L),
  int(0.1 L), int(max(0.05 L, 2)), 1 at severities 1-5, at least 1) and holds
  each until the next; the reference drops the frames before the first
  pick (shortening the video, and failing at k = 0), here frame 0 is held
  until then (B), so the length stays.

Where temporal corruptions act: the reference decodes the whole video,
corrupts it, then samples T frames uniformly (the middle frame of each of T
equal intervals, `uniform_indices`); other corruptions act on the T sampled
frames. `frames=T` does the same: x then holds whole videos (N, L, C, H, W)
and the result is the corrupted T-frame clip. Without `frames` every
corruption acts on the clip itself. Chunk sizes of jumble and box_jumble (up
to 36 frames) are made for whole videos: on an 8-frame clip jumble at
severity 1 shuffles every frame.

Tables: "ucf101" (the reference's parameters, for frames of UCF101 size)
and "small" for frames of at most 45 px (the quick profile's clips): there
motion and defocus blur take the CIFAR-10-C constants, which Hendrycks and
Dietterich scaled for 32-px images, and translate moves by up to 1-5 px
instead of 7-39; noise, JPEG, zoom, rotation and the temporal corruptions
are scale-free and keep the reference's values. None picks by frame size.
The paper reports four of the five severities: the book uses 1-4 (the
paper's section 4.3: "16 corruptions across severity levels 1 to 4").

Randomness: counter-based draws (`dstlib.corruptions._rng`) keyed by
`clip_seeds` (temporal orders, rotation angles, translation) or
`frame_seeds` (per-frame image corruptions); the reference draws the same
distributions from unseeded Python, numpy and skimage generators, so single
draws differ.
"""
from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from dstlib.corruptions import _rng

VIDEO_NAMES = ("motion_blur", "compression", "defocus_blur", "gaussian_noise", "shot_noise", "impulse_noise",
               "zoom_blur", "rotate", "static_rotate", "speckle_noise", "sampling", "reverse_sampling",
               "jumble", "box_jumble", "freeze", "translate")
TEMPORAL = ("sampling", "reverse_sampling", "jumble", "box_jumble", "freeze")
PER_FRAME = {"motion_blur": "motion_blur", "compression": "jpeg_compression", "defocus_blur": "defocus_blur",
             "gaussian_noise": "gaussian_noise", "shot_noise": "shot_noise", "impulse_noise": "impulse_noise",
             "zoom_blur": "zoom_blur", "speckle_noise": "speckle_noise"}
"""Video corruption -> the image corruption applied to every frame."""
VIDEO_TABLE_NAMES = ("ucf101", "small")
VIDEO_VERSION = 1
"""Bumped whenever the clips `corrupt_video` returns change."""

_UCF101 = {
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),         # (radius, sigma)
    "compression": (25, 18, 15, 10, 7),                                     # JPEG quality
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),    # (radius, alias blur)
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),                       # sigma
    "shot_noise": (250, 100, 50, 30, 15),                                   # Poisson rate
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),                        # amount
    "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
    "rotate": (7, 13, 19, 25, 31),                                          # largest |angle|, integer degrees
    "static_rotate": (7.5, 15, 30, 45, 90),                                 # degrees, counter-clockwise
    "speckle_noise": (0.15, 0.20, 0.25, 0.30, 0.35),                        # sigma
    "sampling": (2, 4, 8, 16, 32),                                          # keep every r-th frame
    "reverse_sampling": (2, 4, 8, 16, 32),
    "jumble": (32, 16, 8, 4, 2),                                            # chunk length, frames
    "box_jumble": (4, 9, 16, 25, 36),                                       # chunk length, frames
    "freeze": (0.4, 0.2, 0.1, 0.05, 0.0),                                   # k = int(f L) (see freeze_count)
    "translate": (8, 16, 24, 32, 40),                                       # offsets in [0, bound) px
}
_SMALL = dict(_UCF101,
              motion_blur=((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
              defocus_blur=((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
              translate=(2, 3, 4, 5, 6))
VIDEO_TABLES = {"ucf101": _UCF101, "small": _SMALL}
assert all(set(t) == set(VIDEO_NAMES) for t in VIDEO_TABLES.values())

# the image ops' style switches the video corruptions need: ImageMagick's 8-bit motion blur, centre-trimmed zooms
_STYLE = {"motion_round": True, "zoom_trim": "center"}


def default_video_table(height: int, width: int) -> str:
    """"small" for frames of at most 45 px (the image tables' CIFAR bound), else "ucf101"."""
    return "small" if max(height, width) <= 45 else "ucf101"


def video_params(table: str, name: str, severity: int):
    return VIDEO_TABLES[table][name][severity - 1]


def freeze_count(severity: int, length: int) -> int:
    """Frames freeze keeps: the reference's int(0.4 L), int(0.2 L), int(0.1 L), int(max(0.05 L, 2)), 1,
    at least 1 (the reference fails at 0) and at most L."""
    f = _UCF101["freeze"][severity - 1]
    k = 1 if severity == 5 else int(max(f * length, 2)) if severity == 4 else int(f * length)
    return min(length, max(1, k))


def uniform_indices(length: int, frames: int) -> torch.Tensor:
    """The middle frame of each of `frames` equal intervals of [0, length) (the reference's "uniform" sampling;
    the same rule as `dstlib.data.moving.uniform_indices`); int64 (frames,). A video shorter than `frames`
    repeats frames."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length={length!r} is invalid; allowed: an integer >= 1")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames={frames!r} is invalid; allowed: an integer >= 1")
    edges = [(k * length) // frames for k in range(frames + 1)]
    return torch.tensor([max(edges[k], (edges[k] + edges[k + 1] - 1) // 2) for k in range(frames)],
                        dtype=torch.int64)


# --- keys -------------------------------------------------------------------------------------------
def _blake(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") & ((1 << 63) - 1)


def clip_seeds(seed: int, name: str, severity: int, index) -> list[int]:
    """Per-clip generator seeds: 63 bits of BLAKE2b('dstlib.video|seed|name|severity|i')."""
    return [_blake(f"dstlib.video|{int(seed)}|{name}|{int(severity)}|{int(i)}") for i in index]


def frame_seeds(seed: int, name: str, severity: int, index, frames: int) -> list[int]:
    """Per-frame seeds, clip-major: BLAKE2b('dstlib.video|seed|name|severity|i|t') for t < frames."""
    return [_blake(f"dstlib.video|{int(seed)}|{name}|{int(severity)}|{int(i)}|{t}")
            for i in index for t in range(frames)]


# --- validation -------------------------------------------------------------------------------------
def _check(x, name, severity, table, frames):
    if name not in VIDEO_NAMES:
        raise ValueError(f"name={name!r} is invalid; allowed: {', '.join(VIDEO_NAMES)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity={severity!r} is invalid; allowed: 1, 2, 3, 4, 5")
    if table is not None and table not in VIDEO_TABLE_NAMES:
        raise ValueError(f"table={table!r} is invalid; allowed: None, {', '.join(VIDEO_TABLE_NAMES)}")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x={type(x).__name__} is invalid; allowed: a uint8 torch.Tensor (N, T, C, H, W)")
    if x.dtype != torch.uint8:
        raise ValueError(f"x.dtype={x.dtype} is invalid; allowed: torch.uint8 (clips in 0..255)")
    if x.ndim != 5 or x.shape[2] not in (1, 3) or x.shape[1] < 1 or x.shape[3] < 8 or x.shape[4] < 8:
        raise ValueError(f"x.shape={tuple(x.shape)} is invalid; allowed: (N, T, C, H, W) with T >= 1, C in {{1, 3}}, "
                         "H and W of at least 8 pixels")
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
        raise ValueError(f"frames={frames!r} is invalid; allowed: None (x is the clip) or an integer >= 1 "
                         "(x holds whole videos; the clip's frame count)")
    return table or default_video_table(x.shape[3], x.shape[4])


# --- temporal: which input frame each output frame shows ------------------------------------------------
def frame_map(name: str, severity: int, length: int, seed: int = 0, index=None, n: int | None = None) -> torch.Tensor:
    """int64 (N, length): frame t of clip n's corrupted video shows its input frame map[n, t].

    For the temporal corruptions (`TEMPORAL`); every other corruption keeps the frames in place (the identity).
    N is len(index), or `n` (index 0..n-1) when index is None. CPU tensor.
    """
    if name not in VIDEO_NAMES:
        raise ValueError(f"name={name!r} is invalid; allowed: {', '.join(VIDEO_NAMES)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity={severity!r} is invalid; allowed: 1, 2, 3, 4, 5")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length={length!r} is invalid; allowed: an integer >= 1")
    if index is None and (n is None or n < 0):
        raise ValueError("index and n are both missing; allowed: an index tensor, or n (clips 0..n-1)")
    idx = _rng.positions(index, len(index) if index is not None else n)
    t = torch.arange(length)
    m = len(idx)
    if name not in TEMPORAL:
        return t.expand(m, length).clone()
    p = _UCF101[name][severity - 1]
    if name == "sampling":
        return ((t // p) * p).expand(m, length).clone()
    if name == "reverse_sampling":
        return (((length - 1 - t) // p) * p).expand(m, length).clone()
    seeds = clip_seeds(seed, name, severity, idx)
    if not seeds:
        return torch.empty((0, length), dtype=torch.int64)
    if name == "jumble":  # a random order within each chunk: sort (chunk, key)
        keys = _rng.bits(seeds, 0, (length,)).to(torch.int64) & 0xFFFFFFFF
        return torch.argsort((t // p).view(1, -1) * (1 << 32) + keys, dim=1, stable=True)
    if name == "box_jumble":  # a random order of the chunks, each kept whole
        chunks = -(-length // p)
        order = torch.argsort(_rng.bits(seeds, 0, (chunks,)).to(torch.int64) & 0xFFFFFFFF, dim=1, stable=True)
        sizes = torch.full((chunks,), p, dtype=torch.int64)
        sizes[-1] = length - p * (chunks - 1)
        placed = sizes[order]                                  # (N, chunks): lengths in output order
        ends = torch.cumsum(placed, 1)
        slot = torch.searchsorted(ends, t.expand(m, length).contiguous(), right=True)   # output chunk of each frame
        start_out = ends.gather(1, slot) - placed.gather(1, slot)
        return order.gather(1, slot) * p + (t.view(1, -1) - start_out)
    # freeze: k distinct frames uniformly at random (the k smallest keys), frame 0 added; each held to the next
    k = freeze_count(severity, length)
    keys = _rng.bits(seeds, 0, (length,)).to(torch.int64) & 0xFFFFFFFF
    picked = torch.zeros((m, length), dtype=torch.bool)
    picked.scatter_(1, torch.argsort(keys, dim=1, stable=True)[:, :k], True)
    picked[:, 0] = True
    return torch.cummax(torch.where(picked, t.view(1, -1), torch.zeros_like(t)), dim=1).values


# --- spatial: rotation as PIL does it, translation ---------------------------------------------------
@lru_cache(maxsize=512)
def _rotation_np(angle: float, h: int, w: int) -> np.ndarray:
    """Flat source index of every output pixel of PIL's Image.rotate(angle) (NEAREST, no expand), -1 outside.

    Pillow's rotate: angle % 360; 0 is a copy, 180 a ROTATE_180 transpose, 90 and 270 on a square image
    ROTATE_90 / ROTATE_270 transposes; otherwise the affine matrix of rotate() (entries rounded to 15
    decimals, about (w / 2, h / 2)) run by libImaging's nearest-neighbour affine loop in 16.16 fixed point
    (`affine_fixed`: each coefficient floor(v 2^16 + 0.5), the offsets taken at the pixel centres, positions
    accumulated in integers and shifted right by 16).
    """
    angle = angle % 360.0
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    if angle == 0:
        return (yy * w + xx).ravel()
    if angle == 180:
        return ((h - 1 - yy) * w + (w - 1 - xx)).ravel()
    if angle in (90, 270) and w == h:
        if angle == 90:   # counter-clockwise: out[y, x] = in[x, w - 1 - y]
            return (xx * w + (w - 1 - yy)).ravel()
        return ((h - 1 - xx) * w + yy).ravel()
    a = -math.radians(angle)
    m = [round(math.cos(a), 15), round(math.sin(a), 15), 0.0, round(-math.sin(a), 15), round(math.cos(a), 15), 0.0]
    cx, cy = w / 2, h / 2
    m[2], m[5] = m[0] * -cx + m[1] * -cy + m[2], m[3] * -cx + m[4] * -cy + m[5]
    m[2] += cx
    m[5] += cy
    fix = lambda v: math.floor(v * 65536.0 + 0.5)  # noqa: E731  libImaging's 16.16 fixed point
    a0, a1, a3, a4 = fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4])
    a2, a5 = fix(m[2] + m[0] * 0.5 + m[1] * 0.5), fix(m[5] + m[3] * 0.5 + m[4] * 0.5)
    xs = a2 + a1 * yy + a0 * xx   # exact in int64: the C loop's int32 sums never overflow at these sizes
    ys = a5 + a4 * yy + a3 * xx
    xi, yi = xs >> 16, ys >> 16   # arithmetic shifts: floor
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    return np.where(inside, yi * w + xi, -1).ravel()


def rotation_source(angle: float, height: int, width: int) -> torch.Tensor:
    """int64 (H * W,): the flat input pixel each output pixel of PIL's `rotate(angle)` shows, -1 for black."""
    return torch.from_numpy(_rotation_np(float(angle), int(height), int(width)))


@lru_cache(maxsize=512)
def _rotation_index(angle: float, h: int, w: int, device: str) -> torch.Tensor:
    """`rotation_source` on `device`, with H * W (a zero pixel appended to each plane) for black."""
    src = rotation_source(angle, h, w)
    return torch.where(src < 0, h * w, src).to(device)


def _rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate frames (M, C, H, W) by angles (M,) (degrees, counter-clockwise), as PIL's rotate: each frame's planes
    (a zero pixel appended) gathered by the angle's source map (`gather` with the map broadcast over the planes:
    on the CPU several times as fast as `index_select` on bytes)."""
    mm, c, h, w = x.shape
    flat = F.pad(x.reshape(mm * c, h * w), (0, 1))
    angles = angles.cpu().tolist()
    dev = str(x.device)
    if len(set(angles)) == 1:
        src = _rotation_index(float(angles[0]), h, w, dev)
        return torch.gather(flat, 1, src.expand(mm * c, h * w)).view(mm, c, h, w)
    out = torch.empty((mm * c, h * w), dtype=x.dtype, device=x.device)
    for i, a in enumerate(angles):
        rows = slice(i * c, (i + 1) * c)
        torch.gather(flat[rows], 1, _rotation_index(float(a), h, w, dev).expand(c, h * w), out=out[rows])
    return out.view(mm, c, h, w)


def _translate(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Clips (N, T, C, H, W) shifted by offsets (N, 2) = (dy, dx) >= 0: out[y, x] = in[y + dy, x + dx], zeros beyond."""
    n, t, c, h, w = x.shape
    out = torch.zeros_like(x)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        if dy < h and dx < w:
            out[i, :, :, :h - dy, :w - dx] = x[i, :, :, dy:, dx:]
    return out


# --- per-frame image corruptions ---------------------------------------------------------------------
def _frames_corrupt(frames: torch.Tensor, image_name: str, p, seeds: list[int]) -> torch.Tensor:
    """One image corruption of `dstlib.corruptions` on frames (M, C, H, W) with parameters `p` and per-frame seeds,
    in chunks of about CPU_CHUNK_PIXELS on the CPU (as `corrupt`)."""
    import dstlib.corruptions as dc

    apply, drawer = dc._REGISTRY[image_name]
    mm, _, h, w = frames.shape
    step = max(1, dc.CPU_CHUNK_PIXELS // (h * w)) if frames.device.type == "cpu" else max(1, mm)
    out = torch.empty_like(frames)
    for i in range(0, mm, step):
        x = frames[i:i + step].contiguous()
        ctx = dc._Ctx("video", _STYLE, tuple(x.shape[1:]), device=x.device, uint8=x)
        fields = drawer(seeds[i:i + step], p, ctx) if drawer is not None else {}
        fdev = {k: (v.cpu() if k == "angle" else v.to(x.device)) for k, v in fields.items()}
        xf = None if image_name in dc._UINT8_ONLY else x.float().div_(255.0)
        y = apply(xf, p, ctx, fdev)
        if y.dtype != torch.uint8:
            y = y.clamp_(0, 255).to(torch.int16).to(torch.uint8)
        out[i:i + step] = y
    return out


def _frames_from(x: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Clips (N, K, C, H, W) whose frame k is x[n, src[n, k]] (whole frames copied, not gathered per pixel)."""
    rows = torch.arange(x.shape[0], device=x.device).view(-1, 1)
    return x[rows, src.to(x.device)]


# --- the entry point ------------------------------------------------------------------------------------
def corrupt_video(x: torch.Tensor, name: str, severity: int, seed: int = 0, index=None, *,
                  frames: int | None = None, table: str | None = None) -> torch.Tensor:
    """Corrupt uint8 clips (N, T, C, H, W); with `frames`, x holds whole videos (N, L, C, H, W) and the result is
    the corrupted `frames`-frame clip (module docstring)."""
    table = _check(x, name, severity, table, frames)
    n, length = x.shape[0], x.shape[1]
    idx = _rng.positions(index, n)
    if frames is not None:
        if name in TEMPORAL:  # on the whole video, then the uniform sample
            src = frame_map(name, severity, length, seed, torch.tensor(idx, dtype=torch.int64))
            return _frames_from(x, src[:, uniform_indices(length, frames)])
        x = x[:, uniform_indices(length, frames).to(x.device)]
    return _corrupt_clips(x, name, severity, seed, idx, table)


def _corrupt_clips(x, name, severity, seed, idx, table):
    n, t, c, h, w = x.shape
    p = video_params(table, name, severity)
    if n == 0:
        return x.clone()
    if name in TEMPORAL:
        return _frames_from(x, frame_map(name, severity, t, seed, torch.tensor(idx, dtype=torch.int64)))
    if name in PER_FRAME:
        y = _frames_corrupt(x.reshape(n * t, c, h, w), PER_FRAME[name], p, frame_seeds(seed, name, severity, idx, t))
        return y.view(n, t, c, h, w)
    seeds = clip_seeds(seed, name, severity, idx)
    if name == "rotate":  # an integer angle per frame, uniform in [-p, p]
        angles = _rng.integers(seeds, 0, (t,), 2 * p + 1).to(torch.int64) - p
        return _rotate(x.reshape(n * t, c, h, w), angles.reshape(-1).float()).view(n, t, c, h, w)
    if name == "static_rotate":
        return _rotate(x.reshape(n * t, c, h, w), torch.full((n * t,), float(p))).view(n, t, c, h, w)
    # translate: one offset (dy, dx) per clip, each uniform in [0, p)
    return _translate(x, _rng.integers(seeds, 0, (2,), p).to(torch.int64))
