"""`ftutils run`: the main job. Executes the four notebooks in order with papermill into
`runs/<name>/notebooks/` (the sources are never overwritten), on one backend shared by
all of them, and prints where the results are."""
from __future__ import annotations

import ast
import json
import os
import sys
import time
from pathlib import Path

NOTEBOOKS = ["01_access", "02_prepare", "03_train", "04_evaluate"]


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run the notebook suite end to end (papermill)")
    p.add_argument("--name", default="demo", help="run folder under runs/ (default: demo)")
    p.add_argument("--notebooks-dir", default=None, help="where the notebooks are (default: the repo's notebooks/)")
    p.add_argument("--only", nargs="*", choices=NOTEBOOKS, help="run only these notebooks")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter for every notebook that has it (VALUE is a Python literal)")
    p.set_defaults(func=run)


def parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param wants KEY=VALUE, got {pair!r}")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value  # a bare word is a string
    return params


def notebook_parameters(path: Path) -> set[str]:
    """Names assigned in the notebook's `parameters` cell, so each notebook gets only its own."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
    return set()


def run(args) -> int:
    import papermill as pm

    root = Path(__file__).resolve().parents[2]  # ftutils/suite/cli.py -> the repository
    nb_dir = Path(args.notebooks_dir) if args.notebooks_dir else root / "notebooks"
    # Relative to the repo (the kernels' cwd), so no machine path lands in outputs.
    run_dir = Path("runs") / args.name
    out_dir = root / run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Nobody clicks in a papermill run: widgets render their static form.
    os.environ["FTUTILS_INTERACTIVE"] = "0"
    extra = parse_params(args.param)

    connection = None
    backend = os.environ.get("FTUTILS_BACKEND") or ("openai" if os.environ.get("OPENAI_API_KEY") else "local")
    if backend == "local":
        # Start (or find) the local server once here, so every notebook's kernel reuses it
        # instead of each starting and stopping its own.
        from ftutils.train.connect import connect
        connection = connect("local")
        print(f"local backend at {connection.base_url}")

    for name in args.only or NOTEBOOKS:
        src = nb_dir / f"{name}.ipynb"
        wanted = notebook_parameters(src)
        params = {k: v for k, v in {"run_dir": str(run_dir), **extra}.items() if k in wanted}
        started = time.monotonic()
        print(f"[{name}] running with {params} ...", flush=True)
        pm.execute_notebook(str(src), str(out_dir / f"{name}.ipynb"), parameters=params,
                            kernel_name="python3", cwd=str(root), progress_bar=False)
        print(f"[{name}] done in {time.monotonic() - started:.0f}s", flush=True)
    print(f"results: {root / run_dir}/ (run.json, evaluation.json, report.md, notebooks/)")
    return 0


if __name__ == "__main__":
    sys.exit(run(None))
