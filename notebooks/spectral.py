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
# # Frequency attenuation (Figures 6, 7, 18)
#
# **The paper's claim.** DST de-emphasises high-frequency features: when the high frequencies of the test images are removed, DST models lose less accuracy than dense ones (radius-accuracy curves, Figure 7), an advantage that appears early in training and grows with it (Figure 18).
#
# **How this page tests it.** The test images are attenuated in the Fourier domain at a series of radii (the high band removed from the outside in, or the low band from DC outwards, `dstlib.spectral`), every model is evaluated after each epoch of training, and the accuracy averaged over the non-zero radii of each band is compared with dense training, seed by seed.

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
n_test: int = 1000  # evaluate on the first n_test test images; 0 for all (scaled down to fit budget_minutes)
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
radii: list[float] = [0, 2, 4, 6, 8, 10, 12, 14, 16]  # attenuation radii in frequency-index steps (dstlib.spectral convention)

# %% tags=["remove-cell"]
from IPython.display import display
import matplotlib.pyplot as plt

from dstlib import book

P = book.validate("spectral", globals())  # one-line error naming a bad parameter, before any compute
plan = book.plan("spectral", P)  # the runs, scaled to budget_minutes; prints the estimate

# %% tags=["remove-input"]
display(book.markdown(book.header(plan)))

# %% tags=["hide-input"]
runs = book.train(plan)  # loads stored runs; trains the missing ones (and their curves) in worker processes
curves = book.spectral_curves(plan, runs)
_ = book.save(curves, plan, "curves")

# %% [markdown]
# ## The attenuation

# %% mystnb={"figure": {"caption": "One test image with the high band (top row) or the low band (bottom row) removed at each radius, as in the paper's Figure 6.", "name": "fig-spectral-attenuation"}} tags=["hide-input"]
ex = book.attenuated_examples(plan, P["radii"])
fig, axes = plt.subplots(2, len(P["radii"]), figsize=(1.3 * len(P["radii"]), 3), squeeze=False)
for i, b in enumerate(ex["band"].values):
    for j, r in enumerate(ex["radius"].values):
        axes[i, j].imshow(ex.loc[dict(band=b, radius=r)].values, cmap="gray", vmin=0, vmax=1)
        axes[i, j].set_axis_off()
        axes[i, j].set_title(f"{b} r={r:g}", fontsize=7)
_ = book.save_figure(fig, plan, "attenuation")

# %% [markdown]
# ## Radius-accuracy curves after training

# %% mystnb={"figure": {"caption": "Accuracy against the attenuation radius after training, re-measuring the paper's Figure 7: high frequencies removed (left) or low frequencies removed (right); mean over seeds, error bars one sample standard deviation (ddof=1).", "name": "fig-spectral-curves"}} tags=["hide-input"]
final = 100 * curves["accuracy"].isel(epoch=-1)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, band in zip(axes, final["band"].values):
    for m in final["model"].values:
        a = final.loc[dict(model=m, band=band)]
        ax.errorbar(a["radius"].values, a.mean("seed").values, a.std("seed", ddof=1).values, marker="o", capsize=2, label=str(m))
    ax.set(title=f"{band} frequencies removed", xlabel="radius", ylabel="accuracy (%)")
axes[0].legend()
_ = book.save_figure(fig, plan, "radius_accuracy")

# %% [markdown]
# ## During training

# %% mystnb={"figure": {"caption": "Sparse minus dense accuracy, averaged over the non-zero radii of each band, after each epoch (re-measuring the paper's Figure 18c); mean over seeds, band one sample standard deviation of the paired difference.", "name": "fig-spectral-training"}} tags=["hide-input"]
nz = curves["accuracy"].loc[dict(radius=[r for r in curves["radius"].values if r > 0])].mean("radius")
diff = 100 * (nz.loc[dict(model=list(P["methods"]))] - nz.loc[dict(model="dense")])
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, band in zip(axes, diff["band"].values):
    for m in diff["model"].values:
        d = diff.loc[dict(model=m, band=band)]
        mean, sd = d.mean("seed").values, d.std("seed", ddof=1).values
        ax.plot(d["epoch"].values, mean, marker="o", label=str(m))
        ax.fill_between(d["epoch"].values, mean - sd, mean + sd, alpha=0.15)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(title=f"{band} band removed", xlabel="epoch", ylabel="sparse - dense (pp)")
axes[0].legend()
_ = book.save_figure(fig, plan, "during_training")

# %% [markdown]
# ## Each method compared with dense training
# Accuracy averaged over the non-zero radii of each band, after training, sparse minus dense, paired by seed.

# %% tags=["hide-input"]
fa = nz.isel(epoch=-1)
v = book.verdicts(fa.loc[dict(model=list(P["methods"]))].rename(model="method"), fa.loc[dict(model="dense")], P["confidence"])
_ = book.save(v, plan, "verdicts")
display(book.verdict_table(v, ["method", "band"]))

# %% [markdown]
# ## Verdict

# %% tags=["remove-input"]
verdict = book.page_verdict(v.loc[dict(band="high")], plan.shortfalls)
book.save_verdict(plan, "DST loses less accuracy than dense when high frequencies are removed", verdict,
                  f"{P['model']}, sparsity {P['sparsity']:g}")
display(book.markdown(
    "**The paper's claim**: removing high frequencies hurts DST models less than dense ones (Figure 7). "
    f"**Here** ({P['model']}, sparsity {P['sparsity']:g}), high band: "
    + book.verdict_sentence(v.loc[dict(band="high")], "accuracy with high frequencies removed")
    + "\n\nLow band, for comparison: " + book.verdict_sentence(v.loc[dict(band="low")], "accuracy with low frequencies removed")
    + f"\n\n**Verdict: {verdict}.**"))

# %% [markdown]
# ## Files and provenance

# %% tags=["remove-input"]
display(book.markdown(book.files_note(plan)))
display(book.markdown(book.provenance(plan, runs)))
