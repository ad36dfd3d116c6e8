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
# # Where the zeros go: per-kernel statistics (Figures 5, 16, 17)
#
# The paper shows heatmaps in which DST concentrates zeros on whole kernels and whole channels, unlike dense training. This page measures, per convolution kernel, the non-zero count and the sum of magnitudes, and turns the visual claim into numbers: the fraction of empty kernels against what random placement would give, and the Gini concentration of magnitude over channels.
#
# The defaults below are the `quick` profile (`params/quick/spatial.yaml`); `papermill notebooks/spatial.ipynb OUT.ipynb -p NAME VALUE` changes one, `papermill --help-notebook notebooks/spatial.ipynb` lists them all.

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
corruptions: list[str] = []  # corruption names (dstlib.corruptions.NAMES); empty for the dataset's benchmark set
severities: list[int] = [1, 2, 3, 4, 5]  # corruption severities, a subset of 1 2 3 4 5
confidence: float = 0.95  # confidence of every interval and verdict, in (0, 1)
budget_minutes: float = 25.0  # time this notebook may take on the reference CPU; 0 for no scaling
device: str = "cpu"  # torch device: cpu, cuda, cuda:<index> or mps
store: str = ""  # run store folder; empty for $DSTLIB_STORE or runs/
results: str = ""  # results folder; empty for results/<profile>
train: bool = True  # train the runs the store lacks (False: stop with the missing run)
sparsity: float = 0.5  # the one sparsity this section looks at closely, in (0, 1)

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from dstlib import book

P = book.validate("spatial", globals())  # one-line error naming a bad parameter, before any compute

# %%
plan = book.plan("spatial", P)  # the runs, scaled to budget_minutes; prints the estimate
runs = book.train(plan)  # loads stored runs, trains the missing ones with progress

# %%
summary, heat = book.spatial_stats(plan, runs)
book.save(summary, plan, "summary")

# %% [markdown]
# ## Non-zero count and magnitude per kernel (Figures 5, 16, 17)
# The last convolution layer of seed 0: rows are output channels, columns input channels.

# %%
fig, axes = plt.subplots(2, len(heat), figsize=(3 * len(heat), 5.5), squeeze=False)
for j, (m, k) in enumerate(heat.items()):
    axes[0, j].imshow(k["nonzero"].values, aspect="auto", cmap="viridis", vmin=0, vmax=k.attrs["kernel_size"])
    axes[1, j].imshow(k["abs_sum"].values, aspect="auto", cmap="magma")
    axes[0, j].set_title(m)
axes[0, 0].set_ylabel("non-zero count")
axes[1, 0].set_ylabel("sum of |w|")
book.save_figure(fig, plan, "kernels")

# %% [markdown]
# ## The concentration, as numbers
# Mean over seeds and layers. `empty_fraction` against `empty_fraction_random` (what independent random placement of the
# same number of non-zeros gives): a larger measured value means zeros gather on whole kernels.

# %%
table = summary.mean(("seed", "layer")).to_dataframe().round(4)
display(table)

# %% [markdown]
# ## Reading

# %%
excess = summary["empty_fraction"] - summary["empty_fraction_random"]
v = book.verdicts(excess.loc[dict(model=list(P["methods"]))].rename(model="method").mean("layer"),
                  excess.loc[dict(model="dense")].mean("layer"), P["confidence"])
book.save(v, plan, "verdicts")
verdict = book.status(v)
book.save_verdict(plan, "DST concentrates zeros on whole kernels", verdict, f"sparsity {P['sparsity']:g}")
display(book.markdown(
    book.verdict_sentence(v, "the excess of empty kernels over random placement (mean over layers)")
    + " " + book.concentration_sentence(summary, P["methods"])))

# %% [markdown]
# ## Provenance

# %%
display(book.markdown(book.provenance(plan, runs)))
