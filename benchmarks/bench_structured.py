"""Constrained-decoding libraries compared on one JSON schema with SmolLM2's tokenizer.

For each library that imports here (llguidance, xgrammar, outlines-core, lm-format-enforcer)
the script compiles the schema, then samples `--n` sequences from seeded random logits
(the same logits stream for every library, like a random-weight model) under the library's
token mask, and reports: compile time, the per-token cost of the mask (compute it, apply it
to the logits, advance the matcher) as a ratio to one decode step of smollm2-135m-instruct
measured in the same run (or of tiny-smollm2 with --tiny), and correctness: each finished
sequence must parse with json.loads and validate against the schema (jsonschema).

    .venv/bin/python benchmarks/bench_structured.py [--n 20] [--max-tokens 200] [--tiny]
        [--data-dir DIR]

Install the candidates in a scratch venv that sees the project's (e.g. a `.pth` file naming
`.venv`'s site-packages) to compare them without touching `.venv`.

Measured 2026-12-01 on the shared 2-core machine, --n 20 --max-tokens 200, vs a
smollm2-135m decode step; see ftutils/local/inference/structured.py for the numbers and the choice.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "status": {"type": "string", "enum": ["active", "inactive", "banned"]},
        "verified": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3},
        "score": {"type": ["number", "null"]},
    },
    "required": ["name", "age", "status", "verified", "tags", "score"],
    "additionalProperties": False,
}


class LLGuidance:
    name = "llguidance"

    def __init__(self, tok, vocab_size):
        import llguidance
        import llguidance.hf
        import llguidance.torch as lt

        self.lg, self.lt = llguidance, lt
        self.lltok = llguidance.hf.from_tokenizer(tok, n_vocab=vocab_size)
        self.bitmask = lt.allocate_token_bitmask(1, vocab_size)

    def compile(self, schema):
        g = self.lg.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": False})
        self.grammar = g
        m = self.lg.LLMatcher(self.lltok, g)
        assert not m.is_error(), m.get_error()

    def start(self):
        self.m = self.lg.LLMatcher(self.lltok, self.grammar)

    def mask(self, logits):
        self.lt.fill_next_token_bitmask(self.m, self.bitmask, 0)
        self.lt.apply_token_bitmask_inplace(logits, self.bitmask.to(logits.device))

    def advance(self, token):
        assert self.m.consume_token(token), self.m.get_error()
        return self.m.is_stopped()


class XGrammar:
    name = "xgrammar"

    def __init__(self, tok, vocab_size):
        import xgrammar as xgr

        self.xgr = xgr
        self.info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab_size)
        self.compiler = xgr.GrammarCompiler(self.info)
        self.bitmask = xgr.allocate_token_bitmask(1, vocab_size)

    def compile(self, schema):
        self.compiled = self.compiler.compile_json_schema(
            json.dumps(schema), any_whitespace=False, strict_mode=True)

    def start(self):
        self.m = self.xgr.GrammarMatcher(self.compiled)

    def mask(self, logits):
        self.m.fill_next_token_bitmask(self.bitmask)
        self.xgr.apply_token_bitmask_inplace(logits, self.bitmask)

    def advance(self, token):
        assert self.m.accept_token(token)
        return self.m.is_terminated()


class OutlinesCore:
    name = "outlines-core"

    def __init__(self, tok, vocab_size):
        import outlines_core as oc

        self.oc = oc
        self.eos = tok.eos_token_id
        # Vocabulary wants each token's bytes; byte-level BPE (GPT-2's) spells byte b as the
        # character b itself when printable, else as chr(256 + k) for the k-th other byte.
        printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
        others = [b for b in range(256) if b not in printable]
        unicode_to_byte = {chr(b): b for b in printable}
        unicode_to_byte |= {chr(256 + k): b for k, b in enumerate(others)}
        special = set(tok.all_special_ids)
        vocab: dict[bytes, list[int]] = {}
        for text, i in tok.get_vocab().items():
            if i in special or i >= vocab_size:
                continue
            vocab.setdefault(bytes(unicode_to_byte[c] for c in text), []).append(i)
        self.vocab = oc.Vocabulary(self.eos, vocab)
        self.vocab_size = vocab_size

    def compile(self, schema):
        from outlines_core.json_schema import build_regex_from_schema

        self.index = self.oc.Index(build_regex_from_schema(json.dumps(schema)), self.vocab)

    def start(self):
        self.g = self.oc.Guide(self.index)

    def mask(self, logits):
        allowed = torch.tensor(self.g.get_tokens())
        keep = torch.full_like(logits, float("-inf"))
        keep[..., allowed] = 0
        logits += keep

    def advance(self, token):
        if token == self.eos:
            return True
        self.g.advance(token, return_tokens=False)
        return False


class FormatEnforcer:
    name = "lm-format-enforcer"

    def __init__(self, tok, vocab_size):
        # Its transformers integration imports transformers.tokenization_utils, gone in
        # transformers 5, so the tokenizer data is built here the way that module does.
        from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

        zero = tok.encode("0")[-1]
        special = set(tok.all_special_ids)
        regular = []
        for i in range(vocab_size):
            if i in special:
                continue
            after_zero = tok.decode([zero, i])[1:]
            regular.append((i, after_zero, len(after_zero) > len(tok.decode([i]))))
        self.data = TokenEnforcerTokenizerData(
            regular, lambda ids: tok.decode(ids).rstrip("\ufffd"), tok.eos_token_id, False, vocab_size)
        self.eos = tok.eos_token_id

    def compile(self, schema):
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        self.schema = schema
        self.make = lambda: TokenEnforcer(self.data, JsonSchemaParser(schema))
        self.make().get_allowed_tokens([])

    def start(self):
        self.e = self.make()
        self.ids: list[int] = []

    def mask(self, logits):
        allowed = self.e.get_allowed_tokens(self.ids)
        allowed = getattr(allowed, "allowed_tokens", allowed)
        keep = torch.full_like(logits, float("-inf"))
        keep[..., torch.tensor(list(allowed))] = 0
        logits += keep

    def advance(self, token):
        self.ids.append(token)
        return token == self.eos


def run(lib_cls, tok, vocab_size, eos_ids, args, validator):
    t0 = time.perf_counter()
    try:
        lib = lib_cls(tok, vocab_size)
    except ImportError as e:
        if e.name and e.name.split(".")[0] not in ("llguidance", "xgrammar", "outlines_core", "lmformatenforcer"):
            raise
        return {"library": lib_cls.name, "error": f"not installed ({e.name})"}
    t1 = time.perf_counter()
    lib.compile(SCHEMA)
    t2 = time.perf_counter()
    per_token, finished, valid, lengths, failures = [], 0, 0, [], []
    for s in range(args.n):
        gen = torch.Generator().manual_seed(s)
        lib.start()
        ids: list[int] = []
        done = False
        for _ in range(args.max_tokens):
            logits = torch.randn(1, vocab_size, generator=gen)
            a = time.perf_counter()
            lib.mask(logits)
            token = int(torch.multinomial(torch.softmax(logits[0], -1), 1, generator=gen))
            stopped = lib.advance(token)
            per_token.append(time.perf_counter() - a)
            if token in eos_ids:
                done = True
                break
            ids.append(token)
            if stopped:
                done = True
                break
        lengths.append(len(ids))
        if not done:
            continue
        finished += 1
        text = tok.decode(ids)
        try:
            validator(json.loads(text))
            valid += 1
        except Exception as e:  # noqa: BLE001 - the failure is the measurement
            failures.append(f"{type(e).__name__}: {str(e)[:80]} in {text[:80]!r}")
    return {"library": lib.name, "setup_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 3),
            "mask_ms_median": round(1000 * statistics.median(per_token), 3),
            "mask_ms_p99": round(1000 * sorted(per_token)[int(0.99 * (len(per_token) - 1))], 3),
            "finished": finished, "valid": valid, "n": args.n,
            "mean_tokens": round(statistics.mean(lengths), 1), "failures": failures[:3]}


def decode_step_ms(model, steps=30):
    """Median time of one KV-cached decode step: what a mask's cost is compared with."""
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    times = []
    with torch.inference_mode():
        out = model(ids, use_cache=True)
        past, nxt = out.past_key_values, ids[:, -1:]
        for _ in range(steps):
            a = time.perf_counter()
            out = model(nxt, past_key_values=past, use_cache=True)
            times.append(time.perf_counter() - a)
            past = out.past_key_values
    return 1000 * statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--max-tokens", type=int, default=200)
    p.add_argument("--tiny", action="store_true", help="compare with tiny-smollm2's decode step")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    from ftutils.home import data_dir
    from ftutils.local.models import catalog
    from ftutils.local.models.loading import load_base

    model, tok = load_base("tiny-smollm2" if args.tiny else catalog.default_model(),
                           Path(args.data_dir) if args.data_dir else data_dir())
    model.eval()
    vocab_size = model.config.vocab_size
    step_ms = decode_step_ms(model)
    try:
        import jsonschema

        validator = jsonschema.Draft202012Validator(SCHEMA).validate
    except ImportError:
        sys.exit("jsonschema is needed to check the answers")
    eos_ids = {tok.eos_token_id}
    print(f"decode step ({'tiny' if args.tiny else 'smollm2-135m'}): {step_ms:.2f} ms; vocab {vocab_size}")
    for cls in (LLGuidance, XGrammar, OutlinesCore, FormatEnforcer):
        r = run(cls, tok, vocab_size, eos_ids, args, validator)
        if "mask_ms_median" in r:
            r["mask_vs_decode_step"] = round(r["mask_ms_median"] / step_ms, 3)
        print(json.dumps(r))


if __name__ == "__main__":
    main()
