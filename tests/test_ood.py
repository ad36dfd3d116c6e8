"""OOD readers on tiny fake folder trees, and the Fashion-MNIST rendition shifts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dstlib.data import INFO, ImageSet, ood


def _jpeg(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 60, 3), value, np.uint8)).save(path)


WNIDS = [f"n{i:08d}" for i in range(1000)]


def test_imagenet_r_maps_into_1000(tmp_path):
    wn = tmp_path / "wnids.txt"
    wn.write_text("\n".join(reversed(WNIDS)))  # order in the file does not matter: sorted
    for w, v in (("n00000005", 10), ("n00000999", 200)):
        _jpeg(tmp_path / "r" / w / "a.jpg", v)
    ds = ood.imagenet_r(tmp_path / "r", wn)
    assert len(ds) == 2 and ds.labels.tolist() == [5, 999]
    x, y = ds[1]
    assert x.shape == (3, 224, 224) and x.dtype == torch.uint8 and y == 999
    assert ood.imagenet_r_classes(ds).tolist() == [5, 999]
    _jpeg(tmp_path / "bad" / "cat" / "a.jpg", 1)
    with pytest.raises(ValueError, match="not ImageNet wnids"):
        ood.imagenet_r(tmp_path / "bad", WNIDS)
    with pytest.raises(ValueError, match="1000"):
        ood.imagenet_r(tmp_path / "r", WNIDS[:10])


def test_imagenet_v2(tmp_path):
    for k in (0, 17):
        _jpeg(tmp_path / "imagenetv2-top-images-format-val" / str(k) / "x.jpeg", k)
    ds = ood.imagenet_v2("top-images", tmp_path)
    assert sorted(ds.labels.tolist()) == [0, 17] and ds.info.num_classes == 1000
    with pytest.raises(ValueError, match="variant"):
        ood.imagenet_v2("matched", tmp_path)
    with pytest.raises(FileNotFoundError, match="threshold0.7"):
        ood.imagenet_v2("threshold0.7", tmp_path)
    with pytest.raises(FileNotFoundError, match="root"):
        ood.imagenet_v2("top-images", tmp_path / "missing")


def test_renditions():
    x = torch.zeros(2, 1, 6, 6, dtype=torch.uint8)
    x[:, :, 1:3, 2:5] = 200
    ds = ImageSet(INFO["fashion_mnist"], x, torch.tensor([3, 4]))
    r = ood.renditions(ds)
    assert set(r) == set(ood.RENDITIONS) and all(v.labels.tolist() == [3, 4] for v in r.values())
    assert torch.equal(r["inverted"].images, 255 - x)
    assert torch.equal(r["upside_down"].images[0, 0, 3:5], x[0, 0, 1:3])
    assert int(r["silhouette"].images.max()) == 255 and int(r["silhouette"].images[0, 0, 0, 0]) == 0
    sketch = r["edge_sketch"].images
    assert sketch.dtype == torch.uint8 and int(sketch[0, 0, 5, 0]) == 255  # flat background is white
    assert int(sketch.min()) == 0  # the strongest edge is black
    with pytest.raises(ValueError, match="kind"):
        ood.render(x, "cartoon")
