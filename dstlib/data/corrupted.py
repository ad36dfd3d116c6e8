"""Readers of the on-disk corrupted test sets.

Two layouts:
- "npy" (CIFAR-10-C, CIFAR-100-C, and what `python -m dstlib corrupt` writes for
  small images): `<root>/<corruption>.npy` uint8 NHWC (or NHW for gray),
  severity-major (rows [(s-1)*n, s*n) are severity s), and `<root>/labels.npy`
  with the n labels repeated once per severity.
- "folders" (Tiny-ImageNet-C, ImageNet-C, ImageNet-C-bar, ImageNet-3DCC):
  `<root>/<corruption>/<severity>/<class>/<file>`; classes are the sorted folder
  names (WordNet ids); severity folders are 1..5, or parameter values in
  ImageNet-C-bar (pass the folder name as a string). ImageNet-C-bar's generator
  names them by its level ("{:.2f}", e.g. `sparkles/1.00`); `read_folders` maps a
  severity 1..5 to the five level folders in numeric order when no folder "1".."5"
  is there.


Fashion-MNIST-C (Weiss and Tonella, one corruption per image, no severities) has its
own files: `read_fashion_mnist_c` (FMNIST_C_LAYOUT).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dstlib.data import DatasetInfo, ImageSet

NPY_LAYOUT = "<root>/<corruption>.npy (uint8 N x H x W x C, severity-major) and <root>/labels.npy"
FOLDER_LAYOUT = "<root>/<corruption>/<severity>/<class>/<image file>"
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def _root(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root={str(root)!r} is not a folder; expected {NPY_LAYOUT} or {FOLDER_LAYOUT}")
    return root


def layout(root) -> str:
    """"npy" or "folders", from what the folder holds."""
    root = _root(root)
    if (root / "labels.npy").is_file():
        return "npy"
    if any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
        return "folders"
    raise ValueError(f"root={str(root)!r} holds neither layout; expected {NPY_LAYOUT} or {FOLDER_LAYOUT}")


def corruptions(root) -> list[str]:
    """The corruptions present under root, sorted."""
    root = _root(root)
    if layout(root) == "npy":
        return sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def severities(root, corruption: str) -> list[str]:
    """Severity folder names of a folder-layout corruption (numeric order where numeric)."""
    folder = _corruption_path(_root(root), corruption)
    names = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def key(s):
        try:
            return (0, float(s), s)
        except ValueError:
            return (1, 0.0, s)
    return sorted(names, key=key)


def _corruption_path(root: Path, corruption: str) -> Path:
    p = root / corruption
    if not p.is_dir():
        raise FileNotFoundError(f"corruption={corruption!r} not found under {root}; present: "
                                f"{', '.join(corruptions(root)) or 'none'}")
    return p


def _info(info, dataset, images_chw: tuple[int, int, int], num_classes: int, table=None) -> DatasetInfo:
    if info is not None:
        return info
    if dataset is not None:
        from dstlib.data import info as lookup
        return lookup(dataset)
    c, h, w = images_chw
    size = max(h, w)
    table = "cifar" if size <= 45 else "tiny" if size <= 119 else "imagenet"
    return DatasetInfo("corrupted", c, num_classes, size, (0.5,) * c, (0.25,) * c, table)


def read_npy(root, corruption: str, severity: int, dataset: str | None = None,
             info: DatasetInfo | None = None) -> ImageSet:
    """One (corruption, severity) of a CIFAR-10-C style set as an in-memory ImageSet.

    `dataset` (e.g. "cifar10") or `info` supply the metadata; without them it is
    inferred (classes = max label + 1, mean 0.5, std 0.25)."""
    root = _root(root)
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity={severity!r} is invalid; allowed: 1, 2, 3, 4, 5")
    path = root / f"{corruption}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"corruption={corruption!r}: {path} not found; present: "
                                f"{', '.join(corruptions(root)) or 'none'}; expected {NPY_LAYOUT}")
    if not (root / "labels.npy").is_file():
        raise FileNotFoundError(f"{root / 'labels.npy'} not found; expected {NPY_LAYOUT}")
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    labels = np.load(root / "labels.npy", allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[3] not in (1, 3)):
        raise ValueError(f"{path}: dtype {arr.dtype} shape {arr.shape} is not the layout; expected {NPY_LAYOUT}")
    if labels.ndim != 1 or len(labels) != len(arr):
        raise ValueError(f"{root / 'labels.npy'}: {len(labels)} labels for {len(arr)} images; expected {NPY_LAYOUT}")
    nsev = 5 if len(arr) % 5 == 0 else None
    if nsev is None:
        raise ValueError(f"{path}: {len(arr)} rows is not 5 severities of equal size; expected {NPY_LAYOUT}")
    n = len(arr) // 5
    block = np.asarray(arr[(severity - 1) * n: severity * n])
    if block.ndim == 3:
        block = block[..., None]
    images = torch.from_numpy(block.transpose(0, 3, 1, 2).copy())
    lab = torch.from_numpy(labels[(severity - 1) * n: severity * n].astype(np.int64, copy=True))
    inf = _info(info, dataset, tuple(images.shape[1:]), int(labels.max()) + 1 if len(labels) else 0)
    if inf.channels != images.shape[1]:
        raise ValueError(f"{path}: {images.shape[1]} channels, but dataset {inf.name!r} has {inf.channels}")
    return ImageSet(inf, images, lab)


class CorruptedFolder(torch.utils.data.Dataset):
    """A folder-layout (corruption, severity): images decoded on access, as stored
    (no resizing), uint8 CHW; `labels` int64; `load()` decodes all into an ImageSet."""

    def __init__(self, info: DatasetInfo | None, files: list[Path], labels: torch.Tensor, classes: list[str]):
        self.info, self.files, self.labels, self.classes = info, files, labels, classes

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            im = im.convert("L" if self.info is not None and self.info.channels == 1 else "RGB")
            a = np.asarray(im, dtype=np.uint8)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        return torch.from_numpy(a.copy()), int(self.labels[i])

    def load(self) -> ImageSet:
        images = torch.stack([self[i][0] for i in range(len(self))])
        inf = _info(self.info, None, tuple(images.shape[1:]), len(self.classes))
        return ImageSet(inf, images, self.labels)


def read_folders(root, corruption: str, severity: int | str, dataset: str | None = None,
                 info: DatasetInfo | None = None, classes: list[str] | None = None) -> CorruptedFolder:
    """One (corruption, severity) of a Tiny-ImageNet-C / ImageNet-C / -C-bar / -3DCC folder set.

    `classes`: the class folder names in label order (default: sorted, which is
    the WordNet-id order every ImageNet loader uses)."""
    root = _root(root)
    folder = _corruption_path(root, corruption) / str(severity)
    if not folder.is_dir():
        folder = _level_folder(root, corruption, severity) or folder
    if not folder.is_dir():
        raise FileNotFoundError(f"severity={severity!r} not found under {folder.parent}; present: "
                                f"{', '.join(severities(root, corruption)) or 'none'}; expected {FOLDER_LAYOUT}")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise ValueError(f"{folder}: no class folders; expected {FOLDER_LAYOUT}")
    classes = list(classes) if classes is not None else found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(f"{folder}: class folders {unknown[:3]} are not in `classes`; expected {FOLDER_LAYOUT}")
    files, labels = [], []
    for c, name in enumerate(classes):
        d = folder / name
        if not d.is_dir():
            continue
        imgs = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += imgs
        labels += [c] * len(imgs)
    if not files:
        raise ValueError(f"{folder}: no images; expected {FOLDER_LAYOUT}")
    inf = info if info is not None else (_info(None, dataset, (0, 0, 0), 0) if dataset is not None else None)
    return CorruptedFolder(inf, files, torch.tensor(labels, dtype=torch.int64), classes)


def _level_folder(root: Path, corruption: str, severity) -> Path | None:
    """ImageNet-C-bar's generator names the severity folders by their level ("{:.2f}", rising
    with the severity): with five numeric folders and none named 1..5, severity s is the
    s-th in numeric order."""
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        return None
    names = severities(root, corruption)
    try:
        [float(v) for v in names]
    except ValueError:
        return None
    if len(names) != 5 or set(names) & {"1", "2", "3", "4", "5"}:
        return None
    return root / corruption / names[severity - 1]


def read(root, corruption: str, severity, dataset: str | None = None, info: DatasetInfo | None = None):
    """Either layout, detected from the folder: an ImageSet (npy) or a CorruptedFolder."""
    if layout(root) == "npy":
        return read_npy(root, corruption, severity, dataset=dataset, info=info)
    return read_folders(root, corruption, severity, dataset=dataset, info=info)


FMNIST_C_LAYOUT = ("fmnist-c-<split>.npy (uint8 N x 28 x 28) and fmnist-c-<split>-labels.npy, or the IDX files "
                   "fmnist-c-<split>-ubyte[.gz] and fmnist-c-<split>-labels-ubyte[.gz], in <root>, <root>/npy, "
                   "<root>/ubyte or <root>/generated/{npy,ubyte}")
FMNIST_C_INDEX = "fmnist-c-{split}-corruption-index.npy"
"""Our side file next to a generated Fashion-MNIST-C: int64 position in FMNIST_C_NAMES per image."""


def _fmnist_c_file(root: Path, names: tuple[str, ...]) -> Path | None:
    for d in (root, root / "npy", root / "ubyte", root / "generated" / "npy", root / "generated" / "ubyte"):
        for name in names:
            if (d / name).is_file():
                return d / name
    return None


def read_fashion_mnist_c(root, split: str = "test") -> ImageSet:
    """Fashion-MNIST-C (Weiss and Tonella) from a local folder: the published files (npy or
    ubyte; their "-ubyte.gz" files are raw IDX, read either way) or what `python -m dstlib
    corrupt --benchmark fashion_mnist_c` wrote. npy is preferred when both are present."""
    from dstlib.data import info as lookup
    from dstlib.data.fashion_mnist import read_idx

    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is invalid; allowed: train, test")
    if not root.is_dir():
        raise FileNotFoundError(f"root={str(root)!r} is not a folder; expected {FMNIST_C_LAYOUT}")
    npy = _fmnist_c_file(root, (f"fmnist-c-{split}.npy",))
    lab = _fmnist_c_file(npy.parent, (f"fmnist-c-{split}-labels.npy",)) if npy is not None else None
    if npy is not None and lab is not None:
        images, labels = np.load(npy, allow_pickle=False), np.load(lab, allow_pickle=False)
    else:
        img = _fmnist_c_file(root, (f"fmnist-c-{split}-ubyte.gz", f"fmnist-c-{split}-ubyte"))
        lab = _fmnist_c_file(root, (f"fmnist-c-{split}-labels-ubyte.gz", f"fmnist-c-{split}-labels-ubyte"))
        if img is None or lab is None:
            raise FileNotFoundError(f"Fashion-MNIST-C {split} split not found under {root}; expected {FMNIST_C_LAYOUT}")
        npy, images, labels = img, read_idx(img), read_idx(lab)
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise ValueError(f"{npy}: dtype {images.dtype} shape {images.shape}; expected {FMNIST_C_LAYOUT}")
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{lab}: {labels.dtype} {labels.shape} labels for {len(images)} images; "
                         f"expected {FMNIST_C_LAYOUT}")
    return ImageSet(lookup("fashion_mnist"), torch.from_numpy(np.ascontiguousarray(images)[:, None].copy()),
                    torch.from_numpy(labels.astype(np.int64)))


def fashion_mnist_c_corruptions(root, split: str = "test") -> torch.Tensor | None:
    """Our per-image corruption index (FMNIST_C_INDEX) next to a Fashion-MNIST-C, or None
    where there is none (the published set does not record it)."""
    path = _fmnist_c_file(Path(root), (FMNIST_C_INDEX.format(split=split),))
    return None if path is None else torch.from_numpy(np.load(path, allow_pickle=False).astype(np.int64))


__all__ = ["layout", "corruptions", "severities", "read", "read_npy", "read_folders", "CorruptedFolder",
           "NPY_LAYOUT", "FOLDER_LAYOUT", "read_fashion_mnist_c", "fashion_mnist_c_corruptions",
           "FMNIST_C_LAYOUT", "FMNIST_C_INDEX"]
