"""Out-of-distribution test sets: ImageNet-R, ImageNet-V2, and Fashion-MNIST rendition shifts.

* ImageNet-R (Hendrycks et al. 2021): `<root>/<wnid>/*.jpg`, 200 class
  folders. Labels are mapped into the 1000 ImageNet classes (index of the
  wnid in the sorted 1000 wnids, the order `dstlib.data` uses for ImageNet);
  `imagenet_r_classes` gives those 200 indices so `evaluate.accuracy` can
  restrict the prediction to them, as the benchmark does.
* ImageNet-V2 (Recht et al. 2019): `<root>/imagenetv2-<variant>-format-val/<k>/*.jpeg`
  with k the ImageNet class index 0..999; variants "matched-frequency",
  "threshold0.7", "top-images".
* Fashion-MNIST renditions, standing in for ImageNet-R on the embedded
  profile (our own choice, not from the paper): "inverted" (255 - x),
  "edge_sketch" (dark Sobel edges on white, like a line drawing),
  "upside_down" (vertical flip), "silhouette" (every non-black pixel white).
Both ImageNet readers decode on access (resize 256, centre crop 224).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from dstlib.data import ImageSet, default_root, info as dataset_info
from dstlib.data.folders import FolderImageSet, _images

V2_VARIANTS = ("matched-frequency", "threshold0.7", "top-images")
RENDITIONS = ("inverted", "edge_sketch", "upside_down", "silhouette")


def _wnids(imagenet_wnids) -> list[str]:
    if imagenet_wnids is None:
        base = default_root("imagenet")
        for sub in ("val", "train"):
            if (base / sub).is_dir():
                return sorted(p.name for p in (base / sub).iterdir() if p.is_dir())
        raise FileNotFoundError(f"imagenet_wnids=None and no {base}/val or {base}/train class folders; "
                                "allowed: a list of the 1000 ImageNet wnids or a text file with one per line")
    if isinstance(imagenet_wnids, (str, os.PathLike)):
        path = Path(imagenet_wnids)
        if not path.is_file():
            raise FileNotFoundError(f"imagenet_wnids={str(path)!r} does not exist; allowed: a text file, one wnid per line first")
        imagenet_wnids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    wnids = sorted(imagenet_wnids)
    if len(wnids) != 1000:
        raise ValueError(f"imagenet_wnids has {len(wnids)} entries; allowed: the 1000 ImageNet wnids")
    return wnids


def _root(root, name: str) -> Path:
    path = Path(root) if root is not None else default_root(name)
    if not path.is_dir():
        raise FileNotFoundError(f"root={str(path)!r} does not exist; allowed: the {name} folder "
                                f"(default $DSTLIB_DATA/{name})")
    return path


def imagenet_r(root=None, imagenet_wnids=None) -> FolderImageSet:
    """ImageNet-R with labels in the 1000-class index space (module docstring)."""
    root = _root(root, "imagenet_r")
    index = {w: i for i, w in enumerate(_wnids(imagenet_wnids))}
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    unknown = [f for f in folders if f not in index]
    if not folders or unknown:
        raise ValueError(f"{root}: class folders {unknown[:3] or '(none)'} are not ImageNet wnids; "
                         "expected <root>/<wnid>/*.jpg")
    files, labels = [], []
    for w in folders:
        imgs = _images(root / w)
        files += imgs
        labels += [index[w]] * len(imgs)
    return FolderImageSet(dataset_info("imagenet"), files, torch.tensor(labels, dtype=torch.int64))


def imagenet_r_classes(dataset: FolderImageSet) -> torch.Tensor:
    """The sorted class indices present in an ImageNet-R set (its 200 classes)."""
    return torch.unique(dataset.labels)


def imagenet_v2(variant: str, root=None) -> FolderImageSet:
    """One ImageNet-V2 variant; folders named by class index 0..999."""
    if variant not in V2_VARIANTS:
        raise ValueError(f"variant={variant!r} is invalid; allowed: {', '.join(V2_VARIANTS)}")
    base = _root(root, "imagenet_v2")
    folder = base / f"imagenetv2-{variant}-format-val"
    if not folder.is_dir():
        folder = base / variant
    if not folder.is_dir():
        raise FileNotFoundError(f"{base}: no imagenetv2-{variant}-format-val folder; "
                                f"expected <root>/imagenetv2-{variant}-format-val/<0..999>/*.jpeg")
    files, labels = [], []
    for d in sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name):
        if not d.name.isdigit() or not 0 <= int(d.name) < 1000:
            raise ValueError(f"{d}: expected a class folder named 0..999")
        imgs = _images(d)
        files += imgs
        labels += [int(d.name)] * len(imgs)
    if not files:
        raise FileNotFoundError(f"{folder}: no images found")
    return FolderImageSet(dataset_info("imagenet"), files, torch.tensor(labels, dtype=torch.int64))


def render(images: torch.Tensor, kind: str) -> torch.Tensor:
    """One rendition shift of uint8 (N, C, H, W) images (module docstring)."""
    if kind not in RENDITIONS:
        raise ValueError(f"kind={kind!r} is invalid; allowed: {', '.join(RENDITIONS)}")
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("images is invalid; allowed: a uint8 tensor (N, C, H, W)")
    if kind == "inverted":
        return 255 - images
    if kind == "upside_down":
        return images.flip(-2)
    if kind == "silhouette":
        return torch.where(images > 0, torch.full_like(images, 255), images)
    x = images.float() / 255
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    k = torch.stack([kx, kx.T]).unsqueeze(1)  # (2, 1, 3, 3)
    n, c, h, w = x.shape
    g = torch.nn.functional.conv2d(torch.nn.functional.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate"), k)
    mag = g.pow(2).sum(1).sqrt().reshape(n, c, h, w)
    peak = mag.amax((1, 2, 3), keepdim=True).clamp_min(1e-12)
    return (255 * (1 - mag / peak)).round().clamp(0, 255).to(torch.uint8)


def renditions(dataset: ImageSet, kinds: Sequence[str] = RENDITIONS) -> dict[str, ImageSet]:
    """{kind: ImageSet} of rendition shifts of an in-memory set, same labels and info."""
    if not hasattr(dataset, "images"):
        raise ValueError(f"dataset is a {type(dataset).__name__}; allowed: an in-memory dstlib.data.ImageSet")
    return {k: ImageSet(dataset.info, render(dataset.images, k), dataset.labels) for k in kinds}
