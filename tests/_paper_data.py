"""Tiny synthetic datasets in the real on-disk layouts, for the paper-scale tests.

Every reader of `dstlib.data` sees the files it sees in the real sets: CIFAR-10 and CIFAR-100 as python
pickles, Tiny-ImageNet with its 200 wnids, `train/<wnid>/images/` and `val/val_annotations.txt`, ImageNet
with 1000 class folders under `train/` and `val/`, CIFAR-10-C as `<corruption>.npy` + `labels.npy`, and
Tiny-ImageNet-C as `<corruption>/<severity>/<wnid>/<val file>`. Pixels are random with a class-dependent
colour, so models can learn a little; every image is written as the real sets store them (JPEG where they
are JPEG).
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def _images(rng, labels, size, classes):
    base = rng.integers(40, 216, (classes, 3), dtype=np.int64)
    noise = rng.integers(-40, 41, (len(labels), size, size, 3))
    return np.clip(base[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)


def _pickle(path: Path, data: np.ndarray, labels: np.ndarray, key: bytes) -> None:
    path.write_bytes(pickle.dumps({b"data": data.transpose(0, 3, 1, 2).reshape(len(data), -1),
                                   key: labels.tolist()}, protocol=2))


def cifar(root: Path, classes: int, n_train: int, n_test: int, seed: int = 0) -> Path:
    """$root/cifar10/cifar-10-batches-py/ (classes 10) or $root/cifar100/cifar-100-python/ (100)."""
    rng = np.random.default_rng(seed)
    ten = classes == 10
    folder = root / ("cifar10/cifar-10-batches-py" if ten else "cifar100/cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    key = b"labels" if ten else b"fine_labels"
    train_labels = rng.integers(0, classes, n_train)
    train = _images(rng, train_labels, 32, classes)
    if ten:
        for i, part in enumerate(np.array_split(np.arange(n_train), 5), 1):
            _pickle(folder / f"data_batch_{i}", train[part], train_labels[part], key)
    else:
        _pickle(folder / "train", train, train_labels, key)
    test_labels = rng.integers(0, classes, n_test)
    _pickle(folder / ("test_batch" if ten else "test"), _images(rng, test_labels, 32, classes), test_labels, key)
    return folder


def _jpeg(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())


def wnids(n: int) -> list[str]:
    return [f"n{10000000 + 7 * i:08d}" for i in range(n)]


def tiny_imagenet(root: Path, n_train_per_class: int = 1, n_val: int = 40, seed: int = 1) -> Path:
    """$root/tiny_imagenet/tiny-imagenet-200/ with 200 classes."""
    rng = np.random.default_rng(seed)
    folder = root / "tiny_imagenet" / "tiny-imagenet-200"
    ids = wnids(200)
    (folder / "train").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("\n".join(ids) + "\n")
    for c, w in enumerate(ids):
        for k, px in enumerate(_images(rng, np.full(n_train_per_class, c), 64, 200)):
            _jpeg(folder / "train" / w / "images" / f"{w}_{k}.JPEG", px)
    labels = rng.integers(0, 200, n_val)
    lines = []
    for k, (c, px) in enumerate(zip(labels, _images(rng, labels, 64, 200))):
        _jpeg(folder / "val" / "images" / f"val_{k}.JPEG", px)
        lines.append(f"val_{k}.JPEG\t{ids[c]}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def imagenet(root: Path, classes_with_images: int = 8, n_train_per_class: int = 4, n_val_per_class: int = 2,
             seed: int = 2) -> Path:
    """$root/imagenet/{train,val}/<wnid>/ with 1000 class folders, images (of varied sizes, about 48-96 px, as
    the real ones vary) in the first `classes_with_images`."""
    rng = np.random.default_rng(seed)
    folder = root / "imagenet"
    ids = wnids(1000)
    for split, per in (("train", n_train_per_class), ("val", n_val_per_class)):
        for c, w in enumerate(ids):
            (folder / split / w).mkdir(parents=True, exist_ok=True)
            if c >= classes_with_images:
                continue
            for k in range(per):
                h, wd = rng.integers(48, 97, 2)
                px = _images(rng, np.array([c]), max(h, wd), 1000)[0][:h, :wd]
                name = f"{w}_{k}.JPEG" if split == "train" else f"ILSVRC2012_val_{c * per + k:08d}.JPEG"
                _jpeg(folder / split / w / name, px)
    return folder


def cifar10_c(root: Path, test_images: np.ndarray, test_labels: np.ndarray, corruptions: list[str]) -> Path:
    """$root/cifar10_c/CIFAR-10-C/: `<corruption>.npy` (5 severities x the test images, NHWC) and labels.npy;
    severity s darkens the images by 10 s (a stand-in for the published corruption)."""
    folder = root / "cifar10_c" / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    nhwc = test_images.transpose(0, 2, 3, 1).astype(np.int64)
    for name in corruptions:
        np.save(folder / f"{name}.npy", np.concatenate([np.clip(nhwc - 10 * s, 0, 255) for s in range(1, 6)])
                .astype(np.uint8))
    np.save(folder / "labels.npy", np.tile(np.asarray(test_labels, dtype=np.int64), 5))
    return folder


def tiny_imagenet_c(root: Path, tiny_folder: Path, corruptions: list[str], severities=(1, 2, 3, 4, 5)) -> Path:
    """$root/tiny_imagenet_c/Tiny-ImageNet-C/<corruption>/<severity>/<wnid>/val_<k>.JPEG: every val image under
    its class, inverted (a stand-in for the published corruption)."""
    folder = root / "tiny_imagenet_c" / "Tiny-ImageNet-C"
    ann = (tiny_folder / "val" / "val_annotations.txt").read_text().split("\n")
    for line in filter(None, ann):
        name, wnid = line.split("\t")[:2]
        px = 255 - np.asarray(Image.open(tiny_folder / "val" / "images" / name).convert("RGB"))
        for c in corruptions:
            for s in severities:
                _jpeg(folder / c / str(s) / wnid / name, px)
    return folder


UCF_CLASSES = ("ApplyEyeMakeup", "Basketball", "Biking", "Diving")


def ucf101(root: Path, videos_per_class: int = 3, frames: int = 12, seed: int = 3) -> Path:
    """UCF101's layout under `root/ucf101`: `<class>/v_<class>_g<group>_c01.avi` (lossless FFV1 here, 32 x 24 px)
    and `ucfTrainTestlist/` with classInd.txt, trainlist01.txt (path and label) and testlist01.txt (path);
    group 1 is split 1's test group, as in the real lists. Four of the 101 classes."""
    import av
    rng = np.random.default_rng(seed)
    base = root / "ucf101"
    train, test = [], []
    for ci, cls in enumerate(UCF_CLASSES):
        for g in range(1, videos_per_class + 1):
            name = f"{cls}/v_{cls}_g0{g}_c01.avi"
            pixels = np.clip(rng.normal(40 + 50 * ci, 30, (frames, 24, 32, 3)), 0, 255).astype(np.uint8)
            path = base / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(path), "w", format="avi") as c:
                s = c.add_stream("ffv1", rate=25)
                s.width, s.height, s.pix_fmt = 32, 24, "bgr0"
                for f in pixels:
                    for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                        c.mux(p)
                for p in s.encode():
                    c.mux(p)
            (test if g == 1 else train).append((name, ci + 1))
    lists = base / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(UCF_CLASSES)))
    (lists / "trainlist01.txt").write_text("".join(f"{n} {k}\r\n" for n, k in train))
    (lists / "testlist01.txt").write_text("".join(f"{n}\r\n" for n, _ in test))
    return base
