"""CIFAR-10 and CIFAR-100 in their "python version" layout.

The batches are Python pickles. They are read with an unpickler that accepts
only plain containers and numpy arrays, so a tampered file cannot run code.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

CIFAR10 = {"folder": "cifar-10-batches-py", "label_key": b"labels",
           "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR100 = {"folder": "cifar-100-python", "label_key": b"fine_labels", "train": ["train"], "test": ["test"]}

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"), ("numpy", "dtype"),
            ("_codecs", "encode")}  # protocol-2 pickles written by Python 3 store bytes through it


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "_codecs":
            import codecs
            return codecs.encode
        if module == "numpy":
            return getattr(np, name)
        return getattr(np._core.multiarray if hasattr(np, "_core") else np.core.multiarray, name)


def _layout(spec: dict) -> str:
    return (f"<root>/{spec['folder']}/ (or <root>/ itself) holding "
            f"{', '.join(spec['train'] + spec['test'])}: pickled dicts with b'data' (N, 3072) uint8 "
            f"and {spec['label_key']!r}")


def _read(roots: list[Path], split: str, info, spec: dict):
    from dstlib.data import ImageSet

    folder = None
    for root in roots:
        for cand in (root / spec["folder"], root):
            if all((cand / f).is_file() for f in spec[split]):
                folder = cand
                break
        if folder:
            break
    if folder is None:
        tried = ", ".join(str(r) for r in roots)
        raise FileNotFoundError(f"{info.name} not found in {tried}; expected {_layout(spec)}")
    images, labels = [], []
    for name in spec[split]:
        path = folder / name
        try:
            batch = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            lab = np.asarray(batch[spec["label_key"]], dtype=np.int64)
        except Exception as e:  # any decoding failure is a malformed file
            raise ValueError(f"{path}: malformed {info.name} batch ({e}); expected {_layout(spec)}") from None
        if data.ndim != 2 or data.shape[1] != 3072 or lab.shape != (data.shape[0],):
            raise ValueError(f"{path}: expected b'data' (N, 3072) and N labels, got {data.shape} and {lab.shape}")
        if lab.min(initial=0) < 0 or lab.max(initial=0) >= info.num_classes:
            raise ValueError(f"{path}: labels outside 0..{info.num_classes - 1}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return ImageSet(info, torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))


def read_cifar10(roots, split, info):
    return _read(roots, split, info, CIFAR10)


def read_cifar100(roots, split, info):
    return _read(roots, split, info, CIFAR100)
