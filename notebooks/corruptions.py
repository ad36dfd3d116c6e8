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
# # Gain per corruption and severity (Figures 1, 3, 10-15)
#
# **The paper's claim.** DST's gain over dense training differs by corruption type and is largest for corruptions that add high-frequency content (noise, pixelation, JPEG); the paper's Figures 1 and 3 show relative gains of up to a few percent for those, and Figures 10-15 show the gain per severity.
#
# **How this page tests it.** At one sparsity, every DST method and dense training are evaluated on the same corrupted images; the relative gain (Acc_sparse - Acc_dense) / Acc_dense is compared with dense training *per corruption*, seed by seed; and the corruptions are ranked by the high-frequency energy each one measurably adds to the test images, with a bootstrap interval over seeds for the association between that energy and the gain.

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
cbar: bool = True  # also measure ImageNet-C-bar / CIFAR-10-C-bar (its table chosen by image size)

# %% tags=["remove-cell"]
from IPython.display import display
import matplotlib.pyplot as plt
import numpy as np

from dstlib import book

P = book.validate("corruptions", globals())  # one-line error naming a bad parameter, before any compute
plan = book.plan("corruptions", P)  # the runs, scaled to budget_minutes; prints the estimate

# %% tags=["remove-input"]
display(book.markdown(book.header(plan)))

# %% tags=["hide-input"]
runs = book.train(plan)  # loads stored runs; trains the missing ones in worker processes
full = book.grid(plan, runs)
res = full.sel(sparsity=P["sparsity"])
gain = (res["accuracy"] - res["dense_accuracy"]) / res["dense_accuracy"]
energy = book.energy(plan)
order = book.rank_corruptions(energy)
# per corruption: accuracy averaged over severities, compared with dense corruption by corruption
v_corr = book.verdicts(res["accuracy"].mean("severity"), res["dense_accuracy"].mean("severity"), P["confidence"])
v_all = book.verdicts(full["robustness_accuracy"], full["dense_robustness_accuracy"], P["confidence"])
assoc = book.gain_energy_association(gain, energy, P["confidence"])
_ = (book.save(res.drop_vars(["correct", "dense_correct"]).assign(gain=gain), plan, "gain"),
     book.save(energy, plan, "energy"), book.save(v_corr, plan, "verdicts_per_corruption"),
     book.save(assoc, plan, "energy_association"))

# %% [markdown]
# ## Relative gain per corruption

# %% mystnb={"figure": {"caption": "Relative gain of each DST method over dense training per corruption (re-measuring the paper's Figures 1 and 3), mean over seeds and severities, error bars one sample standard deviation (ddof=1) over seeds. Corruptions are ordered by the high-frequency energy they add, from the one that removes most (left) to the one that adds most (right).", "name": "fig-corruptions-gain"}} tags=["hide-input"]
g = 100 * gain.mean("severity").loc[dict(corruption=order)]
fig, ax = plt.subplots(figsize=(9, 4))
width = 0.8 / g.sizes["method"]
for i, m in enumerate(g["method"].values):
    gm = g.loc[dict(method=m)]
    ax.bar(np.arange(len(order)) + i * width, gm.mean("seed").values, width, yerr=gm.std("seed", ddof=1).values,
           capsize=2, label=str(m))
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(np.arange(len(order)) + 0.4 - width / 2, order, rotation=60, ha="right")
ax.set(ylabel="relative gain over dense (%)", title=f"{P['model']}, sparsity {P['sparsity']:g}")
ax.legend()
_ = book.save_figure(fig, plan, "gain_per_corruption")

# %% [markdown]
# ## Each corruption compared with dense training
# Accuracy under each corruption (mean over severities), sparse minus dense, per method, paired by seed: a corruption where DST helps is found here even when the mean over all corruptions shows nothing.

# %% tags=["hide-input"]
display(book.verdict_table(v_corr, ["method", "corruption"]))
display(book.win_tie_loss(v_corr))

# %% [markdown]
# ## Gain per severity, and the energy each corruption adds

# %% mystnb={"figure": {"caption": "Left: relative gain per severity (re-measuring the paper's Figures 10-15), mean over seeds and corruptions. Right: the high-frequency energy each corruption adds to the test images (dstlib.spectral, mean over severities; negative: the corruption removes high frequencies, as blurs do), on a symmetric log scale.", "name": "fig-corruptions-severity"}} tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
gs = 100 * gain.mean(("seed", "corruption"))
for m in gs["method"].values:
    axes[0].plot(gs["severity"].values, gs.loc[dict(method=m)].values, marker="o", label=str(m))
axes[0].axhline(0, color="k", lw=0.8)
axes[0].set(xlabel="severity", ylabel="relative gain (%)")
axes[0].legend()
e = energy.mean("severity").loc[dict(corruption=order)]
axes[1].bar(range(len(order)), e.values, color=np.where(e.values < 0, "tab:blue", "tab:red"))
axes[1].set_xticks(range(len(order)), order, rotation=60, ha="right")
axes[1].set_yscale("symlog", linthresh=float(np.abs(e.values).min()) or 1e-6)
axes[1].axhline(0, color="k", lw=0.8)
axes[1].set(ylabel="added high-frequency energy")
_ = book.save_figure(fig, plan, "gain_per_severity")

# %% [markdown]
# ## Does the gain grow with the high-frequency energy?
# Spearman's rank correlation over corruptions between the energy a corruption adds and DST's mean relative gain, per method, with a 95% bootstrap interval over seeds (seeds resampled with replacement).

# %% tags=["hide-input"]
display((assoc[["rho", "lower", "upper"]].to_dataframe().round(2)).join(assoc["verdict"].to_dataframe()))

# %% [markdown]
# ## The second benchmark: C-bar
# ImageNet-C-bar and CIFAR-10-C-bar (Mintun et al., 2021) are ten corruptions chosen to be perceptually unlike ImageNet-C (blue noise, caustics, checkerboard cut-outs, sine waves, sparkles, ...); the paper reports ResNet50 on ImageNet-C-bar in its Figure 3 (bottom). Here the C-bar table chosen by the image size (`dstlib.corruptions.cbar`), on the same test images and runs.

# %% mystnb={"figure": {"caption": "Relative gain of each DST method over dense training per C-bar corruption (left, mean over seeds and severities, error bars one sample standard deviation) and per severity (right), re-measuring the paper's Figure 3 (bottom) on the C-bar table of this image size.", "name": "fig-corruptions-cbar"}} tags=["hide-input"]
cbar = book.grid(plan, runs, suite="cbar").sel(sparsity=P["sparsity"]) if P["cbar"] else None
if cbar is not None:
    gain_c = (cbar["accuracy"] - cbar["dense_accuracy"]) / cbar["dense_accuracy"]
    v_cbar = book.verdicts(cbar["accuracy"].mean("severity"), cbar["dense_accuracy"].mean("severity"), P["confidence"])
    _ = book.save(cbar.drop_vars(["correct", "dense_correct"]).assign(gain=gain_c), plan, "cbar_gain"), book.save(v_cbar, plan, "verdicts_cbar")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    gc = 100 * gain_c.mean("severity")
    names = list(gc["corruption"].values)
    width = 0.8 / gc.sizes["method"]
    for i, m in enumerate(gc["method"].values):
        gm = gc.loc[dict(method=m)]
        axes[0].bar(np.arange(len(names)) + i * width, gm.mean("seed").values, width, yerr=gm.std("seed", ddof=1).values, capsize=2, label=str(m))
        axes[1].plot(gain_c["severity"].values, 100 * gain_c.loc[dict(method=m)].mean(("seed", "corruption")).values, marker="o", label=str(m))
    axes[0].set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=60, ha="right")
    for ax in axes:
        ax.axhline(0, color="k", lw=0.8)
    axes[0].set(ylabel="relative gain over dense (%)")
    axes[1].set(xlabel="severity", ylabel="relative gain (%)")
    axes[0].legend()
    _ = book.save_figure(fig, plan, "cbar_gain")

# %% tags=["hide-input"]
if cbar is not None:
    display(book.verdict_table(v_cbar, ["method", "corruption"]))

# %% [markdown]
# ## On Fashion-MNIST-C, the paper's Table 2 test set
# Fashion-MNIST-C (Weiss and Tonella, 2022) gives every test image one of 15 corruptions at a fixed severity; accuracy per corruption, sparse minus dense, paired by seed (Fashion-MNIST only).

# %% tags=["hide-input"]
mc = book.mnist_c_grid(plan, runs).sel(sparsity=P["sparsity"]) if P["dataset"] == "fashion_mnist" else None
if mc is not None:
    v_mc = book.verdicts(mc["accuracy_per_corruption"], mc["dense_accuracy_per_corruption"], P["confidence"])
    v_mc_all = book.verdicts(mc["accuracy"], mc["dense_accuracy"], P["confidence"])
    _ = book.save(mc.drop_vars(["correct", "dense_correct"]), plan, "fashion_mnist_c"), book.save(v_mc, plan, "verdicts_fashion_mnist_c")
    display(book.verdict_table(v_mc_all, ["method"]))
    display(book.verdict_table(v_mc, ["method", "corruption"]))

# %% [markdown]
# ## Verdict

# %% tags=["remove-input"]
verdict = book.page_verdict(v_corr, plan.shortfalls)
energy_verdict = book.association_verdict(assoc, plan.shortfalls)
agree = int((assoc["verdict"] == book.HIGHER_GAIN).sum())
best = book.best_low_sparsity(full, v_all)
rows = [book.table3_row(plan, "Fashion-MNIST, 18 corruptions x 5 severities", float(res["dense_robustness_accuracy"].mean()),
                        best, book.page_verdict(v_all, plan.shortfalls))]
if cbar is not None:
    full_c = book.grid(plan, runs, suite="cbar")
    v_c = book.verdicts(full_c["robustness_accuracy"], full_c["dense_robustness_accuracy"], P["confidence"])
    rows.append(book.table3_row(plan, "C-bar corruptions (by image size) x 5 severities", float(full_c["dense_robustness_accuracy"].mean()),
                                book.best_low_sparsity(full_c, v_c), book.page_verdict(v_c, plan.shortfalls)))
if mc is not None:
    full_mc = book.mnist_c_grid(plan, runs)
    v_m = book.verdicts(full_mc["accuracy"], full_mc["dense_accuracy"], P["confidence"])
    rows.append(book.table3_row(plan, "Fashion-MNIST-C (Weiss and Tonella; the paper's Table 2 set)", float(full_mc["dense_accuracy"].mean()),
                                book.best_low_sparsity(full_mc.rename(accuracy="robustness_accuracy"), v_m), book.page_verdict(v_m, plan.shortfalls)))
_ = book.save_table3(plan, rows)
book.save_verdict(plan, "DST's gain is largest for corruptions that add high frequencies",
                  book.joint_verdict({"energy association": energy_verdict, "per corruption": verdict}),
                  f"{P['model']}, sparsity {P['sparsity']:g}")
display(book.markdown(
    f"**The paper's claim**: the gain differs by corruption and is largest where a corruption adds high "
    f"frequencies. **Here** ({P['model']}, sparsity {P['sparsity']:g}): "
    + book.verdict_sentence(v_corr, "accuracy per corruption (mean over severities)")
    + f" Most gained: {book.extreme(gain, True)}; most lost: {book.extreme(gain, False)}. "
    f"The energy-gain rank correlation's 95% interval lies above zero for {agree} of {assoc.sizes['method']} "
    f"methods." + (" On the C-bar corruptions: " + book.verdict_sentence(v_cbar, "accuracy per C-bar corruption") if cbar is not None else "")
    + (" On Fashion-MNIST-C, per corruption: " + book.verdict_sentence(v_mc, "accuracy per Fashion-MNIST-C corruption") if mc is not None else "")
    + f"\n\n**Verdict on the per-corruption gains: {verdict}. On the high-frequency association: {energy_verdict}.**"))

# %% [markdown]
# ## Files and provenance

# %% tags=["remove-input"]
display(book.markdown(book.files_note(plan)))
display(book.markdown(book.provenance(plan, runs)))
