# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Grad-CAM on corrupted images (Figure 19)
#
# The paper observes that DST models' Grad-CAM maps highlight smaller regions than the dense model's. This page shows Grad-CAM side by side on clean and corrupted test images and measures the attention area (fraction of pixels at or above half the map's maximum), compared over seeds.
#
# The defaults below are the `quick` profile (`params/quick/gradcam.yaml`); `papermill notebooks/gradcam.ipynb OUT.ipynb -p NAME VALUE` changes one, `papermill --help-notebook notebooks/gradcam.ipynb` lists them all.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile, names the results folder results/<profile>: quick, paper, smoke
model: str = "cnn"  # model: mlp, cnn, vgg16, resnet34 or any timm model name
dataset: str = "fashion_mnist"  # dataset: fashion_mnist, cifar10, cifar100, tiny_imagenet, imagenet (all but fashion_mnist need local files)
widths: list[int] = []  # hidden widths of mlp or channel widths of cnn; empty for the model's default
methods: list[str] = ["set", "rigl"]  # sparse training methods compared with dense: static, set, rigl, mest_r, mest_g, granet_r, granet_g, acdc
seeds: list[int] = [0, 1, 2]  # training seeds, at least 2 distinct: the seed is the unit of replication
epochs: int = 3  # training epochs of every run (scaled down to fit budget_minutes)
batch_size: int = 128  # images per optimiser step
lr: float = 0.05  # peak learning rate (cosine schedule, SGD momentum 0.9)
distribution: str = "uniform"  # layer densities of the sparse runs: uniform, erk
update_interval: int = 20  # topology update every this many optimiser steps (dT)
train_subset: int = 6000  # train on this many training images; 0 for all (scaled down to fit budget_minutes)
n_test: int = 300  # evaluate on the first n_test test images; 0 for all (scaled down to fit budget_minutes)
corruptions: list[str] = ["gaussian_noise"]  # corruption names (dstlib.corruptions.NAMES); empty for the dataset's benchmark set
severities: list[int] = [1, 3, 5]  # corruption severities, a subset of 1 2 3 4 5
confidence: float = 0.95  # confidence of every interval and verdict, in (0, 1)
budget_minutes: float = 25.0  # time this notebook may take on the reference CPU; 0 for no scaling
device: str = "cpu"  # torch device: cpu, cuda, cuda:<index> or mps
store: str = ""  # run store folder; empty for $DSTLIB_STORE or runs/
results: str = ""  # results folder; empty for results/<profile>
train: bool = True  # train the runs the store lacks (False: stop with the missing run)
sparsity: float = 0.5  # the one sparsity this section looks at closely, in (0, 1)
n_images: int = 8  # images shown and measured by Grad-CAM

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from dstlib import book

P = book.validate("gradcam", globals())  # one-line error naming a bad parameter, before any compute

# %%
plan = book.plan("gradcam", P)  # the runs, scaled to budget_minutes; prints the estimate
runs = book.train(plan)  # loads stored runs, trains the missing ones with progress

# %%
corruption = P["corruptions"][0] if P["corruptions"] else "gaussian_noise"
g = book.gradcam_maps(plan, runs, corruption)
book.save(g, plan, "maps")

# %% [markdown]
# ## Grad-CAM side by side (Figure 19)
# Seed 0; rows: clean then each severity; first column the image, then one column per model.

# %%
sev = g["severity"].values
models = list(g["model"].values)
for i in range(min(3, g.sizes["image"])):
    fig, axes = plt.subplots(len(sev), 1 + len(models), figsize=(1.6 * (1 + len(models)), 1.6 * len(sev)), squeeze=False)
    for r, s in enumerate(sev):
        axes[r, 0].imshow(g["pixels"].loc[dict(severity=s)].isel(image=i).values, cmap="gray")
        axes[r, 0].set_ylabel("clean" if s == 0 else f"sev {s}")
        for c, m in enumerate(models):
            axes[r, c + 1].imshow(g["gradcam"].loc[dict(model=m, severity=s)].isel(seed=0, image=i).values, cmap="jet")
            axes[0, c + 1].set_title(str(m), fontsize=8)
    for a in axes.ravel():
        a.set_xticks([]), a.set_yticks([])
    book.save_figure(fig, plan, f"image{i}")

# %% [markdown]
# ## Attention area
# Fraction of pixels at or above half of each map's maximum, mean over images, per seed.

# %%
area = g["attention_area"].mean("image")
display((100 * area.mean("seed")).to_pandas().round(1))

# %% [markdown]
# ## Reading

# %%
v = book.verdicts(area.loc[dict(model=list(P["methods"]))].rename(model="method").mean("severity"),
                  area.loc[dict(model="dense")].mean("severity"), P["confidence"])
book.save(v, plan, "verdicts")
verdict = book.status(v, claim="worse")
book.save_verdict(plan, "DST attends to smaller regions than dense (Grad-CAM)", verdict,
                  f"{P['n_images']} images, {corruption}")
display(book.markdown(
    book.verdict_sentence(v, "attention area (here *better* means a larger area)")
    + f" The paper's claim (a smaller area for DST) is **{verdict}**."))

# %% [markdown]
# ## Provenance

# %%
display(book.markdown(book.provenance(plan, runs)))
