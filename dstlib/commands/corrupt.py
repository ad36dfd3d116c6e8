"""`python -m dstlib corrupt`: write a corrupted test set to disk.

Layouts: "npy" (CIFAR-10-C: `<name>.npy` uint8 NHWC, severity-major, and
`labels.npy`; the default below 64 px) and "folders" (`<name>/<severity>/<class>/
<index>.JPEG`, JPEG quality 85 as Tiny-ImageNet-C / ImageNet-C; 64 px and larger).
Images are `dstlib.corruptions.corrupt(x, name, severity, seed, index=position
in the split)`, so the files equal what evaluation computes on the fly.
`--benchmark cbar` writes ImageNet-C-bar / CIFAR-10-C-bar instead (the C-bar
table by image size: CIFAR-10-C-bar's ten corruptions up to 84 px, as npy;
ImageNet-C-bar's ten above, as folders); a set decoded on access (ImageNet)
keeps its class folders and file names, `<name>/<severity>/<wnid>/<file>` as the
reference's release. Finished
files are skipped (a `corrupt.json` records the settings; a different setting is
an error rather than a silent mix); every file is written atomically.

`--benchmark fashion_mnist_c` writes Fashion-MNIST-C instead, in its published
layout: `fmnist-c-<split>.npy` (uint8 N x 28 x 28), `fmnist-c-<split>-labels.npy`
(int64), plus our side file `fmnist-c-<split>-corruption-index.npy` (int64 position
in `dstlib.corruptions.FMNIST_C_NAMES` per image) and `fmnist-c.json` (settings);
images are `fashion_mnist_c(x, seed, index=position in the split)`.
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch

HELP = "write corrupted copies of a test set (CIFAR-10-C(-bar) npy or ImageNet-C(-bar) folder layout)"


def _list(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="fashion_mnist", help="dataset name (dstlib.data.DATASETS)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--root", default=None, help="dataset folder (default: dstlib.data's search path)")
    parser.add_argument("--split", default="test", help="train, val or test")
    parser.add_argument("--benchmark", default="common", choices=("common", "cbar", "fashion_mnist_c"),
                        help="common: the ImageNet-C family; cbar: ImageNet-C-bar / CIFAR-10-C-bar; "
                             "fashion_mnist_c: Fashion-MNIST-C (15 fixed corruptions, one per image)")
    parser.add_argument("--corruptions", default="all",
                        help="comma-separated names, 'all' (19; cbar: the table's 10), 'common' (15) or 'gray' "
                             "(the 18 for 1-channel data)")
    parser.add_argument("--severities", default="1,2,3,4,5", help="comma-separated severities in 1..5")
    parser.add_argument("--seed", type=int, default=0, help="corruption seed")
    parser.add_argument("--table", default=None,
                        help="cifar, tiny or imagenet (cbar: cifar or imagenet; default: by image size)")
    parser.add_argument("--layout", default=None, help="npy or folders (default: npy below 64 px, else folders)")
    parser.add_argument("--no-jpeg", action="store_true", help="folders: save PNG instead of JPEG quality 85")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")


def _cbar_names(text: str, table: str) -> list[str]:
    from dstlib.corruptions import cbar

    allowed = list(cbar.LEVELS[table])
    if text == "all":
        return allowed
    names = _list(text)
    for n in names:
        if n not in allowed:
            raise ValueError(f"--corruptions contains {n!r}; allowed with --benchmark cbar and the {table} table: "
                             f"all or {', '.join(allowed)}")
    return names


def _names(text: str, channels: int) -> list[str]:
    import dstlib.corruptions as dc

    if text == "all":
        return list(dc.GRAY_NAMES if channels == 1 else dc.NAMES)
    if text == "common":
        return [n for n in dc.COMMON if channels == 3 or n in dc.GRAY_NAMES]
    if text == "gray":
        return list(dc.GRAY_NAMES)
    names = _list(text)
    for n in names:
        if n not in dc.NAMES:
            raise ValueError(f"--corruptions contains {n!r}; allowed: all, common, gray or {', '.join(dc.NAMES)}")
    return names


def _severities(text: str) -> list[int]:
    try:
        sev = [int(t) for t in _list(text)]
    except ValueError:
        sev = []
    if not sev or any(s < 1 or s > 5 for s in sev) or len(set(sev)) != len(sev):
        raise ValueError(f"--severities={text!r} is invalid; allowed: distinct integers in 1..5, comma-separated")
    return sorted(sev)


def _batches(ds, names, severities, args, device, progress):
    """Yield (name, severity, start, corrupted uint8 NCHW on the CPU)."""
    import dstlib.corruptions as dc

    n = len(ds)
    for name in names:
        for s in severities:
            for a in range(0, n, args.batch_size):
                x = _images(ds, a, min(n, a + args.batch_size)).to(device)
                idx = torch.arange(a, a + x.shape[0])
                y = dc.corrupt(x, name, s, seed=args.seed, table=args.table, index=idx).cpu()
                if progress is not None:
                    progress.update(x.shape[0])
                yield name, s, a, y


def _images(ds, start: int, stop: int) -> torch.Tensor:
    """uint8 images start:stop of an in-memory set, or decoded from a set read on access."""
    if hasattr(ds, "images"):
        return ds.images[start:stop]
    return torch.stack([ds[i][0] for i in range(start, stop)])


def run(args) -> int:
    import dstlib.corruptions as dc
    from dstlib import data
    from dstlib.io import atomic_save_bytes, atomic_save_text, atomic_write

    if args.benchmark == "fashion_mnist_c":
        return _run_fashion_mnist_c(args)
    if args.layout not in (None, "npy", "folders"):
        raise ValueError(f"--layout={args.layout!r} is invalid; allowed: npy, folders")
    cbar = getattr(args, "benchmark", "common") == "cbar"
    tables = dc.cbar.TABLE_NAMES if cbar else dc.TABLE_NAMES
    if args.table not in (None, *tables):
        raise ValueError(f"--table={args.table!r} is invalid; allowed: {', '.join(tables)}")
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise ValueError("--batch-size and --limit must be positive integers")
    severities = _severities(args.severities)
    ds = data.load(args.dataset, args.split, root=args.root)
    if not isinstance(ds, data.ImageSet) and not cbar:
        raise ValueError(f"--dataset={args.dataset!r} is decoded on access; write its corrupted copies from an "
                         "in-memory dataset (fashion_mnist, cifar10, cifar100, tiny_imagenet)")
    if args.limit is not None:
        ds = ds.subset(torch.arange(min(args.limit, len(ds))))
    h, w = _images(ds, 0, 1).shape[-2:]
    table = args.table or (dc.cbar.default_table(h, w) if cbar else dc.default_table(h, w))
    names = _cbar_names(args.corruptions, table) if cbar else _names(args.corruptions, ds.info.channels)
    lay = args.layout or ("npy" if max(h, w) < 64 else "folders")
    if lay == "folders" and max(h, w) < 64:
        raise ValueError(f"--layout=folders is for 64 px and larger images; {args.dataset} is {h} px: use npy")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(dataset=args.dataset, split=args.split, seed=args.seed, limit=args.limit, layout=lay,
                    table=table, severities=severities, images=len(ds),
                    jpeg=None if lay == "npy" else (not args.no_jpeg))
    if cbar:
        settings["benchmark"] = "cbar"
    meta = out / "corrupt.json"
    if meta.exists():
        old = json.loads(meta.read_text())
        if old != settings:
            raise ValueError(f"--out={str(out)!r} holds a set made with other settings ({old}); use a new folder")
    else:
        atomic_save_text(meta, json.dumps(settings, indent=1, sort_keys=True))

    if lay == "npy":
        shape = (len(ds), ds.info.channels, h, w)
        todo = [n for n in names if not _npy_done(out / f"{n}.npy", len(ds) * len(severities), shape)]
        labels = ds.labels.numpy().astype(np.int64)
        with atomic_write(out / "labels.npy") as f:
            np.save(f, np.tile(labels, len(severities)))
    else:
        todo = [n for n in names if not all((out / n / str(s) / ".done").exists() for s in severities)]
    skipped = len(names) - len(todo)
    progress = None
    if not args.no_progress:
        from tqdm.auto import tqdm
        progress = tqdm(total=len(todo) * len(severities) * len(ds), unit="img", desc="corrupt")
    ext = ".png" if args.no_jpeg else ".JPEG"
    buffer: dict[str, np.ndarray] = {}
    files = getattr(ds, "files", None)  # decoded on access: keep the class folder and file name
    for name, s, a, y in _batches(ds, todo, severities, args, args.device, progress):
        if lay == "npy":
            arr = buffer.setdefault(name, np.empty((len(severities) * len(ds), h, w, y.shape[1]), np.uint8))
            row = severities.index(s) * len(ds) + a
            arr[row:row + y.shape[0]] = y.permute(0, 2, 3, 1).numpy()
            if s == severities[-1] and a + y.shape[0] == len(ds):
                with atomic_write(out / f"{name}.npy") as f:
                    np.save(f, buffer.pop(name))
        else:
            from PIL import Image
            folder = out / name / str(s)
            for i in range(y.shape[0]):
                k = a + i
                img = y[i].permute(1, 2, 0).numpy()
                im = Image.fromarray(img[..., 0], "L") if img.shape[2] == 1 else Image.fromarray(img, "RGB")
                bio = io.BytesIO()
                im.save(bio, "PNG") if args.no_jpeg else im.save(bio, "JPEG", quality=dc.SAVED_JPEG_QUALITY)
                rel = (Path(files[k].parent.name) / (files[k].stem + ext) if files is not None
                       else Path(f"{int(ds.labels[k]):04d}") / f"{k:07d}{ext}")
                atomic_save_bytes(folder / rel, bio.getvalue())
            if a + y.shape[0] == len(ds):
                atomic_save_bytes(folder / ".done", b"")
    if progress is not None:
        progress.close()
    print(f"wrote {len(todo)} corruption(s), skipped {skipped} already complete, in {out}")
    return 0


def _npy_done(path: Path, rows: int, shape, gray: bool = False) -> bool:
    if not path.exists():
        return False
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:
        return False
    want = (rows, shape[2], shape[3]) if gray else (rows, shape[2], shape[3], shape[1])
    return arr.shape == want and arr.dtype == np.uint8


def _run_fashion_mnist_c(args) -> int:
    """--benchmark fashion_mnist_c (module docstring)."""
    import dstlib.corruptions as dc
    from dstlib import data
    from dstlib.data.corrupted import FMNIST_C_INDEX
    from dstlib.io import atomic_save_text, atomic_write

    if args.dataset != "fashion_mnist" or args.split not in ("train", "test"):
        raise ValueError(f"--dataset={args.dataset!r} --split={args.split!r} is invalid for --benchmark "
                         "fashion_mnist_c; allowed: --dataset fashion_mnist with --split test or train")
    defaults = (("--corruptions", args.corruptions, "all"), ("--severities", args.severities, "1,2,3,4,5"),
                ("--table", args.table, None), ("--layout", args.layout, None), ("--no-jpeg", args.no_jpeg, False))
    given = [flag for flag, value, default in defaults if value != default]
    if given:
        raise ValueError(f"{', '.join(given)} is invalid with --benchmark fashion_mnist_c; allowed: --split, --seed, "
                         "--limit, --root, --batch-size, --device (its corruptions and severities are fixed)")
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise ValueError("--batch-size and --limit must be positive integers")
    ds = data.load("fashion_mnist", args.split, root=args.root)
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"images": out / f"fmnist-c-{args.split}.npy", "labels": out / f"fmnist-c-{args.split}-labels.npy",
             "index": out / FMNIST_C_INDEX.format(split=args.split)}
    settings = dict(benchmark="fashion_mnist_c", seed=args.seed, limit=args.limit, version=dc.mnist_c.MNIST_C_VERSION,
                    names=list(dc.FMNIST_C_NAMES))
    meta = out / "fmnist-c.json"
    if meta.exists():
        old = json.loads(meta.read_text())
        if {k: old.get(k) for k in settings} != settings:
            raise ValueError(f"--out={str(out)!r} holds a Fashion-MNIST-C made with other settings ({old}); "
                             "use a new folder")
    else:
        atomic_save_text(meta, json.dumps(settings, indent=1, sort_keys=True))
    if _npy_done(files["images"], n, (n, 1, 28, 28), gray=True) and all(files[k].exists() for k in ("labels", "index")):
        print(f"skipped: {files['images']} is complete")
        return 0
    images = np.empty((n, 28, 28), np.uint8)
    choice = np.empty(n, np.int64)
    progress = None
    if not args.no_progress:
        from tqdm.auto import tqdm
        progress = tqdm(total=n, unit="img", desc="fashion_mnist_c")
    for a in range(0, n, args.batch_size):
        x = ds.images[a:min(n, a + args.batch_size)].to(args.device)
        y, c = dc.fashion_mnist_c(x, seed=args.seed, index=torch.arange(a, a + x.shape[0]))
        images[a:a + x.shape[0]], choice[a:a + x.shape[0]] = y[:, 0].cpu().numpy(), c.cpu().numpy()
        if progress is not None:
            progress.update(x.shape[0])
    if progress is not None:
        progress.close()
    for key, arr in (("labels", ds.labels[:n].numpy().astype(np.int64)), ("index", choice), ("images", images)):
        with atomic_write(files[key]) as f:
            np.save(f, arr)
    print(f"wrote Fashion-MNIST-C {args.split} ({n} images) in {out}")
    return 0