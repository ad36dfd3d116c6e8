"""Datasets as uint8 images plus metadata.

`load(name, split)` returns an `ImageSet`: images are uint8 (N, C, H, W) held in
memory (Fashion-MNIST, CIFAR, Tiny-ImageNet) or decoded on access from a
folder (ImageNet), labels are int64. Video datasets (`info(name).frames > 1`:
UCF101, and moving_fashion_mnist, clips made from Fashion-MNIST for the quick
profile) give a `ClipSet`: clips uint8 (N, T, C, H, W) in its `images`, and
the whole videos they were sampled from through `videos(positions)`.
Normalisation happens on the model's device with `normalize`, so corruptions
and augmentations see the raw pixels.

Splits: "test" is the official held-out set (Tiny-ImageNet's labelled `val`
folder, ImageNet's `val`); "val" is `val_size` images held out of the
training set by a permutation seeded with `split_seed`; "train" is the rest,
optionally cut to its first `train_subset` images of that same permutation.
The split never depends on the training seed, so every run of a comparison
sees the same images.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from dstlib.config import DATASETS, check_choice

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a corruption need to know about a dataset.

    `mean`/`std` are per channel, on the [0, 1] scale. `corruption_table`
    names the ImageNet-C family parameter table that fits the image size:
    "cifar" (32 px and less), "tiny" (64 px) or "imagenet" (224 px); for
    video datasets the video table of `dstlib.corruptions.video` ("small",
    "ucf101"). `frames` is the frames per clip (1 for images).
    """

    name: str
    channels: int
    num_classes: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    corruption_table: str
    frames: int = 1


INFO = {
    "fashion_mnist": DatasetInfo("fashion_mnist", 1, 10, 28, (0.2860,), (0.3530,), "cifar"),
    "cifar10": DatasetInfo("cifar10", 3, 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "cifar"),
    "cifar100": DatasetInfo("cifar100", 3, 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "cifar"),
    "tiny_imagenet": DatasetInfo("tiny_imagenet", 3, 200, 64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "tiny"),
    "imagenet": DatasetInfo("imagenet", 3, 1000, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "imagenet"),
    # clips: 8 frames; Moving Fashion-MNIST's statistics measured on its training clips
    "moving_fashion_mnist": DatasetInfo("moving_fashion_mnist", 1, 8, 20, (0.1406,), (0.2601,), "small", 8),
    "ucf101": DatasetInfo("ucf101", 3, 101, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "ucf101", 8),
}
assert tuple(INFO) == DATASETS


class ImageSet(torch.utils.data.Dataset):
    """Images in memory: `images` uint8 (N, C, H, W), `labels` int64 (N,)."""

    def __init__(self, info: DatasetInfo, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != info.channels:
            raise ValueError(f"images: expected uint8 (N, {info.channels}, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels: expected shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.info, self.images, self.labels = info, images, labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def subset(self, index: torch.Tensor) -> "ImageSet":
        return ImageSet(self.info, self.images[index], self.labels[index])


class ClipSet(ImageSet):
    """Clips: `images` uint8 (N, T, C, H, W) (in memory, or made on first access by `load_clips`), `labels`
    int64 (N,), and `videos(positions)`: the whole videos the clips were sampled from, a list of uint8
    (L_i, C, H, W) at the clips' size (for corruptions that act on the whole video, `dstlib.corruptions.video`).
    `source` maps positions to the dataset's own clip numbers (a subset keeps them)."""

    def __init__(self, info: DatasetInfo, images: torch.Tensor | None, labels: torch.Tensor, *,
                 read_videos, load_clips=None, source: torch.Tensor | None = None):
        if images is None and load_clips is None:
            raise ValueError("images and load_clips are both missing; allowed: clips, or a function that makes them")
        if images is not None and (images.dtype != torch.uint8 or images.ndim != 5 or images.shape[2] != info.channels
                                   or images.shape[1] != info.frames or images.shape[0] != labels.shape[0]):
            raise ValueError(f"images: expected uint8 ({labels.shape[0]}, {info.frames}, {info.channels}, H, W), "
                             f"got {images.dtype} {tuple(images.shape)}")
        self.info, self.labels = info, labels.long()
        self._images, self._load, self._read = images, load_clips, read_videos
        self.source = torch.arange(len(labels)) if source is None else source

    @property
    def images(self) -> torch.Tensor:
        if self._images is None:
            self._images = self._load()
        return self._images

    def __len__(self) -> int:
        return self.labels.shape[0]

    def videos(self, positions) -> list[torch.Tensor]:
        """The whole videos of the clips at `positions`, each uint8 (L, C, H, W)."""
        return self._read(self.source[torch.as_tensor(positions, dtype=torch.int64)])

    def subset(self, index: torch.Tensor) -> "ClipSet":
        index = torch.as_tensor(index, dtype=torch.int64)
        return ClipSet(self.info, self.images[index], self.labels[index], read_videos=self._read,
                       source=self.source[index])


def info(name: str) -> DatasetInfo:
    check_choice("dataset", name, DATASETS)
    return INFO[name]


def default_root(name: str) -> Path:
    """$DSTLIB_DATA/<name> (Fashion-MNIST and the clips made from it: $DSTLIB_DATA itself, then the Debian
    package folder)."""
    base = os.environ.get("DSTLIB_DATA")
    if name in ("fashion_mnist", "moving_fashion_mnist"):
        return Path(base) if base else Path("/usr/share/datasets/fashion-mnist")
    return Path(base or "data") / name


def load(name: str, split: str = "train", root: str | os.PathLike | None = None, *,
         val_size: int = 0, split_seed: int = 0, train_subset: int | None = None) -> ImageSet:
    """Load a split of a dataset (see the module docstring for splits and roots)."""
    check_choice("dataset", name, DATASETS)
    check_choice("split", split, SPLITS)
    if val_size < 0:
        raise ValueError(f"val_size={val_size!r} is invalid; allowed: an integer >= 0")
    if train_subset is not None and train_subset < 1:
        raise ValueError(f"train_subset={train_subset!r} is invalid; allowed: a positive integer or None")
    from dstlib.data import cifar, fashion_mnist, folders, moving, ucf101  # readers, imported on use

    reader = {"fashion_mnist": fashion_mnist.read, "cifar10": cifar.read_cifar10,
              "cifar100": cifar.read_cifar100, "tiny_imagenet": folders.read_tiny_imagenet,
              "imagenet": folders.read_imagenet, "moving_fashion_mnist": moving.read,
              "ucf101": ucf101.read}[name]
    paths = [Path(root)] if root is not None else _candidate_roots(name)
    official = "test" if split == "test" else "train"
    if name in ("fashion_mnist", "cifar10", "cifar100", "tiny_imagenet", "moving_fashion_mnist"):  # decoded into memory once per process
        data = _read(reader, tuple(paths), official, name, _fingerprint(paths))
    else:
        data = reader(paths, official, INFO[name])
    if split == "test" or (val_size == 0 and train_subset is None):
        return data
    n = len(data)
    if val_size >= n:
        raise ValueError(f"val_size={val_size} is invalid; allowed: fewer than the {n} training images")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    if split == "val":
        return data.subset(order[:val_size])
    rest = order[val_size:]
    if train_subset is not None:
        if train_subset > len(rest):
            raise ValueError(f"train_subset={train_subset} is invalid; allowed: at most {len(rest)} images")
        rest = rest[:train_subset]
    return data.subset(rest.sort().values)


@functools.lru_cache(maxsize=8)
def _read(reader, paths: tuple[Path, ...], split: str, name: str, fingerprint: tuple):
    """The reader's result, kept for the process while the files stay the same (`fingerprint`): decoding
    Fashion-MNIST's gzip files takes over a second (Tiny-ImageNet's 100,000 JPEGs a minute), and a notebook,
    a worker or the tests ask for the same split many times. The set is shared: never modify its tensors in place."""
    return reader(list(paths), split, INFO[name])


def _fingerprint(paths) -> tuple:
    """(path, size, mtime) of every file in the roots and their subfolders (the in-memory datasets' few files)."""
    out = []
    folders = [Path(p) for p in paths if Path(p).is_dir()]
    folders += [d for root in folders for d in root.iterdir() if d.is_dir()]  # one level down, no deeper
    for folder in folders:
        for f in sorted(folder.iterdir()):
            if f.is_file():
                st = f.stat()
                out.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _candidate_roots(name: str) -> list[Path]:
    roots = [default_root(name)]
    if name in ("fashion_mnist", "moving_fashion_mnist") and os.environ.get("DSTLIB_DATA"):
        roots.append(Path("/usr/share/datasets/fashion-mnist"))
    return roots


def normalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (x / 255 - mean) / std, on x's device. Clips (N, T, C, H, W) come out as
    (N, C, T, H, W), the layout of torch's Conv3d and of the video models."""
    if x.dtype != torch.uint8:
        raise ValueError(f"x: expected a uint8 tensor, got {x.dtype}")
    if x.ndim == 5:
        mean = torch.tensor(info.mean, device=x.device).view(1, 1, -1, 1, 1)
        std = torch.tensor(info.std, device=x.device).view(1, 1, -1, 1, 1)
        return ((x.float() / 255 - mean) / std).permute(0, 2, 1, 3, 4)
    mean = torch.tensor(info.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255 - mean) / std
