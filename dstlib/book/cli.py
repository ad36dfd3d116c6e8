"""`python -m dstlib.book summary RESULTS_DIR OUT.md`: the front page's verdict and Table 3 tables.
`python -m dstlib.book tidy NOTEBOOK...`: hide the parameter cells of executed notebooks in the book."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

USAGE = "usage: python -m dstlib.book summary RESULTS_DIR OUT.md | tidy NOTEBOOK.ipynb..."


def tidy(path: Path) -> None:
    """Tag the `parameters` cell and papermill's injected one `remove-cell`: the page shows its parameters as a
    table of the values that differ from the defaults instead (`report.header`)."""
    import nbformat
    from dstlib import io
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    io.atomic_save_text(path, nbformat.writes(nb))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and args[0] == "summary":
        from dstlib import io
        from dstlib.book.report import summary
        Path(args[2]).parent.mkdir(parents=True, exist_ok=True)
        io.atomic_save_text(Path(args[2]), summary(args[1]))
        return 0
    if len(args) >= 2 and args[0] == "tidy":
        for name in args[1:]:
            tidy(Path(name))
        return 0
    print(USAGE, file=sys.stderr)
    return 2

