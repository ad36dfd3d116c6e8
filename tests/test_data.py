import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dstlib import data
from dstlib.data import fashion_mnist


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def fake_fashion_mnist(root: Path, n_train=20, n_test=10, gz=False, rng=np.random.default_rng(0)):
    root.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{split}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(root / f"{split}-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n), gz)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_round_trip(tmp_path, gz):
    fake_fashion_mnist(tmp_path, gz=gz)
    raw = fashion_mnist.read_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else "")))
    ds = data.load("fashion_mnist", "train", tmp_path)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (20, 1, 28, 28)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(raw.copy()))
    assert ds.labels.dtype == torch.int64 and len(data.load("fashion_mnist", "test", tmp_path)) == 10


def test_truncated_and_bad_magic_idx_are_reported(tmp_path):
    fake_fashion_mnist(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        data.load("fashion_mnist", "train", tmp_path)
    f.write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 20)
    with pytest.raises(ValueError, match="bad magic"):
        data.load("fashion_mnist", "train", tmp_path)


def test_missing_dataset_names_path_and_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTLIB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as e:
        data.load("cifar10", "train")
    assert str(tmp_path / "nowhere" / "cifar10") in str(e.value) and "data_batch_1" in str(e.value)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*DSTLIB_DATA"):
        data.load("fashion_mnist", "train", tmp_path)


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="dataset='svhn' is invalid; allowed: fashion_mnist"):
        data.load("svhn")
    with pytest.raises(ValueError, match="split='dev' is invalid; allowed: train, val, test"):
        data.load("fashion_mnist", "dev")


def test_splits_are_disjoint_fixed_and_seeded(tmp_path):
    fake_fashion_mnist(tmp_path, n_train=50)
    full = data.load("fashion_mnist", "train", tmp_path)
    key = lambda ds: {bytes(img.numpy()) for img in ds.images}
    val = data.load("fashion_mnist", "val", tmp_path, val_size=10)
    train = data.load("fashion_mnist", "train", tmp_path, val_size=10)
    assert len(val) == 10 and len(train) == 40 and not key(val) & key(train)
    assert key(val) | key(train) == key(full)
    assert torch.equal(val.images, data.load("fashion_mnist", "val", tmp_path, val_size=10).images)
    other = data.load("fashion_mnist", "val", tmp_path, val_size=10, split_seed=1)
    assert not torch.equal(val.images, other.images)
    sub = data.load("fashion_mnist", "train", tmp_path, val_size=10, train_subset=15)
    assert len(sub) == 15 and key(sub) <= key(train)
    with pytest.raises(ValueError, match="train_subset=41"):
        data.load("fashion_mnist", "train", tmp_path, val_size=10, train_subset=41)


def test_real_fashion_mnist():
    train, test = data.load("fashion_mnist", "train"), data.load("fashion_mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    x = data.normalize(test.images[:2000], test.info)
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05


def _pickle(obj, path):
    path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_python_layout(tmp_path, name):
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder, files, key, classes = tmp_path / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels", 10
    else:
        folder, files, key, classes = tmp_path / "cifar-100-python", ["train", "test"], b"fine_labels", 100
    folder.mkdir()
    batches = {}
    for f in files:
        arr = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        lab = rng.integers(0, classes, 4).tolist()
        batches[f] = (arr, lab)
        _pickle({b"data": arr, key: lab, b"batch_label": b"x"}, folder / f)
    test = data.load(name, "test", tmp_path)
    arr, lab = batches[files[-1]]
    assert torch.equal(test.images, torch.from_numpy(arr.reshape(4, 3, 32, 32)))
    assert test.labels.tolist() == lab and test.info.num_classes == classes
    assert len(data.load(name, "train", tmp_path)) == 4 * (len(files) - 1)


def test_cifar_refuses_code_in_pickles_and_malformed_batches(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _pickle({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]}, folder / "train")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    _pickle({b"data": Evil(), b"fine_labels": [0]}, folder / "test")
    with pytest.raises(ValueError, match="malformed cifar100 batch.*refusing to load"):
        data.load("cifar100", "test", tmp_path)
    _pickle({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}, folder / "test")
    with pytest.raises(ValueError, match=r"expected b'data' \(N, 3072\)"):
        data.load("cifar100", "test", tmp_path)


def _jpeg(path, size, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=95)


def test_tiny_imagenet_layout(tmp_path):
    wnids = [f"n{i:08d}" for i in range(200)]
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for i, w in enumerate(wnids):
        _jpeg(tmp_path / "train" / w / "images" / f"{w}_0.JPEG", (64, 64), (i, 0, 0))
    lines = []
    for j, w in enumerate(wnids[:3]):
        _jpeg(tmp_path / "val" / "images" / f"val_{j}.JPEG", (64, 64), (0, 200, 0))
        lines.append(f"val_{j}.JPEG\t{w}\t0\t0\t63\t63")
    (tmp_path / "val" / "val_annotations.txt").write_text("\n".join(lines))
    train = data.load("tiny_imagenet", "train", tmp_path)
    assert train.images.shape == (200, 3, 64, 64) and train.labels.tolist() == list(range(200))
    assert abs(int(train.images[7, 0, 30, 30]) - 7) <= 2  # red channel carries the class index
    test = data.load("tiny_imagenet", "test", tmp_path)
    assert test.labels.tolist() == [0, 1, 2] and abs(int(test.images[0, 1, 5, 5]) - 200) <= 2
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1")
    with pytest.raises(ValueError, match="line 1: expected file<TAB>wnid"):
        data.load("tiny_imagenet", "test", tmp_path)


def test_imagenet_class_folders(tmp_path):
    for i in range(1000):
        (tmp_path / "val" / f"n{i:08d}").mkdir(parents=True)
    _jpeg(tmp_path / "val" / "n00000003" / "a.JPEG", (300, 400), (10, 20, 30))
    _jpeg(tmp_path / "val" / "n00000999" / "b.JPEG", (500, 256), (90, 80, 70))
    ds = data.load("imagenet", "test", tmp_path)
    assert len(ds) == 2 and ds.labels.tolist() == [3, 999]
    img, label = ds[1]
    assert img.shape == (3, 224, 224) and img.dtype == torch.uint8 and label == 999
    (tmp_path / "val" / "extra").mkdir()
    with pytest.raises(ValueError, match="expected 1000 class folders, found 1001"):
        data.load("imagenet", "test", tmp_path)
    with pytest.raises(FileNotFoundError, match="train/<wnid>"):
        data.load("imagenet", "train", tmp_path)


def test_dataset_metadata():
    for name in data.DATASETS:
        info = data.info(name)
        assert len(info.mean) == len(info.std) == info.channels
        if info.frames > 1:  # clips: the video tables of dstlib.corruptions.video
            assert info.corruption_table == {20: "small", 224: "ucf101"}[info.image_size]
            continue
        assert info.corruption_table == {28: "cifar", 32: "cifar", 64: "tiny", 224: "imagenet"}[info.image_size]
