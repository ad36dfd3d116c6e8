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
# # Gain per corruption and severity (Figures 1, 3, 10-15)
#
# The paper reports that DST's gain over dense training differs by corruption type and grows for corruptions that add high-frequency content. This page measures the relative gain (Acc_sparse - Acc_dense) / Acc_dense per corruption and severity at one sparsity, and orders the corruptions by the high-frequency energy each one measurably adds to the test images.
#
# The defaults below are the `quick` profile (`params/quick/corruptions.yaml`); `papermill notebooks/corruptions.ipynb OUT.ipynb -p NAME VALUE` changes one, `papermill --help-notebook notebooks/corruptions.ipynb` lists them all.

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
sparsity: float = 0.3  # the one sparsity this section looks at closely, in (0, 1)

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from dstlib import book

P = book.validate("corruptions", globals())  # one-line error naming a bad parameter, before any compute

# %%
plan = book.plan("corruptions", P)  # the runs, scaled to budget_minutes; prints the estimate
runs = book.train(plan)  # loads stored runs, trains the missing ones with progress

# %%
res = book.grid(plan, runs)
gain = (res["accuracy"] - res["dense_accuracy"]) / res["dense_accuracy"]
energy = book.energy(plan)
order = book.rank_corruptions(energy)
book.save(res.assign(gain=gain), plan, "gain"), book.save(energy, plan, "energy")

# %% [markdown]
# ## Relative gain per corruption (Figures 1, 3)
# Corruptions ordered by the high-frequency energy they add (left: least). Mean over seeds and severities.

# %%
g = 100 * gain.loc[dict(sparsity=P["sparsity"])].mean(("seed", "severity")).loc[dict(corruption=order)]
fig, ax = plt.subplots(figsize=(9, 4))
width = 0.8 / g.sizes["method"]
for i, m in enumerate(g["method"].values):
    ax.bar(np.arange(len(order)) + i * width, g.loc[dict(method=m)].values, width, label=str(m))
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(np.arange(len(order)) + 0.4 - width / 2, order, rotation=60, ha="right")
ax.set(ylabel="relative gain over dense (%)", title=f"sparsity {P['sparsity']:g}")
ax.legend()
book.save_figure(fig, plan, "gain_per_corruption")

# %% [markdown]
# ## Relative gain per severity (Figures 10-15) and the added high-frequency energy

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
gs = 100 * gain.loc[dict(sparsity=P["sparsity"])].mean(("seed", "corruption"))
for m in gs["method"].values:
    axes[0].plot(gs["severity"].values, gs.loc[dict(method=m)].values, marker="o", label=str(m))
axes[0].axhline(0, color="k", lw=0.8)
axes[0].set(xlabel="severity", ylabel="relative gain (%)")
axes[0].legend()
e = energy.mean("severity").loc[dict(corruption=order)]
axes[1].bar(range(len(order)), e.values)
axes[1].set_xticks(range(len(order)), order, rotation=60, ha="right")
axes[1].set(ylabel="added high-frequency energy", yscale="log")
book.save_figure(fig, plan, "gain_per_severity")

# %% [markdown]
# ## Reading

# %%
v = book.verdicts(res["accuracy"].loc[dict(sparsity=P["sparsity"])].mean("severity"),
                  res["dense_accuracy"].mean("severity"), P["confidence"])
book.save(v, plan, "verdicts")
rho = book.gain_energy_correlation(gain.loc[dict(sparsity=P["sparsity"])], energy)
verdict = book.status(v)
book.save_verdict(plan, "DST's gain is largest for corruptions that add high frequencies",
                  f"gain-energy rank correlation {rho:+.2f}; per corruption: {verdict}", f"sparsity {P['sparsity']:g}")
display(book.markdown(
    book.verdict_sentence(v, "accuracy per corruption (mean over severities)")
    + f" The Spearman rank correlation between a corruption's added high-frequency energy and the mean relative gain "
    f"is {rho:+.2f} (over {len(order)} corruptions; a positive value means larger gains for high-frequency corruptions, "
    f"as the paper argues). Most gained: {book.extreme(gain.loc[dict(sparsity=P['sparsity'])], True)}; "
    f"most lost: {book.extreme(gain.loc[dict(sparsity=P['sparsity'])], False)}."))

# %% [markdown]
# ## Provenance

# %%
display(book.markdown(book.provenance(plan, runs)))
