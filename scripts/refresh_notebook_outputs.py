"""Copy the outputs of a canonical run (`ftutils run --name demo`) into the committed notebooks.

Maintainers run this by hand after a seeded run on the local backend, so a reader on GitHub
sees real tables and plots. Only outputs travel: sources stay as committed (papermill's
injected-parameters cell is dropped), and papermill metadata, widget state, timings and
libraries' warnings on stderr (which name machine paths) are stripped. Refuses if an output holds a machine path or something that looks like a key.

    .venv/bin/python scripts/refresh_notebook_outputs.py [runs/demo]
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SUSPICIOUS = [re.compile(r"sk-[A-Za-z0-9_-]{16,}"), re.compile(re.escape(str(Path.home()))),
              re.compile(re.escape(str(ROOT))), re.compile(r"/tmp/")]  # a scratch data dir names this machine too


LIBRARY_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: .*\n(  .*\n?)*$")


def _library_warning(output) -> bool:
    """A library's warning on stderr (`path/to/module.py:123: FutureWarning: ...` and its source line):
    noise for a reader, and it names a machine path."""
    return (output.get("output_type") == "stream" and output.get("name") == "stderr"
            and bool(LIBRARY_WARNING.match(output.get("text", ""))))


def refresh(source: Path, executed: Path) -> None:
    src = nbformat.read(source, as_version=4)
    run = nbformat.read(executed, as_version=4)
    run_cells = [c for c in run.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if [c.source for c in run_cells] != [c.source for c in src.cells]:
        raise SystemExit(f"{executed} was not run from the current {source.name}: run `ftutils run` again")
    for cell, done in zip(src.cells, run_cells):
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in done.outputs if (o.get("output_type") != "display_data"
                        or "application/vnd.jupyter.widget-view+json" not in o.get("data", {})) and not _library_warning(o)]
        for o in cell.outputs:  # the repository's own path, as a runner prints it, reads as relative
            if o.get("output_type") == "stream":
                o["text"] = o["text"].replace(f"{ROOT}/", "")
        cell.execution_count = done.execution_count
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    src.metadata.pop("papermill", None)
    src.metadata.pop("widgets", None)
    text = nbformat.writes(src)
    for pattern in SUSPICIOUS:
        if pattern.search(text):
            raise SystemExit(f"{source.name}: an output matches {pattern.pattern!r}; fix the notebook first")
    source.write_text(text)
    print(f"updated {source.relative_to(ROOT)}")


def main() -> None:
    run_dir = ROOT / (sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
    for executed in sorted((run_dir / "notebooks").glob("*.ipynb")):
        refresh(ROOT / "notebooks" / executed.name, executed)


if __name__ == "__main__":
    main()
