"""Fashion-MNIST-C on disk and in evaluation: `python -m dstlib corrupt --benchmark
fashion_mnist_c`, `dstlib.data.corrupted.read_fashion_mnist_c` (the published npy and
IDX files, and ours) and `dstlib.evaluate.mnist_c_accuracy`, on a small fake
Fashion-MNIST."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from torch import nn

import dstlib.corruptions as dc
from dstlib import data, evaluate
from dstlib.cli import main
from dstlib.data.corrupted import fashion_mnist_c_corruptions, read_fashion_mnist_c


def idx_bytes(a: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    return head + a.astype(np.uint8).tobytes()


@pytest.fixture
def fake_root(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "fmnist"
    root.mkdir()
    for stem, n in (("train", 30), ("t10k", 40)):
        imgs = rng.integers(0, 256, (n, 28, 28)) * (rng.random((n, 28, 28)) < 0.5)
        (root / f"{stem}-images-idx3-ubyte").write_bytes(idx_bytes(imgs))
        (root / f"{stem}-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(n) % 10))
    return root


def write_fmnist_c(root, out, *extra):
    return main(["corrupt", "--benchmark", "fashion_mnist_c", "--root", str(root), "--out", str(out),
                 "--batch-size", "16", "--no-progress", *extra])


def test_cli_writes_the_published_layout_and_our_side_file(fake_root, tmp_path, capsys):
    out = tmp_path / "fmc"
    assert write_fmnist_c(fake_root, out, "--seed", "5") == 0
    assert write_fmnist_c(fake_root, out, "--seed", "5", "--split", "train") == 0
    for split in ("test", "train"):
        clean = data.load("fashion_mnist", split, root=fake_root)
        images = np.load(out / f"fmnist-c-{split}.npy")
        labels = np.load(out / f"fmnist-c-{split}-labels.npy")
        index = np.load(out / f"fmnist-c-{split}-corruption-index.npy")
        want, choice = dc.fashion_mnist_c(clean.images, seed=5)
        assert images.dtype == np.uint8 and images.shape == (len(clean), 28, 28)
        assert labels.dtype == np.int64 and np.array_equal(labels, clean.labels.numpy())
        assert index.dtype == np.int64 and np.array_equal(index, choice.numpy())
        assert np.array_equal(images, want[:, 0].numpy())
    meta = json.loads((out / "fmnist-c.json").read_text())
    assert meta["seed"] == 5 and meta["names"] == list(dc.FMNIST_C_NAMES)
    capsys.readouterr()
    assert write_fmnist_c(fake_root, out, "--seed", "5") == 0
    assert "skipped" in capsys.readouterr().out
    assert write_fmnist_c(fake_root, out, "--seed", "6") == 2  # another seed into the same folder
    assert "other settings" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (("--severities", "3"), "--severities is invalid with --benchmark fashion_mnist_c"),
    (("--split", "val"), "--split='val' is invalid"),
    (("--dataset", "cifar10"), "--dataset='cifar10'"),
])
def test_cli_refuses_options_that_do_not_apply(fake_root, tmp_path, capsys, extra, message):
    assert write_fmnist_c(fake_root, tmp_path / "o", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
    assert main(["corrupt", "--benchmark", "cifar10_c", "--out", str(tmp_path / "p")]) == 2
    assert "--benchmark='cifar10_c' is invalid; allowed: common, cbar, fashion_mnist_c" in capsys.readouterr().err


def test_reader_takes_the_published_npy_and_idx_files(fake_root, tmp_path):
    out = tmp_path / "ours"
    assert write_fmnist_c(fake_root, out) == 0
    ours = read_fashion_mnist_c(out)
    assert ours.info.name == "fashion_mnist" and ours.images.shape == (40, 1, 28, 28)
    assert torch.equal(fashion_mnist_c_corruptions(out), dc.fashion_mnist_c(data.load(
        "fashion_mnist", "test", root=fake_root).images)[1])
    images, labels = ours.images[:, 0].numpy(), ours.labels.numpy()
    # the published repository's layout: generated/npy, and generated/ubyte with raw IDX under ".gz" names
    pub = tmp_path / "published" / "generated"
    (pub / "npy").mkdir(parents=True)
    np.save(pub / "npy" / "fmnist-c-test.npy", images)
    np.save(pub / "npy" / "fmnist-c-test-labels.npy", labels)
    (pub / "ubyte").mkdir()
    (pub / "ubyte" / "fmnist-c-train-ubyte.gz").write_bytes(idx_bytes(images))
    (pub / "ubyte" / "fmnist-c-train-labels-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    for split in ("test", "train"):
        got = read_fashion_mnist_c(tmp_path / "published", split)
        assert torch.equal(got.images, ours.images) and torch.equal(got.labels, ours.labels)
        assert fashion_mnist_c_corruptions(tmp_path / "published", split) is None
    with pytest.raises(FileNotFoundError, match="train split not found"):
        read_fashion_mnist_c(out, "train")
    with pytest.raises(ValueError, match="split='val' is invalid"):
        read_fashion_mnist_c(out, "val")


def _model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def test_mnist_c_accuracy_is_paired_and_equals_the_written_files(fake_root, tmp_path, monkeypatch):
    clean = data.load("fashion_mnist", "test", root=fake_root)
    out = tmp_path / "fmc"
    assert write_fmnist_c(fake_root, out, "--seed", "2") == 0
    a = evaluate.mnist_c_accuracy(_model(0), clean, seed=2, cache_dir=tmp_path / "cache", progress=False)
    b = evaluate.mnist_c_accuracy(_model(1), clean, seed=2, progress=False)
    files = evaluate.mnist_c_accuracy(_model(0), clean, root=out, progress=False)
    choice = dc.fashion_mnist_c(clean.images, seed=2)[1].numpy()
    assert np.array_equal(a["image_corruption"], choice) and np.array_equal(b["image_corruption"], choice)
    assert np.array_equal(files["correct"], a["correct"]) and np.array_equal(files["image_corruption"], choice)
    assert list(a["corruption"].values) == list(dc.FMNIST_C_NAMES) and int(a["count"].sum()) == 40
    assert float(a["accuracy"]) == a["correct"].values.mean()
    assert float(a["clean_accuracy"]) == a["clean_correct"].values.mean()
    for k, name in enumerate(dc.FMNIST_C_NAMES):
        sel = choice == k
        got = float(a["accuracy_per_corruption"].sel(corruption=name))
        assert (np.isnan(got) and not sel.any()) or got == a["correct"].values[sel].mean()
    # cached: the set is not generated again
    monkeypatch.setattr(dc, "fashion_mnist_c", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = evaluate.mnist_c_accuracy(_model(0), clean, seed=2, cache_dir=tmp_path / "cache", progress=False)
    assert again.attrs["key"] == a.attrs["key"] and np.array_equal(again["correct"], a["correct"])
    assert len(list((tmp_path / "cache").glob("mnist_c_*.nc"))) == 1


def test_mnist_c_accuracy_on_published_files_has_no_per_corruption_split(fake_root, tmp_path):
    clean = data.load("fashion_mnist", "test", root=fake_root)
    out = tmp_path / "fmc"
    assert write_fmnist_c(fake_root, out) == 0
    (out / "fmnist-c-test-corruption-index.npy").unlink()  # as published: no record of the corruption
    r = evaluate.mnist_c_accuracy(_model(0), clean, root=out, n_test=25, progress=False)
    mine = evaluate.mnist_c_accuracy(_model(0), clean, n_test=25, progress=False)
    assert np.all(r["image_corruption"].values == -1) and np.all(np.isnan(r["accuracy_per_corruption"].values))
    assert float(r["accuracy"]) == float(mine["accuracy"]) and r.sizes["image"] == 25


def test_mnist_c_accuracy_bad_inputs(fake_root, tmp_path):
    clean = data.load("fashion_mnist", "test", root=fake_root)
    other = data.ImageSet(data.DatasetInfo("toy", 1, 10, 28, (0.5,), (0.5,), "cifar"), clean.images, clean.labels)
    with pytest.raises(ValueError, match="dataset='toy' is invalid"):
        evaluate.mnist_c_accuracy(_model(0), other)
    with pytest.raises(ValueError, match="n_test=0 is invalid"):
        evaluate.mnist_c_accuracy(_model(0), clean, n_test=0)
    with pytest.raises(ValueError, match="seed='1' is invalid"):
        evaluate.mnist_c_accuracy(_model(0), clean, seed="1")
    with pytest.raises(ValueError, match="model is a str"):
        evaluate.mnist_c_accuracy("mlp", clean)
    out = tmp_path / "fmc"
    assert write_fmnist_c(fake_root, out) == 0
    shuffled = data.ImageSet(clean.info, clean.images, clean.labels.roll(1))
    with pytest.raises(ValueError, match="labels are not those"):
        evaluate.mnist_c_accuracy(_model(0), shuffled, root=out)
