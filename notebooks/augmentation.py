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
# # Data augmentation: mixup (Table 9)
#
# The paper reports that SET keeps its robustness advantage over dense training when both use mixup. This page trains dense and the chosen methods with and without mixup and compares robustness accuracy, paired by seed.
#
# The defaults below are the `quick` profile (`params/quick/augmentation.yaml`); `papermill notebooks/augmentation.ipynb OUT.ipynb -p NAME VALUE` changes one, `papermill --help-notebook notebooks/augmentation.ipynb` lists them all.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile, names the results folder results/<profile>: quick, paper, smoke
model: str = "mlp"  # model: mlp, cnn, vgg16, resnet34 or any timm model name
dataset: str = "fashion_mnist"  # dataset: fashion_mnist, cifar10, cifar100, tiny_imagenet, imagenet (all but fashion_mnist need local files)
widths: list[int] = []  # hidden widths of mlp or channel widths of cnn; empty for the model's default
methods: list[str] = ["set"]  # sparse training methods compared with dense: static, set, rigl, mest_r, mest_g, granet_r, granet_g, acdc
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
mixup: float = 0.2  # mixup Beta(alpha, alpha) parameter of the augmented runs, > 0

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from dstlib import book

P = book.validate("augmentation", globals())  # one-line error naming a bad parameter, before any compute

# %%
plan = book.plan("augmentation", P)  # the runs, scaled to budget_minutes; prints the estimate
runs = book.train(plan)  # loads stored runs, trains the missing ones with progress

# %%
plain = book.grid(plan, runs)
mixed = book.grid(plan, runs, mixup=P["mixup"])
book.save(plain, plan, "without_mixup"), book.save(mixed, plan, "with_mixup")

# %% [markdown]
# ## Robustness accuracy with and without mixup (Table 9)
# Mean over seeds, in %.

# %%
import pandas as pd
rows = {}
for name, r in (("without mixup", plain), ("with mixup", mixed)):
    row = {"dense": 100 * float(r["dense_robustness_accuracy"].mean())}
    row.update({f"{m} {P['sparsity']:g}": 100 * float(r["robustness_accuracy"].loc[dict(method=m)].mean()) for m in P["methods"]})
    rows[name] = row
table = pd.DataFrame(rows).T
display(table.round(2))
fig, ax = plt.subplots(figsize=(6, 3.5))
table.T.plot.bar(ax=ax, rot=0)
ax.set(ylabel="robustness accuracy (%)", ylim=(max(0, table.values.min() - 5), min(100, table.values.max() + 2)))
book.save_figure(fig, plan, "mixup")

# %% [markdown]
# ## Reading

# %%
v_plain = book.verdicts(plain["robustness_accuracy"], plain["dense_robustness_accuracy"], P["confidence"])
v_mixed = book.verdicts(mixed["robustness_accuracy"], mixed["dense_robustness_accuracy"], P["confidence"])
book.save(v_mixed, plan, "verdicts_mixup")
verdict = book.status(v_mixed)
book.save_verdict(plan, "With mixup, SET is still more robust than dense", verdict, f"mixup alpha {P['mixup']:g}")
display(book.markdown(
    "Without mixup: " + book.verdict_sentence(v_plain, "robustness accuracy") +
    "\n\nWith mixup: " + book.verdict_sentence(v_mixed, "robustness accuracy") +
    f"\n\nThe paper's claim that DST keeps its advantage under mixup is **{verdict}** here."))

# %% [markdown]
# ## Provenance

# %%
display(book.markdown(book.provenance(plan, runs)))
