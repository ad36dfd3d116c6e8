"""What a page writes and shows: results files, figures, its verdict record, the front page's tables, provenance.

Files go to the plan's results folder (`params.results_dir`), each written to
a temporary name and renamed: `<section>_<name>.nc` (xarray, netCDF3 through
scipy, no HDF5 needed), `<section>_<name>.png`, `<section>_verdict.json` and,
for the sections that measure a scenario of the paper's Table 3,
`<section>_table3.json`. `summary` turns the verdict and Table 3 records of a
results folder into the Markdown the introduction includes.

Text shown on a page never holds a path of the machine that built it: paths
are given relative to the repository.
"""
from __future__ import annotations

import importlib.metadata
import io as _io
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from dstlib import config
from dstlib.book import evidence, params as params_mod
from dstlib.book.plan import Plan

PACKAGES = ("dstlib", "torch", "numpy", "xarray", "scipy", "timm", "captum", "matplotlib", "papermill",
            "jupyter-book")

#: The paper's Table 3 (robustness accuracy, %): scenario -> (dense, sparsity, RigL, MEST_g, GraNet_g).
#: The second ImageNet row is ImageNet-C-bar (the bar is lost in the paper's extracted text).
PAPER_TABLE3 = {
    ("CIFAR10-C", "VGG16"): (73.32, 0.4, 73.64, 73.47, 73.32),
    ("CIFAR100-C", "ResNet34"): (51.65, 0.4, 52.56, 52.56, 51.78),
    ("TinyImageNet-C", "EfficientNet-B0"): (15.42, 0.4, 16.46, 16.50, 15.82),
    ("ImageNet-C", "ResNet50"): (38.38, 0.1, 38.70, 38.64, 38.72),
    ("ImageNet-C-bar", "ResNet50"): (40.38, 0.1, 41.44, 40.50, 41.07),
    ("ImageNet-3DCC", "ResNet50"): (43.62, 0.1, 44.08, 43.87, 44.46),
    ("ImageNet-C", "DeiT"): (54.68, 0.1, 54.73, 55.15, 54.94),
    ("UCF101 (corrupted)", "3D ResNet50"): (51.14, 0.1, 52.71, 53.00, 53.57),
    ("UCF101 (corrupted)", "I3D"): (53.58, 0.1, 55.00, 56.30, 55.21),
}
TABLE3_METHODS = ("rigl", "mest_g", "granet_g")
#: The paper's Table 2 (robustness accuracy on Fashion-MNIST-C, %, mean and standard deviation over its seeds):
#: method label -> {sparsity: (mean, sd)}; dense has no sparsity.
PAPER_TABLE2 = {
    "dense": {0.0: (19.82, 0.32)},
    "set": {0.97: (23.44, 1.79), 0.95: (25.55, 0.32)},
    "rigl": {0.97: (25.23, 1.39), 0.95: (25.03, 1.11)},
    "chts+csti": {0.97: (24.50, 1.03), 0.95: (27.38, 0.25)},
    "chts+bsw": {0.97: (26.64, 1.06), 0.95: (27.13, 0.33)},
}
METHOD_NAMES = {"set": "SET", "rigl": "RigL", "mest_r": "MEST_r", "mest_g": "MEST_g", "granet_r": "GraNet_r",
                "granet_g": "GraNet_g", "acdc": "AC/DC", "static": "static", "chts": "CHTs",
                "chts+random": "CHTs", "chts+csti": "CHTs+CSTI", "chts+bsw": "CHTs+BSW"}


def shown_path(path: str | os.PathLike) -> str:
    """`path` relative to the repository; outside it only its last folder name: never the builder's absolute path."""
    path = Path(path)
    root = params_mod.repo_root()
    if root is not None and path.resolve().is_relative_to(root):
        return path.resolve().relative_to(root).as_posix()
    return path.as_posix() if not path.is_absolute() else f".../{path.name}"


# --- files -------------------------------------------------------------------------------------------
def save(ds: xr.Dataset | xr.DataArray, plan: Plan, name: str) -> Path:
    """Write `ds` as netCDF (scipy engine) to <results>/<section>_<name>.nc, atomically; returns the path."""
    from dstlib import io
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or name)
    ds = ds.copy()
    for k, v in list(ds.coords.items()):
        if v.dtype == object:
            ds = ds.assign_coords({k: v.astype(str)})
    for k, v in list(ds.data_vars.items()):
        if v.dtype == object or v.dtype.kind == "U":
            ds[k] = v.astype("S")
        if v.dtype == bool:
            ds[k] = v.astype("i1")
        elif v.dtype.kind == "u":  # netCDF3 has no unsigned types
            ds[k] = v.astype("i2" if v.dtype.itemsize == 1 else "i8")
    ds.attrs = {k: (json.dumps(v) if not isinstance(v, (str, int, float)) else v) for k, v in ds.attrs.items()}
    ds.attrs["params"] = json.dumps({k: v for k, v in plan.params.items() if not k.startswith("_")})
    path = plan.results_dir / f"{plan.section}_{name}.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_save_bytes(path, bytes(ds.to_netcdf(engine="scipy")))
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    return xr.load_dataset(_io.BytesIO(Path(path).read_bytes()), engine="scipy")


def save_figure(fig, plan: Plan, name: str) -> Path:
    """Save a matplotlib figure as <results>/<section>_<name>.png, atomically."""
    from dstlib import io
    path = plan.results_dir / f"{plan.section}_{name}.png"
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    io.atomic_save_bytes(path, buf.getvalue())
    return path


def save_verdict(plan: Plan, claim: str, verdict: str, detail: str) -> Path:
    """Record the section's verdict (read by `summary`) as <results>/<section>_verdict.json."""
    from dstlib import io
    path = plan.results_dir / f"{plan.section}_verdict.json"
    io.atomic_save_text(path, json.dumps({"section": plan.section, "claim": claim, "verdict": verdict,
                                          "detail": detail}, indent=1))
    return path


def save_table3(plan: Plan, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Record the section's rows of Table 3 (scenario, dense accuracy, each method's best low-sparsity result)."""
    from dstlib import io
    path = plan.results_dir / f"{plan.section}_table3.json"
    io.atomic_save_text(path, json.dumps(list(rows), indent=1))
    return path


def table3_row(plan: Plan, test_set: str, dense: float, best: Mapping[str, Mapping[str, Any]],
               page_verdict: str) -> dict[str, Any]:
    """One Table 3 row: the scenario, dense robustness accuracy (fraction) and `verdicts.best_low_sparsity`.

    A cell reads "no verdict" when the page gives none, and where it is a tie its design could not have
    told from a difference of `evidence.MAX_MDD` (the rule of `verdicts.page_verdict`)."""
    p = plan.params
    no_verdict = page_verdict.startswith("no verdict")

    def weak_tie(c):
        return c["verdict"] == "no detectable difference" and c["mdd"] > evidence.MAX_MDD
    methods = {m: dict(c, verdict="no verdict") if no_verdict or weak_tie(c) else dict(c) for m, c in best.items()}
    return {"section": plan.section, "model": p["model"], "dataset": p["dataset"], "test_set": test_set,
            "seeds": len(p["seeds"]), "dense": dense, "methods": methods,
            "evidence": page_verdict if no_verdict else ""}


# --- the front page ------------------------------------------------------------------------------
def summary(results_dir: str | os.PathLike, link_prefix: str = "sections/") -> str:
    """Markdown: the sections' verdicts, then Table 3 as re-measured here beside the paper's own."""
    rows = ["| section | the paper's claim | at this scale | detail |", "|---|---|---|---|"]
    for s in config.SECTIONS:
        path = Path(results_dir) / f"{s}_verdict.json"
        if not path.is_file():
            rows.append(f"| [{s}]({link_prefix}{s}.ipynb) | | not run | |")
            continue
        v = json.loads(path.read_text())
        rows.append(f"| [{s}]({link_prefix}{s}.ipynb) | {v['claim']} | {v['verdict']} | {v['detail']} |")
    return "\n".join(rows) + "\n\n" + table3(results_dir) + "\n"


def table3_rows(results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The Table 3 rows the sections recorded in `results_dir`, in the book's section order."""
    rows = []
    for s in config.SECTIONS:
        path = Path(results_dir) / f"{s}_table3.json"
        if path.is_file():
            rows += json.loads(path.read_text())
    return rows


def table3_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: Table 3 as re-measured here, one row per recorded scenario."""
    if not rows:
        return "No section has recorded a row of Table 3 yet."
    methods = sorted({m for r in rows for m in r["methods"]}, key=list(METHOD_NAMES).index)
    lines = ["| test set | model | seeds | dense | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |",
             "|" + "---|" * (4 + len(methods))]
    for r in rows:
        cells = []
        for m in methods:
            c = r["methods"].get(m)
            cells.append("" if c is None else f"{100 * c['accuracy']:.2f} at {c['sparsity']:g}: {c['verdict']} "
                                              f"({100 * c['diff']:+.2f}, MDD {100 * c['mdd']:.2f})")
        note = f" ({r['evidence']})" if r["evidence"] else ""
        lines.append(f"| {r['test_set']} | {r['model']} | {r['seeds']} | {100 * r['dense']:.2f}{note} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def table2_markdown(accuracy: xr.DataArray, dense: xr.DataArray) -> str:
    """Markdown: Table 2 as measured here (mean +- sample standard deviation over seeds, %) with the paper's
    value under each. `accuracy`: (method, sparsity, seed); `dense`: (seed)."""
    def cell(x):
        return f"{100 * float(x.mean('seed')):.2f} ± {100 * float(x.std('seed', ddof=1)):.2f}"

    def paper(label, sp):
        v = PAPER_TABLE2.get(label, {}).get(round(float(sp), 2))
        return f" (paper {v[0]:.2f} ± {v[1]:.2f})" if v else ""
    methods = [str(m) for m in accuracy["method"].values]
    lines = ["| sparsity | dense | " + " | ".join(METHOD_NAMES.get(m, m) for m in methods) + " |",
             "|" + "---|" * (2 + len(methods))]
    for sp in sorted(accuracy["sparsity"].values, reverse=True):
        row = [f"{100 * sp:g}%", cell(dense) + paper("dense", 0.0)]
        row += [cell(accuracy.loc[dict(method=m, sparsity=sp)]) + paper(m, sp) for m in methods]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def paper_table3_markdown() -> str:
    """Markdown: the paper's own Table 3."""
    lines = ["| test set | model | dense | sparsity | RigL | MEST_g | GraNet_g |", "|---|---|---|---|---|---|---|"]
    for (test, model), (d, sp, *vals) in PAPER_TABLE3.items():
        lines.append(f"| {test} | {model} | {d:.2f} | {sp:g} | " + " | ".join(f"{x:.2f}" for x in vals) + " |")
    return "\n".join(lines)


def table3(results_dir: str | os.PathLike) -> str:
    """Table 3 re-measured (one row per scenario recorded in `results_dir`), then the paper's Table 3."""
    return "\n".join([
        "**Table 3, re-measured here.** Robustness accuracy (%), mean over seeds, of dense training and of each DST "
        "method at its best sparsity of at most 50%, with the seed-paired verdict against dense (sparse - dense "
        "and the minimum detectable difference, MDD, in points).", "", table3_markdown(table3_rows(results_dir)), "",
        "**The paper's Table 3** (robustness accuracy, %, three seeds, no interval given).", "",
        paper_table3_markdown()])


# --- what a page shows about itself ----------------------------------------------------------------
def parameters_table(section: str, p: Mapping[str, Any]) -> str:
    """Markdown: the parameters that differ from the notebook's defaults (the quick profile), or a line saying
    there are none."""
    defaults = params_mod.profile_params(section, "quick")
    if defaults is None:
        return ""
    # the store and results folders are said elsewhere on the page, without the builder's paths
    diff = {k: (defaults[k], p[k]) for k in config.SECTION_PARAMS[section]
            if defaults[k] != p[k] and k not in ("store", "results")}
    if not diff:
        return f"All parameters at their defaults (`params/quick/{section}.yaml`)."
    rows = ["| parameter | this page | default |", "|---|---|---|"]
    rows += [f"| `{k}` | `{json.dumps(new)}` | `{json.dumps(old)}` |" for k, (old, new) in diff.items()]
    return "Parameters that differ from the defaults (`params/quick/" + section + ".yaml`):\n\n" + "\n".join(rows)


def rebuild_command(section: str, p: Mapping[str, Any]) -> str:
    """The command that rebuilds this page's results: papermill with its profile file and the changed values."""
    cmd = (f"papermill notebooks/{section}.ipynb book/sections/{section}.ipynb "
           f"-f params/{p['profile']}/{section}.yaml")
    for k, (_, new) in params_mod.changed(section, p).items():
        if k not in ("profile", "store", "results"):
            cmd += f" -p {k} " + (f"'{json.dumps(new)}'" if isinstance(new, (list, dict, str)) else json.dumps(new))
    return cmd


def files_note(plan: Plan, page_dir: str = "book/sections") -> str:
    """Markdown: where this page's results are, each netCDF file as a download link, and the rebuild command."""
    folder = plan.results_dir
    files = sorted(folder.glob(f"{plan.section}_*.nc"))
    root = params_mod.repo_root()
    lines = [f"Results of this page: `{shown_path(folder)}/`"]
    if files and root is not None and folder.resolve().is_relative_to(root):
        rel = Path(os.path.relpath(folder.resolve(), (root / page_dir).resolve())).as_posix()
        lines[0] += " (" + ", ".join(f"{{download}}`{f.name} <{rel}/{f.name}>`" for f in files) + ")."
    elif files:
        lines[0] += " (" + ", ".join(f"`{f.name}`" for f in files) + ")."
    lines.append(f"Rebuild it with `{rebuild_command(plan.section, plan.params)}`, or the whole book with "
                 f"`make book PROFILE={plan.params['profile']}`.")
    return " ".join(lines)


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=here)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, cwd=here)
        if out.returncode == 0:
            return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown (not a git checkout)"


def provenance(plan: Plan, runs: Mapping[str, Any]) -> str:
    """Markdown: package versions, git commit, machine, parameters and the hash of every run used."""
    versions = []
    for pkg in PACKAGES:
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    shown = {k: v for k, v in plan.params.items() if not k.startswith("_") and k not in ("store", "results")}
    lines = ["**Provenance.**", "",
             f"- git commit: `{_git_commit()}`",
             f"- packages: {', '.join(versions)}; python {platform.python_version()}",
             f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, device `{plan.params['device']}`, "
             f"{plan.workers} worker process(es)",
             f"- parameters: `{json.dumps(shown)}`",
             f"- results: `{shown_path(plan.results_dir)}`",
             *(f"- scaled to the budget: {n}" for n in plan.notes),
             "", "| run | method | sparsity | seed | mixup | spec hash (sha256) |", "|---|---|---|---|---|---|"]
    for run in runs.values():
        s = run.spec
        lines.append(f"| `{run.id}` | {s.method} | {s.sparsity if s.method != 'dense' else 0:g} | {s.seed} | "
                     f"{s.mixup:g} | `{s.hash()}` |")
    return "\n".join(lines)


def markdown(text: str):
    """Display `text` as Markdown in the notebook (and, through MyST, in the built book)."""
    from IPython.display import Markdown
    return Markdown(text)


def pp(x: float) -> str:
    """A fraction as percentage points with two decimals."""
    return f"{100 * float(x):.2f}"


def header(plan: Plan) -> str:
    """The page's first lines: the runs and their estimate, whether they can support a verdict, the parameters
    that differ from the defaults, and where the results go."""
    lines = [plan.description.replace("\n", " ")]
    if plan.shortfalls:
        lines.append("**These runs cannot support a verdict about the paper** (the evidence rules of "
                     "`dstlib.book.evidence`): " + "; ".join(plan.shortfalls) + ".")
    table = parameters_table(plan.section, plan.params)
    return "\n\n".join([*lines, table, f"Results go to `{shown_path(plan.results_dir)}/`."])


# --- the video section -----------------------------------------------------------------------------------
def video_test_set(p: Mapping[str, Any]) -> str:
    """The video section's test set as Table 3 names it."""
    names = {"moving_fashion_mnist": "Moving Fashion-MNIST clips", "ucf101": "UCF101 split 1"}
    name = names.get(p["dataset"], p["dataset"])
    n = len(p["corruptions"]) or 16
    return f"{name}, {n} video corruptions x {len(p['severities'])} severities"


def video_data_note(p: Mapping[str, Any]) -> str:
    """Markdown: what the video section's data and model are, and what they stand in for."""
    from dstlib import data, models
    from dstlib.data import moving
    info = data.info(p["dataset"])
    with torch.random.fork_rng(devices=[]):
        n_params = sum(x.numel() for x in models.create(p["model"], info, widths=tuple(p["widths"])).parameters())
    where = ("the whole video, before the clip is sampled (the benchmark code's order)" if p["temporal"] == "video"
             else "the sampled clip")
    common = (f" The model is `{p['model']}` ({n_params:,} parameters), trained from scratch; the temporal "
              f"corruptions act on {where}; severities {', '.join(map(str, p['severities']))} (the paper reports "
              f"four levels, 1 to 4).")
    if p["dataset"] == "moving_fashion_mnist":
        return ("**The data.** No real video reaches the machine this profile is built for, so it stands in for "
                "UCF101 with Moving Fashion-MNIST (`dstlib.data.moving`): "
                f"{moving.TRAIN_CLIPS:,} training and {moving.TEST_CLIPS:,} test clips of {moving.FRAMES} gray "
                f"{moving.SIZE} x {moving.SIZE} px frames, each showing a real Fashion-MNIST garment (training clips "
                "from training images, test clips from test images) that moves right, left, down or up, turns "
                "clockwise or counter-clockwise, or zooms in or out, with a little camera shake; the label is the "
                f"motion, not the garment. Clips are sampled from {moving.LENGTH}-frame videos as UCF101's are (the "
                "middle frame of each of 8 equal intervals), so the temporal corruptions act on whole videos as on "
                "UCF101; reversal turns each motion into its opposite. The spatial corruptions use the `small` "
                "table (blurs and shifts scaled for frames of about 32 px). It keeps the paper's design (a 3D CNN "
                "from scratch, ERK at sparsity 0.1, the same 16 corruptions, dense and DST on the same clips), not "
                "its scale: accuracies here are not comparable with the paper's, only the sign and size of the "
                "differences are." + common)
    if p["dataset"] == "ucf101":
        return ("**The data.** UCF101 split 1 (trainlist01 / testlist01), read from `$DSTLIB_DATA/ucf101/` "
                "(`dstlib.data.ucf101`): 8 frames per clip, the middle frame of each of 8 equal intervals, each "
                "resized to 280 px, centre-cropped and resized to 224 px, the reference's test transform. "
                "`slow_r50` is what the benchmark's code (Schiappa et al., which the paper follows) calls "
                "ResNet50; the paper's \"3D ResNet50\" may instead be Hara et al.'s full-3D network (`-p model "
                "r3d50`); the I3D row is `-p model i3d_r50`." + common)
    return common.strip()


def table1_video_markdown(res: xr.Dataset, v: xr.Dataset, p: Mapping[str, Any]) -> str:
    """Markdown: this page's robustness accuracies (mean +- sd over seeds) and verdicts beside the paper's video
    rows of Table 1."""
    ra, dense = 100 * res["robustness_accuracy"], 100 * res["dense_robustness_accuracy"]
    methods = [str(m) for m in ra["method"].values]
    head = "| | model | dense | " + " | ".join(METHOD_NAMES.get(m, m) for m in methods) + " |"
    lines = [head, "|" + "---|" * (3 + len(methods))]
    cells = []
    for m in methods:
        x, c = ra.loc[dict(method=m)], v.loc[dict(method=m)]
        cells.append(f"{float(x.mean()):.2f} +- {float(x.std(ddof=1)):.2f} ({100 * float(c['diff']):+.2f}, "
                     f"[{100 * float(c['lower']):+.2f}, {100 * float(c['upper']):+.2f}], MDD "
                     f"{100 * float(c['mdd']):.2f}: {c['verdict'].item()})")
    lines.append(f"| here ({len(p['seeds'])} seeds) | {p['model']} | {float(dense.mean()):.2f} +- "
                 f"{float(dense.std(ddof=1)):.2f} | " + " | ".join(cells) + " |")
    for (test, model), (d, _, *vals) in PAPER_TABLE3.items():
        if test.startswith("UCF101"):
            by = dict(zip(TABLE3_METHODS, vals))
            lines.append(f"| the paper | {model} | {d:.2f} | " + " | ".join(
                f"{by[m]:.2f} ({by[m] - d:+.2f})" if m in by else "" for m in methods) + " |")
    return "\n".join(lines)
