import pytest
import torch

from dstlib import data, models, video_models


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", [n for n in models.names() if n not in video_models.NAMES])  # clips: test_video_models
@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10"])
def test_every_registered_model_maps_images_to_logits(name, dataset):
    info = data.info(dataset)
    torch.manual_seed(0)
    model = models.create(name, dataset).eval()
    x = torch.randn(2, info.channels, info.image_size, info.image_size)
    assert model(x).shape == (2, info.num_classes)
    last = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert last.out_features == info.num_classes


@pytest.mark.parametrize("name,dataset,millions", [
    ("vgg16", "cifar10", 15.25),            # paper Table 5
    ("resnet34", "cifar100", 21.33),        # paper Table 6
    ("efficientnet_b0", "tiny_imagenet", 4.26),  # paper Table 7 (timm, stride-2 stem kept at 64 px)
    ("resnet50", "imagenet", 25.56),
])
def test_parameter_counts_match_the_paper(name, dataset, millions):
    assert round(n_params(models.create(name, dataset)) / 1e6, 2) == millions


def test_small_input_stem():
    r = models.create("resnet18", "cifar10")
    assert r.conv1.stride == (1, 1) and isinstance(r.maxpool, torch.nn.Identity)
    assert models.create("resnet18", "cifar10", stem="standard").conv1.stride == (2, 2)
    assert models.create("efficientnet_b0", "tiny_imagenet").conv_stem.stride == (2, 2)
    assert models.create("efficientnet_b0", "cifar10").conv_stem.stride == (1, 1)
    gray = models.create("resnet18", "fashion_mnist")
    assert gray.conv1.in_channels == 1 and gray(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_timm_transformer_takes_the_dataset_resolution():
    m = models.create("deit_tiny_patch16_224", "cifar10").eval()
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_widths_and_unknown_names():
    m = models.create("mlp", "fashion_mnist", widths=(64, 32))
    assert [l.out_features for l in m.modules() if isinstance(l, torch.nn.Linear)] == [64, 32, 10]
    with pytest.raises(ValueError) as e:
        models.create("resnt50", "cifar10")
    assert "cnn, cnn3d, i3d_r50, lenet300_100, lenet5, mlp, r3d50, resnet34, slow_r50, vgg16" in str(e.value)
    assert "did you mean resnet50" in str(e.value)
    with pytest.raises(ValueError, match="widths=.*vgg16"):
        models.create("vgg16", "cifar10", widths=(3,))
    with pytest.raises(ValueError, match="stem='tiny' is invalid; allowed: auto, small, standard"):
        models.create("cnn", "cifar10", stem="tiny")
