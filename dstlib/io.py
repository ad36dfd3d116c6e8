"""Atomic file writes: a reader never sees a half-written file.

Every file is written to a temporary name in its own folder (so the rename
stays on one file system) and renamed over the target only once complete.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Yield a file object on a temporary name; rename it over `path` on success.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode={mode!r} is not supported; choose 'w' or 'wb'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_save_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_save_bytes(path, text.encode("utf-8"))


# --- nested state without pickle -----------------------------------------------------------
# Checkpoints hold nested dicts and lists of tensors and plain values (optimiser
# and sparsifier states, RNG states). They are split into a flat {key: tensor}
# map for safetensors and a JSON document in which each tensor is replaced by
# {"__tensor__": key}. Dicts become {"__dict__": [[key, value], ...]} so that
# integer keys (optimiser param ids) come back as integers.

def split_tensors(tree) -> tuple[dict, object]:
    """(flat tensors, JSON-able skeleton) of a nested dict/list/tuple of tensors and plain values."""
    import torch

    tensors: dict[str, "torch.Tensor"] = {}

    def walk(obj):
        if isinstance(obj, torch.Tensor):
            key = str(len(tensors))
            tensors[key] = obj.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(obj, dict):
            return {"__dict__": [[k, walk(v)] for k, v in obj.items()]}
        if isinstance(obj, (list, tuple)):
            return {"__tuple__": [walk(v) for v in obj]} if isinstance(obj, tuple) else [walk(v) for v in obj]
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # numpy scalar
            return obj.item()
        raise TypeError(f"cannot store a value of type {type(obj).__name__} in a checkpoint")

    return tensors, walk(tree)


def join_tensors(tensors: dict, skeleton):
    """Inverse of `split_tensors`."""
    def walk(obj):
        if isinstance(obj, dict):
            if "__tensor__" in obj:
                return tensors[obj["__tensor__"]]
            if "__dict__" in obj:
                return {k: walk(v) for k, v in obj["__dict__"]}
            if "__tuple__" in obj:
                return tuple(walk(v) for v in obj["__tuple__"])
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(skeleton)


def sha256_file(path: str | os.PathLike) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
