"""Clean and corrupted accuracy, per image, into xarray; mCE, relative mCE and relative gain.

`robustness` evaluates a model (or a stored `Run`) on the first `n_test`
test images, clean and under every (corruption, severity). Corrupted images
come from `dstlib.corruptions.corrupt_as_saved(x, name, severity, seed=seed,
table=table, index=image indices, jpeg=jpeg)`: a pure function of (dataset,
corruption, severity, image index, seed), generated batch by batch on the
model's device, so every model sees the very same images and comparisons can
be paired per image. `table` defaults to the dataset's
`info.corruption_table`; `jpeg=None` adds the JPEG (quality 85) round trip
that the saved Tiny-ImageNet-C and ImageNet-C files went through, for those
two tables only (`jpeg=False` turns it off, `jpeg=True` forces it).
Alternatively `benchmark(name, severity) -> uint8 (N, C, H, W)` supplies the
images of an on-disk benchmark (e.g. CIFAR-10-C) in test-set order.

`suite="cbar"` evaluates ImageNet-C-bar / CIFAR-10-C-bar instead
(`dstlib.corruptions.cbar`): the C-bar table by image size ("cifar" up to 84 px,
so Fashion-MNIST, CIFAR and Tiny-ImageNet get CIFAR-10-C-bar's ten corruptions,
"imagenet" above), `table` one of those two, the same JPEG rule (the saved
ImageNet-C-bar files are JPEG quality 85).

Video datasets (clips (N, T, C, H, W), `info.frames > 1`: UCF101 and
Moving Fashion-MNIST) are evaluated on the 16 corruptions of corrupted
UCF101 (`dstlib.corruptions.VIDEO_NAMES`) with `corrupt_video`, each clip
keyed by its position as an image is, so comparisons pair per clip. `table`
is then a video table (default `info.corruption_table`) and `temporal` says
where the temporal corruptions act: "video" (default, the reference's
order: on the whole video, from which the clip is then sampled; needs the
dataset's `videos`) or "clip" (on the sampled clip).

`mnist_c_accuracy` evaluates on Fashion-MNIST-C instead (one fixed corruption per
image, 15 kinds; `dstlib.corruptions.fashion_mnist_c`): overall accuracy and
accuracy per corruption.

Robustness accuracy is the mean of the accuracy over corruptions and
severities; clean accuracy is not part of it. Default corruptions
(`default_corruptions`) follow the benchmark of the dataset's size: all 19
(`NAMES`) for the "cifar" table (CIFAR-10/100, Fashion-MNIST), the 15 common
ones (`COMMON`) for "tiny" and "imagenet". For 1-channel data `saturate` is
dropped (the "cifar" set becomes `GRAY_NAMES`): a gray pixel has zero
saturation, so saturate leaves gray images unchanged at severities 1-3 and
only darkens them at 4-5; it would measure clean accuracy, not robustness.

Caching: a Run's evaluation is stored as `Run.path / "eval" / f"{key}.nc"`;
a plain model is cached only when `cache_dir` is given, keyed by a hash of
its weights. The key hashes the model identity (run id or weight hash) and
everything that changes the result: dataset name and a hash of the evaluated
images and labels, n_test, corruptions, severities, seed, table, jpeg option,
the source (generated or the benchmark's name), `EVAL_VERSION` and the
corruption code's `VERSION` when `dstlib.corruptions` defines one; for the
C-bar suite also `suite` and the C-bar code's `CBAR_VERSION` instead. Batch
size, device and progress do not enter it. netCDF3 (scipy engine) is used
because it needs no HDF5 library.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from dstlib.config import TEMPORAL_MODES

EVAL_VERSION = 2  # bump when the meaning of a cached evaluation changes (2: table from info, JPEG as saved)


def _is_run(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("model", "path", "id")) and not isinstance(obj, torch.nn.Module)


def _dataset(dataset):
    if isinstance(dataset, str):
        from dstlib import data
        return data.load(dataset, "test")
    if not (hasattr(dataset, "labels") and hasattr(dataset, "info") and hasattr(dataset, "__getitem__")):
        raise ValueError(f"dataset is a {type(dataset).__name__}; allowed: a dataset name or a dstlib.data.ImageSet")
    return dataset


def _batch(ds, start: int, stop: int) -> torch.Tensor:
    """uint8 images start:stop of an in-memory ImageSet or of a set decoded on access."""
    if hasattr(ds, "images"):
        return ds.images[start:stop]
    return torch.stack([ds[i][0] for i in range(start, stop)])


def _batches(ds, n: int, batch_size: int, pin_memory: bool = False):
    """(start, uint8 images) of the first n images, batch by batch: slices of an in-memory set, or decoded by
    worker processes (up to 8) for a set decoded on access (ImageNet, a published folder-layout -C set)."""
    if hasattr(ds, "images") or isinstance(ds, torch.Tensor):
        images = ds.images if hasattr(ds, "images") else ds
        for st in range(0, n, batch_size):
            yield st, images[st:min(n, st + batch_size)]
        return
    import os

    from dstlib.data import stream
    workers = min(8, os.cpu_count() or 1) if n > batch_size else 0
    st = 0
    for x, _ in stream.eval_loader(ds, range(n), batch_size=batch_size, workers=workers, pin_memory=pin_memory):
        yield st, x
        st += len(x)


def _identity(ds, n: int) -> str:
    if hasattr(ds, "images"):
        return _hash_tensors([ds.images[:n], ds.labels[:n]])
    files = [str(f) for f in getattr(ds, "files", [])[:n]]
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16] + _hash_tensors([ds.labels[:n]])


SUITES = ("common", "cbar")


def is_video(info) -> bool:
    """True for a video dataset (clips of several frames)."""
    return getattr(info, "frames", 1) > 1


def corrupt_clips(x, positions, name, severity, seed, table, temporal, videos):
    """Corrupted copies of the clean clips x (on the device) at dataset `positions`. Temporal corruptions in "video" mode
    act on the whole videos (`videos()`: the batch's, decoded once and kept by the caller), then T frames are
    sampled; every other case acts on the clip."""
    import dstlib.corruptions as dc
    if temporal == "clip" or name not in dc.TEMPORAL:
        return dc.corrupt_video(x, name, severity, seed=seed, index=positions, table=table)
    vids, t = videos(), x.shape[1]
    if len({v.shape for v in vids}) == 1:
        return dc.corrupt_video(torch.stack(vids).to(x.device), name, severity, seed=seed, index=positions,
                                frames=t, table=table)
    return torch.cat([dc.corrupt_video(v[None].to(x.device), name, severity, seed=seed, index=positions[i:i + 1],
                                       frames=t, table=table) for i, v in enumerate(vids)])


def default_corruptions(info, suite: str = "common") -> tuple[str, ...]:
    """The benchmark's set (module docstring): `NAMES` for the "cifar" table, `COMMON` otherwise;
    without `saturate` for 1-channel data (so `GRAY_NAMES` for 1-channel "cifar" data). For
    suite "cbar": the ten of the C-bar table for the image size. For clips: `VIDEO_NAMES`."""
    import dstlib.corruptions as dc
    if is_video(info):
        return tuple(dc.VIDEO_NAMES)
    if suite == "cbar":
        return tuple(dc.cbar.LEVELS[dc.cbar.default_table(info.image_size, info.image_size)])
    names = tuple(dc.NAMES) if info.corruption_table == "cifar" else tuple(dc.COMMON)
    if info.channels == 1:
        names = tuple(n for n in names if n in dc.GRAY_NAMES)
    return names


def _hash_tensors(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _save(ds: xr.Dataset, path: Path) -> None:
    from dstlib.io import atomic_save_bytes
    atomic_save_bytes(path, bytes(ds.to_netcdf(engine="scipy")))


def _load(path: Path) -> xr.Dataset:
    return xr.load_dataset(io.BytesIO(path.read_bytes()), engine="scipy")


def _device_of(model, device):
    if device is not None:
        return torch.device(device)
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _predict(model, x_uint8, info, classes):
    from dstlib.data import normalize
    logits = model(normalize(x_uint8, info))
    if classes is not None:
        return classes[logits[:, classes].argmax(1)]
    return logits.argmax(1)


def _eval_key(run, model, spec: dict) -> tuple[str, str]:
    """(model identity, cache key) of an evaluation described by `spec`: the run id, or the hash of a
    module's weights."""
    ident = run.id if run is not None else _hash_tensors(list(model.state_dict().values()))
    return ident, hashlib.sha256(json.dumps({"model": ident, "eval": spec}, sort_keys=True).encode()).hexdigest()[:16]


def _cache_path(run, cache_dir, name: str) -> Path | None:
    """<run>/eval/<name> for a stored run, <cache_dir>/<name> for a module, None (not cached) without either."""
    folder = Path(run.path) / "eval" if run is not None else (Path(cache_dir) if cache_dir is not None else None)
    return folder / name if folder is not None else None


def robustness(model, dataset, corruptions: Sequence[str] | None = None,
               severities: Sequence[int] = (1, 2, 3, 4, 5), seed: int = 0, n_test: int | None = None,
               batch_size: int = 256, device=None, *, table: str | None = None, jpeg: bool | None = None,
               cache_dir=None, benchmark: Callable[[str, int], torch.Tensor] | None = None,
               benchmark_name: str | None = None, progress: bool = True, suite: str = "common",
               temporal: str = "video") -> xr.Dataset:
    """Clean and corrupted accuracy with per-image correctness.

    `model`: an nn.Module or a `dstlib.store.Run`. `dataset`: an ImageSet or
    a dataset name (its test split). `table`: the corruption parameter table
    (None: `dataset.info.corruption_table`); `jpeg`: the saved benchmarks'
    JPEG-85 round trip (None: as saved, i.e. on for "tiny"/"imagenet";
    False: off). Returns `correct` (corruption, severity, image) and
    `clean_correct` (image) bool, `accuracy` (corruption, severity),
    `clean_accuracy`, `robustness_accuracy` and `label` (image); attrs
    `eval_spec` (JSON), `model` and `key`. With `benchmark`, `seed`,
    `table` and `jpeg` are not used (the images are the benchmark's). Uses
    no_grad and eval mode (the model's mode is restored afterwards). A
    cached result is returned without loading the model. `suite`: "common" (the
    ImageNet-C family) or "cbar" (ImageNet-C-bar / CIFAR-10-C-bar, names from
    `CBAR_NAMES` or `CIFAR_CBAR_NAMES` as the table has them). A video dataset
    (module docstring) takes names from `VIDEO_NAMES`, a video `table`, `temporal`
    "video" or "clip", and no `jpeg`; dim `image` then counts clips.
    """
    import dstlib.corruptions as dc
    from tqdm.auto import tqdm

    if suite not in SUITES:
        raise ValueError(f"suite={suite!r} is invalid; allowed: {', '.join(SUITES)}")
    ds = _dataset(dataset)
    video = is_video(ds.info)
    corruptions = default_corruptions(ds.info, suite) if corruptions is None else tuple(corruptions)
    if not corruptions:
        raise ValueError("corruptions is empty; allowed: None (the benchmark's set) or names from dstlib.corruptions.NAMES")
    if video:
        if suite != "common":
            raise ValueError(f"suite={suite!r} is invalid for clips; allowed: common (the 16 video corruptions)")
        table = ds.info.corruption_table if table is None else table
        if table not in dc.VIDEO_TABLE_NAMES:
            raise ValueError(f"table={table!r} is invalid for clips; allowed: None, {', '.join(dc.VIDEO_TABLE_NAMES)}")
        if jpeg is not None:
            raise ValueError(f"jpeg={jpeg!r} is invalid for clips; allowed: None (no saved-as-JPEG step)")
        if temporal not in TEMPORAL_MODES:
            raise ValueError(f"temporal={temporal!r} is invalid; allowed: {', '.join(TEMPORAL_MODES)}")
        allowed = tuple(dc.VIDEO_NAMES)
    elif suite == "cbar":
        table = dc.cbar.default_table(ds.info.image_size, ds.info.image_size) if table is None else table
        if table not in dc.cbar.TABLE_NAMES:
            raise ValueError(f"table={table!r} is invalid for suite='cbar'; allowed: None, {', '.join(dc.cbar.TABLE_NAMES)}")
        allowed = tuple(dc.cbar.LEVELS[table])
    else:
        allowed = tuple(dc.NAMES)
    for c in corruptions:
        if c not in allowed:
            raise ValueError(f"corruptions contains {c!r}; allowed (suite {suite!r}): {', '.join(allowed)}")
    if len(set(corruptions)) != len(corruptions):
        raise ValueError(f"corruptions={list(corruptions)!r} repeats a name; allowed: distinct names")
    if isinstance(severities, (str, bytes)) or not hasattr(severities, "__iter__"):
        raise ValueError(f"severities={severities!r} is invalid; allowed: a non-empty subset of 1, 2, 3, 4, 5")
    severities = tuple(severities)
    if (not severities or any(isinstance(s, bool) or s not in (1, 2, 3, 4, 5) for s in severities)
            or len(set(severities)) != len(severities)):
        raise ValueError(f"severities={severities!r} is invalid; allowed: a non-empty subset of 1, 2, 3, 4, 5")
    severities = tuple(int(s) for s in severities)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} is invalid; allowed: an int")
    n = len(ds) if n_test is None else n_test
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(ds):
        raise ValueError(f"n_test={n_test!r} is invalid; allowed: None or an int in [1, {len(ds)}]")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; allowed: a positive int")
    table = ds.info.corruption_table if table is None else table
    tables = dc.VIDEO_TABLE_NAMES if video else ("cifar", "tiny", "imagenet")
    if table not in tables:
        raise ValueError(f"table={table!r} is invalid; allowed: None, {', '.join(tables)}")
    if jpeg not in (None, True, False):
        raise ValueError(f"jpeg={jpeg!r} is invalid; allowed: None (as saved), True, False")
    if benchmark is not None and not benchmark_name:
        raise ValueError("benchmark_name is missing; allowed: a name for the on-disk benchmark (it keys the cache)")

    run = model if _is_run(model) else None
    if run is None and not isinstance(model, torch.nn.Module):
        raise ValueError(f"model is a {type(model).__name__}; allowed: an nn.Module or a dstlib.store.Run")
    labels = ds.labels[:n]
    generated = benchmark is None
    spec = {"version": EVAL_VERSION, "dataset": ds.info.name, "n_test": n,
            "data": _identity(ds, n), "corruptions": list(corruptions), "severities": list(severities),
            "seed": seed if generated else None, "table": table if generated else None,
            "jpeg": jpeg if generated else None, "source": "generated" if generated else benchmark_name,
            "corruptions_version": getattr(dc, "VERSION", None) if generated else None}
    if suite == "cbar":  # only here, so the common suite's keys stay as they were
        spec.update(suite="cbar", corruptions_version=getattr(dc, "CBAR_VERSION", None) if generated else None)
    if video:
        spec.update(temporal=temporal if generated else None,
                    corruptions_version=dc.VIDEO_VERSION if generated else None)
    ident, key = _eval_key(run, model, spec)
    path = _cache_path(run, cache_dir, f"{key}.nc")
    if path is not None and path.exists():
        return _load(path)

    net = run.model() if run is not None else model
    dev = _device_of(net, device)
    was_training = net.training
    net.eval()
    correct = np.zeros((len(corruptions), len(severities), n), dtype=bool)
    clean = np.zeros(n, dtype=bool)
    bar = tqdm(total=(1 + len(corruptions) * len(severities)) * n, disable=not progress, desc="robustness")
    # generated: one pass over the images, each clean batch loaded (decoded) once and corrupted on the device;
    # benchmark: one (corruption, severity) array in memory at a time
    shape = tuple(_batch(ds, 0, 1).shape[1:])
    pin = dev.type == "cuda"
    try:
        with torch.no_grad():
            for st, x in _batches(ds, n, batch_size, pin):
                stop = st + len(x)
                x = x.to(dev, non_blocking=True)
                y = labels[st:stop].to(dev)
                idx = torch.arange(st, stop)
                clean[st:stop] = (_predict(net, x, ds.info, None) == y).cpu().numpy()
                bar.update(len(y))
                held: list = []  # the batch's whole videos, decoded on first need

                def videos(st=st, stop=stop, held=held):
                    if not held:
                        held.append(ds.videos(torch.arange(st, stop)))
                    return held[0]
                for i, c in enumerate(corruptions if generated else ()):
                    for j, s in enumerate(severities):
                        if video:
                            xc = corrupt_clips(x, idx, c, s, seed, table, temporal, videos)
                        else:
                            xc = dc.corrupt_as_saved(x, c, s, seed=seed, table=table, index=idx, jpeg=jpeg)
                        correct[i, j, st:stop] = (_predict(net, xc, ds.info, None) == y).cpu().numpy()
                        bar.update(len(y))
            for i, c in enumerate(corruptions if not generated else ()):
                for j, s in enumerate(severities):
                    full = benchmark(c, s)
                    lazy = not isinstance(full, torch.Tensor) and hasattr(full, "__getitem__") and hasattr(full, "__len__")
                    if lazy:  # a set decoded on access (a published folder-layout -C set): checked batch by batch
                        if len(full) < n:
                            raise ValueError(f"benchmark({c!r}, {s}) gave {len(full)} images; allowed: at least {n}")
                    elif (not isinstance(full, torch.Tensor) or full.dtype != torch.uint8 or full.ndim != len(shape) + 1
                            or full.shape[0] < n or tuple(full.shape[1:]) != shape):
                        raise ValueError(f"benchmark({c!r}, {s}) gave {getattr(full, 'dtype', type(full).__name__)} "
                                         f"{tuple(getattr(full, 'shape', ()))}; allowed: uint8 (>= {n}, {', '.join(map(str, shape))})")
                    for st, xc in _batches(full, n, batch_size, pin):
                        if lazy and (xc.dtype != torch.uint8 or tuple(xc.shape[1:]) != shape):
                            raise ValueError(f"benchmark({c!r}, {s}) gave {xc.dtype} images of shape "
                                             f"{tuple(xc.shape[1:])}; allowed: uint8 {shape}")
                        y = labels[st:st + len(xc)].to(dev)
                        correct[i, j, st:st + len(y)] = (_predict(net, xc.to(dev, non_blocking=True), ds.info, None)
                                                         == y).cpu().numpy()
                        bar.update(len(y))
    finally:
        bar.close()
        net.train(was_training)
    coords = {"corruption": list(corruptions), "severity": list(severities), "image": np.arange(n)}
    out = xr.Dataset({"correct": (("corruption", "severity", "image"), correct),
                      "clean_correct": (("image",), clean), "label": (("image",), labels.numpy())},
                     coords=coords, attrs={"eval_spec": json.dumps(spec, sort_keys=True), "model": ident, "key": key})
    out["accuracy"] = out["correct"].mean("image")
    out["clean_accuracy"] = out["clean_correct"].mean("image")
    out["robustness_accuracy"] = out["accuracy"].mean(("corruption", "severity"))
    if path is not None:
        _save(out, path)
    return out


MNIST_C_EVAL_VERSION = 1


def mnist_c_accuracy(model, dataset="fashion_mnist", seed: int = 0, n_test: int | None = None, *,
                     root=None, batch_size: int = 256, device=None, cache_dir=None,
                     progress: bool = True) -> xr.Dataset:
    """Accuracy on Fashion-MNIST-C (Weiss and Tonella; `dstlib.corruptions.mnist_c`): overall
    and per corruption, with per-image correctness.

    `model`: an nn.Module or a `dstlib.store.Run`; `dataset`: the clean Fashion-MNIST test
    set (a name or an ImageSet). Without `root` the set is generated on the model's device,
    batch by batch, as `fashion_mnist_c(x, seed, index=image positions)`: a pure function
    of (image, index, seed), so every model sees the very same images (paired per image).
    With `root` the images are read from a folder (`dstlib.data.corrupted.
    read_fashion_mnist_c`: the published files or ours; `seed` is then unused); per
    corruption results need our side file of corruption indices (the published set has
    none: `accuracy_per_corruption` is then NaN). Returns `correct`, `clean_correct`,
    `image_corruption` (position in FMNIST_C_NAMES, -1 unknown) and `label` (image);
    `accuracy_per_corruption` and `count` (corruption: the 15 names); `accuracy`
    (overall) and `clean_accuracy`; attrs `eval_spec`, `model`, `key`. Cached like
    `robustness` (a Run's `eval` folder, else `cache_dir`).
    """
    import dstlib.corruptions as dc
    from tqdm.auto import tqdm

    ds = _dataset(dataset)
    if ds.info.name != "fashion_mnist":
        raise ValueError(f"dataset={ds.info.name!r} is invalid; allowed: fashion_mnist (its clean test set)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} is invalid; allowed: an int")
    n = len(ds) if n_test is None else n_test
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(ds):
        raise ValueError(f"n_test={n_test!r} is invalid; allowed: None or an int in [1, {len(ds)}]")
    stored = known = None
    if root is not None:
        from dstlib.data.corrupted import fashion_mnist_c_corruptions, read_fashion_mnist_c
        stored = read_fashion_mnist_c(root, "test")
        if len(stored) < n or not torch.equal(stored.labels[:n], ds.labels[:n]):
            raise ValueError(f"root={str(root)!r} holds {len(stored)} images whose labels are not those of the first "
                             f"{n} clean test images; allowed: a Fashion-MNIST-C test split of the same images")
        known = fashion_mnist_c_corruptions(root, "test")
        if known is not None and known.shape != (len(stored),):
            raise ValueError(f"root={str(root)!r}: corruption index of shape {tuple(known.shape)}; "
                             f"expected ({len(stored)},)")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; allowed: a positive int")
    run = model if _is_run(model) else None
    if run is None and not isinstance(model, torch.nn.Module):
        raise ValueError(f"model is a {type(model).__name__}; allowed: an nn.Module or a dstlib.store.Run")
    generated = stored is None
    spec = {"version": MNIST_C_EVAL_VERSION, "benchmark": "fashion_mnist_c", "dataset": ds.info.name, "n_test": n,
            "data": _identity(ds, n), "seed": seed if generated else None,
            "source": "generated" if generated else "files:" + _identity(stored, n),
            "corruptions_version": dc.mnist_c.MNIST_C_VERSION if generated else None}
    ident, key = _eval_key(run, model, spec)
    path = _cache_path(run, cache_dir, f"mnist_c_{key}.nc")
    if path is not None and path.exists():
        return _load(path)

    net = run.model() if run is not None else model
    dev = _device_of(net, device)
    was_training = net.training
    net.eval()
    labels = ds.labels[:n]
    correct, clean = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    which = np.full(n, -1, dtype=np.int64)
    if known is not None:
        which[:] = known[:n].numpy()
    try:
        with torch.no_grad():
            for st in tqdm(range(0, n, batch_size), disable=not progress, desc="fashion_mnist_c"):
                stop = min(n, st + batch_size)
                x, y = _batch(ds, st, stop).to(dev), labels[st:stop].to(dev)
                clean[st:stop] = (_predict(net, x, ds.info, None) == y).cpu().numpy()
                if generated:
                    xc, c = dc.fashion_mnist_c(x, seed=seed, index=torch.arange(st, stop))
                    which[st:stop] = c.cpu().numpy()
                else:
                    xc = stored.images[st:stop].to(dev)
                correct[st:stop] = (_predict(net, xc, ds.info, None) == y).cpu().numpy()
    finally:
        net.train(was_training)
    names = list(dc.FMNIST_C_NAMES)
    count = np.array([(which == k).sum() for k in range(len(names))])
    per = np.array([correct[which == k].mean() if count[k] else np.nan for k in range(len(names))])
    out = xr.Dataset({"correct": (("image",), correct), "clean_correct": (("image",), clean),
                      "image_corruption": (("image",), which), "label": (("image",), labels.numpy()),
                      "accuracy_per_corruption": (("corruption",), per), "count": (("corruption",), count)},
                     coords={"image": np.arange(n), "corruption": names},
                     attrs={"eval_spec": json.dumps(spec, sort_keys=True), "model": ident, "key": key})
    out["accuracy"] = out["correct"].mean("image")
    out["clean_accuracy"] = out["clean_correct"].mean("image")
    if path is not None:
        _save(out, path)
    return out


def accuracy(model, dataset, *, n_test: int | None = None, classes: torch.Tensor | Sequence[int] | None = None,
             batch_size: int = 256, device=None, progress: bool = True) -> xr.Dataset:
    """Plain accuracy with per-image correctness (e.g. an out-of-distribution set).

    `classes`: restrict the prediction to these class indices (ImageNet-R:
    its 200 classes within the 1000 logits, as in Hendrycks et al. 2021).
    """
    from tqdm.auto import tqdm

    ds = _dataset(dataset)
    if not _is_run(model) and not isinstance(model, torch.nn.Module):
        raise ValueError(f"model is a {type(model).__name__}; allowed: an nn.Module or a dstlib.store.Run")
    n = len(ds) if n_test is None else n_test
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(ds):
        raise ValueError(f"n_test={n_test!r} is invalid; allowed: None or an int in [1, {len(ds)}]")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; allowed: a positive int")
    if classes is not None:
        classes = torch.as_tensor(classes, dtype=torch.long)
        if classes.ndim != 1 or classes.numel() == 0:
            raise ValueError("classes is invalid; allowed: None or a non-empty 1-d list of class indices")
    net = model.model() if _is_run(model) else model
    dev = _device_of(net, device)
    classes = classes.to(dev) if classes is not None else None
    was_training = net.training
    net.eval()
    correct = np.zeros(n, dtype=bool)
    try:
        with torch.no_grad():
            for st in tqdm(range(0, n, batch_size), disable=not progress, desc="accuracy"):
                stop = min(n, st + batch_size)
                x, y = _batch(ds, st, stop), ds.labels[st:stop]
                correct[st:stop] = (_predict(net, x.to(dev), ds.info, classes) == y.to(dev)).cpu().numpy()
    finally:
        net.train(was_training)
    out = xr.Dataset({"correct": (("image",), correct)}, coords={"image": np.arange(n)},
                     attrs={"dataset": ds.info.name})
    out["accuracy"] = out["correct"].mean("image")
    return out


def _acc(ds: xr.Dataset, name: str) -> xr.Dataset:
    for v in ("accuracy", "clean_accuracy"):
        if not isinstance(ds, xr.Dataset) or v not in ds:
            raise ValueError(f"results[{name!r}] is invalid; allowed: a Dataset from evaluate.robustness")
    return ds


def corruption_error(results: Mapping[str, xr.Dataset], baseline: str) -> xr.Dataset:
    """CE, mCE, relative CE and relative mCE of each model against `results[baseline]`.

    CE_c = sum_s E[c, s] / sum_s E_base[c, s] with E = 1 - accuracy;
    relative CE_c = sum_s (E[c, s] - E_clean) / sum_s (E_base[c, s] - E_base_clean)
    (Hendrycks & Dietterich 2019); mCE and relative mCE are means over corruptions.
    Dims (model, corruption); the baseline scores 1 by construction. A corruption that
    costs the baseline nothing over its clean error has no relative CE (NaN, left out
    of the relative mCE), rather than an infinite one.
    """
    if not isinstance(results, Mapping) or baseline not in results:
        raise ValueError(f"baseline={baseline!r} is invalid; allowed: one of {list(results) if isinstance(results, Mapping) else []}")
    base = _acc(results[baseline], baseline)
    be, bc = 1 - base["accuracy"], 1 - base["clean_accuracy"]
    parts = []
    for name, r in results.items():
        r = _acc(r, name)
        e, ec = 1 - r["accuracy"], 1 - r["clean_accuracy"]
        ce = e.sum("severity") / be.sum("severity")
        den = (be - bc).sum("severity")
        rce = (e - ec).sum("severity") / den.where(den != 0)
        parts.append(xr.Dataset({"ce": ce, "mce": ce.mean("corruption"),
                                 "relative_ce": rce, "relative_mce": rce.mean("corruption")}))
    out = xr.concat(parts, dim=xr.DataArray(list(results), dims="model", name="model"))
    return out.assign_attrs(baseline=baseline)


def relative_gain(sparse: xr.Dataset, dense: xr.Dataset) -> xr.Dataset:
    """The paper's relative gain (Acc_sparse - Acc_dense) / Acc_dense per (corruption, severity), and overall."""
    s, d = _acc(sparse, "sparse"), _acc(dense, "dense")
    return xr.Dataset({"gain": (s["accuracy"] - d["accuracy"]) / d["accuracy"],
                       "robustness_gain": (s["robustness_accuracy"] - d["robustness_accuracy"]) / d["robustness_accuracy"],
                       "clean_gain": (s["clean_accuracy"] - d["clean_accuracy"]) / d["clean_accuracy"]})
