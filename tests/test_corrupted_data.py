"""The `corrupt` CLI writer and the dstlib.data.corrupted readers: round trips, skipping,
atomic outputs and clear errors for wrong layouts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dstlib.corruptions as C
from dstlib import data
from dstlib.cli import main
from dstlib.data import corrupted
from _corruption_refs import natural_images

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FMNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="Fashion-MNIST not installed")
def test_cli_npy_layout_round_trip_and_skip(tmp_path, capsys):
    out = tmp_path / "fmnist-c"
    argv = ["corrupt", "--dataset", "fashion_mnist", "--out", str(out), "--limit", "30",
            "--corruptions", "gaussian_noise,contrast", "--no-progress", "--batch-size", "7"]
    assert main(argv) == 0
    test = data.load("fashion_mnist", "test")
    arr = np.load(out / "gaussian_noise.npy")
    assert arr.shape == (150, 28, 28, 1) and arr.dtype == np.uint8
    assert np.array_equal(np.load(out / "labels.npy"), np.tile(test.labels[:30].numpy(), 5))
    assert sorted(corrupted.corruptions(out)) == ["contrast", "gaussian_noise"]
    for s in (1, 5):
        ds = corrupted.read(out, "gaussian_noise", s, dataset="fashion_mnist")
        expect = C.corrupt(test.images[:30], "gaussian_noise", s, seed=0, index=torch.arange(30))
        assert torch.equal(ds.images, expect) and torch.equal(ds.labels, test.labels[:30])
    mtime = (out / "contrast.npy").stat().st_mtime_ns
    assert main(argv) == 0 and "skipped 2" in capsys.readouterr().out
    assert (out / "contrast.npy").stat().st_mtime_ns == mtime
    assert not list(out.glob(".*.tmp"))
    # other settings in the same folder are refused, bad options are one-line errors
    assert main(argv + ["--seed", "3"]) == 2
    assert main(["corrupt", "--dataset", "fashion_mnist", "--out", str(tmp_path / "x"), "--corruptions", "fogg"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "'fogg'" in err


def test_cli_folder_layout_jpeg85(tmp_path, monkeypatch):
    info = data.DatasetInfo("tiny_imagenet", 3, 200, 64, (0.5,) * 3, (0.25,) * 3, "tiny")
    images = natural_images(6, 64, seed=3)
    labels = torch.tensor([0, 1, 1, 2, 0, 2])
    monkeypatch.setattr(data, "load", lambda *a, **k: data.ImageSet(info, images, labels))
    out = tmp_path / "tin-c"
    assert main(["corrupt", "--dataset", "tiny_imagenet", "--out", str(out), "--corruptions", "fog",
                 "--severities", "2,4", "--no-progress"]) == 0
    assert json.loads((out / "corrupt.json").read_text())["jpeg"] is True
    assert corrupted.layout(out) == "folders" and corrupted.severities(out, "fog") == ["2", "4"]
    ds = corrupted.read(out, "fog", 2)
    assert len(ds) == 6 and sorted(ds.labels.tolist()) == sorted(labels.tolist())
    got = ds.load().images
    order = [int(f.stem) for f in ds.files]
    assert torch.equal(got, C.corrupt_as_saved(images, "fog", 2)[order])  # JPEG q85 written by PIL


def _fake_folders(root: Path, corruption: str, sev: str, classes=("n01", "n02")):
    for c in classes:
        d = root / corruption / sev / c
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((64, 64, 3), 40 * i + 10, np.uint8)).save(d / f"{i}.JPEG", quality=85)


def test_folder_readers_for_c_cbar_and_3dcc(tmp_path):
    _fake_folders(tmp_path / "imagenet-c", "fog", "3")  # ImageNet-C / Tiny-ImageNet-C / 3DCC
    _fake_folders(tmp_path / "cbar", "blue_noise_sample", "0.8")  # C-bar names severities by value
    _fake_folders(tmp_path / "cbar", "blue_noise_sample", "1.6")
    ds = corrupted.read_folders(tmp_path / "imagenet-c", "fog", 3)
    assert len(ds) == 4 and ds.labels.tolist() == [0, 0, 1, 1] and ds[0][0].shape == (3, 64, 64)
    assert corrupted.severities(tmp_path / "cbar", "blue_noise_sample") == ["0.8", "1.6"]
    ds = corrupted.read_folders(tmp_path / "cbar", "blue_noise_sample", "1.6", classes=["n00", "n01", "n02"])
    assert ds.labels.tolist() == [1, 1, 2, 2]


def test_clear_errors_for_wrong_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        corrupted.read(tmp_path / "missing", "fog", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds neither layout"):
        corrupted.layout(tmp_path / "empty")
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "labels.npy", np.zeros(12, np.int64))
    np.save(npy / "fog.npy", np.zeros((12, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="not 5 severities"):
        corrupted.read_npy(npy, "fog", 1)
    with pytest.raises(FileNotFoundError, match="corruption='snow'.*present: fog"):
        corrupted.read_npy(npy, "snow", 1)
    with pytest.raises(ValueError, match="severity=6 is invalid"):
        corrupted.read_npy(npy, "fog", 6)
    np.save(npy / "fog.npy", np.zeros((10, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="is not the layout"):
        corrupted.read_npy(npy, "fog", 1)
    _fake_folders(tmp_path / "f", "fog", "1")
    with pytest.raises(FileNotFoundError, match="severity=2 not found.*present: 1"):
        corrupted.read_folders(tmp_path / "f", "fog", 2)
    with pytest.raises(ValueError, match="not in `classes`"):
        corrupted.read_folders(tmp_path / "f", "fog", 1, classes=["n01"])
