"""Video networks of the registry: 3D CNNs that map normalised clips (N, C, T, H, W) to logits.

- `slow_r50`: what the benchmark's code (Schiappa et al.) calls "ResNet50": pytorchvideo's Slow R50
  (`create_resnet` as its hub `slow_r50`): stem conv (1, 7, 7) stride (1, 2, 2) and max-pool (1, 3, 3)
  stride (1, 2, 2); bottleneck stages of depth (3, 4, 6, 3), widths 64-2048, the spatial stride on
  the 3x3 conv, conv_a temporal kernels 1, 1, 3, 3 for res2-res5; dropout 0.5 and a linear head.
  31,841,445 parameters with 101 classes (32.45 M with 400, pytorchvideo's model zoo).
- `i3d_r50`: pytorchvideo's I3D R50 (its hub `i3d_r50`): stem conv (5, 7, 7), a temporal max-pool
  (2, 1, 1) after res2, conv_a temporal kernels 3 in every res2 block, alternating 3 / 1 in res3 and
  res4, 1 / 3 in res5. 27,430,821 parameters with 101 classes (28.04 M with 400).
- `r3d50`: Hara et al.'s full-3D ResNet-50 (3D-ResNets-PyTorch, `generate_model(50)`): conv1 7x7x7
  stride (1, 2, 2), max-pool 3 stride 2, bottlenecks whose middle conv is 3x3x3 (stride 2 from layer2
  on, in time as well), type-B shortcuts. 46,405,925 parameters with 101 classes.
- `cnn3d`: the quick profile's small 3D CNN for small clips: per width a 3x3x3 conv-BN-ReLU, the first
  with stride (1, 2, 2), the others 2; global average pool; linear. Default widths (8, 16, 32):
  17,872 parameters on 1-channel clips with 8 classes.

Heads pool adaptively (`AdaptiveAvgPool3d(1)`) where pytorchvideo uses fixed AvgPool3d kernels
((8, 7, 7) for Slow, (4, 7, 7) for I3D): the same at the reference's 8 frames of 224 px, and any clip
size still works. No pretrained weights. The final linear layer is the attribute `classifier`, which
the sparse methods keep dense.
"""
from __future__ import annotations

from torch import nn

from dstlib.models import register

NAMES = ("slow_r50", "i3d_r50", "r3d50", "cnn3d")
"""The registry's video networks (they take clips, not images)."""


def _conv_bn(cin: int, cout: int, kernel, stride=1, padding=0) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm3d(cout)]


class Bottleneck3d(nn.Module):
    """1x1x1 (temporal kernel `kt`) -> (kt2, 3, 3) with the stride -> 1x1x1, BN after each, ReLU, residual.

    `kt`: the first conv's temporal kernel (pytorchvideo's conv_a); `kt2`: the middle conv's (3 for Hara's
    full 3D, 1 for pytorchvideo's Slow and I3D); `stride` (t, s, s) sits on the middle conv.
    """

    def __init__(self, cin: int, inner: int, cout: int, kt: int, kt2: int, stride: tuple[int, int, int]):
        super().__init__()
        self.conv_a = nn.Sequential(*_conv_bn(cin, inner, (kt, 1, 1), 1, (kt // 2, 0, 0)), nn.ReLU(inplace=True))
        self.conv_b = nn.Sequential(*_conv_bn(inner, inner, (kt2, 3, 3), stride, (kt2 // 2, 1, 1)),
                                    nn.ReLU(inplace=True))
        self.conv_c = nn.Sequential(*_conv_bn(inner, cout, 1))
        self.shortcut = (nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if cin != cout or stride != (1, 1, 1)
                         else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv_c(self.conv_b(self.conv_a(x))) + self.shortcut(x))


class ResNet3d(nn.Module):
    """A bottleneck 3D ResNet-50: stem, four stages of depth (3, 4, 6, 3), adaptive pool, dropout, linear.

    `stem`: (temporal kernel of the 7x7 stem conv, max-pool kernel and stride as (kt, ks, st, ss));
    `conv_a`: per stage the temporal kernels of the blocks' first convs (cycled over the blocks);
    `kt2`: the middle convs' temporal kernel; `temporal_stride`: per stage; `stage1_pool`: a (2, 1, 1)
    temporal max-pool after the first stage (I3D).
    """

    def __init__(self, channels: int, num_classes: int, stem_kt: int, pool: tuple, conv_a, kt2: int,
                 temporal_stride=(1, 1, 1, 1), stage1_pool: bool = False, dropout: float = 0.5):
        super().__init__()
        pk, ps = pool
        self.stem = nn.Sequential(*_conv_bn(channels, 64, (stem_kt, 7, 7), (1, 2, 2), (stem_kt // 2, 3, 3)),
                                  nn.ReLU(inplace=True), nn.MaxPool3d(pk, ps, tuple(k // 2 for k in pk)))
        stages, cin = [], 64
        for i, (depth, kts) in enumerate(zip((3, 4, 6, 3), conv_a)):
            inner, cout = 64 * 2 ** i, 256 * 2 ** i
            blocks = []
            for b in range(depth):
                stride = (temporal_stride[i], 1 if i == 0 else 2, 1 if i == 0 else 2) if b == 0 else (1, 1, 1)
                blocks.append(Bottleneck3d(cin, inner, cout, kts[b % len(kts)], kt2, stride))
                cin = cout
            stages.append(nn.Sequential(*blocks))
            if i == 0 and stage1_pool:
                stages.append(nn.MaxPool3d((2, 1, 1), (2, 1, 1)))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(dropout))
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.stages(self.stem(x))))


def _fixed(name: str, widths) -> None:
    if widths:
        raise ValueError(f"widths={list(widths)!r} is invalid for {name}; allowed: () (fixed architecture)")


@register("slow_r50")
def slow_r50(info, widths=(), small=False) -> nn.Module:
    _fixed("slow_r50", widths)
    return ResNet3d(info.channels, info.num_classes, 1, ((1, 3, 3), (1, 2, 2)), ((1,), (1,), (3,), (3,)), kt2=1)


@register("i3d_r50")
def i3d_r50(info, widths=(), small=False) -> nn.Module:
    _fixed("i3d_r50", widths)
    return ResNet3d(info.channels, info.num_classes, 5, ((1, 3, 3), (1, 2, 2)),
                    ((3,), (3, 1), (3, 1), (1, 3)), kt2=1, stage1_pool=True)


class R3D50(nn.Module):
    """Hara et al.'s 3D ResNet-50: conv1 7x7x7 stride (1, 2, 2), max-pool 3 stride 2, 3x3x3 bottlenecks
    (expansion 4, stride on the middle conv, 2 in every dim from layer2), type-B shortcuts, average pool, fc."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(channels, 64, 7, (1, 2, 2), 3), nn.ReLU(inplace=True),
                                  nn.MaxPool3d(3, 2, 1))
        stages, cin = [], 64
        for i, depth in enumerate((3, 4, 6, 3)):
            planes = 64 * 2 ** i
            stride = (1, 1, 1) if i == 0 else (2, 2, 2)
            blocks = [Bottleneck3d(cin, planes, planes * 4, 1, 3, stride)]
            blocks += [Bottleneck3d(planes * 4, planes, planes * 4, 1, 3, (1, 1, 1)) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = planes * 4
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.stages(self.stem(x))))


@register("r3d50")
def r3d50(info, widths=(), small=False) -> nn.Module:
    _fixed("r3d50", widths)
    return R3D50(info.channels, info.num_classes)


class SmallCNN3d(nn.Module):
    """Per width a 3x3x3 conv-BN-ReLU (padding 1), the first with stride (1, 2, 2) and the others 2;
    global average pool; linear."""

    def __init__(self, channels: int, widths: tuple[int, ...], num_classes: int):
        super().__init__()
        layers, prev = [], channels
        for i, w in enumerate(widths):
            layers += _conv_bn(prev, w, 3, (1, 2, 2) if i == 0 else 2, 1) + [nn.ReLU(inplace=True)]
            prev = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("cnn3d")
def cnn3d(info, widths=(), small=True) -> nn.Module:
    """The quick profile's small 3D CNN, default widths (8, 16, 32)."""
    return SmallCNN3d(info.channels, widths or (8, 16, 32), info.num_classes)
