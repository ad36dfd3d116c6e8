"""The published corrupted test sets, used wherever they are found under $DSTLIB_DATA.

Where (`find`): `$DSTLIB_DATA/<dataset>_c/` for the ImageNet-C family
(CIFAR-10-C, CIFAR-100-C: `<corruption>.npy` + `labels.npy`; Tiny-ImageNet-C,
ImageNet-C: `<corruption>/<severity>/<wnid>/<file>`) and
`$DSTLIB_DATA/<dataset>_cbar/` for C-bar (ImageNet-C-bar; CIFAR-10-C-bar),
or the archive's own folder inside it (`CIFAR-10-C/`, `Tiny-ImageNet-C/`, ...).
The layouts are `dstlib.data.corrupted`'s. Corruption folder and file names
are the published ones, which are ours (`dstlib.corruptions.NAMES`,
`CBAR_NAMES`).

Alignment (`images`): a published set is read in the order of our test set,
so its image k is the corrupted copy of our test image k and comparisons stay
paired per image: the npy sets are in test-set order (rows of one severity);
a folder set is matched by (class folder, file name without suffix) to our
test files (ImageNet's val files; Tiny-ImageNet's `val/images/val_<k>`, whose
class comes from `val_annotations.txt`). A set that lacks one of our first n
test images, or labels one differently, is an error, not a silent mismatch.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from dstlib.data import corrupted

SUITES = ("common", "cbar")
#: The archives' own folder names, looked for inside $DSTLIB_DATA/<dataset>_<suite>/.
ARCHIVE_NAMES = {("cifar10", "common"): "CIFAR-10-C", ("cifar100", "common"): "CIFAR-100-C",
                 ("tiny_imagenet", "common"): "Tiny-ImageNet-C", ("imagenet", "common"): "ImageNet-C",
                 ("imagenet", "cbar"): "ImageNet-C-Bar", ("cifar10", "cbar"): "CIFAR-10-C-Bar"}
LAYOUT = ("$DSTLIB_DATA/<dataset>_c/ or <dataset>_cbar/ (or the archive's folder inside, e.g. CIFAR-10-C/): "
          f"{corrupted.NPY_LAYOUT}, or {corrupted.FOLDER_LAYOUT}")


def folder_name(dataset: str, suite: str = "common") -> str:
    return f"{dataset}_{'c' if suite == 'common' else 'cbar'}"


def find(dataset: str, suite: str = "common", base: str | os.PathLike | None = None) -> Path | None:
    """The folder of the published corrupted set of `dataset` under $DSTLIB_DATA (or `base`), or None."""
    if suite not in SUITES:
        raise ValueError(f"suite={suite!r} is invalid; allowed: {', '.join(SUITES)}")
    base = base if base is not None else os.environ.get("DSTLIB_DATA")
    if not base:
        return None
    outer = Path(base) / folder_name(dataset, suite)
    inner = ARCHIVE_NAMES.get((dataset, suite))
    for root in ([outer / inner] if inner else []) + [outer]:
        if root.is_dir():
            try:
                corrupted.layout(root)
            except ValueError:
                continue
            return root
    return None


def available(root: Path | None) -> list[str]:
    """The corruptions present in the published set at `root` (none for None)."""
    return [] if root is None else corrupted.corruptions(root)


def _test_keys(test_set, n: int) -> list[tuple[str, str]]:
    """(class folder name, file stem) of our first n test images."""
    files = getattr(test_set, "files", None) or getattr(test_set, "source_files", None)
    if files is None:
        raise ValueError(f"the {test_set.info.name} test set has no file names, which a folder-layout corrupted "
                         f"set is matched by; allowed: a set read from image folders")
    if test_set.info.name == "tiny_imagenet":  # val/images/val_<k>.JPEG; the class is the annotation's
        wnids = _tiny_wnids(files[0])
        return [(wnids[int(test_set.labels[i])], Path(files[i]).stem) for i in range(n)]
    return [(Path(files[i]).parent.name, Path(files[i]).stem) for i in range(n)]


def _tiny_wnids(val_file) -> list[str]:
    root = Path(val_file).parents[2]  # <root>/val/images/<file>
    return sorted(w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip())


def images(root: Path, test_set, corruption: str, severity: int, n: int):
    """The published (corruption, severity) copies of our first n test images, in test-set order: a uint8
    (n, C, H, W) tensor for the npy layout, a `CorruptedFolder` decoded on access for the folder layout."""
    if corrupted.layout(root) == "npy":
        ds = corrupted.read_npy(root, corruption, severity, info=test_set.info)
        if len(ds) < n or not torch.equal(ds.labels[:n], test_set.labels[:n]):
            raise ValueError(f"{root}/{corruption}.npy: its labels are not those of the first {n} "
                             f"{test_set.info.name} test images; expected {corrupted.NPY_LAYOUT} in test-set order")
        return ds.images[:n]
    folder = corrupted.read_folders(root, corruption, severity, info=test_set.info)
    where = {(folder.classes[int(c)], Path(f).stem): k for k, (f, c) in enumerate(zip(folder.files, folder.labels))}
    order = []
    for i, key in enumerate(_test_keys(test_set, n)):
        k = where.get(key)
        if k is None:
            raise ValueError(f"{root}/{corruption}/{severity}: no copy of test image {i} ({key[0]}/{key[1]}); "
                             f"expected every test image under {corrupted.FOLDER_LAYOUT}")
        order.append(k)
    labels = test_set.labels[:n].clone()
    return corrupted.CorruptedFolder(test_set.info, [folder.files[k] for k in order], labels, folder.classes)


def note(dataset: str, corruptions: list[str], suite: str = "common") -> str:
    """A sentence for the page: which corrupted images are the published ones and which are generated."""
    root = find(dataset, suite)
    have = [c for c in corruptions if c in available(root)]
    if not have:
        return ""
    name = ARCHIVE_NAMES.get((dataset, suite), root.name)
    rest = [c for c in corruptions if c not in have]
    where = root.relative_to(Path(os.environ["DSTLIB_DATA"])).as_posix()
    text = f"Corrupted test images: the published {name} (`$DSTLIB_DATA/{where}`) for {len(have)} of " \
           f"{len(corruptions)} corruptions"
    return text + (f"; generated by `dstlib.corruptions` for {', '.join(rest)}." if rest else ".")
