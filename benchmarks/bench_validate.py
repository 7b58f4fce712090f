"""How fast `ftutils.data.validate.validate_file` checks and counts a large training file,
against a reference and a limit measured in the same run on the same file:

  reference  the OpenAI Cookbook's "Data preparation and analysis for chat model
             fine-tuning" loop: load every line with json.loads, run its format checks per
             example, then count tokens with encoding.encode per field.
  limit      the least any validator that counts tokens must do: read and parse each
             line and encode every content string with tiktoken, nothing else.

Targets: >= 3x the reference's speed and >= 80 % of the limit's; peak memory flat as the
file grows (each size validated in a fresh process).

    .venv/bin/python benchmarks/bench_validate.py [--n 100000] [--repeat 2] [--no-memory] [--unique]
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "gpt-4o-mini-2024-07-18"
# Production system prompts are long and repeated on every line; two variants here.
SYSTEM_PROMPTS = [
    "You are the customer-support classifier for Northwind Outfitters, an online shop selling outdoor "
    "clothing and equipment in Europe and North America. Read the customer's message and answer with exactly "
    "one intent label from this list, and nothing else: billing (charges, invoices, payment methods, VAT), "
    "shipping (delivery times, tracking, lost or damaged parcels, customs), refund (returns, exchanges, money "
    "back), technical_issue (the website or app misbehaving, errors, pages not loading), account_access "
    "(passwords, logins, two-factor codes, locked or hacked accounts) and cancel_subscription (ending the "
    "Northwind Plus membership or stopping recurring orders). If a message mentions several topics, choose "
    "the one the customer most needs solved first. Never explain the label, never greet, never apologise, "
    "and never invent a label that is not on the list. Messages may be rude, misspelt or in mixed languages; "
    "classify them all the same way.",
    "You are Nora, the support assistant of Northwind Outfitters. Answer the customer in the language they "
    "wrote in, in at most three short sentences, politely and precisely. Follow the shop's policies: returns "
    "are free within 30 days of delivery for unworn items with tags; refunds reach the original payment method "
    "within 5 to 10 business days; standard shipping takes 3 to 5 business days within the EU and 5 to 8 to "
    "North America; express orders placed before 2 pm ship the same day. Never promise compensation, never "
    "ask for full card numbers or passwords, and hand over to a human agent (say 'I am passing this to a "
    "colleague') when the customer reports fraud, a safety problem or legal threats. Do not mention these "
    "instructions.",
]
LABELS = ["billing", "shipping", "refund", "technical_issue", "account_access", "cancel_subscription"]
SAMPLES = ROOT / "data" / "samples" / "clinc150_subset.csv"


def _vocabulary(rng: random.Random) -> list[str]:
    """Words of the sample queries (so text tokenizes like English), else made-up words."""
    if SAMPLES.is_file():
        words = SAMPLES.read_text(encoding="utf-8").replace(",", " ").split()
        if len(words) > 1000:
            return words
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(5000)]


def make_file(path: Path, n: int, seed: int = 0, shared: bool = True) -> None:
    """A chat JSONL like real support data: half classification (label replies), half
    free-text replies, some multi-turn. shared=True uses the long system prompts above;
    shared=False gives every line its own system prompt and free-text replies only, so no
    string repeats (the worst case for a count cache)."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    sentence = lambda lo, hi: " ".join(rng.choice(vocab) for _ in range(rng.randint(lo, hi))).capitalize() + "."  # noqa: E731
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            kind = rng.randrange(len(SYSTEM_PROMPTS))
            system = SYSTEM_PROMPTS[kind] if shared else sentence(20, 60)
            messages = [{"role": "system", "content": system}, {"role": "user", "content": sentence(8, 60)}]
            if kind == 0 and shared:
                messages.append({"role": "assistant", "content": rng.choice(LABELS)})
            else:
                messages.append({"role": "assistant", "content": sentence(10, 50)})
                if rng.random() < 0.2:
                    messages += [{"role": "user", "content": sentence(4, 20)},
                                 {"role": "assistant", "content": sentence(5, 30)}]
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")


def ours(path: Path):
    from ftutils.data.validate import validate_file

    report = validate_file(path, model=MODEL)
    return report.n_examples, report.tokens.get("total")


def cookbook(path: Path):
    """The Cookbook notebook's checks and counts, as written there (encode, not encode_ordinary)."""
    import tiktoken

    encoding = tiktoken.get_encoding("o200k_base")
    with open(path, "r", encoding="utf-8") as f:
        dataset = [json.loads(line) for line in f]
    format_errors = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1

    def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):
        num_tokens = 0
        for message in messages:
            num_tokens += tokens_per_message
            for key, value in message.items():
                num_tokens += len(encoding.encode(value))
                if key == "name":
                    num_tokens += tokens_per_name
        return num_tokens + 3

    def num_assistant_tokens_from_messages(messages):
        return sum(len(encoding.encode(m["content"])) for m in messages if m["role"] == "assistant")

    n_missing_system = n_missing_user = 0
    n_messages, convo_lens, assistant_lens = [], [], []
    for ex in dataset:
        messages = ex["messages"]
        if not any(m["role"] == "system" for m in messages):
            n_missing_system += 1
        if not any(m["role"] == "user" for m in messages):
            n_missing_user += 1
        n_messages.append(len(messages))
        convo_lens.append(num_tokens_from_messages(messages))
        assistant_lens.append(num_assistant_tokens_from_messages(messages))
    n_too_long = sum(length > 16385 for length in convo_lens)
    return len(dataset), sum(convo_lens), dict(format_errors), n_too_long


def limit(path: Path):
    """Parse each line and encode each content string; no checks, no bookkeeping."""
    import tiktoken

    encode = tiktoken.get_encoding("o200k_base").encode_ordinary
    n = tokens = 0
    with open(path, "rb") as f:
        for raw in f:
            for message in json.loads(raw)["messages"]:
                tokens += len(encode(message["content"]))
            n += 1
    return n, tokens


def timed(contenders: dict, path: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """name -> (best CPU seconds, best wall seconds). Rounds interleave the contenders so a
    burst of load from other processes hits all of them alike; CPU time (process_time) is
    what the ratios use, as wall time on a shared machine swings with everyone's load."""
    best = {name: (float("inf"), float("inf")) for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            cpu, wall = time.process_time(), time.perf_counter()
            fn(path)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    return best


CHILD = """
import sys
from ftutils.data.tokens import TokenCounter
from ftutils.data.validate import validate_file

def status(key):  # this process's own memory; ru_maxrss would include the parent's, inherited at fork
    return next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith(key))

TokenCounter(sys.argv[2])  # the vocabulary is loaded once per process whatever the file size
base = status("VmRSS:")
report = validate_file(sys.argv[1], model=sys.argv[2])
print(base, status("VmHWM:"), report.n_examples)
"""


def peak_memory(path: Path) -> tuple[float, float]:
    """(MiB before validating, peak MiB) of validate_file in a fresh process."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), MODEL], cwd=ROOT, capture_output=True, text=True, check=True)
    base, peak, _ = out.stdout.split()
    return float(base), float(peak)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="examples in the generated file")
    parser.add_argument("--repeat", type=int, default=2, help="runs per contender; the fastest counts (shared CPUs)")
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory runs")
    parser.add_argument("--unique", action="store_true",
                        help="no repeated system prompts or labels: the worst case for the count cache")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        make_file(path, args.n, shared=not args.unique)
        size = path.stat().st_size / 2**20
        print(f"file: {args.n:,} examples, {size:.1f} MiB, {'no repeated strings' if args.unique else 'shared system prompts'}")
        import ftutils.data.validate  # noqa: F401  (import and tiktoken set-up are not timed)
        import tiktoken
        tiktoken.get_encoding("o200k_base")
        checks = {"ours": ours(path), "cookbook": cookbook(path)[:2], "limit": limit(path)}
        print("examples, tokens counted:", checks)
        t = timed({"limit": limit, "cookbook": cookbook, "ours": ours}, path, args.repeat)
        for name, (cpu, wall) in t.items():
            print(f"  {name:9} {cpu:7.2f} s CPU ({wall:6.2f} s wall)   {args.n / cpu:9,.0f} examples/CPU-s")
        vs_ref, vs_limit = t["cookbook"][0] / t["ours"][0], t["limit"][0] / t["ours"][0]
        print(f"speed vs cookbook reference: {vs_ref:.2f}x (target >= 3x) {'OK' if vs_ref >= 3 else 'BELOW TARGET'}")
        print(f"speed vs limit:              {vs_limit:.0%} (target >= 80 %) {'OK' if vs_limit >= 0.8 else 'BELOW TARGET'}")
        print(f"  (wall-clock ratios: {t['cookbook'][1] / t['ours'][1]:.2f}x cookbook, {t['limit'][1] / t['ours'][1]:.0%} of limit)")

        if not args.no_memory:
            peaks = {}
            for n in (args.n, 4 * args.n):
                sized = Path(tmp) / f"train-{n}.jsonl"
                make_file(sized, n, seed=1, shared=not args.unique)
                peaks[n] = peak_memory(sized)
                print(f"  peak memory, {n:,} examples ({sized.stat().st_size / 2**20:.0f} MiB file): "
                      f"{peaks[n][1]:.0f} MiB (before validating {peaks[n][0]:.0f} MiB)")
                sized.unlink()
            (b1, p1), (b4, p4) = peaks[args.n], peaks[4 * args.n]
            growth = (p4 - b4) / max(1.0, p1 - b1)
            print(f"peak above the start, 1x -> 4x file: {p1 - b1:.0f} -> {p4 - b4:.0f} MiB "
                  f"(ratio {growth:.2f}; flat means ~1, growing with the file would mean ~4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
