"""The paper profile's book end to end, in miniature: every section notebook on tiny synthetic data in the real
folder layouts, the paper's models at reduced width, on the CPU.

A copy of the repository's notebooks and `params/paper/` (and its recipes) is run with papermill from a
temporary repository, so everything a paper build does happens: the recipes, the snapshots the spectral
section plans for runs other sections train first, runs shared between sections through one store, ImageNet
streamed from its class folders (and corrupted during evaluation), the published CIFAR-10-C used for the
corruptions it has. Only the sizes change (`shrink`): one epoch, two seeds, one sparsity per section, the
methods of KEEP that a section has (every kind of schedule among them: RigL, MEST with ImageNet's absolute
bound, GraNet with Tiny-ImageNet's pruning interval, AC/DC, CHTs), a few test images, two severities, three
corruptions on ImageNet, widths divided by 8 (16 for ResNet50); the video section on a four-class UCF101 in
its real layout (AVI files, split lists) with the small 3D CNN (slow_r50 has no reduced width).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import _paper_data

papermill = pytest.importorskip("papermill")

from dstlib import config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDTH = {"resnet50": 0.0625}
KEEP = ("rigl", "mest_g", "granet_r", "acdc", "chts+csti")


def shrink(section: str, p: dict) -> dict:
    """The paper profile's parameters at the size of this test (what changes; models, methods, recipes stay)."""
    p = dict(p, epochs=1, seeds=[0, 1], device="cpu", workers=1, severities=[1, 3], n_test=16)
    p["methods"] = [m for m in p["methods"] if m in KEEP] or p["methods"][:1]
    if "sparsities" in p:
        p["sparsities"] = [0.5] if 0.5 in p["sparsities"] else p["sparsities"][:1]
    if p["dataset"] == "imagenet":
        p["corruptions"] = ["gaussian_noise", "defocus_blur", "fog"]
        p["n_test"] = 4
    if section == "topology":
        p.update(widths=[32, 32, 32], train_subset=64, batch_size=16)
    if section == "spectral":
        p["radii"] = [0, 8, 16]
    if section == "gradcam":
        p["n_images"] = 3
    if section == "video":  # slow_r50 has no reduced width: the section's small 3D CNN stands in for it
        p.update(model="cnn3d", batch_size=4, n_test=4,
                 corruptions=["gaussian_noise", "compression", "rotate", "jumble"])  # jumble: on the whole video
    return p


@pytest.fixture(scope="module")
def paper_mini(tmp_path_factory):
    base = tmp_path_factory.mktemp("paper_mini")
    data, repo = base / "data", base / "repo"
    _paper_data.cifar(data, 10, 60, 24)
    _paper_data.cifar(data, 100, 60, 24)
    _paper_data.tiny_imagenet(data, n_train_per_class=1, n_val=24)
    _paper_data.imagenet(data, classes_with_images=8, n_train_per_class=3, n_val_per_class=1)
    _paper_data.ucf101(data)
    # the published CIFAR-10-C for three of the nineteen corruptions: those are read, the rest generated
    from dstlib import data as dstlib_data
    from dstlib.data import cifar
    test = cifar.read_cifar10([data / "cifar10"], "test", dstlib_data.info("cifar10"))
    _paper_data.cifar10_c(data, test.images.numpy(), test.labels.numpy(), ["gaussian_noise", "fog", "frost"])

    (repo / "notebooks").mkdir(parents=True)
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, repo / "notebooks" / nb.name)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "book", repo / "book", ignore=shutil.ignore_patterns("sections"))
    shutil.copytree(ROOT / "params" / "quick", repo / "params" / "quick")
    (repo / "params" / "paper").mkdir(parents=True)
    recipes = yaml.safe_load((ROOT / "params/paper/recipes.yaml").read_text())
    for r in recipes:
        r["spec"]["width_multiplier"] = WIDTH.get(r["model"], 0.125)
        if r["model"] == "mlp":
            del r["spec"]["width_multiplier"]  # its widths are a notebook parameter
        r["spec"].pop("warmup_epochs", None)  # one epoch here
    (repo / "params/paper/recipes.yaml").write_text(yaml.safe_dump(recipes))
    for section in config.SECTIONS:
        p = yaml.safe_load((ROOT / "params/paper" / f"{section}.yaml").read_text())
        (repo / "params/paper" / f"{section}.yaml").write_text(yaml.safe_dump(shrink(section, p)))

    env = {"DSTLIB_DATA": str(data), "DSTLIB_CACHE": str(base / "cache"), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernels inherit them
    out = {"repo": repo, "data": data, "sections": repo / "book" / "sections"}
    out["sections"].mkdir(parents=True, exist_ok=True)
    try:
        for section in config.SECTIONS:
            path = out["sections"] / f"{section}.ipynb"
            papermill.execute_notebook(str(repo / "notebooks" / f"{section}.ipynb"), str(path),
                                       parameters=yaml.safe_load((repo / "params/paper" / f"{section}.yaml").read_text()),
                                       cwd=str(repo), kernel_name="python3", progress_bar=False)
            out[section] = path
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return out


@pytest.mark.timeout(900)
def test_the_paper_profile_builds_end_to_end_in_miniature(paper_mini):
    import nbformat

    from dstlib.config import RunSpec
    from dstlib.store import Store
    repo = paper_mini["repo"]
    results = repo / "results" / "paper"
    ids = {}
    for section in config.SECTIONS:
        nb = nbformat.read(paper_mini[section], as_version=4)
        text = json.dumps(nb)
        assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", [])), section
        assert (results / f"{section}_verdict.json").is_file(), section  # the profile's own results folder
        ids[section] = set(re.findall(r"\| `([0-9a-f]{16})` \|", text))
        assert ids[section] and all((repo / "runs" / i / "manifest.json").is_file() for i in ids[section])
        if section == "overall":
            assert "the published CIFAR-10-C" in text and "for 3 of 19 corruptions" in text
    # sections share their runs as the profile plans: VGG16 for overall, cost, ood; ResNet50 for corruptions
    # and gradcam; ResNet34 for spatial and augmentation (its runs without mixup)
    assert ids["ood"] <= ids["overall"] <= ids["cost"] and ids["gradcam"] == ids["corruptions"]
    assert ids["spatial"] & ids["augmentation"]
    store = Store(repo / "runs")
    specs = {r.id: r.spec for r in store.runs()}
    spectral = [specs[i] for i in ids["spectral"]]
    assert all(s.snapshots == (1,) and s.model == "efficientnet_b0" for s in spectral)
    resnet50 = [specs[i] for i in ids["corruptions"]]
    assert {s.augmentation for s in resnet50} == {"rrc_flip"} and {s.schedule for s in resnet50} == {"step"}
    assert {(s.soft_bound, s.soft_bound_mode) for s in resnet50 if s.method == "mest_g"} == {(0.02, "absolute")}
    assert all(s.sparse_classifier for s in resnet50 if s.method != "dense")
    vgg = [specs[i] for i in ids["overall"]]
    assert {s.augmentation for s in vgg} == {"crop_flip"} and not any(s.sparse_classifier for s in vgg)
    assert {s.prune_interval for i in ids["spectral"] for s in [specs[i]] if s.method == "granet_r"} == {500}
    assert isinstance(RunSpec.from_dict(resnet50[0].to_dict()), RunSpec)
    video = [specs[i] for i in ids["video"]]  # the section's own settings win where no recipe names the model
    assert {(s.dataset, s.augmentation, s.weight_decay) for s in video} == {("ucf101", "rrc_flip", 0.001)}
    # the front page's tables from the results, as make book writes them
    summary = subprocess.run([sys.executable, "-m", "dstlib.book", "summary", str(results),
                              str(paper_mini["sections"] / "summary.md")], cwd=repo, capture_output=True, text=True)
    assert summary.returncode == 0, summary.stderr[-2000:]
    text = (paper_mini["sections"] / "summary.md").read_text()
    assert "not run" not in text and "NaN" not in text
