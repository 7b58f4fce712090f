"""Does training slow the API down? p50/p99 latency of `jobs.retrieve` and
`jobs.list_events` while a job trains, against the same calls on the same server while
it is idle, measured in one run (the idle numbers are the reference).

The worker is a separate process with `torch` on all cores but one, and routes are sync
functions in uvicorn's thread pool, so on a 2-core machine the ratio should stay small
(target: p50 ratio <= 3). Uses the tiny model; the first run in a fresh data dir also
converts its tokenizer, which is not timed.

    .venv/bin/python benchmarks/bench_api_latency.py [--n 300] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import openai

from ftutils.local.server_process import spawn

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-not-a-secret"


def start(data_dir: Path) -> tuple[subprocess.Popen, str]:
    server = spawn(data_dir, env={"FTUTILS_API_KEY": KEY}, timeout=120, cwd=ROOT)
    return server.process, server.url


def timings(client, job_id: str, n: int) -> dict[str, list[float]]:
    out = {"retrieve": [], "list_events": []}
    for _ in range(n):
        t = time.perf_counter()
        client.fine_tuning.jobs.retrieve(job_id)
        out["retrieve"].append(time.perf_counter() - t)
        t = time.perf_counter()
        client.fine_tuning.jobs.list_events(job_id, limit=20)
        out["list_events"].append(time.perf_counter() - t)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="calls of each kind per phase")
    parser.add_argument("--data-dir", default=None, help="server state dir (default: a temporary one)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="ftutils-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    proc, url = start(data_dir)
    try:
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
        lines = [{"messages": [{"role": "user", "content": f"Greet person {i}"},
                               {"role": "assistant", "content": f"Hello person {i}!"}]} for i in range(40)]
        path = data_dir / "bench.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        train = client.files.create(file=path.open("rb"), purpose="fine-tune")

        # A finished job gives the idle phase something real to read.
        done = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id,
                                              hyperparameters={"n_epochs": 1, "batch_size": 8})
        while client.fine_tuning.jobs.retrieve(done.id).status not in ("succeeded", "failed"):
            time.sleep(0.5)
        timings(client, done.id, 20)  # warm-up
        idle = timings(client, done.id, args.n)

        busy_job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id,
                                                  hyperparameters={"n_epochs": 50, "batch_size": 2})
        while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(busy_job.id).data):
            time.sleep(0.2)
        busy = timings(client, busy_job.id, args.n)
        still = client.fine_tuning.jobs.retrieve(busy_job.id).status
        client.fine_tuning.jobs.cancel(busy_job.id)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    if still != "running":
        print(f"warning: the job was {still} by the end of the busy phase; raise n_epochs")
    print(f"{'call':<12} {'idle p50':>9} {'idle p99':>9} {'busy p50':>9} {'busy p99':>9} {'p50 ratio':>9} {'p99 ratio':>9}")
    for name in ("retrieve", "list_events"):
        i50, i99, b50, b99 = pct(idle[name], 50), pct(idle[name], 99), pct(busy[name], 50), pct(busy[name], 99)
        print(f"{name:<12} {i50:8.1f}ms {i99:8.1f}ms {b50:8.1f}ms {b99:8.1f}ms {b50 / i50:8.2f}x {b99 / i99:8.2f}x")


if __name__ == "__main__":
    main()
