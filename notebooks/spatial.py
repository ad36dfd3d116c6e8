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
# # Where the zeros go (Figures 5, 16, 17)
#
# **The paper's claim.** DST concentrates its zeros on whole kernels and channels: its heatmaps of non-zero counts per kernel show empty rows and columns where the dense model has none (Figures 5, 16, 17).
#
# **How this page tests it.** A dense network has no zeros, so comparing DST with it alone is a test against a structural zero. Each DST model is compared instead with two baselines at exactly its per-layer counts, built from the dense model of the same seed: the dense model magnitude-pruned in one shot, and the dense weights under a random mask. The measures: the fraction of kernels left empty, and the Gini coefficient of the per-output-channel weight mass (`dstlib.spatial`).

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile, names the results folder results/<profile>: quick, paper, smoke
model: str = "lenet5"  # model: lenet300_100, lenet5, mlp, cnn, vgg16, resnet34 or any timm model name; for clips cnn3d, slow_r50, i3d_r50, r3d50
dataset: str = "fashion_mnist"  # dataset: fashion_mnist, cifar10, cifar100, tiny_imagenet, imagenet, moving_fashion_mnist, ucf101 (all but fashion_mnist and moving_fashion_mnist need local files)
widths: list[int] = []  # hidden widths of mlp or channel widths of cnn; empty for the model's default
methods: list[str] = ["rigl", "mest_g", "granet_g"]  # sparse training methods compared with dense: static, set, rigl, mest_r, mest_g, granet_r, granet_g, acdc, chts, or chts+<init> for CHTs from an initial topology: random, csti, bsw
seeds: list[int] = [0, 1, 2, 3, 4, 5]  # training seeds, at least 2 distinct: the seed is the unit of replication
epochs: int = 12  # training epochs of every run (scaled down to fit budget_minutes)
batch_size: int = 128  # images per optimiser step
lr: float = 0.05  # peak learning rate (cosine schedule, SGD momentum 0.9)
distribution: str = "uniform"  # layer densities of the sparse runs: uniform, erk
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

# %% tags=["remove-cell"]
from IPython.display import display
import matplotlib.pyplot as plt

from dstlib import book

P = book.validate("spatial", globals())  # one-line error naming a bad parameter, before any compute
plan = book.plan("spatial", P)  # the runs, scaled to budget_minutes; prints the estimate

# %% tags=["remove-input"]
display(book.markdown(book.header(plan)))

# %% tags=["hide-input"]
runs = book.train(plan)  # loads stored runs; trains the missing ones in worker processes
summary, heat = book.spatial_stats(plan, runs)
_ = book.save(summary, plan, "summary")

# %% [markdown]
# ## Non-zero count and magnitude per kernel

# %% mystnb={"figure": {"caption": "Non-zero weights (top) and sum of absolute weights (bottom) per kernel of the last convolution layer (seed 0; rows: output channels, columns: input channels), as in the paper's Figures 5, 16 and 17: dense, each DST method, and the dense model magnitude-pruned to that method's counts.", "name": "fig-spatial-kernels"}} tags=["hide-input"]
fig, axes = plt.subplots(2, len(heat), figsize=(2.4 * len(heat), 5), squeeze=False)
for j, (m, k) in enumerate(heat.items()):
    axes[0, j].imshow(k["nonzero"].values, aspect="auto", cmap="viridis", vmin=0, vmax=k.attrs["kernel_size"])
    axes[1, j].imshow(k["abs_sum"].values, aspect="auto", cmap="magma")
    axes[0, j].set_title(m, fontsize=8)
axes[0, 0].set_ylabel("non-zero count")
axes[1, 0].set_ylabel("sum of |w|")
_ = book.save_figure(fig, plan, "kernels")

# %% [markdown]
# ## The concentration, as numbers
# Mean over seeds and layers. `empty_fraction_random` is what independent placement of the same number of non-zeros would give.

# %% tags=["hide-input"]
display(summary.mean(("seed", "layer")).to_dataframe().round(4))

# %% [markdown]
# ## Each method against its baselines
# The empty-kernel fraction (mean over layers) of each DST model minus that of its baseline, paired by seed.

# %% tags=["hide-input"]
empty = summary["empty_fraction"].mean("layer")
methods = list(P["methods"])
v_pruned = book.verdicts(empty.loc[dict(model=methods)].rename(model="method"),
                         empty.loc[dict(model=[f"{m} pruned" for m in methods])].rename(model="method").assign_coords(method=methods),
                         P["confidence"])
v_random = book.verdicts(empty.loc[dict(model=methods)].rename(model="method"),
                         empty.loc[dict(model=[f"{m} random" for m in methods])].rename(model="method").assign_coords(method=methods),
                         P["confidence"])
_ = book.save(v_pruned, plan, "verdicts_vs_pruned"), book.save(v_random, plan, "verdicts_vs_random")
display(book.markdown("Against the one-shot magnitude-pruned dense model:"))
display(book.verdict_table(v_pruned, ["method"]))
display(book.markdown("Against the random mask:"))
display(book.verdict_table(v_random, ["method"]))

# %% [markdown]
# ## Verdict

# %% tags=["remove-input"]
verdict = book.page_verdict(v_pruned, plan.shortfalls)
book.save_verdict(plan, "DST concentrates zeros on whole kernels", verdict,
                  f"{P['model']}, sparsity {P['sparsity']:g}, against one-shot pruning of dense")
display(book.markdown(
    "**The paper's claim**: DST leaves whole kernels and channels empty. **Here**: "
    + book.verdict_sentence(v_pruned, "the fraction of empty kernels", "one-shot magnitude pruning of the dense model")
    + " " + book.concentration_sentence(summary, methods) + f"\n\n**Verdict: {verdict}.**"))

# %% [markdown]
# ## Files and provenance

# %% tags=["remove-input"]
display(book.markdown(book.files_note(plan)))
display(book.markdown(book.provenance(plan, runs)))
