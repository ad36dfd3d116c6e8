"""Tiny-ImageNet-200 and ImageNet from their folder layouts.

Tiny-ImageNet (64 px, 100,000 training images) is decoded once into memory.
ImageNet is decoded on access (`FolderImageSet`): by default each image is
resized so its shorter side is 256 px and centre-cropped to 224 px, the usual
evaluation transform; training passes its own per-image transform.
Class indices follow the sorted WordNet ids (wnids).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
TINY_LAYOUT = ("<root>/wnids.txt (or <root>/tiny-imagenet-200/wnids.txt, and so on), <root>/train/<wnid>/images/*.JPEG and "
               "<root>/val/images/*.JPEG with <root>/val/val_annotations.txt (file<TAB>wnid<TAB>...)")
IMAGENET_LAYOUT = "<root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG (class folders)"


def decode_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as e:
        raise ValueError(f"{path}: cannot decode image ({e})") from None


def to_uint8_chw(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def resize_center_crop(im: Image.Image, resize: int = 256, crop: int = 224) -> Image.Image:
    """Shorter side to `resize` px (bilinear), then the central `crop` x `crop` square."""
    w, h = im.size
    scale = resize / min(w, h)
    im = im.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - crop) // 2, (h - crop) // 2
    return im.crop((left, top, left + crop, top + crop))


def _first_root(roots: list[Path], probe: Callable[[Path], bool], name: str, layout: str) -> Path:
    for root in roots:
        if probe(root):
            return root
    raise FileNotFoundError(f"{name} not found in {', '.join(map(str, roots))}; expected {layout}")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def tiny_imagenet_files(roots: list[Path], split: str, info) -> "FolderImageSet":
    """Tiny-ImageNet's files as a `FolderImageSet` decoded on access at their own 64 px (what
    `read_tiny_imagenet` decodes into memory; the streaming loader reads it as it is)."""
    roots = [c for r in roots for c in (Path(r), Path(r) / "tiny-imagenet-200")]  # the archive's own folder too
    root = _first_root(roots, lambda r: (r / "wnids.txt").is_file() and (r / "train").is_dir(),
                       "tiny_imagenet", TINY_LAYOUT)
    wnids = sorted(w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip())
    if len(wnids) != info.num_classes:
        raise ValueError(f"{root / 'wnids.txt'}: expected {info.num_classes} wnids, found {len(wnids)}")
    index = {w: i for i, w in enumerate(wnids)}
    files: list[tuple[Path, int]] = []
    if split == "train":
        for w in wnids:
            folder = root / "train" / w / "images"
            if not folder.is_dir():
                raise ValueError(f"{folder}: missing class folder; expected {TINY_LAYOUT}")
            files += [(p, index[w]) for p in _images(folder)]
    else:
        ann = root / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise FileNotFoundError(f"{ann} not found; expected {TINY_LAYOUT}")
        for n, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2 or parts[1] not in index:
                raise ValueError(f"{ann}, line {n}: expected file<TAB>wnid with a wnid of wnids.txt, got {line!r}")
            files.append((root / "val" / "images" / parts[0], index[parts[1]]))
    if not files:
        raise ValueError(f"{root}: no {split} images found; expected {TINY_LAYOUT}")
    return FolderImageSet(info, [p for p, _ in files], torch.tensor([c for _, c in files], dtype=torch.int64),
                          transform=_tiny_transform)


def _tiny_transform(im: Image.Image) -> torch.Tensor:
    if im.size != (64, 64):
        raise ValueError(f"expected a 64x64 Tiny-ImageNet image, got {im.size[0]}x{im.size[1]}")
    return to_uint8_chw(im)


def read_tiny_imagenet(roots: list[Path], split: str, info):
    from dstlib.data import ImageSet

    files = tiny_imagenet_files(roots, split, info)
    images = torch.empty(len(files), 3, 64, 64, dtype=torch.uint8)
    for i, path in enumerate(files.files):
        im = decode_rgb(path)
        if im.size != (64, 64):
            raise ValueError(f"{path}: expected a 64x64 image, got {im.size[0]}x{im.size[1]}")
        images[i] = to_uint8_chw(im)
    out = ImageSet(info, images, files.labels)
    out.source_files = files.files  # for aligning the official Tiny-ImageNet-C, whose files are per class
    return out


class FolderImageSet(torch.utils.data.Dataset):
    """Images decoded on access; `transform` maps a PIL image to a uint8 CHW tensor."""

    def __init__(self, info, files: list[Path], labels: torch.Tensor,
                 transform: Callable[[Image.Image], torch.Tensor] | None = None):
        self.info, self.files, self.labels = info, files, labels
        self.transform = transform or (lambda im: to_uint8_chw(resize_center_crop(im)))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(decode_rgb(self.files[i])), int(self.labels[i])

    def subset(self, index: torch.Tensor) -> "FolderImageSet":
        return FolderImageSet(self.info, [self.files[i] for i in index.tolist()], self.labels[index], self.transform)

    def with_transform(self, transform) -> "FolderImageSet":
        return FolderImageSet(self.info, self.files, self.labels, transform)


def read_class_folders(folder: Path, info, name: str, layout: str) -> FolderImageSet:
    """`folder/<class>/*.JPEG`, classes in sorted order."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) != info.num_classes:
        raise ValueError(f"{folder}: expected {info.num_classes} class folders, found {len(classes)}; expected {layout}")
    files, labels = [], []
    for c, wnid in enumerate(classes):
        imgs = _images(folder / wnid)
        files += imgs
        labels += [c] * len(imgs)
    if not files:
        raise ValueError(f"{folder}: no images found; expected {layout}")
    return FolderImageSet(info, files, torch.tensor(labels, dtype=torch.int64))


def read_imagenet(roots: list[Path], split: str, info) -> FolderImageSet:
    sub = "val" if split == "test" else "train"
    root = _first_root(roots, lambda r: (r / sub).is_dir(), "imagenet", IMAGENET_LAYOUT)
    return read_class_folders(root / sub, info, "imagenet", IMAGENET_LAYOUT)
