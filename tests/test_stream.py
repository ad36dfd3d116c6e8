"""Training from image folders (dstlib.data.stream, the streamed Trainer): order, per-image augmentation,
worker independence, GPU decoding on its CPU path, exact mid-epoch resume, mixup / CutMix, DeiT's recipe."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import _paper_data
from dstlib import data
from dstlib.config import RunSpec
from dstlib.data import folders, stream
from dstlib.store import Store


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _paper_data.imagenet(root, classes_with_images=6, n_train_per_class=4, n_val_per_class=2)
    _paper_data.tiny_imagenet(root, n_train_per_class=1, n_val=8)
    return root


@pytest.fixture
def env(data_root, monkeypatch):
    monkeypatch.setenv("DSTLIB_DATA", str(data_root))
    return data_root


def imagenet_spec(**changes):
    base = dict(model="cnn", widths=(4, 8), dataset="imagenet", epochs=2, batch_size=8, lr=0.05,
                augmentation="rrc_flip", method="rigl", sparsity=0.5, update_interval=2)
    return RunSpec(**{**base, **changes})


def test_epoch_order_and_sampler_split_the_global_batch(env):
    a, b = stream.epoch_order(50, 3, 1), stream.epoch_order(50, 3, 1)
    assert np.array_equal(a, b) and sorted(a) == list(range(50))
    assert not np.array_equal(a, stream.epoch_order(50, 3, 2))
    whole = list(stream.BatchSampler(50, 8, seed=3, epoch=1))
    assert len(whole) == 7 and [len(b) for b in whole] == [8] * 6 + [2]  # a last batch of 2 is kept
    ranks = [list(stream.BatchSampler(50, 8, seed=3, epoch=1, rank=r, world=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 6  # the last 2 would leave one image per rank: dropped
    for b, (r0, r1) in enumerate(zip(*ranks)):
        assert sorted(r0 + r1) == sorted(whole[b])
    tail = list(stream.BatchSampler(50, 8, seed=3, epoch=1, start=5))
    assert tail == whole[5:]
    assert stream.steps_in_epoch(49, 8, 2) == 6 and stream.steps_in_epoch(49, 8, 1) == 6
    assert stream.steps_in_epoch(52, 8, 2) == 7  # 4 left: 2 per rank


def test_augmentation_is_a_pure_function_of_seed_epoch_and_image(env):
    train = data.load("imagenet", "train")
    for aug in ("rrc_flip", "deit", "crop_flip", "none"):
        ds = stream.AugmentedFolder(train, seed=0, augmentation=aug, random_erasing=0.5)
        x, y = ds[(1, 3)]
        assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 224, 224) and y == int(train.labels[3])
        assert torch.equal(x, ds[(1, 3)][0])
        assert not torch.equal(x, ds[(2, 3)][0])
    state = (random.getstate(), np.random.get_state()[1].copy())
    stream.AugmentedFolder(train, seed=0, augmentation="deit")[(0, 0)]
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])


def test_rrc_box_stays_inside_and_follows_torchvisions_fallback():
    rng = np.random.default_rng(0)
    for h, w in ((60, 90), (224, 224), (10, 300)):
        for _ in range(200):
            top, left, ch, cw = stream.rrc_box(rng, h, w)
            assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w and ch > 0 and cw > 0
    assert stream.rrc_box(np.random.default_rng(0), 10, 300, scale=(2.0, 2.0)) == (0, 143, 10, 13)


def test_loader_batches_do_not_depend_on_the_workers(env):
    train = data.load("imagenet", "train")
    kw = dict(seed=1, epoch=0, batch_size=8, augmentation="rrc_flip")
    a = list(stream.loader(train, workers=0, **kw))
    b = list(stream.loader(train, workers=2, **kw))
    assert len(a) == len(b) == 3
    assert all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))


def test_gpu_decoding_path_gives_the_workers_images_on_the_cpu(env):
    train = data.load("imagenet", "train")
    worker = stream.AugmentedFolder(train, seed=5, augmentation="rrc_flip")
    encoded = stream.EncodedFolder(train, seed=5, augmentation="rrc_flip")
    items = [(0, i) for i in range(6)]
    data_, params, labels = stream._collate_encoded([encoded[i] for i in items])
    x = stream.decode_batch(data_, params, 224, "cpu")
    assert torch.equal(x, torch.stack([worker[i][0] for i in items]))
    assert labels.tolist() == [worker[i][1] for i in items]
    with pytest.raises(ValueError, match=r"^augmentation='deit' is invalid for GPU decoding; allowed: none, rrc_flip"):
        stream.EncodedFolder(train, seed=5, augmentation="deit")


def test_tiny_imagenet_files_stream_at_64_px(env):
    files = folders.tiny_imagenet_files([env / "tiny_imagenet"], "train", data.info("tiny_imagenet"))
    ds = stream.AugmentedFolder(files, seed=0, augmentation="crop_flip")
    x, _ = ds[(0, 7)]
    assert tuple(x.shape) == (3, 64, 64)
    in_memory = data.load("tiny_imagenet", "train")
    assert torch.equal(files[7][0], in_memory.images[7]) and len(files) == len(in_memory) == 200


def test_streamed_run_resumes_mid_epoch_exactly_and_gpu_decoding_changes_nothing(env, tmp_path, monkeypatch):
    spec = imagenet_spec(mixup=0.4, cutmix=1.0)
    whole = Store(tmp_path / "whole").run(spec, progress=False, workers=0)
    assert whole.history[-1]["test_images"] == 12 and len(whole.history) == 2

    store = Store(tmp_path / "killed", checkpoint_seconds=0)
    saves, real = {"n": 0}, Store._save_checkpoint

    def crash_after_the_fourth(self, folder, state):
        real(self, folder, state)
        saves["n"] += 1
        if saves["n"] == 4:  # step 1 of epoch 2 (3 steps an epoch): mid-epoch
            assert state["position"]["step"] == 1 and state["epoch"] == 1
            raise KeyboardInterrupt
    monkeypatch.setattr(Store, "_save_checkpoint", crash_after_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        store.run(spec, progress=False, workers=0)
    monkeypatch.setattr(Store, "_save_checkpoint", real)
    resumed = store.run(spec, progress=False, workers=0)
    sa, sb = whole.model().state_dict(), resumed.model().state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    assert all(torch.equal(whole.masks[k], resumed.masks[k]) for k in whole.masks)

    gpu = Store(tmp_path / "gpu").run(spec.replace(mixup=0.0, cutmix=0.0), progress=False, workers=0, gpu_decode=True)
    cpu = Store(tmp_path / "cpu").run(spec.replace(mixup=0.0, cutmix=0.0), progress=False, workers=0, gpu_decode=False)
    sa, sb = gpu.model().state_dict(), cpu.model().state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_in_memory_run_resumes_mid_epoch_exactly(tmp_path, tiny_spec, monkeypatch):
    spec = tiny_spec.replace(epochs=2, augmentation="crop_flip", mixup=0.3, cutmix=0.5, method="set",
                             update_interval=3)
    whole = Store(tmp_path / "whole").run(spec, progress=False)
    store = Store(tmp_path / "killed", checkpoint_seconds=0)
    real = Store._save_checkpoint

    def crash_mid_epoch(self, folder, state):
        real(self, folder, state)
        if state.get("position", {}).get("step") == 5 and state["epoch"] == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(Store, "_save_checkpoint", crash_mid_epoch)
    with pytest.raises(KeyboardInterrupt):
        store.run(spec, progress=False)
    monkeypatch.setattr(Store, "_save_checkpoint", real)
    resumed = store.run(spec, progress=False)
    sa, sb = whole.model().state_dict(), resumed.model().state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert resumed.history == [dict(r, seconds=s["seconds"]) for r, s in zip(whole.history, resumed.history)]


def test_deit_recipe_trains_from_folders_and_is_refused_in_memory(env, tmp_path):
    spec = RunSpec(model="deit_tiny_patch16_224", dataset="imagenet", width_multiplier=0.25, epochs=1, batch_size=8,
                   optimizer="adamw", lr=5e-4, weight_decay=0.05, label_smoothing=0.1, augmentation="deit",
                   random_erasing=0.25, mixup=0.8, cutmix=1.0, drop_path=0.1, method="rigl", sparsity=0.1,
                   distribution="erk", sparse_classifier=True, update_interval=1)
    run = Store(tmp_path).run(spec, progress=False, workers=0)
    assert np.isfinite(run.history[-1]["train_loss"]) and run.history[-1]["updates"] >= 1
    with pytest.raises(ValueError, match=r"^augmentation='deit' with random_erasing=0.0 is invalid for cifar10"):
        from dstlib.train import Trainer
        _paper_data.cifar(env, 10, 20, 10)
        Trainer(RunSpec(model="cnn", widths=(4,), dataset="cifar10", augmentation="deit"))


def test_cutmix_pastes_a_box_and_corrects_lam():
    from dstlib.train import cutmix
    x = torch.zeros(4, 1, 10, 10)
    x[1] = 1
    out, lam = cutmix(x, torch.tensor([1, 0, 3, 2]), 0.75, np.random.default_rng(0))
    pasted = int(out[0].sum())
    assert 0 < pasted < 100 and lam == pytest.approx(1 - pasted / 100)
    assert torch.equal(out[2], x[2])  # image 3 is zero as well
