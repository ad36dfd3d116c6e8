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
# # Robustness against sparsity (Figure 2, Table 3)
#
# The paper's DSCR hypothesis: at low sparsity (10-50%), dynamic sparse training (DST) gives models that are more robust to image corruptions than dense training. This page trains dense and each DST method at each sparsity, evaluates robustness accuracy (the mean accuracy over every corruption and severity, clean accuracy excluded) on the same corrupted test images, and compares each method with dense, paired by training seed.
#
# The defaults below are the `quick` profile (`params/quick/overall.yaml`); `papermill notebooks/overall.ipynb OUT.ipynb -p NAME VALUE` changes one, `papermill --help-notebook notebooks/overall.ipynb` lists them all.

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

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from dstlib import book

P = book.validate("overall", globals())  # one-line error naming a bad parameter, before any compute

# %%
plan = book.plan("overall", P)  # the runs, scaled to budget_minutes; prints the estimate
runs = book.train(plan)  # loads stored runs, trains the missing ones with progress

# %%
res = book.grid(plan, runs)
v = book.verdicts(res["robustness_accuracy"], res["dense_robustness_accuracy"], P["confidence"])
book.save(res, plan, "robustness"), book.save(v, plan, "verdicts")

# %% [markdown]
# ## Robustness accuracy against sparsity (Figure 2)
# Mean over seeds, with the dense line; error bars are one standard deviation over seeds.

# %%
ra = 100 * res["robustness_accuracy"]
dense = 100 * res["dense_robustness_accuracy"]
fig, ax = plt.subplots(figsize=(6, 4))
for m in ra["method"].values:
    ax.errorbar(ra["sparsity"].values, ra.loc[dict(method=m)].mean("seed").values, ra.loc[dict(method=m)].std("seed").values, marker="o", capsize=3, label=str(m))
ax.axhline(float(dense.mean()), color="k", ls="--", label="dense")
ax.axhspan(float(dense.mean() - dense.std()), float(dense.mean() + dense.std()), color="k", alpha=0.1)
ax.set(xlabel="sparsity", ylabel="robustness accuracy (%)", title=f"{P['model']} on {P['dataset']}")
ax.legend()
book.save_figure(fig, plan, "robustness_vs_sparsity")

# %% [markdown]
# ## Win / tie / loss against dense (Table 3)
# One verdict per (method, sparsity): the seed-paired interval of sparse minus dense robustness accuracy
# (`dstlib.stats.compare`). MDD: the difference this design detects with 80% power.

# %%
display(book.win_tie_loss(v))
table = (100 * v[["diff", "lower", "upper", "mdd"]]).round(2).to_dataframe()
table["verdict"] = v["verdict"].to_dataframe()["verdict"]
display(table)

# %% [markdown]
# ## Reading

# %%
low = v.loc[dict(sparsity=[s for s in v["sparsity"].values if s <= 0.5])]
verdict = book.status(low)
book.save_verdict(plan, "DST beats dense in robustness accuracy at 10-50% sparsity", verdict,
                  f"{P['model']}, {len(P['seeds'])} seeds, dense {float(dense.mean()):.2f}%")
display(book.markdown(
    f"Dense training reached {float(dense.mean()):.2f}% robustness accuracy (clean "
    f"{book.pp(res['dense_clean_accuracy'].mean())}%). " + book.verdict_sentence(v, "robustness accuracy")
    + f" At sparsities up to 50% the paper's claim is **{verdict}**."))
vc = book.verdicts(res["clean_accuracy"], res["dense_clean_accuracy"], P["confidence"])
display(book.markdown(
    "On clean test images, for comparison: " + book.verdict_sentence(vc, "clean accuracy") + " "
    + book.power_note(res["robustness_accuracy"], res["dense_robustness_accuracy"], confidence=P["confidence"])))

# %% [markdown]
# ## Provenance

# %%
display(book.markdown(book.provenance(plan, runs)))
