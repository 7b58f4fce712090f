"""What gets evaluated, and on what: the candidate models named in a run's manifest, and
the held-out test split as prompts with their expected answers.

A test example is the chat example 02_prepare wrote (`{"id", "label", "messages"}`); the
prompt is every message before the final assistant message, which holds the answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KINDS = ("base", "prompted", "fine_tuned", "checkpoint", "baseline")
BASELINE_NAME = "tfidf-logreg"


@dataclass(frozen=True)
class Candidate:
    name: str
    """Short display name: "base", "fine-tuned", "step-40", "tfidf-logreg"."""
    model: str
    """The model id sent to the chat completions endpoint (the baseline's own name for it)."""
    kind: str
    """One of KINDS."""
    step: int | None = None
    """Training step of a checkpoint, and of the final model when the manifest knows it."""
    shots: int | None = None
    """A prompted base model: how many solved training examples its prompt shows (0: zero-shot)."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"candidate {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")


def _step_of(checkpoint: dict) -> int | None:
    step = checkpoint.get("step", checkpoint.get("step_number"))
    if step is None and isinstance(checkpoint.get("metrics"), dict):
        step = checkpoint["metrics"].get("step")
    return int(step) if step is not None else None


def prompted_name(shots: int) -> str:
    return "zero-shot" if shots == 0 else f"few-shot-{shots}"


def candidates_from_manifest(manifest: dict, include_checkpoints: bool = True,
                             include_baseline: bool = True, prompted_shots: tuple = (),
                             keep_step: int | None = None) -> list[Candidate]:
    """Base model, the base prompted with each of `prompted_shots` (0: zero-shot, k: k shots),
    fine-tuned model, each checkpoint (oldest first; without `include_checkpoints`, only the
    one at `keep_step`, the checkpoint kept by validation) and the TF-IDF baseline.

    Reads defensively: a manifest without a fine-tuned model (a failed or running job) still
    yields the base model and the baseline, so the notebook can say what it can."""
    base = manifest.get("base_model") or manifest.get("model")
    if not base:
        raise ValueError("the manifest names no base_model; run 03_train first (run.json)")
    out = [Candidate("base", base, "base")]
    out += [Candidate(prompted_name(k), base, "prompted", shots=k) for k in prompted_shots]
    final = manifest.get("fine_tuned_model")
    checkpoints = sorted((c for c in manifest.get("checkpoints") or [] if c.get("model")),
                         key=lambda c: _step_of(c) or 0)
    final_step = (manifest.get("final_metrics") or {}).get("step")
    final_step = int(final_step) if final and final_step is not None else None
    if final:
        out.append(Candidate("fine-tuned", final, "fine_tuned", final_step))
    for ckpt in checkpoints:
        # The last checkpoint holds the final model's weights under another id: evaluating
        # it again would only cost another model load and give the same answers.
        if ckpt["model"] == final or (final_step is not None and _step_of(ckpt) == final_step):
            continue
        step = _step_of(ckpt)
        if include_checkpoints or (keep_step is not None and step == keep_step):
            out.append(Candidate(f"step-{step}", ckpt["model"], "checkpoint", step))
    if include_baseline:
        out.append(Candidate(BASELINE_NAME, BASELINE_NAME, "baseline"))
    return out


def read_manifest(run_dir: str | Path) -> dict:
    """run.json of `run_dir` (relative paths are the project's), which 03_train writes."""
    from ftutils.train.runs import project_path, read_manifest as read

    manifest = read(project_path(run_dir))
    if not manifest:
        raise FileNotFoundError(f"{project_path(run_dir) / 'run.json'}: no manifest; run 03_train with this run_dir first")
    return manifest


@dataclass(frozen=True)
class TestExample:
    __test__ = False  # a name pytest would otherwise try to collect
    id: str
    label: str
    prompt: list
    """Messages up to (not including) the expected assistant answer."""

    @property
    def text(self) -> str:
        """The user's words, which is what the baseline and the error explorer look at."""
        return "\n".join(m.get("content") or "" for m in self.prompt
                         if m.get("role") == "user" and isinstance(m.get("content"), str))


def split_example(example: dict, number: int) -> TestExample:
    messages = list(example.get("messages") or [])
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError(f"test example {number}: the last message must be the assistant's answer")
    label = example.get("label", messages[-1].get("content"))
    ident = example.get("id", f"line-{number}")
    return TestExample(str(ident), str(label).strip(), messages[:-1])


def load_examples(path: str | Path, limit: int | None = None) -> list[TestExample]:
    """Examples of a chat JSONL file (test split, or train for the baseline), first `limit` only.

    Ids must be unique: predictions are matched to labels and to each other by id."""
    from ftutils.data.load import read_jsonl

    rows = read_jsonl(path)
    examples = [split_example(row, i) for i, row in enumerate(rows, 1)]
    seen: dict[str, int] = {}
    for i, ex in enumerate(examples, 1):
        if ex.id in seen:
            raise ValueError(f"{path}: id {ex.id!r} on examples {seen[ex.id]} and {i}; ids must be unique")
        seen[ex.id] = i
    return examples[:limit] if limit else examples


def labels_of(examples: list[TestExample]) -> list[str]:
    """The label set, sorted, so every table and matrix has the same order."""
    return sorted({ex.label for ex in examples})
