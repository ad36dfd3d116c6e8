"""The book's notebooks: jupytext pairs, parameters, every notebook on the smoke profile, the built book in Chromium.

One session-scoped fixture executes all section notebooks with params/smoke/ (sharing one run store), and
the book test builds a copy of the book from those executed notebooks and opens every page in headless
Chromium (installed with apt-get where missing; the test fails when no browser can be had).
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")
papermill = pytest.importorskip("papermill")

from dstlib import config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
BIN = Path(sys.executable).parent


def _sources(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("section", config.SECTIONS)
def test_notebook_is_paired_in_sync_and_has_no_outputs(section):
    ipynb, py = NB / f"{section}.ipynb", NB / f"{section}.py"
    assert ipynb.is_file() and py.is_file(), f"{section}: needs both {ipynb.name} and {py.name}"
    nb = nbformat.read(ipynb, as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert not c.outputs, f"{ipynb.name} cell {i} has committed outputs"
            assert c.execution_count is None, f"{ipynb.name} cell {i} has an execution count"
    assert _sources(nb) == _sources(jupytext.read(py)), f"{section}: the .ipynb and .py pair drifted (jupytext --sync)"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{section}: needs exactly one cell tagged parameters, found {len(tagged)}"
    nxt = nb.cells[tagged[0] + 1].source
    assert f'book.validate("{section}", globals())' in nxt, "the cell after the parameters must validate them"


@pytest.mark.parametrize("section", config.SECTIONS)
def test_jupytext_sync_leaves_the_pair_unchanged(section, tmp_path):
    # what JupyterLab's jupytext does on save: the committed .py must already be its canonical form
    from jupytext.cli import jupytext as jupytext_cli
    for name in (f"{section}.ipynb", f"{section}.py", "jupytext.toml"):
        shutil.copy(NB / name, tmp_path / name)
    os.utime(tmp_path / f"{section}.ipynb")  # the notebook is the newer file, as after a save
    jupytext_cli(["--quiet", "--sync", str(tmp_path / f"{section}.ipynb")])
    assert (tmp_path / f"{section}.py").read_text() == (NB / f"{section}.py").read_text()


def test_no_other_notebooks_or_strays():
    names = {p.stem for p in NB.glob("*.ipynb")} | {p.stem for p in NB.glob("*.py")}
    assert names == set(config.SECTIONS)
    assert 'formats = "ipynb,py:percent"' in (NB / "jupytext.toml").read_text()


@pytest.mark.parametrize("section", config.SECTIONS)
def test_help_notebook_lists_every_parameter_with_type_and_help(section):
    from papermill.inspection import _infer_parameters
    from papermill.iorw import load_notebook_node
    params = {p.name: p for p in _infer_parameters(load_notebook_node(str(NB / f"{section}.ipynb")))}
    assert set(params) == set(config.SECTION_PARAMS[section])
    for name, p in params.items():
        assert p.inferred_type_name == config.NOTEBOOK_PARAMS[name][0], name
        assert p.help == config.NOTEBOOK_PARAMS[name][1], name


@pytest.mark.parametrize("profile", config.PROFILES)
@pytest.mark.parametrize("section", config.SECTIONS)
def test_profile_yaml_names_every_parameter_and_is_valid(profile, section):
    data = yaml.safe_load((ROOT / "params" / profile / f"{section}.yaml").read_text())
    assert set(data) == set(config.SECTION_PARAMS[section])
    assert data["profile"] == profile
    p = config.check_notebook_params(section, data)
    if profile == "paper":  # Table 4's epochs per model; the video rows train 80 epochs (Table 4)
        table4_epochs = {"vgg16": 160, "resnet34": 160, "efficientnet_b0": 100, "resnet50": 90, "mlp": 100}
        assert p["device"] == "cuda" and p["train_subset"] == 0 and p["n_test"] == 0
        assert p["epochs"] == (80 if section == "video" else table4_epochs[p["model"]])
    else:  # the quick and smoke profiles need no data beyond the Fashion-MNIST package
        assert p["dataset"] == ("moving_fashion_mnist" if section == "video" else "fashion_mnist") and p["device"] == "cpu"


def test_quick_defaults_are_the_notebook_defaults():
    from papermill.inspection import _infer_parameters
    from papermill.iorw import load_notebook_node
    import ast
    for section in config.SECTIONS:
        params = _infer_parameters(load_notebook_node(str(NB / f"{section}.ipynb")))
        defaults = {p.name: ast.literal_eval(p.default) for p in params}
        assert defaults == yaml.safe_load((ROOT / "params/quick" / f"{section}.yaml").read_text()), section


# --- executing the notebooks on the smoke profile --------------------------------------------
@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """{section: executed notebook path}, plus the store and results folders, all in one tmp folder."""
    base = tmp_path_factory.mktemp("smoke")
    out = {"base": base, "store": base / "runs", "results": base / "results", "sections": base / "book" / "sections"}
    out["sections"].mkdir(parents=True)
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TQDM_DISABLE")}
    os.environ["OMP_NUM_THREADS"] = saved["OMP_NUM_THREADS"] or "1"  # the kernels inherit these
    os.environ["TQDM_DISABLE"] = "1"  # as make book
    for section in config.SECTIONS:
        params = yaml.safe_load((ROOT / "params/smoke" / f"{section}.yaml").read_text())
        params.update(store=str(out["store"]), results=str(out["results"]))
        path = out["sections"] / f"{section}.ipynb"
        papermill.execute_notebook(str(NB / f"{section}.ipynb"), str(path), parameters=params, cwd=str(ROOT),
                                   kernel_name="python3", progress_bar=False)
        out[section] = path
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return out


@pytest.mark.parametrize("section", config.SECTIONS)
def test_smoke_notebook_saves_results_figures_verdict_and_provenance(smoke, section):
    nb = nbformat.read(smoke[section], as_version=4)
    text = json.dumps(nb)
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert "Provenance" in text and "git commit" in text and "spec hash" in text
    assert "Estimate on this project's 2-core CPU" in text  # the estimate is printed before training
    assert "These runs cannot support a verdict about the paper" in text  # said at the top of the page
    res = smoke["results"]
    ncs = list(res.glob(f"{section}_*.nc"))
    assert ncs, f"{section}: no netCDF results in {res}"
    from dstlib import book
    for path in ncs:
        ds = book.load(path)
        assert ds.sizes and json.loads(ds.attrs["params"])["profile"] == "smoke"
    assert list(res.glob(f"{section}_*.png")), f"{section}: no figure"
    verdict = json.loads((res / f"{section}_verdict.json").read_text())
    full = "12,000" if section == "video" else "60,000"
    assert verdict["claim"] and verdict["verdict"].startswith(f"no verdict: smoke run (trained on 256 of {full}")
    # every run the section used is in the shared store and named in the provenance table
    ids = re.findall(r"\| `([0-9a-f]{16})` \|", text)
    assert ids and all((smoke["store"] / i / "manifest.json").is_file() for i in ids)


def test_bad_parameter_stops_before_compute_with_one_line(tmp_path):
    from papermill.exceptions import PapermillExecutionError
    with pytest.raises(PapermillExecutionError) as e:
        papermill.execute_notebook(str(NB / "spectral.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"methods": ["set", "lottery"], "store": str(tmp_path / "runs")},
                                   cwd=str(ROOT), kernel_name="python3", progress_bar=False)
    assert e.value.ename == "ValueError"
    assert e.value.evalue.startswith("methods=['set', 'lottery'] is invalid; allowed:") and "rigl" in e.value.evalue
    assert "\n" not in e.value.evalue
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_unknown_parameter_name_stops_before_compute(tmp_path):
    from papermill.exceptions import PapermillExecutionError
    with pytest.raises(PapermillExecutionError) as e:
        papermill.execute_notebook(str(NB / "spectral.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"modle": "resnet50", "store": str(tmp_path / "runs")},
                                   cwd=str(ROOT), kernel_name="python3", progress_bar=False)
    assert e.value.ename == "ValueError"
    assert e.value.evalue.startswith("parameter 'modle' is unknown to the spectral notebook (did you mean model?)")
    assert not (tmp_path / "runs").exists()


def test_dataset_without_local_files_stops_with_missing_data_error(tmp_path, monkeypatch):
    from papermill.exceptions import PapermillExecutionError
    monkeypatch.setenv("DSTLIB_DATA", str(tmp_path / "nodata"))
    with pytest.raises(PapermillExecutionError) as e:
        papermill.execute_notebook(str(NB / "overall.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"dataset": "cifar10", "store": str(tmp_path / "runs")},
                                   cwd=str(ROOT), kernel_name="python3", progress_bar=False)
    assert e.value.ename == "FileNotFoundError"
    assert e.value.evalue.startswith("dataset='cifar10' needs local files") and "\n" not in e.value.evalue
    assert not (tmp_path / "runs").exists()


# --- the built book, offline, in headless Chromium ---------------------------------------------
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    subprocess.run(["make", "-s", "browser"], cwd=ROOT, check=False, timeout=900)
    path = shutil.which("chromium")
    if not path:
        pytest.fail("no headless browser: install the Debian package chromium (make browser)")
    return path


HARNESS = """<!doctype html><html><body><pre id="result">pending</pre><script>
const page = new URLSearchParams(location.search).get("page");
const f = document.createElement("iframe"); f.style.width = "1200px"; f.style.height = "900px";
f.onload = () => setTimeout(() => {
  const d = f.contentDocument, imgs = Array.from(d.images);
  const out = {title: d.title, h1: d.querySelectorAll("h1").length, images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")),
    errors: d.querySelectorAll(".output.error, .output.traceback, .output_error, div.cell_output .traceback").length,
    traceback: d.body.innerText.includes("Traceback (most recent call last)"),
    text: d.body.innerText.length};
  document.getElementById("result").textContent = JSON.stringify(out);
}, 1500);
f.src = page; document.body.appendChild(f);
</script></body></html>"""


def _serve(folder: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_book_builds_offline_and_every_page_renders_in_chromium(smoke):
    browser = _chromium()
    base = smoke["base"]
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, base / name)
    for md in (ROOT / "book").glob("*.md"):
        shutil.copy(md, base / "book" / md.name)
    subprocess.run([str(BIN / "python"), "-m", "dstlib.book", "tidy",
                    *[str(smoke["sections"] / f"{s}.ipynb") for s in config.SECTIONS]], check=True)
    subprocess.run([str(BIN / "python"), "-m", "dstlib.book", "summary", str(smoke["results"]),
                    str(smoke["sections"] / "summary.md")], check=True)
    build = subprocess.run([str(BIN / "jupyter-book"), "build", str(base), "--warningiserror", "--keep-going"],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    html = base / "_build" / "html"
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if p.name not in ("search.html", "genindex.html") and "_static" not in p.parts)
    expected = {"book/intro.html", "book/reproducing.html"} | {f"book/sections/{s}.html" for s in config.SECTIONS}
    assert expected <= set(pages)
    # offline: nothing loaded from another host
    remote = re.compile(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](?:https?:)?//""", re.I)
    machine_path = re.compile(r"/tmp/|/root/|/home/|" + re.escape(str(base)) + "|" + re.escape(str(ROOT)))
    for page in expected:
        text = (html / page).read_text()
        assert not remote.findall(text), f"{page} loads {remote.findall(text)[:2]}"
        assert "mathjax" not in text.lower() or "cdn" not in text.lower()
        # what a reader sees: no stderr, no tracebacks, no NaN in a table or output, no path of this machine
        assert 'class="output stderr' not in text, f"{page} shows stderr"
        assert "Traceback" not in text, f"{page} shows a traceback"
        assert not re.search(r"<td>\s*(nan|NaN)\s*</td>|>\s*NaN\s*<", text), f"{page} shows NaN"
        assert not machine_path.search(text), f"{page} shows a path of this machine: {machine_path.findall(text)[:3]}"
        if page.startswith("book/sections/"):  # a section page names no installation (the prose may say `make`)
            assert ".venv/" not in text and "site-packages" not in text, f"{page} shows the builder's environment"
        if page.startswith("book/sections/"):
            # code folded: every code cell is hidden or removed; figures are numbered and captioned
            cells = re.findall(r'class="cell( [^"]*)? docutils container"', text)
            assert cells and all("tag_hide-input" in c or "tag_remove-input" in c for c in cells), (page, cells)
            captions = re.findall(r"<figcaption>(.*?)</figcaption>", text, re.S)
            assert captions and all(re.search(r"Figure \d+", c) and re.search(r"the paper.s (Figure|Table)", c)
                                    for c in captions), f"{page}: every figure is numbered and names the paper's"
            assert "Verdict" in text and "claim" in text
    for css in html.rglob("*.css"):
        assert not re.search(r"url\((['\"]?)https?://", css.read_text(errors="ignore")), f"{css} fetches a remote url"
    # the verdict table made it into the introduction, with a link per section
    intro = (html / "book/intro.html").read_text()
    for s in config.SECTIONS:
        assert f'href="sections/{s}.html' in intro, s
    (html / "_harness.html").write_text(HARNESS)
    server = _serve(html)
    try:
        port = server.server_address[1]
        for page in sorted(expected):
            url = f"http://127.0.0.1:{port}/_harness.html?page=/{page}"
            run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                  "--virtual-time-budget=10000", "--dump-dom", url],
                                 capture_output=True, text=True, timeout=120)
            m = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, re.S)
            assert m and m.group(1) != "pending", f"{page}: Chromium gave no result ({run.stderr[-500:]})"
            res = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
            assert res["h1"] >= 1 and res["text"] > 200, f"{page} did not render: {res}"
            assert not res["broken"], f"{page}: figures that do not load: {res['broken']}"
            assert res["errors"] == 0 and not res["traceback"], f"{page} shows an error cell: {res}"
            if page.startswith("book/sections/"):
                assert res["images"] >= 1, f"{page} shows no figure"
    finally:
        server.shutdown()
