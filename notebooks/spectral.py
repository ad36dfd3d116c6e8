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
# # Frequency attenuation (Figures 6, 7, 18)
#
# The paper explains DST's robustness by a de-emphasis of high-frequency features: removing high frequencies from test images hurts DST models less than dense ones. This page illustrates the attenuation, measures radius-accuracy curves for the high and low bands after training and after each epoch, and compares DST with dense at each radius, paired by seed.
#
# The defaults below are the `quick` profile (`params/quick/spectral.yaml`); `papermill notebooks/spectral.ipynb OUT.ipynb -p NAME VALUE` changes one, `papermill --help-notebook notebooks/spectral.ipynb` lists them all.

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
radii: list[float] = [0, 2, 4, 6, 8, 10, 12, 14, 16]  # attenuation radii in frequency-index steps (dstlib.spectral convention)

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from dstlib import book

P = book.validate("spectral", globals())  # one-line error naming a bad parameter, before any compute

# %%
plan = book.plan("spectral", P)  # the runs, scaled to budget_minutes; prints the estimate
runs = book.train(plan)  # loads stored runs, trains the missing ones with progress

# %% [markdown]
# ## The attenuation, illustrated (Figure 6)
# One test image with the high band (top) or the low band (bottom) removed at each radius.

# %%
ex = book.attenuated_examples(plan, P["radii"])
fig, axes = plt.subplots(2, len(P["radii"]), figsize=(1.3 * len(P["radii"]), 3), squeeze=False)
for i, b in enumerate(ex["band"].values):
    for j, r in enumerate(ex["radius"].values):
        axes[i, j].imshow(ex.loc[dict(band=b, radius=r)].values, cmap="gray", vmin=0, vmax=1)
        axes[i, j].set_axis_off()
        axes[i, j].set_title(f"{b} r={r:g}", fontsize=7)
book.save_figure(fig, plan, "attenuation")

# %%
curves = book.spectral_curves(plan, runs)
book.save(curves, plan, "curves")

# %% [markdown]
# ## Radius-accuracy curves after training (Figure 7)

# %%
final = 100 * curves["accuracy"].isel(epoch=-1)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, band in zip(axes, final["band"].values):
    for m in final["model"].values:
        a = final.loc[dict(model=m, band=band)]
        ax.errorbar(a["radius"].values, a.mean("seed").values, a.std("seed").values, marker="o", capsize=2, label=str(m))
    ax.set(title=f"{band} frequencies removed", xlabel="radius", ylabel="accuracy (%)")
axes[0].legend()
book.save_figure(fig, plan, "radius_accuracy")

# %% [markdown]
# ## During training (Figure 18)
# Mean accuracy over the radii (seed mean) after each epoch.

# %%
during = 100 * curves["accuracy"].mean(("radius", "seed"))
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, band in zip(axes, during["band"].values):
    for m in during["model"].values:
        ax.plot(during["epoch"].values, during.loc[dict(model=m, band=band)].values, marker="o", label=str(m))
    ax.set(title=f"{band} band", xlabel="epoch", ylabel="mean accuracy over radii (%)")
axes[0].legend()
book.save_figure(fig, plan, "during_training")

# %% [markdown]
# ## Reading
# Verdicts on the accuracy averaged over the non-zero radii of each band, after training, paired by seed.

# %%
fa = curves["accuracy"].isel(epoch=-1).loc[dict(radius=[r for r in curves["radius"].values if r > 0])]
v = book.verdicts(fa.loc[dict(model=list(P["methods"]))].rename(model="method").mean("radius"),
                  fa.loc[dict(model="dense")].mean("radius"), P["confidence"])
book.save(v, plan, "verdicts")
verdict = book.status(v.loc[dict(band="high")])
book.save_verdict(plan, "DST loses less accuracy than dense when high frequencies are removed", verdict,
                  f"{P['model']}, sparsity {P['sparsity']:g}")
display(book.markdown(
    "High band: " + book.verdict_sentence(v.loc[dict(band="high")], "accuracy with high frequencies removed") +
    "\n\nLow band: " + book.verdict_sentence(v.loc[dict(band="low")], "accuracy with low frequencies removed") +
    f"\n\nThe paper's claim for the high band is **{verdict}** here."))

# %% [markdown]
# ## Provenance

# %%
display(book.markdown(book.provenance(plan, runs)))
