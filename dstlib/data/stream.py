"""Training images streamed from image folders: decoded by worker processes, augmented per image, batched.

For datasets too large to hold in memory (ImageNet; any `FolderImageSet`),
`loader()` returns a `torch.utils.data.DataLoader` whose worker processes
read and decode the files with torchvision's decoders (libjpeg-turbo), apply
the training augmentation and collate uint8 (N, C, H, W) batches in pinned
memory; the training loop copies them to the device without blocking.

Order and randomness, so that a run is the same whatever the number of
workers and resumes mid-epoch exactly:

- the epoch's order is a permutation that is a pure function of (seed,
  epoch) (`epoch_order`); step b of the epoch takes the global batch
  `order[b * B:(b + 1) * B]`, and under several processes rank r takes
  every `world`-th image of it (r, r + world, ...);
- the augmentation of image i in epoch e draws from its own generator
  (`sample_rng(seed, e, i)`): a pure function of (image, seed, epoch,
  index), independent of the batch, the worker and the process;
- the sampler starts at any step of the epoch (`BatchSampler(start=...)`),
  which is all a checkpoint needs to record.

Augmentations (`config.AUGMENTATIONS`), each on the decoded image:

- "none": the evaluation transform (shorter side 256, central 224 crop for
  ImageNet; the dataset's own for other folder sets);
- "crop_flip": the evaluation transform, then zero-pad by size/8, random
  crop back and a horizontal flip with probability 1/2 (as
  `dstlib.train.crop_flip` on in-memory images);
- "rrc_flip": random-resized crop of the whole image (area 8-100%, aspect
  3/4-4/3, torchvision's ten tries then a central crop), bilinear with
  antialiasing to the dataset's size, flip with probability 1/2;
- "deit": the same crop with bicubic interpolation, flip, then timm's
  RandAugment "rand-m9-mstd0.5-inc1" (DeiT's recipe; seeded per image).

`random_erasing` (DeiT: 0.25) replaces one random box (area 2-33%, log-aspect
uniform in [log 0.3, log 3.3], timm's ten tries) by per-pixel Gaussian noise
of the dataset's mean and standard deviation, in uint8 (timm fills the
normalised tensor with N(0, 1), which here is clipped to the pixel range).

GPU decoding (`encoded=True`): the workers only read the file bytes and the
image size from the header and draw the crop; `decode_batch` decodes the
batch with `torchvision.io.decode_jpeg(..., device=device)` (nvJPEG on CUDA)
and crops, resizes and flips on the device. The crop and flip are the same
draws, so the two paths give the same images up to the resize's rounding
(on the CPU, the same bytes: the test checks it). Only "none" and "rrc_flip"
run there; "crop_flip" and "deit" need the CPU steps. The CUDA path (nvJPEG,
pinned memory) is written for GPUs but has been run only on the CPU here.
"""
from __future__ import annotations

import math
import random
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from dstlib.config import derive_seed

# torchvision 0.29 announces that its decoders will move to TorchCodec; they are what this module uses
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated",
                        category=DeprecationWarning)

#: Augmentations that can run on the device after GPU decoding.
DEVICE_AUGMENTATIONS = ("none", "rrc_flip")
RRC_SCALE, RRC_RATIO = (0.08, 1.0), (3 / 4, 4 / 3)
ERASE_AREA, ERASE_LOG_ASPECT = (0.02, 1 / 3), (math.log(0.3), math.log(1 / 0.3))
DEIT_RANDAUGMENT = "rand-m9-mstd0.5-inc1"


# --- order and per-image randomness ------------------------------------------------------------
def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the n training images in `epoch` (0-based): a permutation, a pure function of (seed, epoch)."""
    return np.random.default_rng([derive_seed(seed, "train.stream.order"), epoch]).permutation(n)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of image `index`'s augmentation in `epoch`."""
    return np.random.default_rng([derive_seed(seed, "train.stream.augment"), epoch, index])


def steps_in_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Optimiser steps per epoch: full batches, plus the last partial one when it holds at least 2 images
    per process (a lone image per process would break BatchNorm); as `dstlib.book.evidence.steps_per_epoch`
    for one process."""
    rest = n % batch_size
    return n // batch_size + (rest >= 2 * world if world > 1 else rest > 1)


class BatchSampler:
    """Yields, for steps `start`..end of `epoch`, this rank's list of (epoch, index) items."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int = 0, rank: int = 0,
                 world: int = 1):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.start, self.rank, self.world = start, rank, world
        self.steps = steps_in_epoch(n, batch_size, world)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.n, self.seed, self.epoch)
        for b in range(self.start, self.steps):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size][self.rank::self.world]
            yield [(self.epoch, int(i)) for i in batch]


# --- the draws ------------------------------------------------------------------------------------
def rrc_box(rng: np.random.Generator, height: int, width: int, scale=RRC_SCALE, ratio=RRC_RATIO):
    """(top, left, crop height, crop width) of a random-resized crop: torchvision's algorithm (ten tries of
    area and log-uniform aspect, else the largest central crop of an aspect within `ratio`)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def erase_box(rng: np.random.Generator, height: int, width: int):
    """(top, left, h, w) of a random-erasing box (timm's RandomErasing, one box), or None after ten misses."""
    area = height * width
    for _ in range(10):
        target = area * rng.uniform(*ERASE_AREA)
        aspect = math.exp(rng.uniform(*ERASE_LOG_ASPECT))
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if w < width and h < height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return None


# --- the operations on one decoded image (uint8 C x H x W, any device) --------------------------------
def resized_crop(img: torch.Tensor, box, size: int, flip: bool, bicubic: bool = False) -> torch.Tensor:
    """Crop `box` (top, left, h, w), resize to size x size with antialiasing, optionally flip; uint8."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF
    top, left, h, w = box
    mode = InterpolationMode.BICUBIC if bicubic else InterpolationMode.BILINEAR
    out = TF.resized_crop(img, top, left, h, w, [size, size], interpolation=mode, antialias=True)
    return out.flip(-1) if flip else out


def pad_crop(img: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """Zero-pad by size/8, crop back at offset (dy, dx), optionally flip (`dstlib.train.crop_flip` per image)."""
    _, h, w = img.shape
    pad = max(1, h // 8)
    out = torch.nn.functional.pad(img, (pad, pad, pad, pad))[:, dy:dy + h, dx:dx + w]
    return out.flip(-1) if flip else out


def erase(img: torch.Tensor, rng: np.random.Generator, mean, std) -> torch.Tensor:
    """Random erasing of one box with Gaussian noise of the dataset's mean and std (module docstring)."""
    c, h, w = img.shape
    box = erase_box(rng, h, w)
    if box is None:
        return img
    top, left, bh, bw = box
    noise = rng.standard_normal((c, bh, bw)) * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]
    out = img.clone()
    out[:, top:top + bh, left:left + bw] = torch.from_numpy(np.clip(np.rint(noise * 255), 0, 255).astype(np.uint8))
    return out


def rand_augment(img: torch.Tensor, rng: np.random.Generator, size: int) -> torch.Tensor:
    """timm's RandAugment (DEIT_RANDAUGMENT, bicubic, DeiT's hyper-parameters) on a uint8 CHW image, seeded
    from `rng`: timm draws from Python's `random` and numpy's global generator, so both are seeded here and
    restored afterwards."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform
    mean = (124, 116, 104)  # timm's IMAGENET_DEFAULT_MEAN in pixels, as its transforms pass it
    op = rand_augment_transform(DEIT_RANDAUGMENT, {"translate_const": int(size * 0.45), "img_mean": mean,
                                                   "interpolation": Image.BICUBIC})
    seed = int(rng.integers(0, 2**31 - 1))
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        random.seed(seed)
        np.random.seed(seed)
        out = op(Image.fromarray(img.permute(1, 2, 0).numpy()))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return torch.from_numpy(np.asarray(out, dtype=np.uint8).copy()).permute(2, 0, 1)


def read_bytes(path: Path) -> torch.Tensor:
    import torchvision.io as tio
    return tio.read_file(str(path))


def decode(data: torch.Tensor, path: Path | str = "") -> torch.Tensor:
    """RGB uint8 CHW from encoded bytes (torchvision's decoders: JPEG, PNG, ...)."""
    import torchvision.io as tio
    try:
        return tio.decode_image(data, mode=tio.ImageReadMode.RGB)
    except RuntimeError as e:
        raise ValueError(f"{path}: cannot decode image ({e})") from None


# --- the datasets the loader reads ----------------------------------------------------------------
class AugmentedFolder(torch.utils.data.Dataset):
    """Items (epoch, index) -> (uint8 C x size x size, label), decoded and augmented in the worker."""

    def __init__(self, folder_set, seed: int, augmentation: str, random_erasing: float = 0.0):
        from dstlib.config import AUGMENTATIONS, check_choice
        check_choice("augmentation", augmentation, AUGMENTATIONS)
        self.set, self.seed, self.augmentation, self.random_erasing = folder_set, seed, augmentation, random_erasing
        self.info = folder_set.info
        self.size = folder_set.info.image_size

    def __len__(self) -> int:
        return len(self.set)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = item
        rng = sample_rng(self.seed, epoch, i)
        label = int(self.set.labels[i])
        if self.augmentation in ("none", "crop_flip"):
            img = self.set[i][0]  # the evaluation transform
            if self.augmentation == "crop_flip":
                pad = max(1, img.shape[1] // 8)
                dy, dx = rng.integers(0, 2 * pad + 1, 2)
                img = pad_crop(img, int(dy), int(dx), bool(rng.random() < 0.5))
        else:
            path = self.set.files[i]
            img = decode(read_bytes(path), path)
            box = rrc_box(rng, img.shape[1], img.shape[2])
            deit = self.augmentation == "deit"
            img = resized_crop(img, box, self.size, bool(rng.random() < 0.5), bicubic=deit)
            if deit:
                img = rand_augment(img, rng, self.size)
        if self.random_erasing and rng.random() < self.random_erasing:
            img = erase(img, rng, self.info.mean, self.info.std)
        return img.contiguous(), label


class EncodedFolder(torch.utils.data.Dataset):
    """Items (epoch, index) -> (file bytes, (top, left, h, w, flip), label): the worker reads the file and the
    image size from its header and draws the crop; `decode_batch` does the rest on the device."""

    def __init__(self, folder_set, seed: int, augmentation: str):
        if augmentation not in DEVICE_AUGMENTATIONS:
            raise ValueError(f"augmentation={augmentation!r} is invalid for GPU decoding; allowed: "
                             f"{', '.join(DEVICE_AUGMENTATIONS)}")
        self.set, self.seed, self.augmentation = folder_set, seed, augmentation
        self.size = folder_set.info.image_size

    def __len__(self) -> int:
        return len(self.set)

    def __getitem__(self, item: tuple[int, int]):
        from PIL import Image
        epoch, i = item
        path = self.set.files[i]
        with Image.open(path) as im:  # the header only
            width, height = im.size
        if self.augmentation == "none":
            params = (-1, -1, height, width, 0)  # resize 256 / centre crop, on the device
        else:
            rng = sample_rng(self.seed, epoch, i)
            box = rrc_box(rng, height, width)
            params = (*box, int(rng.random() < 0.5))
        return read_bytes(path), torch.tensor(params), int(self.set.labels[i])


def _collate_encoded(items):
    data, params, labels = zip(*items)
    return list(data), torch.stack(params), torch.tensor(labels)


def decode_batch(data: Sequence[torch.Tensor], params: torch.Tensor, size: int, device) -> torch.Tensor:
    """Decode a batch of encoded images on `device` (nvJPEG on CUDA; JPEG only there, anything else on the
    CPU) and crop, resize and flip each as `params` says; uint8 (N, 3, size, size) on `device`."""
    import torchvision.io as tio
    device = torch.device(device)
    jpeg = [i for i, d in enumerate(data) if d.numel() > 2 and int(d[0]) == 0xFF and int(d[1]) == 0xD8]
    images: list[torch.Tensor | None] = [None] * len(data)
    if jpeg:
        try:
            decoded = tio.decode_jpeg([data[i] for i in jpeg], mode=tio.ImageReadMode.RGB, device=device)
        except RuntimeError:  # e.g. a CMYK JPEG nvJPEG refuses: each on the CPU instead
            decoded = [decode(data[i]).to(device) for i in jpeg]
        for i, img in zip(jpeg, decoded):
            images[i] = img
    for i, img in enumerate(images):
        if img is None:
            images[i] = decode(data[i]).to(device)
    out = torch.empty(len(data), 3, size, size, dtype=torch.uint8, device=device)
    for k, (img, p) in enumerate(zip(images, params.tolist())):
        top, left, h, w, flip = p
        if top < 0:
            out[k] = center_crop(img, size)
        else:
            out[k] = resized_crop(img, (top, left, h, w), size, bool(flip))
    return out


def center_crop(img: torch.Tensor, size: int, resize: int | None = None) -> torch.Tensor:
    """Shorter side to `resize` (default size * 256 / 224), bilinear with antialiasing, then the central square."""
    from torchvision.transforms.v2 import functional as TF
    resize = resize or int(round(size * 256 / 224))
    return TF.center_crop(TF.resize(img, resize, antialias=True), [size, size])


# --- the loaders --------------------------------------------------------------------------------------
def loader(folder_set, *, seed: int, epoch: int, batch_size: int, augmentation: str, start: int = 0,
           rank: int = 0, world: int = 1, workers: int = 0, pin_memory: bool = False, random_erasing: float = 0.0,
           encoded: bool = False) -> torch.utils.data.DataLoader:
    """The DataLoader of one epoch from step `start`: batches of (uint8 images, labels), or with `encoded`
    (bytes list, crop params, labels) for `decode_batch`."""
    sampler = BatchSampler(len(folder_set), batch_size, seed, epoch, start, rank, world)
    if encoded:
        dataset, collate = EncodedFolder(folder_set, seed, augmentation), _collate_encoded
    else:
        dataset, collate = AugmentedFolder(folder_set, seed, augmentation, random_erasing), None
    kwargs: dict[str, Any] = dict(num_workers=workers, pin_memory=pin_memory and not encoded)
    if workers:
        kwargs.update(prefetch_factor=4, persistent_workers=False)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, **kwargs)


def eval_loader(dataset, indices: Sequence[int], *, batch_size: int = 256, workers: int = 0,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """Batches of (uint8 images, labels) of `dataset[i]` for `indices`, in order, decoded by `workers`."""
    subset = torch.utils.data.Subset(dataset, list(indices))
    kwargs: dict[str, Any] = dict(num_workers=workers, pin_memory=pin_memory)
    if workers:
        kwargs.update(prefetch_factor=4)
    return torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False, **kwargs)


def gpu_decoding_works(device) -> bool:
    """Whether torchvision decodes JPEG on `device` here (a CUDA build with nvJPEG); False on the CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    import io as _io

    import torchvision.io as tio
    from PIL import Image
    buf = _io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, "JPEG")
    try:
        tio.decode_jpeg([torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)], device=device)
        return True
    except (RuntimeError, TypeError):
        return False
