"""Several runs side by side, e.g. a papermill sweep over n_epochs: one row per run folder
with its hyperparameters, training verdict and the evaluation's headline numbers.

Only what the runs share can be compared: their test items, when the test files are the same.
Validation losses are each measured on the run's own validation file, so two runs whose
validation files differ (a run that trains on out-of-scope messages validates on some too)
are not compared on them; and a change between runs is a paired difference on the test
items with its own interval (`paired_runs`), never one interval bound minus another."""
from __future__ import annotations

import glob
import json
from pathlib import Path

import pandas as pd


HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


def _run_dirs(paths_or_glob) -> list[Path]:
    from ftutils.train.runs import project_path

    items = [paths_or_glob] if isinstance(paths_or_glob, (str, Path)) else list(paths_or_glob)
    dirs: list[Path] = []
    for item in map(project_path, items):
        matches = sorted(glob.glob(str(item))) if any(ch in str(item) for ch in "*?[") else [str(item)]
        dirs += [Path(m) for m in matches if Path(m).is_dir()]
    return sorted(set(dirs))


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _candidate(evaluation: dict, kind: str) -> dict:
    return next((c for c in evaluation.get("candidates", []) if c["kind"] == kind), {})


def _kept(evaluation: dict) -> dict:
    """The fine-tune the run's advice keeps (chosen by validation), else its final model."""
    name = evaluation.get("kept")
    return next((c for c in evaluation.get("candidates", []) if c["name"] == name), None) or _candidate(evaluation, "fine_tuned")


def _digest(path) -> str | None:
    import hashlib

    path = Path(path) if path else None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path and path.is_file() else None


def run_row(run_dir: Path) -> dict | None:
    """The row for one run folder, or None when it holds neither run.json nor evaluation.json."""
    manifest, evaluation = _load(run_dir / "run.json"), _load(run_dir / "evaluation.json")
    if not manifest and not evaluation:
        return None
    hp = manifest.get("hyperparameters") or {}
    final = manifest.get("final_metrics") or {}
    files = manifest.get("files") or {}
    kept = _kept(evaluation)
    row = {"run": run_dir.name, "path": str(run_dir), "base_model": manifest.get("base_model"),
           **{k: hp.get(k) for k in HYPERPARAMETERS},
           "train_loss": final.get("train_loss"), "valid_loss": final.get("full_valid_loss", final.get("valid_loss")),
           "verdict": (manifest.get("diagnosis") or {}).get("verdict"), "n_test": evaluation.get("n_test"),
           "kept": kept.get("name"),
           # Fingerprints of the files, so a comparison knows what the runs share.
           "test_file": _digest(run_dir / "data" / "test.jsonl"),
           "validation_file": _digest((files.get("validation") or {}).get("path"))}
    for kind, prefix, cand in (("fine_tuned", "ft", kept), ("base", "base", None), ("baseline", "baseline", None)):
        m = (cand if cand is not None else _candidate(evaluation, kind)).get("metrics") or {}
        row[f"{prefix}_accuracy"] = m.get("accuracy")
        row[f"{prefix}_macro_f1"] = m.get("macro_f1")
        if kind == "fine_tuned":
            lo, hi = (m.get("macro_f1_ci") or [None, None])[:2]
            row["ft_macro_f1_lo"], row["ft_macro_f1_hi"] = lo, hi
            row["ft_out_of_scope_forced"] = (m.get("out_of_scope") or {}).get("forced")
    pair = next((p for p in evaluation.get("paired", []) if p["a"] == "base" and p["b"] == kept.get("name")), None)
    row["ft_vs_base_p"] = pair["mcnemar"]["p_value"] if pair else None
    return row


def compare_runs(paths_or_glob="runs/*") -> pd.DataFrame:
    """One row per run folder (a glob, a folder, or a list of either), indexed by run name."""
    rows = [row for row in map(run_row, _run_dirs(paths_or_glob)) if row]
    if not rows:
        return pd.DataFrame(columns=["run"]).set_index("run")
    frame = pd.DataFrame(rows).set_index("run")
    sort = [k for k in HYPERPARAMETERS if frame[k].notna().any()]
    try:
        return frame.sort_values(sort, kind="stable") if sort else frame
    except TypeError:  # "auto" beside numbers: keep the folders' order
        return frame


SHARED = ("n_epochs", "verdict", "kept", "ft_accuracy", "ft_macro_f1", "ft_macro_f1_lo", "ft_macro_f1_hi",
          "ft_out_of_scope_forced", "baseline_accuracy", "baseline_macro_f1")


def side_by_side(table: pd.DataFrame, runs: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Rows `runs` of compare_runs' table with the columns they can be compared on, and what was
    left out and why. Test scores need the same test file; the validation loss the same validation file."""
    rows = table.loc[runs]
    columns, left_out = [c for c in SHARED if c in rows], []
    if rows["test_file"].nunique(dropna=False) > 1:
        columns = [c for c in columns if c in ("n_epochs", "verdict", "kept")]
        left_out.append("test scores: the runs were tested on different test files")
    if rows["validation_file"].nunique(dropna=False) == 1 and rows["validation_file"].notna().all():
        columns.insert(2, "valid_loss")
    else:
        left_out.append("validation loss: each run measured it on its own validation file, and the files differ")
    return rows[columns], left_out


def paired_runs(first, second, candidate: str | None = None, bootstrap_samples: int = 1000, seed: int = 42) -> dict:
    """The kept fine-tune of run `second` against run `first`'s (or `candidate` of both), paired
    on the test items both answered (by id): McNemar and the bootstrap macro-F1 difference with
    its interval, `significant` by the notebooks' one rule, and the out-of-scope items alone
    (`out_of_scope`: forced into an intent by one run's model and not the other's)."""
    from ftutils.evaluate.policy import significant
    from ftutils.evaluate.scores import compare_pair, out_of_scope_pair
    from ftutils.train.runs import project_path

    first, second = project_path(first), project_path(second)
    evals = [_load(d / "evaluation.json") for d in (first, second)]
    names = []
    for d, ev in zip((first, second), evals):
        name = candidate or _kept(ev).get("name") or "fine-tuned"
        if name not in (ev.get("predictions") or {}):
            raise ValueError(f"{d.name}: evaluation.json has no predictions of {name!r}; run 04_evaluate there")
        names.append(name)
    frames = [pd.DataFrame(ev["predictions"][name]) for ev, name in zip(evals, names)]
    labels = sorted(set(evals[0].get("labels", [])) | set(evals[1].get("labels", [])))
    pair = compare_pair(frames[0], frames[1], labels, first.name, second.name, bootstrap_samples, seed)
    pair["significant"] = significant(pair)
    pair["candidates"] = names
    pair["out_of_scope"] = out_of_scope_pair(frames[0], frames[1])
    return pair
