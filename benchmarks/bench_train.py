"""Training throughput of our LoRA trainer against a plain transformers+peft loop.

SmolLM2-135M, ~200 short chats of varied length (made here from a fixed seed), LoRA r=16
on all linear layers, batch 8, the same threads for every variant. Reported: real
(non-padding) tokens per second of each, and each variant's ratio to the reference
measured in the same round, so load from other processes hits both sides alike.

  reference  fp32, random padded batches, HF's own loss (full-vocabulary logits)
  +bf16      the reference under bf16 autocast
  +grouped   the reference with our length-grouped batches
  ours       ftutils.local.training.loop.train (grouped, bf16 where native, head on labels only,
             LoRA layers grouped per input with a hand-written backward, fused AdamW)
  ours xN    ours with each batch shared by N single-threaded processes (`--processes`,
             default 2: what the worker does on a 2-core machine, ftutils.local.training.parallel)
  trl        TRL's SFTTrainer with its defaults (and use_cpu=True), when `trl` is installed
             (`pip install -e .[bench]`); it is not a dependency of ftutils

Target (issue #9): ours >= 3x reference and >= 3x TRL's defaults, in the same run.
Measured on 2026-12-01, Intel Xeon (family 6 model 207, AMX/avx512_bf16, 2 vCPUs shared
with other jobs at load ~13), `--rounds 2 --examples 100`: ours 4.77x / 7.59x the
reference and 4.3x / 6.6x TRL's defaults in rounds 1 / 2 (before the grouped LoRA layers
and fused AdamW, under the same load: 2.58x the reference, 3.06x TRL). On 2026-12-02, the
machine otherwise idle, `--rounds 1` (200 chats): reference 120 tok/s, ours (2 threads)
312 (2.59x), ours x2 (two processes) 365 (3.04x), TRL 71 (0.59x): ours x2 is 5.1x TRL's
defaults. Under load the reference suffers most, hence the larger ratios the day before.
On 2026-12-08 (AMD EPYC Zen 3, no bf16 units, 2 vCPUs; DDP two-process training; under the
shared lock), `--rounds 1 --examples 100 --trl-steps 3`: reference 80 tok/s, ours 127 (1.58x), ours x2
191 (2.38x: short of the 3x target on this CPU, which has no bf16 matmuls to gain from), TRL 3.1 (its
1.16 defaults: emulated bf16 and gradient checkpointing), so ours x2 is 61x TRL's defaults; 582 M model
FLOPs a token, matmul peak at the model's shapes bf16 12 / fp32 150 GFLOP/s, ours x2 111 GFLOP/s (74%).
`--job` instead times a 60-example, 3-epoch job on
SmolLM2 with OpenAI's auto hyperparameters end to end (the support-ticket sample data)
and reports held-out accuracy before and after.

    .venv/bin/python benchmarks/bench_train.py [--rounds 2] [--examples 200] [--data-dir DIR]
    .venv/bin/python benchmarks/bench_train.py --job
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ftutils.threads  # noqa: F401,E402  (as the trainer does; before torch loads)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import flops  # noqa: E402  (benchmarks/flops.py)
from ftutils.openai_rules import Hyperparameters  # noqa: E402
from ftutils.local.inference.engine import InferenceEngine  # noqa: E402
from ftutils.local.models import catalog, chat_format  # noqa: E402
from ftutils.local.models.loading import load_base  # noqa: E402
from ftutils.local.training.config import TrainConfig  # noqa: E402
from ftutils.local.training.loop import epoch_batches, train  # noqa: E402
from tests.local.sinks import RecordingSink  # noqa: E402

BASE = catalog.default_model()
BATCH = 8
SEED = 0
LR = 4e-4  # what ours uses at the auto multiplier 2
TOPICS = ["order", "invoice", "password", "parcel", "refund", "account", "screen", "plan", "card", "login"]
WORDS = ("please help my the was is not working since yesterday and I need it fixed today thanks again "
         "could you check why nothing arrived after payment went through twice this week").split()


def make_chats(n: int, seed: int = SEED) -> list[dict]:
    """Short classification-style chats of 30-200 tokens, ~61 on average."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        words = [rng.choice(WORDS) for _ in range(int(rng.expovariate(1 / 32)) + 2)]
        words.insert(rng.randrange(len(words)), topic)
        rows.append({"messages": [{"role": "system", "content": "Label the ticket's topic."},
                                  {"role": "user", "content": " ".join(words)},
                                  {"role": "assistant", "content": f"{topic} ({rng.choice(['low', 'high'])} priority)"}]})
    return rows


def lora_model(data_dir):
    from peft import LoraConfig, get_peft_model

    model, _ = load_base(BASE, data_dir)
    model.config.use_cache = False
    torch.manual_seed(SEED)
    return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))


def reference(data_dir, encoded, bf16: bool, grouped: bool) -> tuple[int, float]:
    """(real tokens, seconds) over all steps but the first, of a plain HF + peft loop."""
    model = lora_model(data_dir)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, weight_decay=0.0)
    if grouped:
        batches = epoch_batches([len(e.input_ids) for e in encoded], BATCH, SEED, 0)
    else:
        order = torch.randperm(len(encoded), generator=torch.Generator().manual_seed(SEED)).tolist()
        batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
    tokens, start = 0, None
    for step, batch in enumerate(batches):
        ids, mask, labels = chat_format.pad_batch([encoded[i] for i in batch], pad_id=2)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 0:
            start = time.perf_counter()  # the first step warms caches and allocators up
        else:
            tokens += int(mask.sum())
    return tokens, time.perf_counter() - start


class TimingSink(RecordingSink):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_metrics(self, record):
        super().on_metrics(record)
        self.times.append(time.perf_counter())


def ours(data_dir, train_file: Path, encoded, processes: int = 1) -> tuple[int, float]:
    sink = TimingSink()
    with tempfile.TemporaryDirectory() as out:
        train(TrainConfig(base_model=BASE, data_dir=data_dir, train_file=train_file, output_dir=out, n_epochs=1,
                          batch_size=BATCH, learning_rate_multiplier=LR / TrainConfig.base_learning_rate, seed=SEED,
                          processes=processes),
              sink)
    batches = epoch_batches([len(e.input_ids) for e in encoded], BATCH, SEED, 0)
    tokens = sum(len(encoded[i].input_ids) for batch in batches[1:] for i in batch)
    return tokens, sink.times[-1] - sink.times[0]


class _StepClock:
    """A TrainerCallback (duck-typed) noting when each optimizer step ends."""

    def __init__(self):
        self.times = []

    def __getattr__(self, name):  # every other callback event: nothing to do
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def trl_defaults(data_dir, rows, max_steps: int = -1) -> tuple[int, float]:
    """(real tokens, seconds) over all steps but the first, of TRL's SFTTrainer as it comes (its
    first `max_steps` steps only, if given: on a CPU without bf16 units, TRL 1.16's defaults run
    bf16 autocast and gradient checkpointing, and a step of 8 chats takes minutes)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_base(BASE, data_dir)
    seen = []  # non-padding tokens of each forward pass, read from the batch itself
    clock = _StepClock()
    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, per_device_train_batch_size=BATCH, num_train_epochs=1, learning_rate=LR,
                           seed=SEED, use_cpu=True, report_to=[], save_strategy="no", logging_steps=10_000,
                           disable_tqdm=True, dataloader_num_workers=0, max_steps=max_steps)
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
                             callbacks=[clock])
        hook = trainer.model.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append(int(kwargs["attention_mask"].sum())), with_kwargs=True)
        trainer.train()
        hook.remove()
    # One forward per step (no gradient accumulation by default); skip the warm-up step as for the others.
    return sum(seen[1:len(clock.times)]), clock.times[-1] - clock.times[0]


def throughput(args):
    data_dir = Path(args.data_dir)
    base, tokenizer = load_base(BASE, data_dir)  # converts the GGUF once, untimed
    config = base.config
    del base
    rows = make_chats(args.examples)
    encoded = [chat_format.encode(tokenizer, r["messages"], 1024) for r in rows]
    lengths = [len(e.input_ids) for e in encoded]
    print(f"{len(rows)} chats, {statistics.mean(lengths):.1f} tokens on average ({min(lengths)}-{max(lengths)}), "
          f"batch {BATCH}, torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"bf16 native: {torch.cpu._is_avx512_bf16_supported()}")
    variants = {"reference": lambda: reference(data_dir, encoded, bf16=False, grouped=False),
                "+bf16": lambda: reference(data_dir, encoded, bf16=True, grouped=False),
                "+grouped": lambda: reference(data_dir, encoded, bf16=False, grouped=True),
                "ours": None}
    if not args.all:
        del variants["+bf16"], variants["+grouped"]
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.jsonl"
        train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
        variants["ours"] = lambda: ours(data_dir, train_file, encoded)
        if args.processes > 1:
            variants[f"ours x{args.processes}"] = lambda: ours(data_dir, train_file, encoded, args.processes)
        try:
            import trl  # noqa: F401
            variants["trl"] = lambda: trl_defaults(data_dir, rows, args.trl_steps)
        except ImportError:
            print("trl is not installed: TRL's defaults are not measured (pip install -e .[bench])")
        ratios = {name: [] for name in variants}
        for round_ in range(1, args.rounds + 1):
            rates = {}
            for name, run in variants.items():
                tokens, seconds = run()
                rates[name] = tokens / seconds
                print(f"  {name}: {rates[name]:.1f} tok/s", flush=True)  # kept if a later variant is cut short
            for name, rate in rates.items():
                ratios[name].append(rate / rates["reference"])
            print(f"round {round_}: " + ", ".join(f"{n} {r:.0f} tok/s ({r / rates['reference']:.2f}x)" for n, r in rates.items()),
                  flush=True)
    print("mean ratio to reference: " + ", ".join(f"{n} {statistics.mean(r):.2f}x" for n, r in ratios.items()))
    print_flops(config, lengths, rates)
    for name in (n for n in ratios if n.startswith("ours")):
        against = [("the plain peft loop", statistics.mean(ratios[name]))]
        if "trl" in ratios:
            against.append(("TRL's defaults", statistics.mean(o / t for o, t in zip(ratios[name], ratios["trl"]))))
        print(f"{name} vs " + ", ".join(f"{what} {ratio:.2f}x" for what, ratio in against) + " (target >= 3x both)")


def print_flops(config, lengths, rates) -> None:
    """Achieved FLOP/s of each variant (last round) against the matmul peak measured now, at the model's
    shapes and one batch's tokens, with torch's threads (all cores)."""
    per_token = flops.flops_per_token(config, lengths)
    rows = round(BATCH * statistics.mean(lengths))
    peaks = {name: flops.matmul_peak(config, rows, dtype) for name, dtype in (("bf16", torch.bfloat16),
                                                                                ("fp32", torch.float32))}
    best = max(peaks.values())
    print(f"model FLOPs per trained token {per_token / 1e6:.0f} M; matmul peak at the model's shapes ({rows} rows, "
          f"{torch.get_num_threads()} threads): " + ", ".join(f"{n} {p / 1e9:.0f} GFLOP/s" for n, p in peaks.items()))
    print("achieved (last round): " + ", ".join(f"{n} {r * per_token / 1e9:.1f} GFLOP/s ({r * per_token / best:.0%} of "
                                                f"the best peak)" for n, r in rates.items()))


def job(args):
    """A small real job: 60 sample queries, 3 epochs, auto batch size and multiplier."""
    with open(ROOT / "data" / "samples" / "clinc150_subset.csv", newline="", encoding="utf-8") as handle:
        tickets = list(csv.DictReader(handle))
    labels = sorted({t["label"] for t in tickets})
    rng = random.Random(SEED)
    rng.shuffle(tickets)
    system = f"Classify the customer support ticket. Answer with one label only: {', '.join(labels)}."

    def chat(t, answer=True):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": t["text"]}]
        return {"messages": messages + ([{"role": "assistant", "content": t["label"]}] if answer else [])}
    train_set, valid_set, test_set = tickets[:60], tickets[60:80], tickets[80:80 + args.test]
    hp = Hyperparameters().resolve(len(train_set))
    engine = InferenceEngine(args.data_dir)

    def accuracy(adapter) -> tuple[float, float]:
        """Exact answers, and answers whose first label mentioned is right (kinder to a chatty base)."""
        exact = lenient = 0
        for t in test_set:
            text = engine.generate(BASE, adapter, chat(t, answer=False)["messages"], temperature=0,
                                   max_tokens=16).choices[0].text.strip()
            found = sorted((text.lower().find(label), label) for label in labels if label in text.lower())
            exact += text == t["label"]
            lenient += bool(found) and found[0][1] == t["label"]
        return exact / len(test_set), lenient / len(test_set)

    t0 = time.perf_counter()
    before = accuracy(None)
    eval_seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in (("train", train_set), ("valid", valid_set)):
            (Path(tmp) / f"{name}.jsonl").write_text("".join(json.dumps(chat(t)) + "\n" for t in rows))
        sink = RecordingSink()
        t0 = time.perf_counter()
        result = train(TrainConfig(base_model=BASE, data_dir=args.data_dir, train_file=Path(tmp) / "train.jsonl",
                                   validation_file=Path(tmp) / "valid.jsonl", output_dir=Path(tmp) / "job",
                                   n_epochs=hp.n_epochs, batch_size=hp.batch_size,
                                   learning_rate_multiplier=hp.learning_rate_multiplier, seed=SEED), sink)
        train_seconds = time.perf_counter() - t0
        after = accuracy(result.adapter_dir)
    epochs = [(m["step"], round(m["full_valid_loss"], 3), round(m["full_valid_mean_token_accuracy"], 3))
              for m in sink.metrics if "full_valid_loss" in m]
    print(f"job: {len(train_set)} examples, {hp.n_epochs} epochs, batch {hp.batch_size}, lr multiplier "
          f"{hp.learning_rate_multiplier}: {result.steps} steps, {result.trained_tokens} tokens in {train_seconds:.0f} s "
          f"end to end ({result.trained_tokens / train_seconds:.0f} tok/s), torch threads {torch.get_num_threads()}")
    print(f"full validation (step, loss, token accuracy) per epoch: {epochs}")
    print(f"held-out accuracy on {len(test_set)} tickets, greedy, exact answer: base {before[0]:.2f} -> fine-tuned "
          f"{after[0]:.2f}; first label named: base {before[1]:.2f} -> fine-tuned {after[1]:.2f} "
          f"(base evaluation took {eval_seconds:.0f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--all", action="store_true", help="also time bf16-only and grouping-only")
    parser.add_argument("--processes", type=int, default=2,
                        help="also time ours with each batch shared by this many single-threaded processes (1: not)")
    parser.add_argument("--trl-steps", type=int, default=-1, help="time only TRL's first N steps (-1: one epoch)")
    parser.add_argument("--job", action="store_true", help="time a 60-example job and its accuracy instead")
    parser.add_argument("--test", type=int, default=60, help="held-out tickets for --job")
    parser.add_argument("--data-dir", default=os.environ.get("FTUTILS_DATA_DIR", str(Path.home() / ".ftutils" / "local")))
    args = parser.parse_args()
    job(args) if args.job else throughput(args)


if __name__ == "__main__":
    main()
