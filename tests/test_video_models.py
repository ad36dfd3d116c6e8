"""Video networks, sparse training of 3D convolutions, their FLOPs, the training loop on clips and the
corrupted-clip evaluation."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dstlib.corruptions as dc
import dstlib.sparsity as S
from dstlib import data, evaluate, flops, models, video_models
from dstlib.config import RunSpec
from dstlib.sparsity import distributions as D

VIDEO = ("slow_r50", "i3d_r50", "r3d50", "cnn3d")


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name,count", [("slow_r50", 31_841_445), ("i3d_r50", 27_430_821), ("r3d50", 46_405_925)])
def test_parameter_counts_of_the_ucf101_networks(name, count):
    # the analytic counts of the reference notes (101 classes); with 400 classes pytorchvideo's zoo states
    # 32.45 M (Slow R50) and 28.04 M (I3D R50)
    assert n_params(models.create(name, "ucf101")) == count
    kinetics = data.DatasetInfo("k400", 3, 400, 224, (0.45,) * 3, (0.225,) * 3, "ucf101", 8)
    if name != "r3d50":
        assert round(n_params(models.create(name, kinetics)) / 1e6, 2) == {"slow_r50": 32.45, "i3d_r50": 28.04}[name]
    else:
        assert n_params(models.create(name, kinetics)) == 47_018_576


@pytest.mark.parametrize("name", VIDEO)
def test_video_networks_map_clips_to_logits(name):
    info = data.info("moving_fashion_mnist") if name == "cnn3d" else data.info("ucf101")
    torch.manual_seed(0)
    net = models.create(name, info).eval()
    size = 20 if name == "cnn3d" else 64  # small frames keep the test fast; the heads pool adaptively
    x = torch.randn(2, info.channels, info.frames, size, size)
    with torch.no_grad():
        assert net(x).shape == (2, info.num_classes)
    assert isinstance(net.classifier, nn.Linear) and net.classifier.out_features == info.num_classes
    assert any(isinstance(m, nn.Conv3d) for m in net.modules())


def test_reference_layouts():
    slow, i3d = models.create("slow_r50", "ucf101"), models.create("i3d_r50", "ucf101")
    assert slow.stem[0].kernel_size == (1, 7, 7) and i3d.stem[0].kernel_size == (5, 7, 7)
    def kt(net):
        return [[b.conv_a[0].kernel_size[0] for b in s] for s in net.stages if isinstance(s, nn.Sequential)]
    assert kt(slow) == [[1] * 3, [1] * 4, [3] * 6, [3] * 3]
    assert kt(i3d) == [[3] * 3, [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]]
    assert isinstance(i3d.stages[1], nn.MaxPool3d) and i3d.stages[1].kernel_size == (2, 1, 1)
    r3d = models.create("r3d50", "ucf101")
    assert r3d.stem[0].kernel_size == (7, 7, 7) and r3d.stages[1][0].conv_b[0].stride == (2, 2, 2)
    assert n_params(models.create("cnn3d", "moving_fashion_mnist")) == 17_872
    with pytest.raises(ValueError, match=r"widths=\[3\] is invalid for slow_r50"):
        models.create("slow_r50", "ucf101", widths=(3,))


# --- sparse training of 3D convolutions ---------------------------------------------------------------
def test_erk_counts_the_temporal_kernel_dimension():
    net = models.create("cnn3d", "moving_fashion_mnist", widths=(8, 16, 32, 64))
    sp = S.create("rigl", net, total_steps=100, sparsity=0.5, distribution="erk")
    shapes = {n: tuple(p.shape) for n, p in net.named_parameters() if n in sp.masks}
    assert all(len(s) == 5 for s in shapes.values())  # (out, in, t, h, w)
    raw = {n: (s[0] + s[1] + s[2] + s[3] + s[4]) / math.prod(s) for n, s in shapes.items()}
    dens = sp.densities()
    free = [n for n in shapes if dens[n] < 1]
    assert len(free) >= 2
    a, b = free[0], free[1]  # ERK: density ratio = ratio of (n_in + n_out + t + h + w) / (n_in n_out t h w)
    assert dens[a] / dens[b] == pytest.approx(raw[a] / raw[b], rel=1e-3)
    flat = {n: (s[0], s[1], s[3], s[4]) for n, s in shapes.items()}  # dropping t would give other densities
    assert D.erk(list(flat.values()), 0.5) != pytest.approx(D.erk(list(shapes.values()), 0.5))
    total = sum(math.prod(s) for s in shapes.values())
    assert sum(int(m.sum()) for m in sp.masks.values()) == pytest.approx(0.5 * total, abs=len(shapes))


@pytest.mark.parametrize("method", ["set", "rigl", "mest_g", "granet_g"])
def test_dst_updates_the_topology_of_3d_convolutions(method):
    torch.manual_seed(0)
    net = models.create("cnn3d", "moving_fashion_mnist", widths=(8, 16, 32))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    sp = S.create(method, net, optimizer=opt, total_steps=40, sparsity=0.5, distribution="uniform",
                  update_interval=5)
    before = {k: m.clone() for k, m in sp.masks.items()}
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x, y = torch.randn(4, 1, 8, 20, 20, generator=g), torch.randint(0, 8, (4,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        sp.step()
    params = dict(net.named_parameters())
    for k, m in sp.masks.items():
        assert params[k].dim() == 5 and bool((params[k][~m] == 0).all())
    assert any(not torch.equal(before[k], sp.masks[k]) for k in before)


def test_flops_count_3d_convolutions_by_hand():
    net = models.create("cnn3d", "moving_fashion_mnist")
    c = flops.count(net, (1, 8, 20, 20))
    # outputs: 8x10x10 (stride 1,2,2), 4x5x5, 2x3x3; weights 8*1*27, 16*8*27, 32*16*27; linear 32*8
    want = 2 * (8 * 27 * 800 + 16 * 8 * 27 * 100 + 32 * 16 * 27 * 18 + 32 * 8)
    assert c["flops"] == want and c["params"] == 17_872
    sp = S.create("static", net, total_steps=1, sparsity=0.5)
    half = flops.count(net, (1, 8, 20, 20), sp.masks)
    assert half["flops"] < want and half["params"] < 17_872
    assert flops.INPUT_SIZES["ucf101"] == (3, 8, 224, 224)


# --- training on clips and evaluating under the video corruptions --------------------------------------
@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    from dstlib.store import Store
    spec = RunSpec(model="cnn3d", dataset="moving_fashion_mnist", epochs=3, batch_size=64, lr=0.05,
                   method="rigl", sparsity=0.3, distribution="erk", update_interval=4, train_subset=3072,
                   monitor_size=200)
    return Store(tmp_path_factory.mktemp("store")).run(spec, progress=False)


def test_a_sparse_3d_cnn_trains_on_clips(clip_run):
    h = clip_run.history
    assert len(h) == 3 and h[-1]["train_loss"] < h[0]["train_loss"] and h[-1]["test_acc"] > 0.3  # chance 0.125
    masks = clip_run.masks
    assert masks and all(m.dim() == 5 for m in masks.values())


def test_clip_augmentation_crops_and_flips_every_frame_alike():
    from dstlib.train import augment_batch, crop_flip, resized_crop_flip
    x = torch.randint(0, 256, (4, 1, 1, 16, 16), dtype=torch.uint8).expand(4, 6, 1, 16, 16).contiguous()
    for aug in (crop_flip, resized_crop_flip):
        y = augment_batch(aug, x, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and all(torch.equal(y[:, t], y[:, 0]) for t in range(6))


def test_video_robustness_is_paired_per_clip_and_cached(clip_run, monkeypatch):
    test = data.load("moving_fashion_mnist", "test")
    names = ["gaussian_noise", "reverse_sampling", "jumble"]
    r = evaluate.robustness(clip_run, test, names, (1, 4), n_test=48, batch_size=20, progress=False)
    assert r["correct"].dims == ("corruption", "severity", "image") and r.sizes["image"] == 48
    net = clip_run.model()
    x = test.images[:48]
    # by hand: the clips corrupt_video makes, temporal ones on the whole videos (the default)
    videos = torch.stack(test.videos(range(48)))
    for c in names:
        for s in (1, 4):
            if c in dc.TEMPORAL:
                xc = dc.corrupt_video(videos, c, s, index=torch.arange(48), frames=8)
            else:
                xc = dc.corrupt_video(x, c, s, index=torch.arange(48))
            with torch.no_grad():
                pred = net(data.normalize(xc, test.info)).argmax(1)
            got = r["correct"].sel(corruption=c, severity=s).values.tolist()
            assert (pred == test.labels[:48]).numpy().tolist() == got
    # cached in the run's folder: no corruption is computed again
    monkeypatch.setattr(dc, "corrupt_video", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = evaluate.robustness(clip_run, test, names, (1, 4), n_test=48, progress=False)
    assert (again["correct"] == r["correct"]).all()


def test_clip_mode_differs_from_video_mode_only_for_temporal_corruptions(clip_run):
    test = data.load("moving_fashion_mnist", "test")
    kw = dict(severities=(2,), n_test=40, progress=False)
    whole = evaluate.robustness(clip_run, test, ["freeze", "translate"], temporal="video", **kw)
    clip = evaluate.robustness(clip_run, test, ["freeze", "translate"], temporal="clip", **kw)
    assert whole.attrs["key"] != clip.attrs["key"]
    assert (whole["correct"].sel(corruption="translate") == clip["correct"].sel(corruption="translate")).all()
    assert evaluate.default_corruptions(test.info) == dc.VIDEO_NAMES


def test_video_robustness_bad_arguments(clip_run):
    test = data.load("moving_fashion_mnist", "test")
    for kwargs, message in [(dict(corruptions=["fog"]), "corruptions contains 'fog'"),
                            (dict(temporal="audio"), "temporal='audio' is invalid; allowed: video, clip"),
                            (dict(table="cifar"), "table='cifar' is invalid for clips; allowed: None, ucf101, small"),
                            (dict(jpeg=True), "jpeg=True is invalid for clips"),
                            (dict(suite="cbar"), "suite='cbar' is invalid for clips")]:
        with pytest.raises(ValueError, match=message):
            evaluate.robustness(clip_run, test, **{"n_test": 4, "progress": False, **kwargs})


def test_normalize_puts_clips_in_conv3d_layout():
    info = data.info("moving_fashion_mnist")
    x = torch.randint(0, 256, (2, 8, 1, 20, 20), dtype=torch.uint8)
    y = data.normalize(x, info)
    assert y.shape == (2, 1, 8, 20, 20)
    assert torch.allclose(y[1, 0, 3], (x[1, 3, 0].float() / 255 - info.mean[0]) / info.std[0])
    assert set(video_models.__dict__) >= {"slow_r50", "i3d_r50", "r3d50", "cnn3d"}
