"""Moving Fashion-MNIST: short gray clips of a real Fashion-MNIST garment moving along one of eight motions.

The quick profile's video dataset, standing in for UCF101 where no real video
reaches the machine. Clip i of a split shows Fashion-MNIST image i of the same
split (train or test: the split is kept), downscaled by half (14 px) on a
black `SIZE` x `SIZE` canvas, moving along a trajectory; its label is the
motion, not the garment:

    0 right, 1 left, 2 down, 3 up          translation by `travel` pixels in all
    4 clockwise, 5 counter-clockwise       rotation by `turn` degrees in all
    6 zoom in, 7 zoom out                  scale by a factor `zoom` in all

Each clip draws its motion class (uniform over the eight), its extent
(`travel` in [1, 4] px, `turn` in [15, 60] degrees, `zoom` in [1.1, 1.5]),
its mean offset (up to 2 px in each axis, perpendicular to a translation),
its mean angle (up to 15 degrees either way) and a camera shake of every
native frame (up to 1 px in each axis, uniform), all from one torch.Generator
seeded with `config.derive_seed(seed, "moving_fashion_mnist.<split>")`, in one
draw per parameter over the whole split: a clip is a pure function of (seed,
split, index) for the split's fixed size (`TRAIN_CLIPS`, `TEST_CLIPS`).

Time: a clip is a native video of `LENGTH` frames (frame f at trajectory time
f / (LENGTH - 1)) from which `FRAMES` frames are sampled as for UCF101, the
middle frame of each of FRAMES equal intervals (`uniform_indices`). Any frame
of the native video can be rendered (`render(images, params, frames)`), and
`ClipSet.videos` gives the whole videos (rendered once, on first use), so
temporal corruptions can act on the whole video before sampling, as the
reference does. Reversal maps each class to its
opposite, so reversed, jumbled or frozen clips lose the label, and noise, blur
and compression hide the small per-frame motion: temporal and appearance
corruptions both matter.

Rendering: one bilinear `grid_sample` of the 14-px garment (zeros outside)
per frame, rounded to uint8. The motions are small (a translation moves the
garment by 0.1-0.6 px between sampled frames) next to the shake (up to 1 px),
so a model must integrate over the clip: the small 3D CNN `cnn3d` reaches
about 96% clean accuracy rather than 100%.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dstlib.config import derive_seed

MOTIONS = ("right", "left", "down", "up", "clockwise", "counterclockwise", "zoom_in", "zoom_out")
SIZE = 20        # canvas side, px
LENGTH = 32      # frames of the native video
FRAMES = 8       # frames per clip (the reference's 8-frame clips)
TRAIN_CLIPS = 12_000   # clips of the training split: Fashion-MNIST training images 0..11,999
TEST_CLIPS = 2_000     # clips of the test split: Fashion-MNIST test images 0..1,999
SPLIT_CLIPS = {"train": TRAIN_CLIPS, "test": TEST_CLIPS}
GARMENT = 14     # garment side after the 2x2 average downscale, px
TRAVEL = (1.0, 4.0)    # px over the whole video
TURN = (15.0, 60.0)    # degrees over the whole video
ZOOM = (1.1, 1.5)      # scale factor over the whole video
SHAKE = 1.0            # camera shake: every native frame moves by up to this many px in each axis


def uniform_indices(length: int, frames: int) -> torch.Tensor:
    """The middle frame of each of `frames` equal intervals of [0, length) (the reference's "uniform" sampling):
    interval k is [floor(k L / T), floor((k + 1) L / T)), its middle (start + end - 1) // 2; int64 (frames,)."""
    if length < 1 or frames < 1:
        raise ValueError(f"length={length!r}, frames={frames!r} is invalid; allowed: positive integers")
    edges = [(k * length) // frames for k in range(frames + 1)]
    return torch.tensor([max(edges[k], (edges[k] + edges[k + 1] - 1) // 2) for k in range(frames)],
                        dtype=torch.int64)


def trajectories(split: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The split's per-clip parameters: label (int64), travel, turn, zoom, mean offsets dx, dy and mean angle
    (float64, (n,)), shake (float64, (n, LENGTH, 2), px per native frame)."""
    n = SPLIT_CLIPS[split]
    g = torch.Generator().manual_seed(derive_seed(seed, f"moving_fashion_mnist.{split}"))
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)  # noqa: E731
    out = {"label": torch.randint(0, len(MOTIONS), (n,), generator=g), "travel": u(*TRAVEL),
           "turn": u(*TURN), "zoom": u(*ZOOM), "dx": u(-2.0, 2.0), "dy": u(-2.0, 2.0),
           "angle": u(-15.0, 15.0)}
    out["shake"] = (2 * torch.rand((n, LENGTH, 2), generator=g, dtype=torch.float64) - 1) * SHAKE
    return out


def _pose(p: dict[str, torch.Tensor], t: torch.Tensor):
    """Centre offset (x, y) in px, angle in degrees and scale of every clip at times t ((n, k) in [0, 1])."""
    lab = p["label"].view(-1, 1)
    s = t - 0.5  # centred: the mean position is the start offset
    x, y = p["dx"].view(-1, 1).expand_as(t).clone(), p["dy"].view(-1, 1).expand_as(t).clone()
    travel = p["travel"].view(-1, 1) * s
    x = torch.where(lab == 0, travel, torch.where(lab == 1, -travel, x))
    y = torch.where(lab == 2, travel, torch.where(lab == 3, -travel, y))
    turn = p["turn"].view(-1, 1) * s
    angle = p["angle"].view(-1, 1) + torch.where(lab == 4, turn, torch.where(lab == 5, -turn, torch.zeros_like(t)))
    logz = torch.log(p["zoom"].view(-1, 1)) * s
    scale = torch.exp(torch.where(lab == 6, logz, torch.where(lab == 7, -logz, torch.zeros_like(t))))
    return x, y, angle, scale


def garments(images: torch.Tensor) -> torch.Tensor:
    """uint8 (n, 1, 28, 28) -> float32 (n, 1, 14, 14) in [0, 1]: the 2x2 average of the pixels."""
    return F.avg_pool2d(images.float() / 255.0, 2)


def render(images: torch.Tensor, params: dict[str, torch.Tensor], frames: torch.Tensor) -> torch.Tensor:
    """uint8 clips (n, k, 1, SIZE, SIZE): frames `frames` (int (k,) or (n, k), native frame numbers in
    [0, LENGTH)) of the clips whose source images are `images` (uint8 (n, 1, 28, 28)) and whose per-clip
    parameters are `params` (rows of `trajectories`)."""
    n = images.shape[0]
    frames = torch.as_tensor(frames, dtype=torch.int64)
    frames = frames.view(1, -1).expand(n, -1) if frames.ndim == 1 else frames
    k = frames.shape[1]
    t = frames.to(torch.float64) / (LENGTH - 1)
    x, y, angle, scale = _pose(params, t)
    sh = params["shake"].gather(1, frames.view(n, k, 1).expand(n, k, 2))
    x, y = x + sh[..., 0], y + sh[..., 1]
    # output normalised coords (align_corners=False) -> garment normalised coords:
    # g = R(-a) (S/2 o - d) / (G/2 * s), with S the canvas, G the garment side, d the centre offset in px
    a = torch.deg2rad(angle)
    cos, sin = torch.cos(a), torch.sin(a)
    f = (SIZE / GARMENT) / scale
    theta = torch.stack([torch.stack([cos * f, sin * f, -(cos * x + sin * y) * 2 / (GARMENT * scale)], -1),
                         torch.stack([-sin * f, cos * f, -(-sin * x + cos * y) * 2 / (GARMENT * scale)], -1)], -2)
    grid = F.affine_grid(theta.reshape(n * k, 2, 3).float(), (n * k, 1, SIZE, SIZE), align_corners=False)
    src = garments(images).repeat_interleave(k, 0)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.mul_(255).round_().clamp_(0, 255).to(torch.uint8).view(n, k, 1, SIZE, SIZE)


def clip_frames() -> torch.Tensor:
    """The native frames of a clip: `uniform_indices(LENGTH, FRAMES)`."""
    return uniform_indices(LENGTH, FRAMES)



def read(roots, split: str, info, seed: int = 0):
    """The split's clips as a `ClipSet` (`images` (n, FRAMES, 1, SIZE, SIZE), labels the motion classes), made
    from the Fashion-MNIST files in `roots`; `videos(...)` renders the whole LENGTH-frame videos."""
    from dstlib.data import ClipSet, _fingerprint, _read, fashion_mnist

    paths = tuple(roots)
    source = _read(fashion_mnist.read, paths, split, "fashion_mnist", _fingerprint(paths)).images[:SPLIT_CLIPS[split]]
    params = trajectories(split, seed)
    rendered: list[torch.Tensor] = []  # the split's whole videos, made on first use (25 MB for the test split)

    def videos(index: torch.Tensor) -> list[torch.Tensor]:
        if not rendered:
            rendered.append(render(source, params, torch.arange(LENGTH)))
        return list(rendered[0][index])
    return ClipSet(info, render(source, params, clip_frames()), params["label"], read_videos=videos)
