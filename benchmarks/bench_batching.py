"""Concurrent scoring requests share forward passes: 64 scoring requests (max_tokens 1,
logprobs, top_logprobs 20, temperature 0) on the local server, sent by 16 concurrent
clients vs by one client in turn, in the same run on the same server. Target: >= 3x the
throughput, the same answers.

The two ways alternate for `--rounds` rounds (sequential first, then concurrent, ...), so
load from anything else on the machine falls on both alike; the model is loaded (and the
shared system prompt's KV cache made) before timing starts. "Same answers" means the same
chosen token and the same top-20 tokens in the same order for every request, and
logprobs within 1e-3 (batching pads prompts, which changes the order of a few sums).

    .venv/bin/python benchmarks/bench_batching.py [--n 64] [--clients 16] [--rounds 2]
        [--model smollm2-135m-instruct] [--max-tokens 1] [--data-dir DIR]

Why scoring gains less than generation: a scoring request is one prefill, and a prefill of
~30 new tokens (the system prompt's KV cache is reused) is already a matrix product that
keeps the CPU busy, so batching 16 of them saves little arithmetic; a decode step is one
token per row, where a batch of 16 costs little more than one row.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftutils.local.server_process import spawn  # noqa: E402

from clinc import KEY, chats  # noqa: E402  (benchmarks/ is the script's folder)


def items(n: int) -> list[list[dict]]:
    return [c["messages"][:-1] for c in chats(0)[:n]]


def score(client, model, messages, max_tokens=1):
    response = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0,
                                              seed=0, logprobs=True, top_logprobs=20)
    entry = response.choices[0].logprobs.content[0]
    return (entry.token, entry.logprob, [(t.token, t.logprob) for t in entry.top_logprobs],
            response.choices[0].message.content)


def run(url, model, batch, clients: int, max_tokens: int):
    local = threading.local()

    def one(messages):
        if not hasattr(local, "client"):  # one client (connection pool) per thread, as separate users have
            local.client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=600)
        return score(local.client, model, messages, max_tokens)

    start = time.perf_counter()
    if clients == 1:
        out = [one(m) for m in batch]
    else:
        with ThreadPoolExecutor(clients) as pool:
            out = list(pool.map(one, batch))
    return time.perf_counter() - start, out


def same(a, b, tol=1e-3) -> bool:
    return (a[0] == b[0] and a[3] == b[3] and abs(a[1] - b[1]) <= tol and [t for t, _ in a[2]] == [t for t, _ in b[2]]
            and all(abs(x - y) <= tol for (_, x), (_, y) in zip(a[2], b[2])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="requests per pass")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-tokens", type=int, default=1,
                        help="1 = scoring (the target); more shows generation, where decode steps are batched too")
    parser.add_argument("--data-dir", default=None, help="server state dir (default: a temporary one)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="ftutils-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    batch = items(args.n)
    server = spawn(data_dir, env={"FTUTILS_API_KEY": KEY}, timeout=120, cwd=ROOT)
    try:
        warm = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=600)
        score(warm, args.model, batch[0])  # load the model and cache the system prompt, untimed
        times = {1: [], args.clients: []}
        answers = {}
        for _ in range(args.rounds):
            for clients in (1, args.clients):
                seconds, out = run(server.url, args.model, batch, clients, args.max_tokens)
                times[clients].append(seconds)
                answers.setdefault(clients, out)
                if out != answers[clients] and not all(same(a, b) for a, b in zip(out, answers[clients])):
                    print(f"  note: {clients}-client answers changed between rounds")
        seq, conc = sum(times[1]), sum(times[args.clients])
        n_total = args.n * args.rounds
        agree = sum(same(a, b) for a, b in zip(answers[1], answers[args.clients]))
        worst = max(abs(a[1] - b[1]) for a, b in zip(answers[1], answers[args.clients]))
        print(f"model {args.model}, {args.n} requests x {args.rounds} rounds (max_tokens {args.max_tokens}, logprobs, "
              f"top_logprobs 20, temperature 0), local server")
        print(f"  1 client in turn : {seq:6.1f} s, {n_total / seq:5.2f} requests/s  (rounds: "
              f"{', '.join(f'{t:.1f}' for t in times[1])} s)")
        print(f"  {args.clients:2d} clients at once: {conc:6.1f} s, {n_total / conc:5.2f} requests/s  (rounds: "
              f"{', '.join(f'{t:.1f}' for t in times[args.clients])} s)")
        print(f"  same answers: {agree} of {args.n} (text, first token, its top-20 in order, logprobs within 1e-3); "
              f"largest chosen-token logprob difference {worst:.2e}")
        print(f"RATIO throughput ({args.clients} concurrent clients / 1 client in turn): {seq / conc:.2f}x  "
              "(target >= 3x)")
        print(f"RATIO same answers: {agree / args.n:.3f}  (target 1.000)")
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()


if __name__ == "__main__":
    main()
