import math

import pytest
import torch

from dstlib.config import RunSpec
from dstlib.train import Trainer, crop_flip, learning_rate


def train(spec, epochs=None):
    t = Trainer(spec)
    while not t.done:
        t.train_epoch()
    return t


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("extra", [{}, {"augmentation": "crop_flip", "mixup": 0.4, "method": "set", "update_interval": 3}])
def test_same_spec_gives_bitwise_identical_weights(tiny_spec, extra):
    spec = tiny_spec.replace(epochs=2, **extra)
    a, b = train(spec), train(spec)
    assert same_state(a.model.state_dict(), b.model.state_dict())
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    c = train(spec.replace(seed=1))
    assert not same_state(a.model.state_dict(), c.model.state_dict())


def test_learning_rate_schedules():
    spec = RunSpec(epochs=10, lr=0.2, warmup_epochs=1)
    assert learning_rate(spec, 0, 10) == pytest.approx(0.02)
    assert learning_rate(spec, 9, 10) == pytest.approx(0.2)
    assert learning_rate(spec, 10, 10) == pytest.approx(0.2)
    assert learning_rate(spec, 55, 10) == pytest.approx(0.1)  # half-way through the cosine
    assert learning_rate(spec, 99, 10) < 0.001
    step = RunSpec(epochs=90, lr=0.1, schedule="step", lr_step_epochs=30)  # the paper's ImageNet schedule
    assert [learning_rate(step, e * 5, 5) for e in (0, 29, 30, 60, 89)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001])


def test_crop_flip_is_a_padded_shifted_maybe_flipped_copy():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = crop_flip(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        found = any(torch.equal(out[i], c) for dy in range(9) for dx in range(9)
                    for c in (padded[i, :, dy:dy + 32, dx:dx + 32], padded[i, :, dy:dy + 32, dx:dx + 32].flip(2)))
        assert found
    again = crop_flip(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_history_rows(tiny_spec):
    t = train(tiny_spec.replace(val_size=100))
    assert [r["epoch"] for r in t.history] == [1, 2, 3]
    row = t.history[-1]
    for key in ("train_loss", "train_acc", "test_acc", "val_acc", "lr", "density", "step"):
        assert key in row
    assert row["step"] == 3 * math.ceil(512 / 64)  # the subset is taken after the validation hold-out


def test_dense_mlp_learns_fashion_mnist():
    """Sanity on the real data (README: 88% after 3 epochs; here 2 epochs, 86% required)."""
    t = train(RunSpec(model="mlp", epochs=2, batch_size=128, lr=0.05))
    assert t.history[-1]["test_acc"] >= 0.86


def test_monitor_size_changes_the_history_not_the_weights(tiny_spec):
    a, b = train(tiny_spec.replace(epochs=1)), train(tiny_spec.replace(epochs=1, monitor_size=200))
    assert same_state(a.model.state_dict(), b.model.state_dict())
    assert a.history[0]["test_images"] == 10000 and b.history[0]["test_images"] == 200
