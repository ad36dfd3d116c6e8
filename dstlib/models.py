"""Model registry: `create(name, dataset)` for our models and any timm model.

Our models (`names()`): `mlp`, `lenet300_100`, `cnn`, `lenet5`, `vgg16`,
`resnet34`, and the video networks of `dstlib.video_models` (`slow_r50`,
`i3d_r50`, `r3d50`, `cnn3d`), which take clips (N, C, T, H, W). Any other name is
looked up in timm and built without pretrained weights, with the dataset's
channels and classes. Every model takes normalised float images (N, C, H, W)
and returns logits; the classifier head of our models is the attribute
`classifier` (a Linear, or for vgg16 the 512-512-classes head); the sparse
methods keep it dense by default.

Small inputs: with `stem="auto"` (the default) images of 32 px or less get a
small-input stem: timm CNNs keep their first convolution but with stride 1 and
lose a stem max-pool, so a 32-px image is not reduced to 8 px before the first
block (as the paper's CIFAR ResNet34, a 3x3 stride-1 stem without max-pool).
Larger images keep timm's stem: the paper's EfficientNet-B0 on 64-px
Tiny-ImageNet keeps the stride-2 stem. `stem="small"` / `"standard"` force
either choice.

`width_multiplier` scales the channel widths of `vgg16`, `resnet34`, timm's
ResNets and `efficientnet_b0`, and the embedding width of timm's ViT / DeiT
models (heads kept, so each head is narrower): the paper's architectures at
reduced width, for tests and budgets; 1 builds the paper's models.
`drop_path` is timm's stochastic depth rate (`drop_path_rate`).
"""
from __future__ import annotations

import difflib
from typing import Callable

import torch
from torch import nn

from dstlib.config import STEMS, check_choice

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def add(fn):
        _REGISTRY[name] = fn
        return fn
    return add


def names() -> list[str]:
    """Our own model names (any timm model name is accepted as well)."""
    return sorted(_REGISTRY)


WIDTH_SCALED = ("vgg16", "resnet34")  # ours; timm: resnet*, efficientnet_b0, vit_* / deit_*


def create(name: str, dataset, *, widths: tuple[int, ...] = (), stem: str = "auto", width_multiplier: float = 1.0,
           drop_path: float = 0.0) -> nn.Module:
    """Build model `name` for `dataset` (a name or a `dstlib.data.DatasetInfo`)."""
    from dstlib.data import info as dataset_info  # data imports config only; no cycle

    info = dataset_info(dataset) if isinstance(dataset, str) else dataset
    check_choice("stem", stem, STEMS)
    small = stem == "small" or (stem == "auto" and info.image_size <= 32)
    if name in _REGISTRY:
        if drop_path:
            raise ValueError(f"drop_path={drop_path!r} is invalid for model {name!r}; allowed: 0 (timm models only)")
        if name in WIDTH_SCALED:
            return _REGISTRY[name](info, widths=tuple(widths), small=small, width=width_multiplier)
        if width_multiplier != 1:
            raise ValueError(f"width_multiplier={width_multiplier!r} is invalid for model {name!r}; allowed: 1 "
                             f"(its widths set it; scaled: {', '.join(WIDTH_SCALED)} and timm ResNets, "
                             f"efficientnet_b0, ViT / DeiT)")
        return _REGISTRY[name](info, widths=tuple(widths), small=small)
    check_name(name)
    if widths:
        raise ValueError(f"widths={list(widths)!r} is invalid for timm model {name!r}; allowed: () ")
    return _timm_model(name, info, small, width_multiplier, drop_path)


def check_name(name: str) -> None:
    """Raise the one-line error unless `name` is ours or a timm model."""
    import timm

    if name in _REGISTRY or name in timm.list_models():
        return
    close = difflib.get_close_matches(name, names() + timm.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"model={name!r} is unknown; valid: {', '.join(names())}, or any timm model "
                     f"name (timm.list_models(), e.g. resnet50, efficientnet_b0, deit_base_patch16_224){hint}")


# --- our models -------------------------------------------------------------------------
class MLP(nn.Module):
    """Flatten, then Linear-ReLU per hidden width, then the linear classifier."""

    def __init__(self, in_features: int, widths: tuple[int, ...], num_classes: int):
        super().__init__()
        layers, prev = [nn.Flatten()], in_features
        for w in widths:
            layers += [nn.Linear(prev, w), nn.ReLU(inplace=True)]
            prev = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("mlp")
def mlp(info, widths=(), small=True) -> nn.Module:
    """MLP, default 3 hidden layers of 1000 (the CHT paper's Fashion-MNIST MLP)."""
    return MLP(info.channels * info.image_size ** 2, widths or (1000, 1000, 1000), info.num_classes)


@register("lenet300_100")
def lenet300_100(info, widths=(), small=True) -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998): 784-300-100-10 with ReLU, 0.27 M parameters on 28-px gray images.

    The classic MLP of the sparse-training literature; the quick profile's fully connected model.
    """
    return MLP(info.channels * info.image_size ** 2, widths or (300, 100), info.num_classes)


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max-pooling: conv5x5(c1, pad 2)-pool-conv5x5(c2)-pool, then FC 120-84-classes.

    On 28-px images the first convolution pads by 2 (the classic 32-px input), so the second
    produces 10x10 maps and the head reads c2 x 5 x 5 features; on 32-px images there is no padding.
    """

    def __init__(self, channels: int, image_size: int, widths: tuple[int, ...], num_classes: int):
        super().__init__()
        c1, c2 = widths
        pad = max(0, (32 - image_size) // 2)
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            # pooling before the ReLU computes the same function (ReLU is monotone) on a quarter of the values
            nn.Conv2d(channels, c1, 5, padding=pad), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 5), nn.MaxPool2d(2), nn.ReLU(inplace=True), nn.Flatten(),
            nn.Linear(c2 * side * side, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(84, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("lenet5")
def lenet5(info, widths=(), small=True) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998), default channels (6, 16): 61.7 k parameters on 28-px gray images.

    The quick profile's convolutional model; `widths` = (c1, c2) widens both convolutions.
    """
    if widths and len(widths) != 2:
        raise ValueError(f"widths={list(widths)!r} is invalid for lenet5; allowed: () or two channel counts (c1, c2)")
    return LeNet5(info.channels, info.image_size, widths or (6, 16), info.num_classes)


def conv_bn(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """VGG-style: per width two 3x3 conv-BN-ReLU and a 2x2 max-pool; global average pool; linear."""

    def __init__(self, channels: int, widths: tuple[int, ...], num_classes: int):
        super().__init__()
        layers, prev = [], channels
        for w in widths:
            layers += conv_bn(prev, w) + conv_bn(w, w) + [nn.MaxPool2d(2)]
            prev = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("cnn")
def cnn(info, widths=(), small=True) -> nn.Module:
    """Small VGG-style CNN for 28-32 px images, default widths (32, 64, 128): 0.29 M parameters."""
    return SmallCNN(info.channels, widths or (32, 64, 128), info.num_classes)


VGG16_CONVS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """The CIFAR VGG16 of the paper (Table 5: 15.25 M parameters, 0.63 GFLOPs on CIFAR-10).

    13 3x3 convolutions (no bias) each followed by BatchNorm and ReLU, 5
    max-pools, then a 512-512-classes classifier with BatchNorm, as in the
    sparse-training CIFAR code the paper builds on. The whole head is the
    attribute `classifier`, so it stays dense by default as in that code
    (the paper's Table 5 parameter counts need it).
    """

    def __init__(self, channels: int, num_classes: int, width: float = 1.0):
        super().__init__()
        layers, prev = [], channels
        for v in VGG16_CONVS:
            if v == "M":  # ceil_mode: 28-px images still reach 1x1 (identical at 32 px)
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += conv_bn(prev, _scaled(v, width))
                prev = _scaled(v, width)
        head = _scaled(512, width)
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(prev, head), nn.BatchNorm1d(head), nn.ReLU(inplace=True),
                                        nn.Linear(head, head), nn.BatchNorm1d(head), nn.ReLU(inplace=True),
                                        nn.Linear(head, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


@register("vgg16")
def vgg16(info, widths=(), small=True, width=1.0) -> nn.Module:
    if widths:
        raise ValueError(f"widths={list(widths)!r} is invalid for vgg16; allowed: () (fixed architecture; "
                         f"width_multiplier scales it)")
    return VGG16(info.channels, info.num_classes, width)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet34(nn.Module):
    """The CIFAR ResNet34 (Table 6: 21.33 M parameters, 2.32 GFLOPs for 100 classes).

    A 3x3 stride-1 stem without max-pool (when `small`; else timm's 7x7
    stride-2 stem and max-pool), BasicBlocks (3, 4, 6, 3) of widths 64-512,
    projection shortcuts, global average pool, linear classifier.
    """

    def __init__(self, channels: int, num_classes: int, small: bool = True, width: float = 1.0):
        super().__init__()
        c0 = _scaled(64, width)
        if small:
            self.stem = nn.Sequential(nn.Conv2d(channels, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(channels, c0, 7, 2, 3, bias=False), nn.BatchNorm2d(c0),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], c0
        for base, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(n):
                blocks.append(BasicBlock(cin, _scaled(base, width), stride if i == 0 else 1))
                cin = _scaled(base, width)
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.layers(self.stem(x))))


@register("resnet34")
def resnet34(info, widths=(), small=True, width=1.0) -> nn.Module:
    if widths:
        raise ValueError(f"widths={list(widths)!r} is invalid for resnet34; allowed: () (fixed architecture; "
                         f"width_multiplier scales it)")
    return ResNet34(info.channels, info.num_classes, small, width)


# --- timm ---------------------------------------------------------------------------------
def _timm_model(name: str, info, small: bool, width: float = 1.0, drop_path: float = 0.0) -> nn.Module:
    import timm

    kwargs = dict(pretrained=False, num_classes=info.num_classes, in_chans=info.channels)
    if drop_path:
        kwargs["drop_path_rate"] = drop_path
    if width != 1:
        return _timm_scaled(name, info, small, width, kwargs)
    try:  # transformers take the input size; CNNs do not accept it
        model = timm.create_model(name, img_size=info.image_size, **kwargs)
    except TypeError:
        model = timm.create_model(name, **kwargs)
    if small:
        _small_input_stem(model)
    return model


def _timm_scaled(name: str, info, small: bool, width: float, kwargs: dict) -> nn.Module:
    """A timm model at `width` times its channel (embedding) widths, through the builder's own arguments."""
    import timm
    from timm.models import efficientnet

    module = timm.models.model_entrypoint(name).__module__.rsplit(".", 1)[-1]
    if module == "resnet":
        model = timm.create_model(name, channels=tuple(_scaled(c, width) for c in (64, 128, 256, 512)),
                                  stem_width=_scaled(64, width), **kwargs)
    elif name == "efficientnet_b0":  # its builder takes the multiplier (timm's B0-B7 scaling)
        model = efficientnet._gen_efficientnet(name, channel_multiplier=width, depth_multiplier=1.0, **kwargs)
    elif module in ("vision_transformer", "deit"):
        with torch.device("meta"):  # the widths only, nothing allocated
            probe = timm.create_model(name, pretrained=False, num_classes=1)
        heads = probe.blocks[0].attn.num_heads
        dim = max(heads, int(round(probe.embed_dim * width / heads)) * heads)
        model = timm.create_model(name, img_size=info.image_size, embed_dim=dim, **kwargs)
    else:
        raise ValueError(f"width_multiplier={width!r} is invalid for timm model {name!r}; allowed: 1 (scaled: "
                         f"{', '.join(WIDTH_SCALED)}, timm ResNets, efficientnet_b0, ViT / DeiT)")
    if small:
        _small_input_stem(model)
    return model


def _small_input_stem(model: nn.Module) -> None:
    """Stride 1 in the first convolution and no stem max-pool (CNNs only; a patch
    embedding is left alone: its stride is the patch size)."""
    if hasattr(model, "patch_embed"):
        return
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if isinstance(first, (list, tuple)):
        first = first[0]
    conv = model.get_submodule(first) if first else None
    if isinstance(conv, nn.Conv2d):
        conv.stride = (1, 1)
    pool = getattr(model, "maxpool", None)
    if isinstance(pool, nn.MaxPool2d):
        model.maxpool = nn.Identity()


def for_spec(spec, info=None) -> nn.Module:
    """The model of a `RunSpec` (its model, dataset or `info`, widths, stem, width multiplier, drop path)."""
    return create(spec.model, info if info is not None else spec.dataset, widths=spec.widths, stem=spec.stem,
                  width_multiplier=spec.width_multiplier, drop_path=spec.drop_path)


from dstlib import video_models  # noqa: E402,F401  (registers the video networks)
