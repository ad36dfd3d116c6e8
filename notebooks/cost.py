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
# # Training and inference cost (Tables 5-8, Figure 9)
#
# **The paper's claim.** DST reaches (or beats) dense robustness at a fraction of dense training's FLOPs and parameters (Tables 5-8, Figure 9).
#
# **How this page tests it.** For every run: parameters and inference FLOPs under its final masks, and training FLOPs from the densities it logged during training (`dstlib.flops`), beside the paper's own accounting rule; robustness accuracy against training cost.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile, names the results folder results/<profile>: quick, paper, smoke
model: str = "lenet300_100"  # model: lenet300_100, lenet5, mlp, cnn, vgg16, resnet34 or any timm model name; for clips cnn3d, slow_r50, i3d_r50, r3d50
dataset: str = "fashion_mnist"  # dataset: fashion_mnist, cifar10, cifar100, tiny_imagenet, imagenet, moving_fashion_mnist, ucf101 (all but fashion_mnist and moving_fashion_mnist need local files)
widths: list[int] = []  # hidden widths of mlp or channel widths of cnn; empty for the model's default
methods: list[str] = ["rigl", "mest_g", "granet_g"]  # sparse training methods compared with dense: static, set, rigl, mest_r, mest_g, granet_r, granet_g, acdc, chts, or chts+<init> for CHTs from an initial topology: random, csti, bsw
seeds: list[int] = [0, 1, 2, 3, 4, 5, 6, 7]  # training seeds, at least 2 distinct: the seed is the unit of replication
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
sparsities: list[float] = [0.1, 0.3, 0.5]  # target sparsities in (0, 1), fraction of zeros in the sparse layers

# %% tags=["remove-cell"]
from IPython.display import display
import matplotlib.pyplot as plt

from dstlib import book, flops

P = book.validate("cost", globals())  # one-line error naming a bad parameter, before any compute
plan = book.plan("cost", P)  # the runs, scaled to budget_minutes; prints the estimate

# %% tags=["remove-input"]
display(book.markdown(book.header(plan)))

# %% tags=["hide-input"]
runs = book.train(plan)  # loads stored runs; trains the missing ones in worker processes
c = book.costs(plan, runs)
rob = book.grid(plan, runs)
_ = book.save(c, plan, "costs"), book.save(rob.drop_vars(["correct", "dense_correct"]), plan, "robustness")

# %% [markdown]
# ## FLOPs and parameters
# Mean over seeds. Training FLOPs: ours from each run's logged densities, and the paper's rule.

# %% tags=["hide-input"]
display(c.mean("seed").to_dataframe()[["params", "inference_flops", "training_flops", "paper_training_flops"]].style.format("{:.3g}"))

# %% [markdown]
# ## The paper's own accounting against its Tables 5-7
# The paper's rule (3 x dense inference FLOPs x images x epochs, times the density for SET/RigL, the initial density for MEST, the dense-phase share for AC/DC) applied to the dense inference FLOPs the paper prints, beside every training-FLOPs cell of its Tables 5-7 (each table's unit). `agrees`: within 0.02.

# %% tags=["hide-input"]
paper = flops.paper_tables()
check = paper.to_dataframe().dropna().reset_index().pivot_table(index=["table", "method"], columns="density", values=["paper", "rule"])
display(check.style.format("{:.2f}"))
agree = paper["agrees"].to_dataframe().dropna().groupby(["table", "method"])["agrees"].agg(["sum", "count"]).astype(int)
display(book.markdown(
    "Cells the rule reproduces (of those printed): "
    + "; ".join(f"{t} {m} {a}/{n}" for (t, m), (a, n) in agree.iterrows())
    + ". Where no stated rule reproduces a row, the docstring of `dstlib.flops.paper_tables` gives the evidence."))

# %% [markdown]
# ## Robustness against training cost

# %% mystnb={"figure": {"caption": "Robustness accuracy against training FLOPs (re-measuring the paper's Figure 9): dense training (star) and each DST method at each sparsity, mean over seeds.", "name": "fig-cost-robustness"}} tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6, 4))
tr = c["training_flops"].mean("seed")
ax.scatter(float(tr.loc[dict(model="dense")]), 100 * float(rob["dense_robustness_accuracy"].mean()), color="k", marker="*", s=150, label="dense")
for m in P["methods"]:
    sel = [k for k in c["model"].values if str(k).startswith(m + " ")]
    ax.plot(tr.loc[dict(model=sel)].values, 100 * rob["robustness_accuracy"].loc[dict(method=m)].mean("seed").values, marker="o", label=m)
ax.set(xlabel="training FLOPs", ylabel="robustness accuracy (%)", xscale="log")
ax.legend()
_ = book.save_figure(fig, plan, "robustness_vs_cost")

# %% [markdown]
# ## Verdict

# %% tags=["remove-input"]
ratio = (c["training_flops"] / c["training_flops"].loc[dict(model="dense")]).mean("seed").drop_sel(model="dense")
v = book.verdicts(rob["robustness_accuracy"], rob["dense_robustness_accuracy"], P["confidence"])
verdict = book.page_verdict(v, plan.shortfalls)
book.save_verdict(plan, "DST reaches dense robustness at a fraction of the training FLOPs", verdict,
                  f"{P['model']}; training FLOPs {100 * float(ratio.min()):.0f}-{100 * float(ratio.max()):.0f}% of dense")
display(book.markdown(
    f"**The paper's claim**: DST matches or beats dense robustness at a fraction of its training cost. **Here**: "
    f"the sparse runs cost {100 * float(ratio.min()):.0f}% to {100 * float(ratio.max()):.0f}% of dense training "
    f"FLOPs (logged densities). " + book.verdict_sentence(v, "robustness accuracy")
    + f"\n\n**Verdict on robustness at that cost: {verdict}.**"))

# %% [markdown]
# ## Files and provenance

# %% tags=["remove-input"]
display(book.markdown(book.files_note(plan)))
display(book.markdown(book.provenance(plan, runs)))
