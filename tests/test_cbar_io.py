"""C-bar on disk and in evaluation: `python -m dstlib corrupt --benchmark cbar` writes the
CIFAR-10-C-bar npy and ImageNet-C-bar folder layouts, dstlib.data reads them back, and
`evaluate.robustness(suite="cbar")` evaluates the C-bar set with its own cache key."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import dstlib.corruptions as C
from dstlib import data, evaluate
from dstlib.cli import main
from dstlib.data import corrupted, folders
from _corruption_refs import natural_images

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FMNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="Fashion-MNIST not installed")
def test_cli_cifar_cbar_npy_round_trip(tmp_path, capsys):
    out = tmp_path / "fmnist-cbar"
    argv = ["corrupt", "--benchmark", "cbar", "--dataset", "fashion_mnist", "--out", str(out), "--limit", "12",
            "--no-progress", "--batch-size", "5"]
    assert main(argv) == 0
    assert sorted(corrupted.corruptions(out)) == sorted(C.CIFAR_CBAR_NAMES)
    meta = json.loads((out / "corrupt.json").read_text())
    assert meta["benchmark"] == "cbar" and meta["table"] == "cifar" and meta["layout"] == "npy"
    test = data.load("fashion_mnist", "test")
    arr = np.load(out / "lines.npy")
    assert arr.shape == (60, 28, 28, 1) and arr.dtype == np.uint8  # severity-major, gray
    assert np.array_equal(np.load(out / "labels.npy"), np.tile(test.labels[:12].numpy(), 5))
    for name in ("lines", "transverse_chromatic_abberation"):
        for s in (2, 5):
            ds = corrupted.read(out, name, s, dataset="fashion_mnist")
            expect = C.corrupt(test.images[:12], name, s, seed=0, index=torch.arange(12))
            assert torch.equal(ds.images, expect)
    assert main(argv) == 0 and "skipped 10" in capsys.readouterr().out
    assert main(argv[:-2] + ["--corruptions", "fog"]) == 2
    assert "allowed with --benchmark cbar" in capsys.readouterr().err


def _imagenet_like(root: Path) -> data.DatasetInfo:
    """Two wnid class folders of photographs larger than 224 px, as ImageNet's val."""
    info = data.DatasetInfo("imagenet", 3, 1000, 224, (0.5,) * 3, (0.25,) * 3, "imagenet")
    photos = natural_images(3, 256, seed=30)
    for i, wnid in enumerate(("n01440764", "n01443537", "n01443537")):
        d = root / "val" / wnid
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(photos[i].permute(1, 2, 0).numpy()).resize((300, 260))
        im.save(d / f"ILSVRC2012_val_{i:08d}.JPEG", quality=95)
    return info


def test_cli_imagenet_cbar_folders_keep_wnids_and_file_names(tmp_path, monkeypatch):
    info = dataclasses.replace(_imagenet_like(tmp_path / "imagenet"), num_classes=2)
    ds = folders.read_class_folders(tmp_path / "imagenet" / "val", info, "imagenet", "")
    monkeypatch.setattr(data, "load", lambda *a, **k: ds)
    out = tmp_path / "imagenet-c-bar"
    assert main(["corrupt", "--benchmark", "cbar", "--dataset", "imagenet", "--out", str(out),
                 "--corruptions", "sparkles,caustic_refraction", "--severities", "2", "--no-progress"]) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.JPEG"))
    assert files[0] == "caustic_refraction/2/n01440764/ILSVRC2012_val_00000000.JPEG" and len(files) == 6
    back = corrupted.read_folders(out, "sparkles", 2)
    assert back.classes == ["n01440764", "n01443537"] and back.labels.tolist() == [0, 1, 1]
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    assert torch.equal(back.load().images, C.corrupt_as_saved(images, "sparkles", 2, index=torch.arange(3)))


def test_reader_maps_severities_to_the_generators_level_folders(tmp_path):
    for lev in ("1.00", "2.00", "3.00", "5.00", "6.00"):  # sparkles' ImageNet-C-bar levels
        d = tmp_path / "sparkles" / lev / "n01"
        d.mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), int(float(lev) * 10), np.uint8)).save(d / "a.png")
    assert corrupted.read_folders(tmp_path, "sparkles", 4).files[0].parent.parent.name == "5.00"
    assert corrupted.read_folders(tmp_path, "sparkles", "3.00").files[0].parent.parent.name == "3.00"
    with pytest.raises(FileNotFoundError, match="severity=6 not found"):
        corrupted.read_folders(tmp_path, "sparkles", 6)


class Brightness(nn.Module):
    """Predicts class 1 for bright images: a model whose accuracy the corruptions move."""

    def __init__(self, w: float = 1.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w]))

    def forward(self, x):
        m = x.mean((1, 2, 3)) * self.w
        return torch.stack([-m, m], 1)


def _toy(n=12):
    info = data.DatasetInfo("toy", 1, 2, 16, (0.5,), (0.5,), "cifar")
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randint(150, 256, (n // 2, 1, 16, 16), generator=g, dtype=torch.uint8),
                   torch.randint(0, 100, (n // 2, 1, 16, 16), generator=g, dtype=torch.uint8)])
    return data.ImageSet(info, x, torch.tensor([1] * (n // 2) + [0] * (n // 2)))


def test_robustness_on_the_cbar_suite(tmp_path):
    ds = _toy()
    r = evaluate.robustness(Brightness(), ds, suite="cbar", severities=(1, 5), batch_size=5, progress=False,
                            cache_dir=tmp_path)
    assert tuple(r["corruption"].values) == C.CIFAR_CBAR_NAMES and r["accuracy"].shape == (10, 2)
    spec = json.loads(r.attrs["eval_spec"])
    assert spec["suite"] == "cbar" and spec["corruptions_version"] == C.CBAR_VERSION and spec["table"] == "cifar"
    # per image: the model's answer on exactly the images corrupt_as_saved gives
    y = C.corrupt_as_saved(ds.images, "lines", 5, seed=0, index=torch.arange(len(ds)))
    pred = Brightness()(data.normalize(y, ds.info)).argmax(1)
    assert np.array_equal(r["correct"].sel(corruption="lines", severity=5).values, (pred == ds.labels).numpy())
    # cached, and keyed apart from the common suite and from other settings
    assert evaluate.robustness(Brightness(), ds, suite="cbar", severities=(1, 5), progress=False,
                               cache_dir=tmp_path).attrs["key"] == r.attrs["key"]
    common = evaluate.robustness(Brightness(), ds, severities=(1, 5), progress=False, corruptions=["fog"])
    assert "suite" not in json.loads(common.attrs["eval_spec"]) and common.attrs["key"] != r.attrs["key"]
    other = evaluate.robustness(Brightness(), ds, suite="cbar", severities=(1, 5), corruptions=["lines"],
                                progress=False)
    assert other.attrs["key"] != r.attrs["key"]
    # relative gain per C-bar corruption and severity, as for the common ones
    g = evaluate.relative_gain(evaluate.robustness(Brightness(2.0), ds, suite="cbar", severities=(1, 5),
                                                   progress=False), r)
    assert g["gain"].dims == ("corruption", "severity") and g["gain"].shape == (10, 2)


def test_robustness_suite_errors():
    ds = _toy()
    with pytest.raises(ValueError, match="suite='c-bar' is invalid; allowed: common, cbar"):
        evaluate.robustness(Brightness(), ds, suite="c-bar", progress=False)
    with pytest.raises(ValueError, match="corruptions contains 'fog'; allowed \\(suite 'cbar'\\)"):
        evaluate.robustness(Brightness(), ds, suite="cbar", corruptions=["fog"], progress=False)
    with pytest.raises(ValueError, match="corruptions contains 'sparkles'; allowed \\(suite 'common'\\)"):
        evaluate.robustness(Brightness(), ds, corruptions=["sparkles"], progress=False)
    with pytest.raises(ValueError, match="table='tiny' is invalid for suite='cbar'"):
        evaluate.robustness(Brightness(), ds, suite="cbar", table="tiny", progress=False)
    with pytest.raises(ValueError, match="'caustic_refraction'; allowed \\(suite 'cbar'\\)"):
        evaluate.robustness(Brightness(), ds, suite="cbar", corruptions=["caustic_refraction"], progress=False)
    assert evaluate.default_corruptions(data.INFO["imagenet"], "cbar") == C.CBAR_NAMES
    assert evaluate.default_corruptions(data.INFO["fashion_mnist"], "cbar") == C.CIFAR_CBAR_NAMES
