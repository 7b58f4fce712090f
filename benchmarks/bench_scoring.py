"""Label scoring vs generate-then-parse: the same test items, the same model, the same
local server, in one run. Scoring asks for the few tokens that tell the labels apart and
reads the labels' log-probabilities along them; generation lets the model answer (up to `--max-tokens`) and maps the
text to a label. Target: scoring >= 5x faster at equal or better accuracy.

The two methods take turns item by item (which goes first alternates), so load from anything
else on the machine falls on both alike; the model is loaded before timing starts. Scoring
is timed as `classify_score`, the request `classify(method="score")` sends; at the end the
script says whether `classify` would have fallen back to generation for these labels.

    .venv/bin/python benchmarks/bench_scoring.py [--n 200] [--model smollm2-135m-instruct]
        [--fine-tune-epochs 0] [--max-tokens 20] [--data-dir DIR]

With --fine-tune-epochs N > 0 the model is first fine-tuned on the tickets not in the test
set (minutes on CPU) and the fine-tuned model is benchmarked instead of the base model.

Measured 2026-11-27 on the shared 2-core machine (200 items unless noted):
  SmolLM2 base, budget 20:  5.20x total (4.99x median), accuracy 0.220 vs 0.080, macro F1 0.110 vs 0.113
  SmolLM2 base, budget 5 (60 items): 1.90x, accuracy 0.233 vs 0.033
  SmolLM2 fine-tuned 2 epochs on 157 tickets: 1.84x, accuracy 0.905 vs 0.900, macro F1 0.877 vs 0.861
  2026-12-01, batching engine + system-prompt KV cache: the same fine-tune (on the retired tickets), scored on
  200 CLINC items it never learned: 2.51x total (2.60x median; score 227 ms, generate 592 ms/item,
  4.3 tokens/item). Not comparable in accuracy; re-run with --fine-tune-epochs 2 for the canonical number.
A scoring request is one prefill (~170-290 ms here, growing with the prompt); each generated
token adds a decode step (~55-60 ms). The speed-up is therefore about 1 + (k - 1) * decode /
prefill for k generated tokens: >= 5x when a model rambles to the budget, ~2x when a
fine-tuned model stops after its label (3.5 tokens here). Scoring's accuracy edge is largest
where generation fails to name a label at all.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftutils.evaluate.candidates import split_example  # noqa: E402
from ftutils.local.server_process import spawn  # noqa: E402
from ftutils.evaluate.classify import classify_generate, classify_score, score_depth  # noqa: E402
from ftutils.evaluate.scores import classification_metrics  # noqa: E402

from clinc import KEY, chats  # noqa: E402  (benchmarks/ is the script's folder)


def start(data_dir: Path) -> tuple[subprocess.Popen, str]:
    server = spawn(data_dir, env={"FTUTILS_API_KEY": KEY}, timeout=120, cwd=ROOT)
    return server.process, server.url


def tickets(n_test: int, seed: int = 0):
    examples = chats(seed)
    return examples[n_test:], [split_example(c, i) for i, c in enumerate(examples[:n_test], 1)]


def fine_tune(client, model: str, train: list[dict], epochs: int, data_dir: Path) -> str:
    path = data_dir / "train.jsonl"
    path.write_text("".join(json.dumps({"messages": c["messages"]}) + "\n" for c in train))
    upload = client.files.create(file=path.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=model, training_file=upload.id, seed=0, method={
        "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs}}})
    start_t = time.monotonic()
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded":
        raise SystemExit(f"fine-tuning {job.id} {job.status}: {job.error}")
    print(f"fine-tuned {model} on {len(train)} examples x {epochs} epochs in {time.monotonic() - start_t:.0f} s "
          f"-> {job.fine_tuned_model}")
    return job.fine_tuned_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="test items")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--fine-tune-epochs", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=20, help="generation budget (classify's default)")
    parser.add_argument("--data-dir", default=None, help="server state dir (default: a temporary one)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="ftutils-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    train, test = tickets(args.n)
    labels = sorted({ex.label for ex in test} | {c["label"] for c in train})
    proc, url = start(data_dir)
    try:
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=600)
        model = fine_tune(client, args.model, train, args.fine_tune_epochs, data_dir) if args.fine_tune_epochs else args.model
        classify_generate(client, model, test[:2], labels, max_tokens=2)  # load the model, untimed
        predictions = {"score": [], "generate": []}
        latency = {"score": [], "generate": []}
        ambiguous = 0
        for k, ex in enumerate(test):
            for method in (("score", "generate") if k % 2 == 0 else ("generate", "score")):
                start_t = time.perf_counter()
                if method == "score":
                    [pred], unresolved = classify_score(client, model, [ex], labels)
                    ambiguous += len(unresolved)
                else:
                    [pred] = classify_generate(client, model, [ex], labels, max_tokens=args.max_tokens)
                latency[method].append(time.perf_counter() - start_t)
                predictions[method].append(pred)
        print(f"model {model}, {len(test)} test items, {len(labels)} labels, local backend, sequential requests, "
              f"generation budget {args.max_tokens} tokens")
        out = {}
        for method, preds in predictions.items():
            m = classification_metrics([{"id": p.id, "label": p.label, "pred": p.pred} for p in preds], labels)
            tokens = sum((p.completion_tokens or 0) for p in preds)
            total = sum(latency[method])
            out[method] = {"seconds": total, "median": statistics.median(latency[method]), "accuracy": m["accuracy"],
                           "macro_f1": m["macro_f1"]}
            print(f"  {method:>8}: {total:7.1f} s, median {1000 * out[method]['median']:5.0f} ms/item, "
                  f"{tokens / len(test):5.1f} output tokens/item, accuracy {m['accuracy']:.3f}, "
                  f"macro F1 {m['macro_f1']:.3f}, unparseable {m['unparseable']}")
        print(f"  scored along {score_depth(model, labels)} answer token(s); {ambiguous} of {len(test)} items could not "
              "be scored that way (classify(method='score') generates those)")
        print(f"RATIO speed-up, total time (generate / score): {out['generate']['seconds'] / out['score']['seconds']:.2f}x"
              "  (target >= 5x)")
        print(f"RATIO speed-up, median per item (generate / score): {out['generate']['median'] / out['score']['median']:.2f}x")
        print(f"RATIO accuracy (score - generate): {out['score']['accuracy'] - out['generate']['accuracy']:+.3f}  "
              "(target >= 0)")
        print(f"RATIO macro F1 (score - generate): {out['score']['macro_f1'] - out['generate']['macro_f1']:+.3f}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
