"""Several runs side by side, e.g. a papermill sweep over n_epochs: one row per run folder
with its hyperparameters, training verdict and the evaluation's headline numbers."""
from __future__ import annotations

import glob
import json
from pathlib import Path

import pandas as pd

from ftutils.evaluate.recommend import best_candidate

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


def run_row(run_dir: Path) -> dict | None:
    """The row for one run folder, or None when it holds neither run.json nor evaluation.json."""
    manifest, evaluation = _load(run_dir / "run.json"), _load(run_dir / "evaluation.json")
    if not manifest and not evaluation:
        return None
    hp = manifest.get("hyperparameters") or {}
    final = manifest.get("final_metrics") or {}
    row = {"run": run_dir.name, "path": str(run_dir), "base_model": manifest.get("base_model"),
           **{k: hp.get(k) for k in HYPERPARAMETERS},
           "train_loss": final.get("train_loss"), "valid_loss": final.get("full_valid_loss", final.get("valid_loss")),
           "verdict": (manifest.get("diagnosis") or {}).get("verdict"), "n_test": evaluation.get("n_test")}
    for kind, prefix in (("fine_tuned", "ft"), ("base", "base"), ("baseline", "baseline")):
        m = _candidate(evaluation, kind).get("metrics") or {}
        row[f"{prefix}_accuracy"] = m.get("accuracy")
        row[f"{prefix}_macro_f1"] = m.get("macro_f1")
        if kind == "fine_tuned":
            lo, hi = (m.get("macro_f1_ci") or [None, None])[:2]
            row["ft_macro_f1_lo"], row["ft_macro_f1_hi"] = lo, hi
            row["ft_out_of_scope_forced"] = (m.get("out_of_scope") or {}).get("forced")
    pair = next((p for p in evaluation.get("paired", []) if p["a"] == "base" and p["b"] == "fine-tuned"), None)
    row["ft_vs_base_p"] = pair["mcnemar"]["p_value"] if pair else None
    best = best_candidate(evaluation, ("fine_tuned", "checkpoint"))
    row["best"] = best["name"] if best else None
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


DELTA_COLUMNS = ("ft_accuracy", "ft_macro_f1", "ft_macro_f1_lo", "ft_macro_f1_hi", "ft_out_of_scope_forced",
                 "baseline_accuracy", "baseline_macro_f1", "valid_loss")


def with_deltas(table: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Rows `first` and `second` of compare_runs' table and a third, "change", of second - first
    for the headline numbers (the other columns left empty there)."""
    rows = table.loc[[first, second]]
    change = {c: pd.to_numeric(rows[c], errors="coerce").diff().iloc[-1] for c in DELTA_COLUMNS if c in rows}
    return pd.concat([rows, pd.DataFrame([change], index=["change"])])


def paired_runs(first, second, candidate: str = "fine-tuned", bootstrap_samples: int = 1000, seed: int = 42) -> dict:
    """`candidate` of run `second` against the same candidate of run `first`, paired on the test
    items both answered (by id): McNemar and the bootstrap macro-F1 difference with its interval,
    and `significant` by the notebooks' one rule."""
    from ftutils.evaluate.recommend import significant
    from ftutils.evaluate.scores import compare_pair
    from ftutils.train.runs import project_path

    first, second = project_path(first), project_path(second)
    evals = [_load(d / "evaluation.json") for d in (first, second)]
    for d, ev in zip((first, second), evals):
        if candidate not in (ev.get("predictions") or {}):
            raise ValueError(f"{d.name}: evaluation.json has no predictions of {candidate!r}; run 04_evaluate there")
    frames = [pd.DataFrame(ev["predictions"][candidate]) for ev in evals]
    labels = sorted(set(evals[0].get("labels", [])) | set(evals[1].get("labels", [])))
    pair = compare_pair(frames[0], frames[1], labels, first.name, second.name, bootstrap_samples, seed)
    pair["significant"] = significant(pair)
    return pair
