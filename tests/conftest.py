import pytest


@pytest.fixture
def tiny_spec():
    """A run that trains in about a second: a small MLP on 512 Fashion-MNIST images."""
    from dstlib.config import RunSpec

    return RunSpec(model="mlp", widths=(32,), epochs=3, batch_size=64, train_subset=512, lr=0.05)
