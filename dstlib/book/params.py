"""A section's parameters: validation before any compute, the profile they come from, where results go.

A notebook passes its globals: the annotated names of its `parameters` cell
plus whatever papermill injected. `validate` rejects injected names the
section does not take (papermill itself only warns and runs the defaults),
reads list values given as text (`-p seeds '[0, 1]'`), and checks what only
the registries and the data can tell (model names, files on disk, whether the
section can use the model at all), each with a one-line error.

Folders: the store and the results live in the repository (the folder
holding `params/` and `notebooks/`, found upwards from the working folder,
so a notebook opened in JupyterLab from `notebooks/` shares what `make book`
made), unless `DSTLIB_STORE` or the parameters say otherwise. The book's
results are `results/<profile>/`; a run whose parameters differ from its
profile writes to `results/<profile>+<name>=<value>...` instead, so that a
custom run never overwrites the book.
"""
from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import types
from pathlib import Path
from typing import Any, Mapping

import torch

from dstlib import config

#: Names an IPython kernel defines on its own (never parameters).
KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


def repo_root(start: str | os.PathLike | None = None) -> Path | None:
    """The repository: the first folder upwards from `start` (default: the working folder) with params/ and
    notebooks/; else the one holding the installed package (an editable install); None outside a checkout."""
    for base in (Path(start or os.getcwd()).resolve(), Path(__file__).resolve().parents[2]):
        for folder in (base, *base.parents):
            if (folder / "params").is_dir() and (folder / "notebooks").is_dir():
                return folder
    return None


def store_dir(p: Mapping[str, Any]) -> Path:
    """The run store: the `store` parameter, else $DSTLIB_STORE, else <repository>/runs (./runs outside one)."""
    if p.get("store"):
        return Path(p["store"])
    if os.environ.get("DSTLIB_STORE"):
        return Path(os.environ["DSTLIB_STORE"])
    root = repo_root()
    return (root / "runs") if root else Path("runs")


def profile_params(section: str, profile: str) -> dict[str, Any] | None:
    """params/<profile>/<section>.yaml of the repository, validated; None when there is no such file."""
    import yaml
    root = repo_root()
    path = root / "params" / profile / f"{section}.yaml" if root else None
    if path is None or not path.is_file():
        return None
    return config.check_notebook_params(section, yaml.safe_load(path.read_text()))


# parameters that change where things are written or how fast, not what is measured
NOT_RESULTS = ("store", "results", "train", "device", "workers", "budget_minutes")


def changed(section: str, p: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{name: (profile value, this value)} for the parameters that differ from the profile's file."""
    base = profile_params(section, p["profile"])
    if base is None:
        return {"profile": (None, p["profile"])}
    return {k: (base[k], p[k]) for k in config.SECTION_PARAMS[section] if base[k] != p[k]}


def results_dir(section: str, p: Mapping[str, Any]) -> Path:
    """Where the section writes: `results` if given; results/<profile> when the parameters are the profile's
    (up to store, device, workers and budget); else a folder named after the changed values."""
    if p.get("results"):
        return Path(p["results"])
    root = repo_root()
    base = (root / "results") if root else Path("results")
    diff = {k: v for k, (_, v) in changed(section, p).items() if k not in NOT_RESULTS}
    if not diff:
        return base / p["profile"]
    parts = [f"{k}={_slug(v)}" for k, v in sorted(diff.items())]
    name = "+".join([p["profile"], *parts])
    if len(name) > 80:
        digest = hashlib.sha256(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{p['profile']}+custom-{digest}"
    return base / name


def _slug(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"[^A-Za-z0-9._,-]", "_", text) or "none"


def injected_unknowns(section: str, params: Mapping[str, Any]) -> list[str]:
    """Names in a notebook's globals that look like parameters but are not the section's.

    The `parameters` cell annotates every parameter (`model: str = "mlp"`), so its names are in
    `__annotations__`; papermill injects plain assignments, which are not. Only values a parameter could
    take count (text, numbers, lists, dicts, None): modules, functions and the kernel's own names are skipped.
    """
    if "__annotations__" not in params:
        return []
    declared = set(params["__annotations__"]) | set(config.SECTION_PARAMS[section])
    out = []
    for name, value in params.items():
        if name.startswith("_") or name in declared or name in KERNEL_NAMES:
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, type)) or callable(value):
            continue
        if value is None or isinstance(value, (str, int, float, bool, list, tuple, dict)):
            out.append(name)
    return out


def validate(section: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The section's parameters from `params` (e.g. a notebook's globals()), checked before any compute.

    One-line errors: an unknown parameter name (with the closest valid one), a bad value (dstlib.config),
    an unknown model, a dataset without its files, a model or setting the section cannot use.
    """
    import dstlib.corruptions as dc
    from dstlib.data import ood

    config.check_choice("section", section, config.SECTIONS)
    unknown = injected_unknowns(section, params)
    if unknown:
        valid = config.SECTION_PARAMS[section]
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"parameter {unknown[0]!r} is unknown to the {section} notebook{hint}; "
                         f"valid: {', '.join(valid)}")
    names = tuple(dc.VIDEO_NAMES) if section == "video" else tuple(dc.NAMES)
    p = config.check_notebook_params(section, params, {"corruptions": names, "renditions": tuple(ood.RENDITIONS)})
    from dstlib import models
    models.check_name(p["model"])
    if p["model"] not in models.names() and p["widths"]:
        raise ValueError(f"widths={p['widths']!r} is invalid for timm model {p['model']!r}; allowed: []")
    _check_data(p["dataset"], p["train"])
    profile_recipes(p["profile"])  # a bad recipes file is an error before any compute
    if p["device"].startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={p['device']!r} is invalid here (no CUDA device); allowed: cpu")
    _check_section_can_use(section, p)
    return p


def _check_data(dataset: str, train: bool) -> None:
    from dstlib import data
    try:
        data.load(dataset, "test")  # video datasets read their lists here; clips are decoded on first use
    except FileNotFoundError as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise FileNotFoundError(f"dataset={dataset!r} needs local files ({first}); allowed without local data: "
                                f"fashion_mnist; see the book's page on reproducing at paper scale") from None


def profile_recipes(profile: str) -> list[dict[str, Any]]:
    """params/<profile>/recipes.yaml of the repository, checked by `dstlib.config.check_recipes` (empty without
    the file): the RunSpec fields of the profile's recipe per model and dataset."""
    root = repo_root()
    path = root / "params" / profile / "recipes.yaml" if root else None
    if path is None or not path.is_file():
        return []
    return _recipes(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _recipes(path: str, mtime_ns: int) -> list[dict[str, Any]]:
    import yaml
    return config.check_recipes(yaml.safe_load(Path(path).read_text()), f"params/{Path(path).parent.name}/recipes.yaml")


def _check_section_can_use(section: str, p: Mapping[str, Any]) -> None:
    """Settings a section could only fail on after training, refused now."""
    from dstlib import data, models, spectral
    info = data.info(p["dataset"])
    from dstlib import video_models
    if (p["model"] in video_models.NAMES) != (info.frames > 1):
        kind = "a video network" if info.frames > 1 else "an image model"
        allowed = ", ".join(video_models.NAMES) if info.frames > 1 else "any model but " + ", ".join(video_models.NAMES)
        raise ValueError(f"model={p['model']!r} is invalid for dataset {p['dataset']!r}, which needs {kind}; "
                         f"allowed: {allowed}")
    if section in ("spatial", "gradcam"):
        with torch.random.fork_rng(devices=[]):
            net = models.create(p["model"], info, widths=tuple(p["widths"]))
        if not any(isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)) for m in net.modules()):
            raise ValueError(f"model={p['model']!r} has no convolution, which the {section} section measures; "
                             f"allowed: a convolutional model (lenet5, cnn, vgg16, resnet34, a timm CNN)")
    if "radii" in p:
        limit = spectral.max_radius(info.image_size, info.image_size)
        bad = [r for r in p["radii"] if r > limit]
        if bad:
            raise ValueError(f"radii={p['radii']!r} is invalid: {bad[0]:g} is beyond the largest radius of a "
                             f"{info.image_size}-px image; allowed: numbers in [0, {limit:.1f}]")
