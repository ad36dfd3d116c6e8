# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # With data augmentation (Table 9)
#
# **The paper's claim.** DST and data augmentation are complementary: with mixup, SET stays at least as robust as dense training (Table 9, ResNet34 on CIFAR-100-C: dense 51.68% and SET 52.60% without mixup, 54.75% and 54.93% with it).
#
# **How this page tests it.** Dense training and each method are trained twice with the same seeds, without and with mixup, and compared with dense training of the same kind, seed by seed.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile, names the results folder results/<profile>: quick, paper, smoke
model: str = "lenet300_100"  # model: lenet300_100, lenet5, mlp, cnn, vgg16, resnet34 or any timm model name; for clips cnn3d, slow_r50, i3d_r50, r3d50
dataset: str = "fashion_mnist"  # dataset: fashion_mnist, cifar10, cifar100, tiny_imagenet, imagenet, moving_fashion_mnist, ucf101 (all but fashion_mnist and moving_fashion_mnist need local files)
widths: list[int] = []  # hidden widths of mlp or channel widths of cnn; empty for the model's default
methods: list[str] = ["set"]  # sparse training methods compared with dense: static, set, rigl, mest_r, mest_g, granet_r, granet_g, acdc, chts, or chts+<init> for CHTs from an initial topology: random, csti, bsw
seeds: list[int] = [0, 1, 2, 3, 4, 5]  # training seeds, at least 2 distinct: the seed is the unit of replication
epochs: int = 15  # training epochs of every run (scaled down to fit budget_minutes)
batch_size: int = 128  # images per optimiser step
lr: float = 0.05  # peak learning rate (cosine schedule, SGD momentum 0.9)
distribution: str = "erk"  # layer densities of the sparse runs: uniform, erk
update_interval: int = 20  # topology update every this many optimiser steps (dT)
train_subset: int = 0  # train on this many training images; 0 for all (scaled down to fit budget_minutes)
n_test: int = 2000  # evaluate on the first n_test test images; 0 for all (scaled down to fit budget_minutes)
corruptions: list[str] = []  # corruption names (dstlib.corruptions.NAMES, VIDEO_NAMES for clips); empty for the dataset's benchmark set
severities: list[int] = [1, 2, 3, 4, 5]  # corruption severities, a subset of 1 2 3 4 5
confidence: float = 0.95  # confidence of every interval and verdict, in (0, 1)
budget_minutes: float = 25.0  # time this notebook may take on the reference CPU; 0 for no scaling
workers: int = 0  # runs trained in parallel processes; 0 for one per CPU core (1 on a GPU)
device: str = "cpu"  # torch device: cpu, cuda, cuda:<index> or mps
store: str = ""  # run store folder; empty for $DSTLIB_STORE or runs/ in the repository
results: str = ""  # results folder; empty for results/<profile>, or results/<profile>+<changes> for other values
train: bool = True  # train the runs the store lacks (False: stop with the missing run)
sparsity: float = 0.5  # the one sparsity this section looks at closely, in (0, 1)
mixup: float = 0.2  # mixup Beta(alpha, alpha) parameter of the augmented runs, > 0

# %% tags=["remove-cell"]
from IPython.display import display
import matplotlib.pyplot as plt
import pandas as pd

from dstlib import book

P = book.validate("augmentation", globals())  # one-line error naming a bad parameter, before any compute
plan = book.plan("augmentation", P)  # the runs, scaled to budget_minutes; prints the estimate

# %% tags=["remove-input"]
display(book.markdown(book.header(plan)))

# %% tags=["hide-input"]
runs = book.train(plan)  # loads stored runs; trains the missing ones in worker processes
plain = book.grid(plan, runs)
mixed = book.grid(plan, runs, mixup=P["mixup"])
v_plain = book.verdicts(plain["robustness_accuracy"], plain["dense_robustness_accuracy"], P["confidence"])
v_mixed = book.verdicts(mixed["robustness_accuracy"], mixed["dense_robustness_accuracy"], P["confidence"])
_ = (book.save(plain.drop_vars(["correct", "dense_correct"]), plan, "without_mixup"),
     book.save(mixed.drop_vars(["correct", "dense_correct"]), plan, "with_mixup"), book.save(v_mixed, plan, "verdicts_mixup"))

# %% [markdown]
# ## Robustness accuracy with and without mixup

# %% tags=["hide-input"]
rows = {}
for name, r in (("without mixup", plain), ("with mixup", mixed)):
    row = {"dense": 100 * float(r["dense_robustness_accuracy"].mean())}
    row.update({f"{m} {P['sparsity']:g}": 100 * float(r["robustness_accuracy"].loc[dict(method=m)].mean()) for m in P["methods"]})
    rows[name] = row
table = pd.DataFrame(rows).T
display(table.round(2))

# %% mystnb={"figure": {"caption": "Robustness accuracy without and with mixup (re-measuring the paper's Table 9), mean over seeds.", "name": "fig-augmentation"}} tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6, 3.5))
table.T.plot.bar(ax=ax, rot=0)
ax.set(ylabel="robustness accuracy (%)", ylim=(max(0, table.values.min() - 5), min(100, table.values.max() + 2)))
_ = book.save_figure(fig, plan, "mixup")

# %% [markdown]
# ## Each comparison with dense training

# %% tags=["hide-input"]
display(book.markdown("Without mixup:"))
display(book.verdict_table(v_plain, ["method", "sparsity"]))
display(book.markdown("With mixup:"))
display(book.verdict_table(v_mixed, ["method", "sparsity"]))

# %% [markdown]
# ## Verdict

# %% tags=["remove-input"]
verdict = book.page_verdict(v_mixed, plan.shortfalls)
book.save_verdict(plan, "With mixup, SET is still more robust than dense", verdict, f"{P['model']}, mixup alpha {P['mixup']:g}")
display(book.markdown(
    "**The paper's claim**: with mixup DST keeps its advantage (Table 9: SET 54.93% against dense 54.75%). **Here**: "
    "without mixup, " + book.verdict_sentence(v_plain, "robustness accuracy")
    + "\n\nWith mixup, " + book.verdict_sentence(v_mixed, "robustness accuracy")
    + f"\n\n**Verdict: {verdict}.**"))

# %% [markdown]
# ## Files and provenance

# %% tags=["remove-input"]
display(book.markdown(book.files_note(plan)))
display(book.markdown(book.provenance(plan, runs)))
