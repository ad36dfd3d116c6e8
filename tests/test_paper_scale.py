"""Paper scale pieces: recipes and their validation, spec fields added without moving old hashes, the paper's
models at reduced width, the published -C sets read in test-set order, checkpoints that cross devices."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import _paper_data
from dstlib import config, data, models
from dstlib.config import RunSpec
from dstlib.store import Store

ROOT = Path(__file__).resolve().parents[1]


# --- recipes and spec fields -------------------------------------------------------------------------
def test_the_paper_recipes_are_valid_and_reach_the_run_specs():
    recipes = config.check_recipes(yaml.safe_load((ROOT / "params/paper/recipes.yaml").read_text()))
    assert {(r["model"], r["dataset"]) for r in recipes} >= {("vgg16", "cifar10"), ("resnet34", "cifar100"),
                                                             ("efficientnet_b0", "tiny_imagenet"),
                                                             ("resnet50", "imagenet"), ("deit_base_patch16_224", "imagenet")}
    for r in recipes:  # left to each method everywhere
        assert "prune_rate_decay" not in r["spec"] and "update_end" not in r["spec"]
    p = config.check_notebook_params("corruptions", yaml.safe_load((ROOT / "params/paper/corruptions.yaml").read_text()))
    spec = importlib.import_module("dstlib.book.plan").base_spec(p, "mest_g", 0.1, 0)
    assert (spec.schedule, spec.lr_step_epochs, spec.weight_decay, spec.augmentation) == ("step", 30, 1e-4, "rrc_flip")
    assert (spec.soft_bound, spec.soft_bound_mode, spec.sparse_classifier, spec.update_interval) == \
        (0.02, "absolute", True, 2000)


@pytest.mark.parametrize("entry,needle", [
    ({"model": "vgg16", "dataset": "cifar10", "spec": {"epochs": 3}}, "field 'epochs' is a notebook parameter"),
    ({"model": "vgg16", "dataset": "cifar10", "spec": {"augmentaton": "crop_flip"}}, "field 'augmentaton' is unknown"),
    ({"model": "vgg16", "dataset": "cifar10", "spec": {"soft_bound_mode": "loose"}}, "soft_bound_mode='loose' is invalid"),
    ({"model": "vgg16", "dataset": "svhn"}, "dataset='svhn' is invalid"),
    ({"model": "vgg16", "dataset": "cifar10", "snapshot_epochs": [0]}, "snapshot_epochs=[0] is invalid"),
    ({"model": "vgg16", "dataset": "cifar10", "tricks": 1}, "key 'tricks' is invalid"),
])
def test_a_bad_recipe_is_a_one_line_error_naming_it(entry, needle):
    with pytest.raises(ValueError) as e:
        config.check_recipes([entry], "params/x/recipes.yaml")
    assert str(e.value).startswith("params/x/recipes.yaml[0]") and needle in str(e.value) and "\n" not in str(e.value)


def test_new_fields_leave_the_hashes_of_stored_runs_alone():
    base = RunSpec(method="rigl")
    assert base.hash() == "d77766132f6591f210734d1ea993919dd248156d3ec173f2290064729eb13f46"  # test_config's pin
    for field, value in (("cutmix", 1.0), ("random_erasing", 0.25), ("drop_path", 0.1), ("width_multiplier", 0.5)):
        assert field not in base.canonical() and base.replace(**{field: value}).hash() != base.hash()
    with pytest.raises(ValueError, match=r"^width_multiplier=0.0 is invalid"):
        RunSpec(width_multiplier=0)
    with pytest.raises(ValueError, match=r"^augmentation='rand' is invalid; allowed: none, crop_flip, rrc_flip, deit"):
        RunSpec(augmentation="rand")


# --- the paper's models at reduced width ---------------------------------------------------------------
@pytest.mark.parametrize("name,dataset,full", [("vgg16", "cifar10", 15.25e6), ("resnet34", "cifar100", 21.33e6),
                                                ("resnet50", "imagenet", 25.56e6),
                                                ("efficientnet_b0", "tiny_imagenet", 4.26e6),
                                                ("deit_small_patch16_224", "imagenet", 22.05e6)])
def test_width_multiplier_shrinks_the_paper_models(name, dataset, full):
    info = data.info(dataset)
    net = models.create(name, info, width_multiplier=0.25)
    n = sum(p.numel() for p in net.parameters())
    assert n < 0.15 * full
    x = torch.zeros(2, 3, info.image_size, info.image_size)
    assert net.eval()(x).shape == (2, info.num_classes)


def test_width_multiplier_and_drop_path_are_refused_where_they_mean_nothing():
    with pytest.raises(ValueError, match=r"^width_multiplier=0.5 is invalid for model 'lenet5'; allowed: 1"):
        models.create("lenet5", "fashion_mnist", width_multiplier=0.5)
    with pytest.raises(ValueError, match=r"^width_multiplier=0.5 is invalid for timm model 'mobilenetv3_small_050'"):
        models.create("mobilenetv3_small_050", "cifar10", width_multiplier=0.5)
    with pytest.raises(ValueError, match=r"^drop_path=0.1 is invalid for model 'vgg16'"):
        models.create("vgg16", "cifar10", drop_path=0.1)
    assert models.create("vgg16", "cifar10", width_multiplier=1.0).classifier[0].in_features == 512


# --- the published corrupted sets ------------------------------------------------------------------------
@pytest.fixture
def published(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTLIB_DATA", str(tmp_path))
    _paper_data.cifar(tmp_path, 10, 20, 12)
    tiny = _paper_data.tiny_imagenet(tmp_path, n_train_per_class=1, n_val=10)
    _paper_data.imagenet(tmp_path, classes_with_images=3, n_train_per_class=1, n_val_per_class=2)
    test = data.load("cifar10", "test")
    _paper_data.cifar10_c(tmp_path, test.images.numpy(), test.labels.numpy(), ["fog", "frost"])
    _paper_data.tiny_imagenet_c(tmp_path, tiny, ["gaussian_noise"], severities=(2,))
    return tmp_path


def test_published_sets_are_found_and_read_in_test_set_order(published):
    from dstlib.data import official
    root = official.find("cifar10")
    assert root == published / "cifar10_c" / "CIFAR-10-C" and official.available(root) == ["fog", "frost"]
    test = data.load("cifar10", "test")
    x = official.images(root, test, "fog", 3, 5)
    expected = np.clip(test.images[:5].numpy().astype(int) - 30, 0, 255)
    assert np.array_equal(x.numpy(), expected)
    tiny_root = official.find("tiny_imagenet")
    tiny = data.load("tiny_imagenet", "test")
    ds = official.images(tiny_root, tiny, "gaussian_noise", 2, 10)
    assert torch.equal(ds.labels, tiny.labels[:10])
    for k in (0, 4, 9):  # the inverted copy of our test image k, though the files are sorted by class
        diff = (255 - ds[k][0].int() - tiny.images[k].int()).abs().float().mean()
        assert diff < 6, k
    assert official.find("imagenet") is None and official.find("cifar100") is None
    next(tiny_root.glob("gaussian_noise/2/*/val_3.JPEG")).unlink()
    with pytest.raises(ValueError, match=r"gaussian_noise/2: no copy of test image 3 \(n\d+/val_3\)"):
        official.images(tiny_root, tiny, "gaussian_noise", 2, 10)
    note = official.note("cifar10", ["fog", "snow", "frost"])
    assert note == ("Corrupted test images: the published CIFAR-10-C (`$DSTLIB_DATA/cifar10_c/CIFAR-10-C`) for 2 of 3 "
                    "corruptions; generated by `dstlib.corruptions` for snow.")


def test_imagenet_corruptions_are_generated_during_evaluation_and_merged(published, tmp_path):
    from dstlib.book import measure
    params = {"dataset": "imagenet", "n_test": 6, "corruptions": ["fog", "gaussian_noise"], "severities": [1],
              "device": "cpu"}
    images = measure.CorruptedImages.of(params, tmp_path / "runs")
    assert images.on_the_fly == ["fog", "gaussian_noise"] and images.to_generate() == []
    spec = RunSpec(model="cnn", widths=(4,), dataset="imagenet", epochs=1, batch_size=3, augmentation="rrc_flip")
    run = Store(tmp_path / "runs").run(spec, progress=False, workers=0)
    r = measure.run_robustness(run, params, images)
    assert list(r["corruption"].values) == ["fog", "gaussian_noise"] and r["correct"].shape == (2, 1, 6)
    cifar = measure.CorruptedImages.of({**params, "dataset": "cifar10", "corruptions": ["fog", "snow"]},
                                       tmp_path / "runs")
    assert cifar.official == ["fog"] and cifar.to_generate() == [("snow", 1)] and "published=CIFAR-10-C:fog" in cifar.name


# --- checkpoints across devices -----------------------------------------------------------------------
def test_a_run_round_trips_through_the_store_and_a_gpu_checkpoint_resumes_on_the_cpu(tmp_path, tiny_spec, monkeypatch):
    from dstlib.train import Trainer
    spec = tiny_spec.replace(method="rigl", update_interval=2)
    trainer = Trainer(spec)
    trainer.train_epoch()
    state = trainer.state_dict()
    # what a CUDA run's checkpoint holds besides: its CUDA generator state and a bfloat16-free float32 model
    state["cuda_rng"] = torch.zeros(16, dtype=torch.uint8)
    store = Store(tmp_path)
    folder = store.path(spec)
    folder.mkdir(parents=True)
    store._save_checkpoint(folder, state)
    run = store.run(spec, progress=False)  # resumed here, on the CPU
    whole = Store(tmp_path / "whole").run(spec, progress=False)
    a, b = run.model().state_dict(), whole.model().state_dict()
    assert all(torch.equal(a[k], b[k]) and a[k].device.type == "cpu" for k in a)
    loaded = Store(tmp_path).load(spec, device="cpu")
    assert all(torch.equal(loaded.masks[k], whole.masks[k]) for k in whole.masks)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_run_trained_on_cuda_loads_on_the_cpu(tmp_path, tiny_spec):
    spec = tiny_spec.replace(method="set", update_interval=2)
    gpu = Store(tmp_path).run(spec, device="cuda", progress=False)
    cpu = Store(tmp_path).load(spec, device="cpu")
    net = cpu.model()
    assert next(net.parameters()).device.type == "cpu"
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(net(x), gpu.model().cpu()(x), atol=1e-5)
