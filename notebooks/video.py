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
# # Corrupted video (Table 1, video rows)
#
# **The paper's claim.** The advantage of dynamic sparse training carries over to video: 3D CNNs trained from scratch on UCF101 at sparsity 0.1 with RigL, MEST_g and GraNet_g are more robust than densely trained ones on UCF101 under the 16 video corruptions of Schiappa et al. (CVPR 2023) at severities 1 to 4. The paper's Table 1 (and the video rows of Table 3) gives robustness accuracies of 51.14% (dense) against 52.71, 53.00 and 53.57% for 3D ResNet50, and 53.58% against 55.00, 56.30 and 55.21% for I3D: DST wins every comparison, by 1.4 to 2.7 points.
#
# **How this page tests it.** Dense training and each DST method at the sparsity of the paper are trained with the same seeds and evaluated on the very same corrupted clips: every clip under every corruption and severity is a pure function of the clip, its position in the test set and the seed (`dstlib.corruptions.corrupt_video`), and the temporal corruptions act on the whole video before the clip is sampled, as in the benchmark's code. Sparse and dense are compared seed by seed, overall (the paper's number), per corruption and per severity, each comparison with its 95% interval and the smallest difference it could detect.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile, names the results folder results/<profile>: quick, paper, smoke
model: str = "cnn3d"  # model: lenet300_100, lenet5, mlp, cnn, vgg16, resnet34 or any timm model name; for clips cnn3d, slow_r50, i3d_r50, r3d50
dataset: str = "moving_fashion_mnist"  # dataset: fashion_mnist, cifar10, cifar100, tiny_imagenet, imagenet, moving_fashion_mnist, ucf101 (all but fashion_mnist and moving_fashion_mnist need local files)
widths: list[int] = []  # hidden widths of mlp or channel widths of cnn; empty for the model's default
methods: list[str] = ["rigl", "mest_g", "granet_g"]  # sparse training methods compared with dense: static, set, rigl, mest_r, mest_g, granet_r, granet_g, acdc, chts, or chts+<init> for CHTs from an initial topology: random, csti, bsw
seeds: list[int] = [0, 1, 2, 3]  # training seeds, at least 2 distinct: the seed is the unit of replication
epochs: int = 8  # training epochs of every run (scaled down to fit budget_minutes)
batch_size: int = 64  # images per optimiser step
lr: float = 0.05  # peak learning rate (cosine schedule, SGD momentum 0.9)
distribution: str = "erk"  # layer densities of the sparse runs: uniform, erk
update_interval: int = 20  # topology update every this many optimiser steps (dT)
train_subset: int = 0  # train on this many training images; 0 for all (scaled down to fit budget_minutes)
n_test: int = 1000  # evaluate on the first n_test test images; 0 for all (scaled down to fit budget_minutes)
corruptions: list[str] = []  # corruption names (dstlib.corruptions.NAMES, VIDEO_NAMES for clips); empty for the dataset's benchmark set
severities: list[int] = [1, 2, 3, 4]  # corruption severities, a subset of 1 2 3 4 5
confidence: float = 0.95  # confidence of every interval and verdict, in (0, 1)
budget_minutes: float = 5.0  # time this notebook may take on the reference CPU; 0 for no scaling
workers: int = 0  # runs trained in parallel processes; 0 for one per CPU core (1 on a GPU)
device: str = "cpu"  # torch device: cpu, cuda, cuda:<index> or mps
store: str = ""  # run store folder; empty for $DSTLIB_STORE or runs/ in the repository
results: str = ""  # results folder; empty for results/<profile>, or results/<profile>+<changes> for other values
train: bool = True  # train the runs the store lacks (False: stop with the missing run)
sparsity: float = 0.1  # the one sparsity this section looks at closely, in (0, 1)
temporal: str = "video"  # where temporal video corruptions act: video (the whole video, then the clip is sampled, as the reference) or clip
weight_decay: float = 0.0005  # weight decay of SGD (L2), 0 or more
augmentation: str = "none"  # training augmentation: none, crop_flip, rrc_flip (clips: one crop and flip per clip)

# %% tags=["remove-cell"]
from IPython.display import display
import matplotlib.pyplot as plt
import numpy as np

from dstlib import book

P = book.validate("video", globals())  # one-line error naming a bad parameter, before any compute
plan = book.plan("video", P)  # the runs, scaled to budget_minutes; prints the estimate

# %% tags=["remove-input"]
display(book.markdown(book.header(plan)))
display(book.markdown(book.video_data_note(P)))

# %% tags=["hide-input"]
runs = book.train(plan)  # loads stored runs; trains the missing ones in worker processes
full = book.grid(plan, runs)
res = full.sel(sparsity=P["sparsity"])
diff = res["accuracy"] - res["dense_accuracy"]  # points, not a ratio: reversal leaves dense training near 0%
v = book.verdicts(res["robustness_accuracy"], res["dense_robustness_accuracy"], P["confidence"])
v_corr = book.verdicts(res["accuracy"].mean("severity"), res["dense_accuracy"].mean("severity"), P["confidence"])
v_sev = book.verdicts(res["accuracy"].mean("corruption"), res["dense_accuracy"].mean("corruption"), P["confidence"])
vc = book.verdicts(res["clean_accuracy"], res["dense_clean_accuracy"], P["confidence"])
_ = (book.save(res.drop_vars(["correct", "dense_correct"]).assign(difference=diff), plan, "robustness"),
     book.save(v, plan, "verdicts"), book.save(v_corr, plan, "verdicts_per_corruption"),
     book.save(v_sev, plan, "verdicts_per_severity"))

# %% [markdown]
# ## The corruptions

# %% mystnb={"figure": {"caption": "One test clip (its frames left to right), clean and under each of the 16 video corruptions of the paper's Table 1 video rows at severity 3: eight per-frame appearance corruptions (blurs, JPEG, four noises), two rotations and a translation, and five temporal ones that reorder or repeat frames.", "name": "fig-video-corruptions"}} tags=["hide-input"]
ex = book.clip_examples(plan, 3 if 3 in P["severities"] else P["severities"][-1])
rows, frames = ex.sizes["corruption"], ex.sizes["frame"]
fig, axes = plt.subplots(rows, frames, figsize=(0.8 * frames + 1.6, 0.8 * rows), squeeze=False)
for i, c in enumerate(ex["corruption"].values):
    for t in range(frames):
        img = ex.isel(corruption=i, frame=t).values
        axes[i, t].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        axes[i, t].set_xticks([])
        axes[i, t].set_yticks([])
    axes[i, 0].set_ylabel(str(c), rotation=0, ha="right", va="center", fontsize=8)
_ = book.save_figure(fig, plan, "examples")

# %% [markdown]
# ## Robustness accuracy of each method

# %% mystnb={"figure": {"caption": "Robustness accuracy (mean over the 16 corruptions and the severities, clean accuracy excluded) of dense training and each DST method at the paper's sparsity, re-measuring the paper's Table 1 video rows: bars are the mean over seeds, dots the seeds, the dashed line dense training's mean.", "name": "fig-video-robustness"}} tags=["hide-input"]
ra, dense = 100 * res["robustness_accuracy"], 100 * res["dense_robustness_accuracy"]
names = ["dense"] + [str(m) for m in ra["method"].values]
values = [dense.values] + [ra.loc[dict(method=m)].values for m in ra["method"].values]
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.bar(range(len(names)), [np.mean(x) for x in values], color=["0.6"] + [f"C{i}" for i in range(len(names) - 1)])
for i, x in enumerate(values):
    ax.plot(np.full(len(x), i), x, "k.", ms=4)
ax.axhline(float(dense.mean()), color="k", ls="--", lw=0.8)
low = min(float(np.min(x)) for x in values)
ax.set_ylim(max(0, low - 3), None)
ax.set_xticks(range(len(names)), names)
ax.set(ylabel="robustness accuracy (%)", title=f"{P['model']} on {P['dataset']}, sparsity {P['sparsity']:g}")
_ = book.save_figure(fig, plan, "robustness")

# %% [markdown]
# ## This page's row of Table 1
# Robustness accuracy (%) over seeds beside the paper's video rows, with each method's seed-paired difference from dense training, its 95% interval and the minimum detectable difference (MDD, 80% power).

# %% tags=["hide-input"]
display(book.markdown(book.table1_video_markdown(res, v, P)))
display(book.verdict_table(v, ["method"]))

# %% [markdown]
# ## Difference per corruption and severity

# %% mystnb={"figure": {"caption": "Accuracy of each DST method minus dense training's, in points, per corruption (left, mean over severities; error bars one sample standard deviation over seeds) and per severity (right, mean over corruptions), taking apart the robustness accuracy of the paper's Table 1 video rows. Points rather than the paper's relative gain: under some corruptions (reversal) dense accuracy is near zero.", "name": "fig-video-difference"}} tags=["hide-input"]
g = 100 * diff
fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
gc = g.mean("severity")
order = list(gc["corruption"].values)
width = 0.8 / gc.sizes["method"]
for i, m in enumerate(gc["method"].values):
    gm = gc.loc[dict(method=m)]
    axes[0].bar(np.arange(len(order)) + i * width, gm.mean("seed").values, width,
                yerr=gm.std("seed", ddof=1).values, capsize=2, label=str(m))
axes[0].axhline(0, color="k", lw=0.8)
axes[0].set_xticks(np.arange(len(order)) + 0.4 - width / 2, order, rotation=60, ha="right")
axes[0].set(ylabel="sparse - dense accuracy (pp)")
axes[0].legend()
gs = g.mean(("seed", "corruption"))
for m in gs["method"].values:
    axes[1].plot(gs["severity"].values, gs.loc[dict(method=m)].values, marker="o", label=str(m))
axes[1].axhline(0, color="k", lw=0.8)
axes[1].set(xlabel="severity", ylabel="sparse - dense accuracy (pp)")
axes[1].set_xticks(list(gs["severity"].values))
_ = book.save_figure(fig, plan, "difference")

# %% [markdown]
# ## Each corruption and severity compared with dense training
# Accuracy under each corruption (mean over severities), then under each severity (mean over corruptions), sparse minus dense, per method, paired by seed; then the comparisons counted per method.

# %% tags=["hide-input"]
display(book.verdict_table(v_corr, ["method", "corruption"]))
display(book.verdict_table(v_sev, ["method", "severity"]))
display(book.win_tie_loss(v_corr))

# %% [markdown]
# ## How much this design can see

# %% tags=["hide-input"]
noise = book.image_noise(res["correct"], res["dense_correct"])
display(book.markdown(
    book.power_note(res["robustness_accuracy"], res["dense_robustness_accuracy"], confidence=P["confidence"])
    + f" The test clips add their own uncertainty, which the seed-level interval does not contain (every seed is "
    f"evaluated on the same {res.sizes['image']:,} clips): resampling the clips gives a standard error of at most "
    f"{100 * noise:.3f} pp for a paired difference of seed means, against a largest MDD of "
    f"{100 * float(v['mdd'].max()):.2f} pp."))

# %% [markdown]
# ## Verdict

# %% tags=["remove-input"]
verdict = book.page_verdict(v, plan.shortfalls)
best = book.best_low_sparsity(full, book.verdicts(full["robustness_accuracy"], full["dense_robustness_accuracy"],
                                                  P["confidence"]))
_ = book.save_table3(plan, [book.table3_row(plan, book.video_test_set(P), float(dense.mean()) / 100, best, verdict)])
book.save_verdict(plan, "DST beats dense in robustness accuracy on corrupted video at sparsity 0.1", verdict,
                  f"{P['model']}, {len(P['seeds'])} seeds, dense {float(dense.mean()):.2f}%")
display(book.markdown(
    f"**The paper's claim**: on corrupted UCF101, 3D CNNs trained with RigL, MEST_g and GraNet_g at sparsity 0.1 "
    f"are more robust than dense ones, by 1.4 to 2.7 points (Table 1). **Here** ({P['model']} on "
    f"{P['dataset']}, {len(P['seeds'])} seeds): dense training reached {float(dense.mean()):.2f}% robustness "
    f"accuracy (clean {book.pp(res['dense_clean_accuracy'].mean())}%). "
    + book.verdict_sentence(v, "robustness accuracy") + f"\n\n**Verdict: {verdict}.**\n\n"
    "Per corruption: " + book.verdict_sentence(v_corr, "accuracy per corruption (mean over severities)")
    + "\n\nOn clean test clips, for comparison: " + book.verdict_sentence(vc, "clean accuracy")))

# %% [markdown]
# ## Files and provenance

# %% tags=["remove-input"]
display(book.markdown(book.files_note(plan)))
display(book.markdown(book.provenance(plan, runs)))
