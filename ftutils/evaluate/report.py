"""The evaluation on disk: `evaluation.json` for programs (compare_runs, tests) and
`report.md` for people, both in the run's folder beside run.json."""
from __future__ import annotations

import json
import math
from pathlib import Path



def _as_dict(results) -> dict:
    return results if isinstance(results, dict) else results.to_dict()


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list, rows: list[list]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _ci(values) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]" if values and not any(map(math.isnan, values)) else ""


def render_markdown(evaluation: dict, manifest: dict | None = None) -> str:
    manifest = manifest or {}
    cands = evaluation["candidates"]
    out = ["# Evaluation report", ""]
    facts = [("Base model", manifest.get("base_model")), ("Fine-tuned model", manifest.get("fine_tuned_model")),
             ("Backend", manifest.get("backend")), ("Job", manifest.get("job_id")),
             ("Test items", evaluation["n_test"]), ("Labels", ", ".join(evaluation["labels"])),
             ("Method asked", evaluation.get("method"))]
    out += [f"- **{k}:** {v}" for k, v in facts if v not in (None, "")] + [""]
    out += ["## Candidates", "", markdown_table(
        ["candidate", "kind", "step", "method", "accuracy", "95% CI", "macro F1", "95% CI", "unparseable",
         "latency (ms)", "tokens/request"],
        [[c["name"], c["kind"], c.get("step"), c["method"], c["metrics"]["accuracy"], _ci(c["metrics"].get("accuracy_ci")),
          c["metrics"]["macro_f1"], _ci(c["metrics"].get("macro_f1_ci")), c["metrics"]["unparseable"],
          f"{1000 * c['metrics']['latency']['mean_s']:.1f}", f"{c['metrics']['tokens']['per_request']:.1f}"]
         for c in cands]), ""]
    notes = [f"- {c['name']}: {c['note']}" for c in cands if c.get("note")]
    if notes:
        out += ["Notes:", "", *notes, ""]
    if evaluation.get("paired"):
        out += ["## Paired tests (same items, aligned by id)", "", markdown_table(
            ["model", "against", "accuracy", "only model right", "only other right", "McNemar p",
             "macro F1 diff", "95% CI"],
            [[p["b"], p["a"], f"{p['mcnemar']['accuracy_b']:.3f} vs {p['mcnemar']['accuracy_a']:.3f}",
              p["mcnemar"]["only_b_correct"], p["mcnemar"]["only_a_correct"], f"{p['mcnemar']['p_value']:.3g}",
              f"{p['bootstrap']['macro_f1_diff']:+.3f}", _ci(p["bootstrap"]["macro_f1_diff_ci"])]
             for p in evaluation["paired"]]), ""]
    labels = evaluation["labels"]
    out += ["## F1 per class", "", markdown_table(
        ["label", "support", *[c["name"] for c in cands]],
        [[lab, cands[0]["metrics"]["per_class"][lab]["support"], *[c["metrics"]["per_class"][lab]["f1"] for c in cands]]
         for lab in labels] if cands else []), ""]
    chosen = next((c for c in cands if c["name"] == evaluation.get("kept")), None)
    if chosen:
        conf = chosen["metrics"]["confusion"]
        out += [f"## Confusion matrix of {chosen['name']} (rows: true, columns: predicted)", "",
                markdown_table(["true \\ predicted", *conf["columns"]],
                               [[lab, *row] for lab, row in zip(conf["labels"], conf["matrix"])]), ""]
    ceiling = evaluation.get("ceiling") or {}
    if ceiling.get("untrained"):
        untrained = ", ".join(f"{lab} ({n})" for lab, n in ceiling["untrained"].items())
        out += [f"Test items of classes the training split never shows: {untrained}. A model that answers only the "
                f"trained labels reaches at most accuracy {ceiling['accuracy']:.3f} and macro F1 {ceiling['macro_f1']:.3f} "
                "here.", ""]
    out += ["## Recommendations", ""]
    out += [f"{i}. {r['message']}" for i, r in enumerate(evaluation.get("recommendations", []), 1)] or ["None."]
    proposal = evaluation.get("next_run") or {}
    out += ["", f"**Next run:** {proposal.get('params') or 'no change'}"]
    return "\n".join(out) + "\n"


def explain_class(metrics: dict, label: str) -> str:
    """Precision, recall and F1 of one class worked out from its confusion matrix, in words."""
    conf = metrics["confusion"]
    i, j = conf["labels"].index(label), conf["columns"].index(label)
    tp = conf["matrix"][i][j]
    actual = sum(conf["matrix"][i])
    said = sum(row[j] for row in conf["matrix"])
    c = metrics["per_class"][label]
    present = [lab for lab, v in metrics["per_class"].items() if v["support"]]
    return "\n".join([
        f"Recall of {label!r}: of the {actual} test items that really are {label}, the model said {label} for {tp}: "
        f"{tp}/{actual} = {c['recall']:.3f} (the row of {label}).",
        f"Precision of {label!r}: the model said {label} {said} times, {tp} of them rightly: "
        + (f"{tp}/{said} = {c['precision']:.3f}" if said else "0/0, undefined, counted as 0")
        + f" (the column of {label}).",
        f"F1 of {label!r}: 2 x precision x recall / (precision + recall) = {c['f1']:.3f}; it is high only when both are.",
        f"Macro F1 is the plain mean of the F1 of the {len(present)} classes in the test items = {metrics['macro_f1']:.3f}: "
        "a rare class counts as much as a common one, unlike accuracy "
        f"({metrics['accuracy']:.3f}, the diagonal over all {metrics['n']} items).",
    ])


def write_evaluation(run_dir: str | Path, results, manifest: dict | None = None) -> dict:
    """Write `evaluation.json` and `report.md` into `run_dir`; returns their paths.

    `results` is an Evaluation (from evaluate_run) or its `to_dict()`."""
    from ftutils.train.runs import run_path

    run_dir = run_path(run_dir)
    data = _as_dict(results)
    if manifest is None:
        manifest = getattr(results, "manifest", None)
    paths = {"json": run_dir / "evaluation.json", "markdown": run_dir / "report.md"}
    tmp = paths["json"].with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str, allow_nan=True))
    tmp.replace(paths["json"])
    paths["markdown"].write_text(render_markdown(data, manifest))
    return paths


def read_evaluation(run_dir: str | Path) -> dict:
    from ftutils.train.runs import project_path

    path = project_path(run_dir) / "evaluation.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation; run 04_evaluate with this run_dir first")
    return json.loads(path.read_text())
