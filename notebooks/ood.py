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
# # Out-of-distribution accuracy (Tables 10, 11)
#
# The paper reports that DST models surpass dense ones on ImageNet-R and, mostly, on ImageNet-v2. With the embedded data this page uses Fashion-MNIST rendition shifts standing in for ImageNet-R (inverted, edge sketch, upside down, silhouette; dstlib.data.ood) and compares each method with dense on each shift, paired by seed.
#
# The defaults below are the `quick` profile (`params/quick/ood.yaml`); `papermill notebooks/ood.ipynb OUT.ipynb -p NAME VALUE` changes one, `papermill --help-notebook notebooks/ood.ipynb` lists them all.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile, names the results folder results/<profile>: quick, paper, smoke
model: str = "mlp"  # model: mlp, cnn, vgg16, resnet34 or any timm model name
dataset: str = "fashion_mnist"  # dataset: fashion_mnist, cifar10, cifar100, tiny_imagenet, imagenet (all but fashion_mnist need local files)
widths: list[int] = []  # hidden widths of mlp or channel widths of cnn; empty for the model's default
methods: list[str] = ["set", "rigl", "mest_g", "granet_g"]  # sparse training methods compared with dense: static, set, rigl, mest_r, mest_g, granet_r, granet_g, acdc
seeds: list[int] = [0, 1, 2]  # training seeds, at least 2 distinct: the seed is the unit of replication
epochs: int = 3  # training epochs of every run (scaled down to fit budget_minutes)
batch_size: int = 128  # images per optimiser step
lr: float = 0.05  # peak learning rate (cosine schedule, SGD momentum 0.9)
distribution: str = "erk"  # layer densities of the sparse runs: uniform, erk
update_interval: int = 20  # topology update every this many optimiser steps (dT)
train_subset: int = 10000  # train on this many training images; 0 for all (scaled down to fit budget_minutes)
n_test: int = 500  # evaluate on the first n_test test images; 0 for all (scaled down to fit budget_minutes)
corruptions: list[str] = []  # corruption names (dstlib.corruptions.NAMES); empty for the dataset's benchmark set
severities: list[int] = [1, 2, 3, 4, 5]  # corruption severities, a subset of 1 2 3 4 5
confidence: float = 0.95  # confidence of every interval and verdict, in (0, 1)
budget_minutes: float = 25.0  # time this notebook may take on the reference CPU; 0 for no scaling
device: str = "cpu"  # torch device: cpu, cuda, cuda:<index> or mps
store: str = ""  # run store folder; empty for $DSTLIB_STORE or runs/
results: str = ""  # results folder; empty for results/<profile>
train: bool = True  # train the runs the store lacks (False: stop with the missing run)
sparsities: list[float] = [0.1, 0.3, 0.5]  # target sparsities in (0, 1), fraction of zeros in the sparse layers
renditions: list[str] = ["inverted", "edge_sketch", "upside_down", "silhouette"]  # Fashion-MNIST rendition shifts: inverted, edge_sketch, upside_down, silhouette

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from dstlib import book

P = book.validate("ood", globals())  # one-line error naming a bad parameter, before any compute

# %%
plan = book.plan("ood", P)  # the runs, scaled to budget_minutes; prints the estimate
runs = book.train(plan)  # loads stored runs, trains the missing ones with progress

# %%
res = book.ood_accuracy(plan, runs)
v = book.verdicts(res["accuracy"], res["dense_accuracy"], P["confidence"])
book.save(res, plan, "accuracy"), book.save(v, plan, "verdicts")

# %% [markdown]
# ## Accuracy per shift (Tables 10, 11)
# Mean over seeds, in %.

# %%
table = (100 * res["accuracy"].mean("seed")).to_dataframe(name="accuracy").unstack("shift").round(2)
dense_row = (100 * res["dense_accuracy"].mean("seed")).to_pandas().round(2)
display(table)
display(dense_row.to_frame("dense").T)

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
d = 100 * v["diff"].mean("sparsity")
for i, m in enumerate(d["method"].values):
    ax.bar(np.arange(d.sizes["shift"]) + 0.8 * i / d.sizes["method"], d.loc[dict(method=m)].values, 0.8 / d.sizes["method"], label=str(m))
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(np.arange(d.sizes["shift"]) + 0.3, d["shift"].values)
ax.set(ylabel="sparse - dense accuracy (pp)")
ax.legend()
book.save_figure(fig, plan, "difference")

# %% [markdown]
# ## Reading

# %%
shifted = v.loc[dict(shift=[s for s in v["shift"].values if s != "clean"])]
verdict = book.status(shifted)
book.save_verdict(plan, "DST beats dense out of distribution", verdict, "Fashion-MNIST renditions standing in for ImageNet-R")
display(book.markdown(book.verdict_sentence(shifted, "accuracy under rendition shifts")
                      + f" The paper's out-of-distribution claim is **{verdict}** on these stand-in shifts."))

# %% [markdown]
# ## Provenance

# %%
display(book.markdown(book.provenance(plan, runs)))
