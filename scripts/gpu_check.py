"""Check a GPU machine in minutes: train, serve, and time the walkthrough's job on the GPU.

Run through `bash scripts/gpu_check.sh [MODEL_DIR]`. It starts `ftutils serve` on a fresh data
dir, and through the official openai client trains the walkthrough's kind of job (CLINC150
support tickets to one label each, OpenAI's auto hyperparameters) on the default base, then, if
a local Hugging Face folder of a larger model (1B-class) is given, the same job on it; after each
it asks the fine-tuned model for answers. Printed per model: training tokens/s (trained tokens
over the job's time from start to finish), generation tokens/s (completion tokens over the wall
time of the requests), the GPU's memory in use and in total (nvidia-smi), and its held-out
exact-label accuracy, so a broken GPU path shows as wrong answers and not only as slow ones.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftutils.local.server_process import spawn, stop  # noqa: E402

TRAIN, TEST = 60, 40


def tickets() -> tuple[list[dict], list[dict], list[str]]:
    with open(ROOT / "data" / "samples" / "clinc150_subset.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(0).shuffle(rows)
    labels = sorted({r["label"] for r in rows})
    return rows[:TRAIN], rows[TRAIN:TRAIN + TEST], labels


def chat(ticket: dict, labels: list[str], answer: bool = True) -> dict:
    system = f"Classify the customer support ticket. Answer with one label only: {', '.join(labels)}."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": ticket["text"]}]
    return {"messages": messages + ([{"role": "assistant", "content": ticket["label"]}] if answer else [])}


def gpu_memory() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return "; ".join(out.splitlines())


def check(client, model: str, folder: Path) -> None:
    train, test, labels = tickets()
    path = folder / f"train-{model}.jsonl"
    path.write_text("".join(json.dumps(chat(t, labels)) + "\n" for t in train))
    file = client.files.create(file=path.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=model, training_file=file.id, seed=0, suffix="gpu-check")
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(2)
        job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded":
        raise SystemExit(f"gpu_check: the job on {model} {job.status}: {job.error}")
    events = list(reversed(client.fine_tuning.jobs.list_events(job.id, limit=10000).data))
    running = next(e.created_at for e in events if e.type == "metrics")  # the first step's end
    seconds = max(1, job.finished_at - running)
    print(f"{model}: trained {job.trained_tokens} tokens in ~{seconds} s: {job.trained_tokens / seconds:.0f} tok/s "
          f"({job.hyperparameters.n_epochs} epochs, batch {job.hyperparameters.batch_size})", flush=True)
    start, tokens, right = time.perf_counter(), 0, 0
    for ticket in test:
        reply = client.chat.completions.create(model=job.fine_tuned_model, temperature=0, max_tokens=16,
                                               messages=chat(ticket, labels, answer=False)["messages"])
        tokens += reply.usage.completion_tokens
        right += reply.choices[0].message.content.strip() == ticket["label"]
    seconds = time.perf_counter() - start
    print(f"{model}: generated {tokens} tokens in {seconds:.1f} s: {tokens / seconds:.0f} tok/s one request at a "
          f"time; held-out exact label {right}/{len(test)}; GPU memory {gpu_memory()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", help="a local Hugging Face folder of a larger model (1B-class)")
    parser.add_argument("--base", default="smollm2-135m-instruct", help="the walkthrough's base model")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA GPU here (torch.cuda.is_available() is False; a CPU-only torch "
              f"wheel? torch {torch.__version__}); nothing to check.", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s): "
          f"{torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ftutils-gpu-check-") as tmp:
        serve_args = ("--model", f"big={Path(args.model_dir).resolve()}") if args.model_dir else ()
        server = spawn(Path(tmp) / "data", env={"FTUTILS_API_KEY": "gpu-check-key"}, timeout=300, args=serve_args)
        try:
            import openai

            client = openai.OpenAI(base_url=server.url, api_key="gpu-check-key", max_retries=0, timeout=600)
            for model in [args.base] + (["big"] if args.model_dir else []):
                check(client, model, Path(tmp))
        finally:
            stop(server.process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
