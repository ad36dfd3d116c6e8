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
# # Where the models look (Figure 19)
#
# **The paper's claim.** Grad-CAM maps of DST models highlight smaller regions than those of dense models, on clean and corrupted images (Figure 19: the cat's face rather than face and body).
#
# **How this page tests it.** Grad-CAM maps (`dstlib.gradcam`, the last convolution layer) of every model on the same test images, clean and corrupted; the attention area is the fraction of pixels at or above half of each map's maximum, averaged over images and severities, and compared with dense training seed by seed.

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
corruptions: list[str] = ["gaussian_noise"]  # corruption names (dstlib.corruptions.NAMES, VIDEO_NAMES for clips); empty for the dataset's benchmark set
severities: list[int] = [1, 3, 5]  # corruption severities, a subset of 1 2 3 4 5
confidence: float = 0.95  # confidence of every interval and verdict, in (0, 1)
budget_minutes: float = 25.0  # time this notebook may take on the reference CPU; 0 for no scaling
workers: int = 0  # runs trained in parallel processes; 0 for one per CPU core (1 on a GPU)
device: str = "cpu"  # torch device: cpu, cuda, cuda:<index> or mps
store: str = ""  # run store folder; empty for $DSTLIB_STORE or runs/ in the repository
results: str = ""  # results folder; empty for results/<profile>, or results/<profile>+<changes> for other values
train: bool = True  # train the runs the store lacks (False: stop with the missing run)
sparsity: float = 0.5  # the one sparsity this section looks at closely, in (0, 1)
n_images: int = 64  # test images measured by Grad-CAM (the first three shown)

# %% tags=["remove-cell"]
from IPython.display import display
import matplotlib.pyplot as plt

from dstlib import book

P = book.validate("gradcam", globals())  # one-line error naming a bad parameter, before any compute
plan = book.plan("gradcam", P)  # the runs, scaled to budget_minutes; prints the estimate

# %% tags=["remove-input"]
display(book.markdown(book.header(plan)))

# %% tags=["hide-input"]
runs = book.train(plan)  # loads stored runs; trains the missing ones in worker processes
corruption = P["corruptions"][0] if P["corruptions"] else "gaussian_noise"
g = book.gradcam_maps(plan, runs, corruption)
_ = book.save(g, plan, "maps")

# %% [markdown]
# ## Grad-CAM side by side

# %% mystnb={"figure": {"caption": "Grad-CAM maps of seed 0's models on three test images (blocks of rows), clean and at each severity of the corruption; first column the image, then one column per model, as in the paper's Figure 19.", "name": "fig-gradcam-maps"}} tags=["hide-input"]
sev, models = list(g["severity"].values), list(g["model"].values)
shown = min(3, g.sizes["image"])
fig, axes = plt.subplots(shown * len(sev), 1 + len(models), figsize=(1.4 * (1 + len(models)), 1.4 * shown * len(sev)), squeeze=False)
for i in range(shown):
    for r, s in enumerate(sev):
        row = i * len(sev) + r
        axes[row, 0].imshow(g["pixels"].loc[dict(severity=s)].isel(image=i).values, cmap="gray")
        axes[row, 0].set_ylabel("clean" if s == 0 else f"{corruption} {s}", fontsize=6)
        for c, m in enumerate(models):
            axes[row, c + 1].imshow(g["gradcam"].loc[dict(model=m, severity=s)].isel(seed=0, image=i).values, cmap="jet", vmin=0, vmax=1)
for c, m in enumerate(models):
    axes[0, c + 1].set_title(str(m), fontsize=8)
for a in axes.ravel():
    a.set_xticks([]), a.set_yticks([])
_ = book.save_figure(fig, plan, "maps")

# %% [markdown]
# ## Attention area
# Fraction of pixels at or above half of each map's maximum (%), mean over images and seeds.

# %% tags=["hide-input"]
area = g["attention_area"].mean("image")
display((100 * area.mean("seed")).to_pandas().round(1))
v = book.verdicts(area.loc[dict(model=list(P["methods"]))].rename(model="method").mean("severity"),
                  area.loc[dict(model="dense")].mean("severity"), P["confidence"])
_ = book.save(v, plan, "verdicts")
display(book.verdict_table(v, ["method"]))

# %% [markdown]
# ## Verdict

# %% tags=["remove-input"]
verdict = book.page_verdict(v, plan.shortfalls, claim="worse")
book.save_verdict(plan, "DST attends to smaller regions than dense (Grad-CAM)", verdict,
                  f"{P['model']}, {P['n_images']} images, {corruption}")
display(book.markdown(
    "**The paper's claim**: DST models attend to smaller regions. **Here** "
    f"({P['model']}, {P['n_images']} images, clean and {corruption}): "
    + book.verdict_sentence(v, "attention area (here *better* means a larger area)")
    + f"\n\n**Verdict (a smaller area is the claimed direction): {verdict}.**"))

# %% [markdown]
# ## Files and provenance

# %% tags=["remove-input"]
display(book.markdown(book.files_note(plan)))
display(book.markdown(book.provenance(plan, runs)))
