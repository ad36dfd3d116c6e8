"""Fashion-MNIST from its four IDX files (gzipped or not)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
LAYOUT = ("the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
          "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz); "
          "set DSTLIB_DATA to their folder or install the Debian package dataset-fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file of unsigned bytes (magic 0x0000 08 <ndim>, big-endian sizes), gzipped
    or not whatever its name says (Fashion-MNIST-C's "-ubyte.gz" files are not compressed)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"{path}: truncated or padded IDX file: header says shape {shape}, "
                         f"{len(raw) - header} data bytes present")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(roots: list[Path], stem: str) -> Path:
    for root in roots:
        for name in (stem, stem + ".gz"):
            if (root / name).is_file():
                return root / name
    tried = ", ".join(str(r) for r in roots)
    raise FileNotFoundError(f"Fashion-MNIST file {stem}[.gz] not found in {tried}; expected {LAYOUT}")


def read(roots: list[Path], split: str, info) -> "ImageSet":
    from dstlib.data import ImageSet

    image_file, label_file = (_find(roots, stem) for stem in FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{image_file}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{label_file}: expected {images.shape[0]} labels, got shape {labels.shape}")
    if labels.max(initial=0) >= info.num_classes:
        raise ValueError(f"{label_file}: label {labels.max()} outside 0..{info.num_classes - 1}")
    return ImageSet(info, torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
