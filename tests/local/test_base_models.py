"""Base models: the registry, the seeded tiny model, and the conversion cache."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from ftutils.local import base_models


def test_tiny_model_is_the_same_from_its_seed_and_leaves_the_callers_rng_alone():
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    first = base_models.tiny_model()
    after = torch.rand(3)
    second = base_models.tiny_model()
    assert torch.equal(after, expected_next)
    state1, state2 = first.state_dict(), second.state_dict()
    assert state1.keys() == state2.keys()
    assert all(torch.equal(state1[k], state2[k]) for k in state1)
    config = first.config
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (49152, 64, 2)
    assert first.get_output_embeddings().weight is first.get_input_embeddings().weight  # tied, like SmolLM2
    assert first.get_input_embeddings().weight[2].abs().sum() > 0  # <|im_end|> is predictable


def test_tiny_model_loads_with_smollm2s_tokenizer_and_caches_it(ml_data_dir, monkeypatch):
    model, tokenizer = base_models.load_base("tiny-smollm2", ml_data_dir)
    assert tokenizer.convert_ids_to_tokens([1, 2]) == ["<|im_start|>", "<|im_end|>"]
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert not (ml_data_dir / "models" / base_models.SMOLLM2).exists()  # no 135M conversion for the tiny model
    assert not list((ml_data_dir / "models").glob(".tmp-*"))

    def no_gguf():
        raise AssertionError("the GGUF was read again")
    monkeypatch.setattr(base_models, "gguf_path", no_gguf)
    again, tokenizer2 = base_models.load_base("tiny-smollm2", ml_data_dir)
    assert tokenizer2("hello world")["input_ids"] == tokenizer("hello world")["input_ids"]
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_registry_lists_builtins_and_extra_models(ml_data_dir, tmp_path):
    _, tokenizer = base_models.load_base("tiny-smollm2", ml_data_dir)
    folder = tmp_path / "my-model"
    base_models.tiny_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    extra = {"my-model": str(folder)}

    ids = [m.id for m in base_models.list_base_models(ml_data_dir, extra)]
    assert ids == ["smollm2-135m-instruct", "tiny-smollm2", "my-model"]
    info = base_models.list_base_models(ml_data_dir, extra)[2]
    assert (info.owned_by, info.context_length) == ("local", 8192)
    assert base_models.is_base_model("tiny-smollm2") and base_models.is_base_model("my-model", extra)
    assert not base_models.is_base_model("my-model") and not base_models.is_base_model("gpt-4o-mini-2024-07-18")

    model, _ = base_models.load_base("my-model", ml_data_dir, extra)
    reference = base_models.tiny_model()
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight.cpu(), reference.model.layers[0].mlp.up_proj.weight)
    with pytest.raises(KeyError, match="unknown base model 'nope'"):
        base_models.load_base("nope", ml_data_dir)


def test_cache_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "models" / "thing"

    def crash(tmp):
        (tmp / "half.bin").write_bytes(b"x" * 10)
        raise RuntimeError("killed mid-conversion")
    with pytest.raises(RuntimeError):
        base_models._cached(target, crash)
    assert not target.exists()
    assert not list(target.parent.glob(".tmp-*"))

    (target.parent / ".tmp-thing-stale").mkdir()  # what a killed process leaves behind
    base_models._cached(target, lambda tmp: (tmp / "weights.bin").write_bytes(b"ok"))
    assert (target / "weights.bin").read_bytes() == b"ok"
    assert not list(target.parent.glob(".tmp-*"))


def test_racing_loaders_convert_once(tmp_path):
    target = tmp_path / "models" / "thing"
    calls = []

    def slow(tmp):
        calls.append(1)
        time.sleep(0.3)
        (tmp / "weights.bin").write_bytes(b"ok")
    threads = [threading.Thread(target=base_models._cached, args=(target, slow)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert (target / "weights.bin").read_bytes() == b"ok"
