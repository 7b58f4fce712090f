"""`ftutils run`: the main job. Executes the five notebooks in order with papermill into
`runs/<name>/notebooks/` (the sources are never overwritten), on one backend shared by
all of them, and prints where the results are.

Beyond one run: `--sweep KEY=V1,V2` repeats the run once per value (runs NAME-KEY-V), and
`--iterate` follows one run with the next one its evaluation recommends (`next_run` in
evaluation.json: the parameters to change and why), as a person iterating would; the main
job's 05_iterate notebook does the same and compares the two runs.
"""
from __future__ import annotations

import ast
import json
import os
import sys
import time
from pathlib import Path

NOTEBOOKS = ["01_access", "02_prepare", "03_train", "04_evaluate", "05_iterate", "06_preference"]
ONE_RUN = ["02_prepare", "03_train", "04_evaluate"]
"""What a run repeats: 05_iterate itself runs these for its second run, and a sweep or an
--iterate follow-up runs them alone (05 in each would start runs of its own)."""


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run the notebook suite end to end (papermill)")
    p.add_argument("--name", default="demo", help="run folder under runs/ (default: demo)")
    p.add_argument("--notebooks-dir", default=None, help="where the notebooks are (default: the repo's notebooks/)")
    p.add_argument("--only", nargs="*", choices=NOTEBOOKS, help="run only these notebooks")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter for every notebook that has it (VALUE is a Python literal)")
    p.add_argument("--sweep", metavar="KEY=V1,V2,...", default=None,
                   help="one run per value of KEY, named NAME-KEY-V (with the other -p values)")
    p.add_argument("--iterate", action="store_true",
                   help="after the run, run 02-04 again as its evaluation recommends (into NAME-2)")
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


def sweep_runs(name: str, sweep: str | None, params: dict) -> list[tuple[str, dict]]:
    """(run name, parameters) for each run of a sweep; one run without a sweep."""
    if not sweep:
        return [(name, params)]
    key, sep, values = sweep.partition("=")
    if not sep or not values:
        raise SystemExit(f"--sweep wants KEY=V1,V2,..., got {sweep!r}")
    out = []
    for value in values.split(","):
        parsed = parse_params([f"{key}={value}"])[key]
        out.append((f"{name}-{key}-{value}".replace("/", "_"), {**params, key: parsed}))
    return out


def next_run(root: Path, run_dir: Path) -> dict | None:
    """What the run's evaluation advises running next: {"params": {...}, "why": [...]} (the advice policy's next run)."""
    path = root / run_dir / "evaluation.json"
    if not path.is_file():
        return None
    proposal = json.loads(path.read_text()).get("next_run") or {}
    return proposal if proposal.get("params") else None


def run(args) -> int:
    root = Path(__file__).resolve().parents[2]  # ftutils/suite/cli.py -> the repository
    nb_dir = Path(args.notebooks_dir) if args.notebooks_dir else root / "notebooks"
    # Nobody clicks in a papermill run: widgets render their static form.
    os.environ["FTUTILS_INTERACTIVE"] = "0"
    extra = parse_params(args.param)

    # Every epoch's checkpoint, so 04 can score the underfit first epochs as well as the last
    # (a local difference from OpenAI, which keeps three; see ftutils.local.settings).
    os.environ.setdefault("FTUTILS_KEEP_CHECKPOINTS", "all")
    connection = None
    backend = os.environ.get("FTUTILS_BACKEND") or ("openai" if os.environ.get("OPENAI_API_KEY") else "local")
    if backend == "local":
        # Start (or find) the local server once here, so every notebook's kernel reuses it
        # instead of each starting and stopping its own.
        from ftutils.train.connect import DEFAULT_MODEL, connect
        # The worker converts and loads the model 03 will train while 01 and 02 run.
        model = extra.get("base_model", "auto")
        os.environ.setdefault("FTUTILS_PREPARE_MODELS", DEFAULT_MODEL["local"] if model == "auto" else str(model))
        connection = connect("local")
        print(f"local backend at {connection.base_url}")

    for name, params in sweep_runs(args.name, args.sweep, extra):
        run_dir = Path("runs") / name
        names = args.only or ([n for n in NOTEBOOKS if n not in ("05_iterate", "06_preference")] if args.sweep or args.iterate else NOTEBOOKS)
        run_notebooks(root, nb_dir, run_dir, names, params, client=getattr(connection, "client", None))
        proposal = next_run(root, run_dir) if args.iterate else None
        if args.iterate and proposal is None:
            print(f"[{name}] its evaluation recommends no change to run next", flush=True)
        if proposal:
            print(f"[{name}] next run, as its evaluation recommends: {proposal['params']}", flush=True)
            for why in proposal.get("why", []):
                print(f"    because {why}", flush=True)
            run_notebooks(root, nb_dir, Path("runs") / f"{name}-2", ONE_RUN, {**params, **proposal["params"]},
                          client=getattr(connection, "client", None))
    return 0


def run_notebooks(root: Path, nb_dir: Path, run_dir: Path, names: list[str], extra: dict, client=None) -> None:
    from ftutils.suite import progress

    # Relative to the repo (the kernels' cwd), so no machine path lands in outputs.
    out_dir = root / run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = nb_dir / f"{name}.ipynb"
        wanted = notebook_parameters(src)
        params = {k: v for k, v in {"run_dir": str(run_dir), **extra}.items() if k in wanted}
        started = time.monotonic()
        print(f"[{run_dir.name}/{name}] running with {params} ...", flush=True)
        # Long cells report themselves, with the training job's step and loss (`client`).
        progress.execute(src, out_dir / f"{name}.ipynb", params, root, f"{run_dir.name}/{name}", client=client)
        print(f"[{run_dir.name}/{name}] done in {time.monotonic() - started:.0f}s", flush=True)
    print(f"results: {run_dir}/ (run.json, evaluation.json, report.md, notebooks/)")  # relative: no machine path


if __name__ == "__main__":
    sys.exit(run(None))
